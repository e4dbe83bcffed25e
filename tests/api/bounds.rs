//! Every wait and every size has a bound: a client slow to send its request head, a
//! request slow to answer, too many requests at once, a provider answer that does not
//! end, a request id from the client that is not one.

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn hello() -> Value {
    json!({"player_id": "p-1", "character_id": "mara", "content": "Any rooms free?"})
}

async fn outcomes(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT outcome FROM usage_records ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_that_stalls_in_its_request_head_is_disconnected() {
    let app = TestApp::spawn_with(&[("HTTP_HEADER_READ_TIMEOUT_MS", "500")]).await;
    let address = app.address.trim_start_matches("http://");
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: npc\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 512];
        // Whatever the server says before it hangs up, it must hang up.
        while let Ok(read) = slow.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the half-sent request still holds its connection after 5 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed only after {:?}",
        started.elapsed()
    );
    // Prompt clients are served as before.
    assert_eq!(app.get_json("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_request_not_answered_in_time_gets_a_json_503_and_its_turn_is_still_stored() {
    let app = TestApp::spawn_with(&[("HTTP_REQUEST_TIMEOUT_MS", "400")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Delayed(
        Duration::from_millis(1500),
        Box::new(MockReply::text("Slow but sure.", 10, 3)),
    )]);
    let started = Instant::now();
    let response = app.post_turn("c-1", hello()).await;
    let waited = started.elapsed();
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        error_code(response).await,
        (StatusCode::SERVICE_UNAVAILABLE, "timeout".to_owned())
    );
    assert!(
        waited < Duration::from_millis(1400),
        "answered after {waited:?}"
    );

    // The turn itself was not cut: it is stored whole once the provider answers.
    let give_up = Instant::now() + Duration::from_secs(10);
    while app.stored_messages("c-1").await.len() < 2 {
        assert!(
            Instant::now() < give_up,
            "the timed-out turn was never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = app.stored_messages("c-1").await;
    assert_eq!(stored[1].2, "Slow but sure.");
}

#[tokio::test]
async fn a_streamed_reply_longer_than_the_request_timeout_is_not_cut() {
    let app = TestApp::spawn_with(&[("HTTP_REQUEST_TIMEOUT_MS", "400")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Stream {
        chunks: vec![
            "Slowly ".into(),
            "but ".into(),
            "surely ".into(),
            "told.".into(),
        ],
        usage: Some((10, 4)),
        gap: Duration::from_millis(300),
        cut: false,
    }]);
    let started = Instant::now();
    let response = app
        .request(Method::POST, "/conversations/c-1/messages")
        .header("accept", "text/event-stream")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(started.elapsed() > Duration::from_millis(1000));
    assert!(text.contains("event: done"), "{text}");
    assert!(text.contains("Slowly but surely told."), "{text}");
}

#[tokio::test]
async fn requests_over_the_in_flight_cap_get_a_json_503_until_a_slot_frees() {
    let app = TestApp::spawn_with(&[("HTTP_MAX_CONCURRENT_REQUESTS", "2")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::Delayed(
            Duration::from_millis(1500),
            Box::new(MockReply::text("First.", 10, 1)),
        ),
        MockReply::Stream {
            chunks: vec!["Still ".into(), "talking ".into(), "here.".into()],
            usage: Some((10, 3)),
            gap: Duration::from_millis(400),
            cut: false,
        },
    ]);
    let plain = tokio::spawn(
        app.request(Method::POST, "/conversations/c-1/messages")
            .json(&hello())
            .send(),
    );
    let give_up = Instant::now() + Duration::from_secs(10);
    while app.provider.request_count() < 1 {
        assert!(
            Instant::now() < give_up,
            "the first turn never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The second slot goes to a stream, held while its body is sent, after the handler
    // has returned.
    let streamed = app
        .request(Method::POST, "/conversations/c-2/messages")
        .header("accept", "text/event-stream")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::OK);

    let refused = app
        .request(Method::GET, "/characters")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        error_code(refused).await,
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded".to_owned())
    );
    // Probes are not counted: an overloaded replica is alive and ready.
    assert_eq!(app.get_json("/healthz").await.0, StatusCode::OK);
    assert_eq!(app.get_json("/readyz").await.0, StatusCode::OK);

    let text = streamed.text().await.unwrap();
    assert!(text.contains("Still talking here."), "{text}");
    let plain = plain.await.unwrap().unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(app.get_json("/characters").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_client_request_id_is_kept_only_when_short_and_plain() {
    let app = TestApp::spawn().await;
    let echoed = |id: &str| {
        let request = app
            .request(Method::GET, "/characters")
            .header("x-request-id", id);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    for kept in ["game-7f3a.turn:42", "0b6f2c1e-8a4d-4f7e-9c1b-2d3e4f5a6b7c"] {
        assert_eq!(echoed(kept).await, kept);
    }
    for replaced in [
        "a".repeat(200),
        "has spaces and \"quotes\"".to_owned(),
        "tab\there".to_owned(),
        "{\"json\":\"injection\"}".to_owned(),
    ] {
        let id = echoed(&replaced).await;
        assert_ne!(id, replaced);
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "{replaced:?} was answered with {id:?}, not a fresh id"
        );
    }
    // Not text at all.
    let response = app
        .request(Method::GET, "/characters")
        .header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id:?}");
}

#[tokio::test]
async fn a_provider_answer_over_a_mebibyte_is_refused_unread() {
    let app = TestApp::spawn_with(&[("LLM_MAX_RETRIES", "0")]).await;
    app.create_mara("mara").await;
    // A valid completion, padded past the cap.
    let padded = json!({
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Padded."}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        "padding": "x".repeat(1024 * 1024 + 1),
    });
    app.provider.enqueue([MockReply::Raw {
        status: 200,
        body: padded.to_string(),
    }]);
    let turn = app.say("c-1", "p-1", "mara", "Any rooms free?").await;
    assert_eq!(turn["source"], "fallback", "{turn}");
    assert_eq!(turn["fallback_reason"], "llm_error");
    assert_eq!(outcomes(&app).await, ["invalid_response"]);
}

#[tokio::test]
async fn a_provider_stream_that_never_ends_is_cut_at_its_byte_cap() {
    let app = TestApp::spawn_with(&[("LLM_MAX_RETRIES", "0")]).await;
    app.create_mara("mara").await;
    app.provider
        .enqueue([MockReply::Endless("data: not a chunk\n\n".into())]);
    let started = Instant::now();
    let response = app
        .request(Method::POST, "/conversations/c-1/messages")
        .header("accept", "text/event-stream")
        .json(&hello())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response
        .text()
        .await
        .expect("the stream ends, well before the client gives up");
    assert!(text.contains("event: done"), "{text}");
    assert!(text.contains("\"fallback_reason\":\"llm_error\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(outcomes(&app).await, ["invalid_response"]);
}
