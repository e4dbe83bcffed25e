//! Never leave a player without an answer: retries, the circuit breaker, the fallback
//! model, fallback lines by tier, the per-player quota and serialized turns.

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn outcomes(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT outcome FROM usage_records ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_provider_answers() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::Status(500),
        MockReply::Status(503),
        MockReply::text("Made it.", 10, 3),
    ]);
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["source"], "llm");
    assert_eq!(turn["reply"]["content"], "Made it.");
    assert_eq!(app.provider.request_count(), 3);
    assert_eq!(
        outcomes(&app).await,
        vec!["http_error", "http_error", "success"]
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::RateLimited {
            retry_after_secs: 1,
        },
        MockReply::text("Patience.", 10, 2),
    ]);
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["source"], "llm");
    let requests = app.provider.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].received_at - requests[0].received_at;
    // The backoff alone would be ~10 ms; Retry-After says a second.
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider
        .enqueue([MockReply::Status(400), MockReply::text("never sent", 1, 1)]);
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["fallback_reason"], "llm_error");
    assert_eq!(app.provider.request_count(), 1);
}

#[tokio::test]
async fn exhausted_retries_fall_back_after_exactly_one_plus_max_retries_attempts() {
    let app = TestApp::spawn_with(&[("LLM_MAX_RETRIES", "2")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue((0..5).map(|_| MockReply::Status(500)));
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["source"], "fallback");
    assert_eq!(turn["fallback_reason"], "llm_error");
    assert_eq!(app.provider.request_count(), 3);
    assert_eq!(
        outcomes(&app).await,
        vec!["http_error"; 3],
        "every attempt has its usage row"
    );
}

#[tokio::test]
async fn a_timeout_then_garbage_then_success_gives_an_llm_reply() {
    let app = TestApp::spawn_with(&[("LLM_TIMEOUT_MS", "200")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::Delayed(
            Duration::from_secs(3),
            Box::new(MockReply::text("late", 1, 1)),
        ),
        MockReply::Garbage,
        MockReply::text("Third time lucky.", 10, 4),
    ]);
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["reply"]["content"], "Third time lucky.");
    assert_eq!(
        outcomes(&app).await,
        vec!["timeout", "invalid_response", "success"]
    );
}

#[tokio::test]
async fn the_whole_turn_stays_inside_the_llm_deadline() {
    let app = TestApp::spawn_with(&[
        ("LLM_TIMEOUT_MS", "300"),
        ("LLM_RETRY_BASE_MS", "200"),
        ("LLM_MAX_RETRIES", "10"),
        ("LLM_DEADLINE_MS", "1000"),
    ])
    .await;
    app.create_mara("mara").await;
    app.provider.enqueue((0..20).map(|_| {
        MockReply::Delayed(
            Duration::from_secs(3),
            Box::new(MockReply::text("late", 1, 1)),
        )
    }));
    let started = std::time::Instant::now();
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["fallback_reason"], "llm_error");
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        app.provider.request_count() < 11,
        "the deadline cut the retries short"
    );
}

#[tokio::test]
async fn fallback_lines_follow_the_affinity_tier() {
    let app = TestApp::spawn_with(&[("LLM_API_KEY", "")]).await;
    app.create_mara("mara").await;
    for (affinity, line) in [
        (-1, "Make it quick."),
        (0, "What'll it be?"),
        (49, "What'll it be?"),
        (50, "Ah, my favourite guest!"),
    ] {
        let response = app
            .post_turn(
                &format!("c{affinity}"),
                json!({"player_id": "p-1", "character_id": "mara", "content": "Hi", "affinity": affinity}),
            )
            .await;
        let turn: Value = response.json().await.unwrap();
        assert_eq!(turn["reply"]["content"], line, "affinity {affinity}");
    }
}

