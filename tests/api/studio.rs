//! What the studio needs of the API: open pages, the caller's role, a conversation's
//! summary, a character's conversations, a turn's latency and the job queue's depth.

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KEYS: [(&str, &str); 2] = [
    ("GAME_API_KEYS", "game-key"),
    ("READONLY_API_KEYS", "dash-key"),
];

/// Waits (up to 30 s: background work on a loaded CI machine) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn open_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_studio_and_the_docs_load_without_a_key_but_api_calls_still_need_one() {
    let app = TestApp::spawn_with(&KEYS).await;

    for (path, content_type) in [
        ("/studio", "text/html"),
        ("/studio/", "text/html"),
        ("/studio/studio.js", "text/javascript"),
        ("/studio/studio.css", "text/css"),
        ("/studio/icon.svg", "image/svg+xml"),
    ] {
        let response = open_get(&app, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");

        // Revalidation: the same file answers 304 without a body.
        let etag = header("etag");
        assert!(etag.starts_with('"'), "{path}: {etag}");
        let again = app
            .client
            .get(format!("{}{path}", app.address))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
        let body = response.text().await.unwrap();
        assert!(!body.trim().is_empty(), "{path} has content");
        // Everything comes from the binary: no other origin is named (SVG's namespace is
        // a name, not a place anything is fetched from).
        let body = body.replace("http://www.w3.org/2000/svg", "");
        assert!(!body.contains("http://"), "{path} names another origin");
        assert!(!body.contains("https://"), "{path} names another origin");
    }

    let page = open_get(&app, "/studio").await.text().await.unwrap();
    for asset in [
        "/studio/studio.js",
        "/studio/studio.css",
        "/studio/icon.svg",
    ] {
        assert!(page.contains(asset), "the page loads {asset}");
    }
    let script = open_get(&app, "/studio/studio.js")
        .await
        .text()
        .await
        .unwrap();
    for risky in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(
            !script.contains(risky),
            "server text goes into the page as text, never as HTML ({risky})"
        );
    }
    assert!(script.contains("sessionStorage"), "the key is kept per tab");
    assert!(
        !script.contains("localStorage"),
        "the key never outlives the tab"
    );

    let docs = open_get(&app, "/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let bundle = open_get(&app, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), StatusCode::OK);
    let (status, document) = {
        let response = open_get(&app, "/openapi.json").await;
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK, "the document the docs page shows");
    assert!(document["paths"]["/auth/whoami"].is_object());

    for path in ["/characters", "/auth/whoami", "/jobs/stats", "/usage"] {
        let response = open_get(&app, path).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::UNAUTHORIZED, "unauthorized".into()),
            "{path} still needs a key"
        );
    }
    let response = app
        .client
        .put(format!("{}/studio", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn whoami_names_the_role_of_the_key() {
    let mut app = TestApp::spawn_with(&KEYS).await;
    for (key, role) in [("game-key", "game"), ("dash-key", "readonly")] {
        app.api_key = Some(key.into());
        let (status, body) = app.get_json("/auth/whoami").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"role": role}));
    }
    for key in [None, Some("wrong-key".to_owned())] {
        app.api_key = key;
        let response = app
            .request(Method::GET, "/auth/whoami")
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (StatusCode::UNAUTHORIZED, "unauthorized".into())
        );
    }
    app.api_key = Some("dash-key".into());
    let response = app
        .request(Method::POST, "/auth/whoami")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());

    // No keys configured: the service is open and everyone may do everything.
    let open = TestApp::spawn().await;
    let (status, body) = open.get_json("/auth/whoami").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"role": "game"})));
}

