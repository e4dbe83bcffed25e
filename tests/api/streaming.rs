//! Streamed turns: `POST /conversations/{id}/messages/stream`, and the plain route with
//! `Accept: text/event-stream`.

use crate::{
    helpers::{TestApp, decimal, error_code},
    mock_provider::MockReply,
};
use futures::StreamExt;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// (event, data) pairs of a server-sent event stream.
pub(crate) fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = Some(name.trim().to_owned());
                } else if let Some(more) = line.strip_prefix("data:") {
                    data.push_str(more.trim_start());
                }
            }
            event.map(|event| (event, serde_json::from_str(&data).unwrap_or(Value::Null)))
        })
        .collect()
}

async fn streamed(app: &TestApp, conversation: &str, body: Value, key: Option<&str>) -> Response {
    let mut request = app
        .request(
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .header("accept", "text/event-stream")
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

/// The documented stream route, with no `Accept` header of its own.
async fn on_stream_route(
    app: &TestApp,
    conversation: &str,
    body: Value,
    key: Option<&str>,
) -> Response {
    let mut request = app
        .request(
            Method::POST,
            &format!("/conversations/{conversation}/messages/stream"),
        )
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

fn hello() -> Value {
    json!({"player_id": "p-1", "character_id": "mara", "content": "Any rooms free?"})
}

fn deltas(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "delta")
        .map(|(_, data)| data["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_streamed_turn_yields_typing_deltas_and_done_and_stores_what_was_streamed() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Stream {
        chunks: vec!["One ".into(), "left, ".into(), "upstairs.".into()],
        usage: Some((412, 18)),
        gap: Duration::from_millis(20),
        cut: false,
    }]);
    let response = streamed(&app, "c-1", hello(), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, vec!["typing", "delta", "delta", "delta", "done"]);
    assert_eq!(deltas(&events), "One left, upstairs.");
    let done = &events.last().unwrap().1;
    assert_eq!(done["reply"]["content"], "One left, upstairs.");
    assert_eq!(done["source"], "llm");
    assert_eq!(done["usage"]["prompt_tokens"], 412);
    assert_eq!(
        decimal(&done["usage"]["cost_usd"]),
        "0.000073".parse().unwrap()
    );
    assert_eq!(app.stored_messages("c-1").await[1].2, "One left, upstairs.");

    let request = app.provider.last_request();
    assert_eq!(request.body["stream"], true);
    assert_eq!(
        request.body["stream_options"],
        json!({"include_usage": true})
    );
    let (tokens, estimated): (u32, bool) =
        sqlx::query_as("SELECT completion_tokens, tokens_estimated FROM usage_records")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((tokens, estimated), (18, false));
}

#[tokio::test]
async fn a_stream_cut_after_two_chunks_is_stored_and_billed_with_estimated_tokens() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Stream {
        chunks: vec!["Half a ".into(), "sentence".into()],
        usage: Some((412, 18)),
        gap: Duration::from_millis(30),
        cut: true,
    }]);
    let response = streamed(&app, "c-1", hello(), None).await;
    let events = events(&response.text().await.unwrap());
    assert_eq!(deltas(&events), "Half a sentence");
    let done = &events.last().unwrap().1;
    assert_eq!(events.last().unwrap().0, "done");
    assert_eq!(done["source"], "llm", "what was said stays said");
    assert_eq!(app.stored_messages("c-1").await[1].2, "Half a sentence");
    assert_eq!(
        app.provider.request_count(),
        1,
        "no retry after text was shown"
    );
    let (completion, estimated, outcome): (u32, bool, String) =
        sqlx::query_as("SELECT completion_tokens, tokens_estimated, outcome FROM usage_records")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (completion, estimated, outcome.as_str()),
        (3, true, "success"),
        "o200k: 'Half a sentence' is 3 tokens"
    );
}

#[tokio::test]
async fn a_stream_cut_before_any_text_is_retried() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::Stream {
            chunks: vec![],
            usage: None,
            gap: Duration::ZERO,
            cut: true,
        },
        MockReply::text("Second try.", 10, 3),
    ]);
    let events = events(
        &streamed(&app, "c-1", hello(), None)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(deltas(&events), "Second try.");
    assert_eq!(app.provider.request_count(), 2);
}