#[tokio::test]
async fn built_in_fallback_lines_are_not_repeated_twice_in_a_row() {
    let app = TestApp::spawn_with(&[("LLM_API_KEY", "")]).await;
    let response = app
        .put_character("plain", json!({"name": "Plain", "persona": "Plain."}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut previous = String::new();
    for i in 0..8 {
        let turn = app.say("c-1", "p-1", "plain", &format!("line {i}")).await;
        let line = turn["reply"]["content"].as_str().unwrap().to_owned();
        assert_ne!(line, previous);
        previous = line;
    }
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_recovers_after_the_cooldown() {
    let app = TestApp::spawn_with(&[
        ("LLM_CIRCUIT_FAILURES", "2"),
        ("LLM_CIRCUIT_COOLDOWN_MS", "400"),
        ("LLM_MAX_RETRIES", "0"),
    ])
    .await;
    app.create_mara("mara").await;
    app.provider
        .enqueue([MockReply::Status(500), MockReply::Status(500)]);
    for content in ["one", "two"] {
        let turn = app.say("c-1", "p-1", "mara", content).await;
        assert_eq!(turn["fallback_reason"], "llm_error");
    }
    let turn = app.say("c-1", "p-1", "mara", "three").await;
    assert_eq!(turn["fallback_reason"], "circuit_open");
    assert_eq!(
        app.provider.request_count(),
        2,
        "no call while the circuit is open"
    );

    tokio::time::sleep(Duration::from_millis(450)).await;
    let turn = app.say("c-1", "p-1", "mara", "four").await;
    assert_eq!(
        turn["source"], "llm",
        "the probe went through and succeeded"
    );
    let turn = app.say("c-1", "p-1", "mara", "five").await;
    assert_eq!(turn["source"], "llm");
    assert_eq!(app.provider.request_count(), 4);
}

#[tokio::test]
async fn the_fallback_model_is_tried_when_the_primary_fails() {
    let app = TestApp::spawn_with(&[
        ("LLM_MODEL", "gpt-4o"),
        ("LLM_FALLBACK_MODEL", "gpt-4o-mini"),
        ("LLM_MAX_RETRIES", "1"),
    ])
    .await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::Status(500),
        MockReply::Status(502),
        MockReply::text("Cheaper, but here.", 10, 3),
    ]);
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["source"], "llm");
    let models: Vec<String> = app
        .provider
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models, vec!["gpt-4o", "gpt-4o", "gpt-4o-mini"]);
}

#[tokio::test]
async fn the_quota_allows_n_calls_an_hour_then_rate_limits_only_that_player() {
    let app = TestApp::spawn_with(&[("PLAYER_LLM_CALLS_PER_HOUR", "3")]).await;
    app.create_mara("mara").await;
    for i in 0..3 {
        let turn = app.say("c-1", "p-1", "mara", &format!("line {i}")).await;
        assert_eq!(turn["source"], "llm");
    }
    let turn = app.say("c-1", "p-1", "mara", "one too many").await;
    assert_eq!(turn["fallback_reason"], "rate_limited");
    assert_eq!(app.provider.request_count(), 3, "no call over the quota");
    let turn = app.say("c-2", "p-2", "mara", "my own quota").await;
    assert_eq!(turn["source"], "llm");

    // Calls older than an hour no longer count.
    sqlx::query("UPDATE quota_calls SET reserved_at = reserved_at - INTERVAL 61 MINUTE WHERE player_id = 'p-1'")
        .execute(&app.pool)
        .await
        .unwrap();
    let turn = app.say("c-1", "p-1", "mara", "an hour later").await;
    assert_eq!(turn["source"], "llm");
}

#[tokio::test]
async fn a_turn_that_waits_too_long_for_its_conversation_gets_conversation_busy() {
    let app = TestApp::spawn_with(&[("TURN_QUEUE_WAIT_MS", "200")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Delayed(
        Duration::from_millis(1500),
        Box::new(MockReply::text("Slowly.", 5, 1)),
    )]);
    let body =
        |content: &str| json!({"player_id": "p-1", "character_id": "mara", "content": content});
    let slow = app.post_turn("c-1", body("first"));
    let impatient = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.post_turn("c-1", body("second")).await
    };
    let (slow, impatient) = tokio::join!(slow, impatient);
    assert_eq!(slow.status(), StatusCode::OK);
    assert_eq!(
        error_code(impatient).await,
        (StatusCode::CONFLICT, "conversation_busy".into())
    );
    let stored = app.stored_messages("c-1").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].2, "first");
}

#[tokio::test]
async fn concurrent_turns_are_answered_one_after_another_with_the_history_before_them() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let turns = (0..6).map(|i| {
        app.post_turn(
            "c-1",
            json!({"player_id": "p-1", "character_id": "mara", "content": format!("line {i}")}),
        )
    });
    for response in futures::future::join_all(turns).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Each prompt holds everything stored before it: 0, 2, 4… earlier messages.
    let mut history_sizes: Vec<usize> = app
        .provider
        .requests()
        .iter()
        .map(|r| r.messages().len() - 2)
        .collect();
    history_sizes.sort_unstable();
    assert_eq!(history_sizes, vec![0, 2, 4, 6, 8, 10]);
}
