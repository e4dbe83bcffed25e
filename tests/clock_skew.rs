//! A replica whose clock runs 90 s fast steals nothing: leases, idempotency keys,
//! reservations, the quota window, job leases and gossip's due times are all measured by
//! the database's clock. The skew is process-wide, so these tests have a test binary of their own; what
//! "another replica" holds is planted in the database with the database's own clock.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

#[path = "api/databases.rs"]
mod databases;
#[path = "api/helpers.rs"]
#[expect(dead_code, reason = "these tests use only part of the shared harness")]
mod helpers;
#[path = "api/mock_provider.rs"]
#[expect(dead_code, reason = "these tests use only part of the test mock")]
mod mock_provider;

use helpers::{TestApp, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// This process is a replica whose clock is 90 s ahead of the database's.
fn skewed() {
    npc_dialogue::clock::skew_for_tests(chrono::Duration::seconds(90));
}

async fn plant(app: &TestApp, sql: &'static str) {
    sqlx::query(sql).execute(&app.pool).await.unwrap();
}

fn hello() -> Value {
    json!({"player_id": "p-1", "character_id": "mara", "content": "Hello"})
}

#[tokio::test]
async fn a_replica_whose_clock_runs_fast_steals_nothing() {
    skewed();
    let app = TestApp::spawn_with(&[
        ("TURN_QUEUE_WAIT_MS", "300"),
        ("PLAYER_MONTHLY_BUDGET_USD", "0.01"),
        ("PLAYER_LLM_CALLS_PER_HOUR", "1"),
        ("FACT_EXTRACTION_EVERY", "1000"),
        ("JOB_POLL_MS", "20"),
    ])
    .await;
    app.create_mara("mara").await;

    // A conversation lease another replica holds for 50 s more.
    plant(
        &app,
        "INSERT INTO conversation_leases (conversation_id, holder, expires_at)
         VALUES ('c-leased', 'other-replica', UTC_TIMESTAMP(6) + INTERVAL 50 SECOND)",
    )
    .await;
    let response = app.post_turn("c-leased", hello()).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::CONFLICT, "conversation_busy".into()),
        "the lease is not expired by the database's clock"
    );

    // An idempotency key another replica is processing (for another request) for 40 s more.
    plant(
        &app,
        "INSERT INTO idempotency_keys (conversation_id, idempotency_key, request_hash, claim_token, created_at, expires_at)
         VALUES ('c-keyed', 'k', REPEAT('0', 64), 'other-replica-claim-token-0000000000',
                 UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL 40 SECOND)",
    )
    .await;
    let response = app
        .request(Method::POST, "/conversations/c-keyed/messages")
        .header("Idempotency-Key", "k")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused".into()
        ),
        "the key is still the other request's"
    );

    // A reservation another replica holds for 60 s more: all of the player's 0.01.
    plant(
        &app,
        "INSERT INTO players (id, created_at) VALUES ('p-2', UTC_TIMESTAMP(6))",
    )
    .await;
    plant(
        &app,
        "INSERT INTO budget_reservations (player_id, amount_usd, created_at, expires_at)
         VALUES ('p-2', 0.0100, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL 60 SECOND)",
    )
    .await;
    let turn: Value = app
        .post_turn(
            "c-budget",
            json!({"player_id": "p-2", "character_id": "mara", "content": "Hello"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(turn["fallback_reason"], "budget_exceeded", "{turn}");

    // The quota: one call 59 minutes ago by the database's clock, one allowed per hour.
    plant(
        &app,
        "INSERT INTO players (id, created_at) VALUES ('p-3', UTC_TIMESTAMP(6))",
    )
    .await;
    plant(
        &app,
        "INSERT INTO quota_calls (player_id, reserved_at)
         VALUES ('p-3', UTC_TIMESTAMP(6) - INTERVAL 59 MINUTE)",
    )
    .await;
    let turn: Value = app
        .post_turn(
            "c-quota",
            json!({"player_id": "p-3", "character_id": "mara", "content": "Hello"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(turn["fallback_reason"], "rate_limited", "{turn}");

    // A job another replica runs under a lease of 20 s more.
    plant(
        &app,
        "INSERT INTO conversations (id, player_id, character_id, last_seq, created_at, updated_at)
         VALUES ('c-job', 'p-1', 'mara', 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .await;
    plant(
        &app,
        "INSERT INTO jobs (kind, conversation_id, player_id, character_id, status, attempts,
             run_after, lease_until, claim_token, created_at, updated_at)
         VALUES ('extract_facts', 'c-job', 'p-1', 'mara', 'running', 1, UTC_TIMESTAMP(6),
             UTC_TIMESTAMP(6) + INTERVAL 20 SECOND, 'other-replica-claim-token-0000000000',
             UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holder: String =
        sqlx::query_scalar("SELECT claim_token FROM jobs WHERE conversation_id = 'c-job'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        holder, "other-replica-claim-token-0000000000",
        "the job stays the other replica's"
    );
    assert!(app.provider.requests_for("fact_extraction").is_empty());
    assert_eq!(
        app.provider.request_count(),
        0,
        "no turn above reached the provider"
    );

    // A memory that spreads as gossip in 30 s, and one that was due a second ago.
    for id in ["bram", "aldo"] {
        let response = app
            .put_character(
                id,
                json!({"name": id, "persona": "A guard.", "factions": ["watch"]}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    plant(
        &app,
        "INSERT INTO memory_facts (player_id, character_id, text, text_hash, importance, source,
             spread_at, created_at, updated_at)
         VALUES ('p-1', 'bram', 'Not yet', REPEAT('1', 64), 9, 'conversation',
                 UTC_TIMESTAMP(6) + INTERVAL 30 SECOND, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)),
                ('p-1', 'bram', 'Due', REPEAT('2', 64), 9, 'conversation',
                 UTC_TIMESTAMP(6) - INTERVAL 1 SECOND, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .await;
    let heard = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT text FROM memory_facts WHERE character_id = 'aldo' ORDER BY id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap()
    };
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while heard().await.is_empty() {
        assert!(std::time::Instant::now() < give_up, "the due memory spread");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        heard().await,
        ["Due"],
        "gossip is not early by the database's clock"
    );
}
