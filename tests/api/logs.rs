//! What the logs may not say: the real binary, with keys configured and JSON logs at
//! info level, serves turns (plain and streamed), background work and reads; its log
//! must hold none of the API keys, the provider key, the credentials in the provider's
//! URL, the text of any message, fact or reply, nor what the provider said when it
//! failed.

use crate::{helpers::TestApp, mock_provider::MockReply, replicas::Replica};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const GAME_KEY: &str = "game-key-Xq7v2LpD";
const READ_KEY: &str = "read-key-Mn4sR8tW";
const PROVIDER_KEY: &str = "sk-provider-Jf3kH9zB";
const WRONG_KEY: &str = "wrong-key-Pz6cV1yN";
const PLAYER_TEXT: &str = "my cat Zanzibarquux sleeps on the stove";
const REPLY_TEXT: &str = "Keep Vellichor-the-cat off my stove";
const STREAMED_TEXT: &str = "Streamed-Oubliette-words";
const FACT_TEXT: &str = "Player owns a cat named Zanzibarquux";
const URL_SECRET: &str = "url-pass-Hq5tWc2e";
/// What a failing provider says: it may echo the prompt, or worse.
const PROVIDER_ERROR_TEXT: &str = "upstream echo Marzipantheon of your prompt";
/// A stream chunk that is not JSON, among the good ones.
const STREAM_JUNK: &str = "junk-Quixotrellis-chunk";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_hold_no_keys_and_no_message_text() {
    // The in-process server does no background work: the binary does it all.
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    // Credentials in the URL, as some gateways take them.
    let base_url =
        app.provider
            .base_url
            .replacen("http://", &format!("http://npc-user:{URL_SECRET}@"), 1);
    let replica = Replica::start(
        &app,
        &[
            ("LLM_BASE_URL", &base_url),
            ("GAME_API_KEYS", GAME_KEY),
            ("READONLY_API_KEYS", READ_KEY),
            ("LLM_API_KEY", PROVIDER_KEY),
            ("RUST_LOG", "info"),
            ("FACT_EXTRACTION_EVERY", "1"),
            ("JOB_WORKERS", "1"),
            ("JOB_POLL_MS", "20"),
            ("LLM_MAX_RETRIES", "0"),
        ],
    )
    .await;
    let call = |method: Method, path: &str, key: &str| {
        app.client
            .request(method, format!("{}{path}", replica.address()))
            .bearer_auth(key)
    };
    let response = call(Method::PUT, "/characters/mara", GAME_KEY)
        .json(&json!({"name": "Mara", "persona": "Gruff innkeeper."}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    app.provider.enqueue_for(
        "conversation",
        [
            MockReply::text(REPLY_TEXT, 100, 10),
            MockReply::Raw {
                status: 500,
                body: json!({"error": {"message": PROVIDER_ERROR_TEXT}}).to_string(),
            },
            MockReply::Raw {
                status: 200,
                body: [
                    format!("data: {STREAM_JUNK}"),
                    format!(
                        "data: {}",
                        json!({"choices": [{"delta": {"content": STREAMED_TEXT}}]})
                    ),
                    format!(
                        "data: {}",
                        json!({"choices": [{"delta": {"content": " and more"}}]})
                    ),
                    format!(
                        "data: {}",
                        json!({"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 12}})
                    ),
                    "data: [DONE]".to_owned(),
                ]
                .map(|event| event + "\n\n")
                .concat(),
            },
        ],
    );
    app.provider.enqueue_for(
        "fact_extraction",
        [MockReply::text(
            &json!({"facts": [{"text": FACT_TEXT, "importance": 7}]}).to_string(),
            200,
            20,
        )],
    );
    let turn_as = |key: &str, content: &str| {
        call(Method::POST, "/conversations/c-logs/messages", key).json(
            &json!({"player_id": "p-logs", "character_id": "mara", "content": content,
                    "context": {"secret_plan": PLAYER_TEXT}}),
        )
    };
    let turn = |content: &str| turn_as(GAME_KEY, content);
    let first: Value = turn(PLAYER_TEXT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["reply"]["content"], REPLY_TEXT, "{first}");
    let second: Value = turn(&format!("again: {PLAYER_TEXT}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["source"], "fallback", "{second}");
    let streamed = turn(&format!("once more: {PLAYER_TEXT}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::OK);
    let events = streamed.text().await.unwrap();
    assert!(events.contains(STREAMED_TEXT), "{events}");

    // Reads with the read-only key, a refused write, and an unknown key.
    let response = call(Method::GET, "/conversations/c-logs/messages", READ_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = turn_as(READ_KEY, PLAYER_TEXT).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = call(Method::GET, "/usage", WRONG_KEY).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Let the background worker extract the fact, so its logs are in too.
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let facts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memory_facts")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if facts > 0 {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "no fact extracted:\n{}",
            replica.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = replica.log_text();
    let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(lines.len() >= 5, "the binary logged:\n{log}");
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
    let turns: Vec<&&str> = lines
        .iter()
        .filter(|line| line.contains("\"message\":\"turn\""))
        .collect();
    assert_eq!(turns.len(), 3, "a line per turn:\n{log}");
    // The plain turns run inside their request's span. (The streamed turn's task is
    // spawned outside it and so far logs without the request id: not asserted yet.)
    for line in turns
        .iter()
        .filter(|line| !line.contains("\"prompt_tokens\":120"))
    {
        assert!(line.contains("\"request_id\""), "no request id: {line}");
    }
    for secret in [
        GAME_KEY,
        READ_KEY,
        PROVIDER_KEY,
        WRONG_KEY,
        "Zanzibarquux",
        "Vellichor",
        "Oubliette",
        "secret_plan",
        URL_SECRET,
        "Marzipantheon",
        "Quixotrellis",
    ] {
        let leaks: Vec<&&str> = lines.iter().filter(|line| line.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} is in the logs: {leaks:#?}");
    }
    // The failures were logged, by status and count only.
    assert!(
        lines
            .iter()
            .any(|line| line.contains("LLM call failed") && line.contains("status 500")),
        "the provider's 500 is not logged:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("not JSON") && line.contains("\"chunks\":1")),
        "the skipped stream chunk is not logged:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("[redacted]@127.0.0.1")),
        "the provider's URL is not in the start-up line:\n{log}"
    );
    replica.stop().await;
}