#[tokio::test]
async fn a_game_that_hangs_up_after_the_first_delta_still_gets_its_reply_stored_and_billed() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Stream {
        chunks: vec![
            "Well, ".into(),
            "since ".into(),
            "you ".into(),
            "ask...".into(),
        ],
        usage: Some((100, 8)),
        gap: Duration::from_millis(150),
        cut: false,
    }]);
    let response = streamed(&app, "c-1", hello(), None).await;
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let chunk = body.next().await.expect("the stream goes on").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body); // the game hangs up

    let give_up = Instant::now() + Duration::from_secs(10);
    while app.stored_messages("c-1").await.len() < 2 {
        assert!(Instant::now() < give_up, "the reply was never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.stored_messages("c-1").await[1].2,
        "Well, since you ask..."
    );
    assert_eq!(app.count("usage_records").await, 1);
}

#[tokio::test]
async fn fallbacks_stream_as_one_delta_then_done() {
    let app = TestApp::spawn_with(&[("LLM_API_KEY", "")]).await;
    app.create_mara("mara").await;
    let events = events(
        &streamed(
            &app,
            "c-1",
            json!({"player_id": "p-1", "character_id": "mara", "content": "Hi", "affinity": 90}),
            None,
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, vec!["typing", "delta", "done"]);
    assert_eq!(deltas(&events), "Ah, my favourite guest!");
    assert_eq!(events[2].1["fallback_reason"], "llm_not_configured");
}

#[tokio::test]
async fn refusals_known_before_the_stream_keep_their_status() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let response = streamed(
        &app,
        "c-1",
        json!({"player_id": "p-1", "character_id": "nobody", "content": "Hi"}),
        None,
    )
    .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let response = streamed(
        &app,
        "c-1",
        json!({"player_id": "p-1", "character_id": "mara", "content": ""}),
        None,
    )
    .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "validation_failed".into())
    );
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn an_idempotent_replay_streams_the_stored_reply() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let first = events(
        &streamed(&app, "c-1", hello(), Some("k-1"))
            .await
            .text()
            .await
            .unwrap(),
    );
    let again = events(
        &streamed(&app, "c-1", hello(), Some("k-1"))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        first.last().unwrap(),
        again.last().unwrap(),
        "the same done event"
    );
    assert_eq!(deltas(&again), "One left, upstairs.");
    assert_eq!(app.provider.request_count(), 1);
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
}

#[tokio::test]
async fn a_stream_slower_than_the_deadline_is_cut_there_kept_and_billed() {
    let app = TestApp::spawn_with(&[("LLM_DEADLINE_MS", "1500"), ("LLM_TIMEOUT_MS", "1000")]).await;
    app.create_mara("mara").await;
    // A provider trickling a word every 300 ms, for 6 s in all: each gap is within the
    // attempt's timeout, only the deadline can stop it.
    app.provider.enqueue([MockReply::Stream {
        chunks: (0..20).map(|i| format!("word{i} ")).collect(),
        usage: Some((412, 40)),
        gap: Duration::from_millis(300),
        cut: false,
    }]);
    let started = Instant::now();
    let response = streamed(&app, "c-1", hello(), None).await;
    let events = events(&response.text().await.unwrap());
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "the stream outlived the deadline: {elapsed:?}"
    );
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(done["reply"]["truncated"], true, "{done}");
    assert_eq!(done["source"], "llm");
    let said = deltas(&events);
    assert!(
        said.starts_with("word0 ") && !said.contains("word19"),
        "{said:?}"
    );
    assert_eq!(done["reply"]["content"], said.as_str());
    assert_eq!(app.stored_messages("c-1").await[1].2, said);
    let (cost, estimated): (rust_decimal::Decimal, bool) =
        sqlx::query_as("SELECT cost_usd, tokens_estimated FROM usage_records")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(cost > rust_decimal::Decimal::ZERO);
    assert!(
        estimated,
        "the usage chunk never came: the tokens are estimated"
    );
    let (_, history) = app.get_json("/conversations/c-1/messages").await;
    assert_eq!(history["messages"][1]["truncated"], true, "{history}");
    assert!(
        history["messages"][0].get("truncated").is_none(),
        "{history}"
    );
}