#[tokio::test]
async fn a_conversation_carries_its_running_summary_once_there_is_one() {
    let app = TestApp::spawn_with(&[
        ("JOB_POLL_MS", "20"),
        ("CONTEXT_RECENT_MESSAGES", "2"),
        ("SUMMARY_BATCH", "2"),
    ])
    .await;
    app.create_mara("mara").await;
    // One summary job or two, as the worker happens to claim the first before or after
    // the third turn: each gives the same summary.
    let summary = || MockReply::text("The player asked about rooms; Mara was curt.", 200, 20);
    app.provider
        .enqueue_for("summarization", [summary(), summary()]);
    app.say("c-1", "p-1", "mara", "hello").await;
    let (status, body) = app.get_json("/conversations/c-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["summary"], Value::Null, "no summary yet: {body}");
    assert_eq!(body["message_count"], 2, "the list's fields stay: {body}");
    assert_eq!(body["player_id"], "p-1");
    assert_eq!(
        body["updated_at"], body["last_message"]["created_at"],
        "a conversation was last updated by its latest message: {body}"
    );

    app.say("c-1", "p-1", "mara", "any rooms?").await;
    app.say("c-1", "p-1", "mara", "how much?").await;
    eventually("the running summary is written", || async {
        let (_, body) = app.get_json("/conversations/c-1").await;
        body["summary"] == "The player asked about rooms; Mara was curt."
    })
    .await;
    let (_, body) = app.get_json("/conversations/c-1").await;
    assert_eq!(body["message_count"], 6);
    assert_eq!(body["last_message"]["seq"], 6);

    // The list does not carry the summary (it can be long); one conversation does.
    let (_, list) = app.get_json("/conversations?player_id=p-1").await;
    assert!(list["conversations"][0].get("summary").is_none(), "{list}");

    let response = app
        .request(Method::GET, "/conversations/nobody")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
}

#[tokio::test]
async fn a_characters_conversations_list_without_a_player() {
    let app = TestApp::spawn_with(&[("LLM_API_KEY", "")]).await;
    app.create_mara("mara").await;
    app.create_mara("bram").await;
    app.say("c-a", "p-1", "mara", "hello").await;
    app.say("c-b", "p-2", "mara", "hello").await;
    app.say("c-c", "p-1", "bram", "hello").await;
    app.say("c-a", "p-1", "mara", "again").await;

    let ids = |body: &Value| -> Vec<String> {
        body["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body) = app.get_json("/conversations?character_id=mara").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["c-a", "c-b"], "every player's, newest first");
    assert_eq!(body["conversations"][1]["player_id"], "p-2");

    // Paged as the player's list is.
    let (_, first) = app
        .get_json("/conversations?character_id=mara&limit=1")
        .await;
    assert_eq!(ids(&first), ["c-a"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get_json(&format!(
            "/conversations?character_id=mara&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids(&second), ["c-b"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // A pair, and a player, as before.
    let (_, pair) = app
        .get_json("/conversations?character_id=mara&player_id=p-1")
        .await;
    assert_eq!(ids(&pair), ["c-a"]);
    let (_, player) = app.get_json("/conversations?player_id=p-1").await;
    assert_eq!(ids(&player), ["c-a", "c-c"]);

    // Neither: a list of everything is not offered.
    let response = app
        .request(Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "validation_failed".into())
    );
    let response = app
        .request(Method::GET, "/conversations?character_id=%20padded")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_turns_usage_carries_the_llm_latency_streamed_or_not() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let slow = |ms| {
        MockReply::Delayed(
            Duration::from_millis(ms),
            Box::new(MockReply::text("One left, upstairs.", 412, 18)),
        )
    };

    app.provider.enqueue([slow(300)]);
    let started = Instant::now();
    let turn = app.say("c-1", "p-1", "mara", "Any rooms free?").await;
    let whole = started.elapsed().as_millis() as u64;
    let latency = turn["usage"]["latency_ms"].as_u64().unwrap();
    assert!(
        (300..=whole).contains(&latency),
        "the provider took 300 ms, the request {whole} ms: {latency}"
    );
    assert_eq!(turn["usage"]["prompt_tokens"], 412);

    // Streamed: the `done` event carries the same usage, latency included.
    app.provider.enqueue([slow(200)]);
    let response = app
        .request(Method::POST, "/conversations/c-1/messages/stream")
        .header("Idempotency-Key", "k-1")
        .json(&json!({"player_id": "p-1", "character_id": "mara", "content": "And breakfast?"}))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let done: Value = text
        .split("\n\n")
        .find_map(|block| {
            block
                .strip_prefix("event: done\ndata: ")
                .or_else(|| block.strip_prefix("event:done\ndata:").map(str::trim_start))
        })
        .map(|data| serde_json::from_str(data).unwrap())
        .unwrap_or_else(|| panic!("no done event in {text}"));
    let streamed = done["usage"]["latency_ms"].as_u64().unwrap();
    assert!(streamed >= 200, "{done}");

    // A replay answers the first turn's figure, not the replay's.
    let replay = app
        .request(Method::POST, "/conversations/c-1/messages")
        .header("Idempotency-Key", "k-1")
        .json(&json!({"player_id": "p-1", "character_id": "mara", "content": "And breakfast?"}))
        .send()
        .await
        .unwrap();
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["usage"]["latency_ms"].as_u64(), Some(streamed));

    // No call made, no LLM time.
    let offline = TestApp::spawn_with(&[("LLM_API_KEY", "")]).await;
    offline.create_mara("mara").await;
    let turn = offline.say("c-1", "p-1", "mara", "hello").await;
    assert_eq!(turn["fallback_reason"], "llm_not_configured");
    assert_eq!(turn["usage"]["latency_ms"], 0);
}

#[tokio::test]
async fn job_stats_count_pending_running_and_parked_jobs() {
    let app = TestApp::spawn_with(&[
        ("JOB_POLL_MS", "20"),
        ("JOB_RETRY_BASE_MS", "10"),
        ("FACT_EXTRACTION_EVERY", "1"),
        ("JOB_MAX_ATTEMPTS", "1"),
    ])
    .await;
    app.create_mara("mara").await;
    let stats = || async {
        let (status, body) = app.get_json("/jobs/stats").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    };
    assert_eq!(
        stats().await,
        json!({"pending": 0, "running": 0, "parked": 0})
    );

    // A slow extraction is running while the worker waits for the provider...
    app.provider.enqueue_for(
        "fact_extraction",
        [MockReply::Delayed(
            Duration::from_millis(1500),
            Box::new(MockReply::text(r#"{"facts": []}"#, 300, 10)),
        )],
    );
    app.say("c-1", "p-1", "mara", "hello").await;
    eventually("the extraction is running", || async {
        stats().await["running"] == 1
    })
    .await;
    eventually("it is done", || async {
        stats().await == json!({"pending": 0, "running": 0, "parked": 0})
    })
    .await;

    // ...and one that fails with its only attempt is parked.
    app.provider
        .enqueue_for("fact_extraction", [MockReply::Status(400)]);
    app.say("c-2", "p-2", "mara", "hello").await;
    eventually("the failing extraction is parked", || async {
        stats().await["parked"] == 1
    })
    .await;
    let parked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'parked'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(parked, 1, "the figure is the table's");
}

#[tokio::test]
async fn job_stats_count_jobs_no_worker_has_taken() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0"), ("FACT_EXTRACTION_EVERY", "1")]).await;
    app.create_mara("mara").await;
    app.say("c-1", "p-1", "mara", "hello").await;
    app.say("c-2", "p-2", "mara", "hello").await;
    let (status, body) = app.get_json("/jobs/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"pending": 2, "running": 0, "parked": 0}));
}