#[tokio::test]
async fn a_reply_never_grows_past_its_cap() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Stream {
        chunks: vec!["é".repeat(6000), "é".repeat(6000)],
        usage: Some((412, 4000)),
        gap: Duration::from_millis(10),
        cut: false,
    }]);
    let response = streamed(&app, "c-1", hello(), None).await;
    let events = events(&response.text().await.unwrap());
    let done = &events.last().unwrap().1;
    assert_eq!(done["reply"]["truncated"], true);
    let content = done["reply"]["content"].as_str().unwrap();
    assert_eq!(content.len(), npc_dialogue::llm::MAX_REPLY_BYTES);
    assert_eq!(
        deltas(&events),
        content,
        "what was streamed is what is stored"
    );
    assert_eq!(app.stored_messages("c-1").await[1].2, content);
}

#[tokio::test]
async fn the_stream_route_yields_typing_deltas_and_done_carrying_the_plain_turns_json() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Stream {
        chunks: vec!["One ".into(), "left, ".into(), "upstairs.".into()],
        usage: Some((412, 18)),
        gap: Duration::from_millis(20),
        cut: false,
    }]);
    let response = on_stream_route(&app, "c-1", hello(), Some("k-1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "streams without being asked with Accept"
    );
    let events = events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, vec!["typing", "delta", "delta", "delta", "done"]);
    assert_eq!(events[0].1, json!({}));
    assert_eq!(deltas(&events), "One left, upstairs.");
    let done = &events.last().unwrap().1;
    assert_eq!(done["reply"]["content"], "One left, upstairs.");
    assert_eq!(app.stored_messages("c-1").await[1].2, "One left, upstairs.");

    // The plain route answers the same request (same key) with the stored JSON: exactly
    // what `done` carried.
    let plain = app
        .request(Method::POST, "/conversations/c-1/messages")
        .header("Idempotency-Key", "k-1")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(&plain.json::<Value>().await.unwrap(), done);
    assert_eq!(app.provider.request_count(), 1);
}

#[tokio::test]
async fn a_plain_turn_replayed_on_the_stream_route_is_one_delta_and_the_same_json() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let plain: Value = app
        .request(Method::POST, "/conversations/c-1/messages")
        .header("Idempotency-Key", "k-1")
        .json(&hello())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = events(
        &on_stream_route(&app, "c-1", hello(), Some("k-1"))
            .await
            .text()
            .await
            .unwrap(),
    );
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, vec!["typing", "delta", "done"]);
    assert_eq!(deltas(&events), plain["reply"]["content"].as_str().unwrap());
    assert_eq!(events[2].1, plain);
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
}

#[tokio::test]
async fn refusals_on_the_stream_route_are_http_statuses_with_json_bodies() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.create_mara("rowan").await;
    app.say("c-bound", "p-1", "mara", "Hello").await;
    let stored = app.count("messages").await;
    let cases = [
        (
            "c-1",
            json!({"player_id": "p-1", "character_id": "nobody", "content": "Hi"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "c-1",
            json!({"player_id": "p-1", "character_id": "mara", "content": "   "}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            json!({"player_id": "p-1", "character_id": "mara"}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "c%01",
            hello(),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-bound",
            json!({"player_id": "p-2", "character_id": "mara", "content": "Hi"}),
            StatusCode::CONFLICT,
            "conversation_conflict",
        ),
        (
            "c-bound",
            json!({"player_id": "p-1", "character_id": "rowan", "content": "Hi"}),
            StatusCode::CONFLICT,
            "conversation_conflict",
        ),
    ];
    for (conversation, body, status, code) in cases {
        let response = on_stream_route(&app, conversation, body.clone(), None).await;
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{conversation} {body}: not an event stream"
        );
        assert_eq!(
            error_code(response).await,
            (status, code.to_owned()),
            "{conversation} {body}"
        );
    }
    assert_eq!(app.count("messages").await, stored, "nothing was stored");
}

#[tokio::test]
async fn a_key_reused_for_another_line_on_the_stream_route_ends_in_the_error_event() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let first = on_stream_route(&app, "c-1", hello(), Some("k-1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    first.text().await.unwrap();
    let other = json!({"player_id": "p-1", "character_id": "mara", "content": "Something else"});
    let response = on_stream_route(&app, "c-1", other, Some("k-1")).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "found once the turn began"
    );
    let events = events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, vec!["typing", "error"]);
    assert_eq!(events[1].1["error"]["code"], "idempotency_key_reused");
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
}
