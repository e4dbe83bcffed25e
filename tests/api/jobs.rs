//! Background job leases: a claim token on every update, renewed by a heartbeat while
//! the job runs, so a slow job is never paid for twice and a worker that lost its job
//! changes nothing.

use crate::{helpers::TestApp, mock_provider::MockReply};
use std::time::{Duration, Instant};

const EXTRACTION: &str = r#"{"facts": [{"text": "Player hails from Rivia", "importance": 6}]}"#;

async fn jobs_left(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let give_up = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_slower_than_its_lease_keeps_it_and_is_paid_for_once() {
    let app = TestApp::spawn_with(&[
        ("JOB_LEASE_MS", "600"),
        ("JOB_WORKERS", "3"),
        ("JOB_POLL_MS", "20"),
        ("FACT_EXTRACTION_EVERY", "1"),
    ])
    .await;
    app.create_mara("mara").await;
    app.provider.enqueue_for(
        "fact_extraction",
        [MockReply::Delayed(
            Duration::from_millis(2000),
            Box::new(MockReply::text(EXTRACTION, 50, 20)),
        )],
    );
    app.say("c-1", "p-1", "mara", "I hail from Rivia.").await;
    until("the job is done", Duration::from_secs(10), async || {
        jobs_left(&app).await == 0
    })
    .await;
    assert_eq!(
        app.provider.requests_for("fact_extraction").len(),
        1,
        "the heartbeat kept the other workers off it"
    );
}

#[tokio::test]
async fn a_worker_whose_job_was_taken_over_changes_nothing() {
    let app = TestApp::spawn_with(&[("JOB_POLL_MS", "20"), ("FACT_EXTRACTION_EVERY", "1")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue_for(
        "fact_extraction",
        [MockReply::Delayed(
            Duration::from_millis(800),
            Box::new(MockReply::text(EXTRACTION, 50, 20)),
        )],
    );
    app.say("c-1", "p-1", "mara", "I hail from Rivia.").await;
    until(
        "the extractor is asked",
        Duration::from_secs(10),
        async || !app.provider.requests_for("fact_extraction").is_empty(),
    )
    .await;
    // Another replica takes the job over (as after a lease that ran out).
    sqlx::query(
        "UPDATE jobs SET claim_token = 'another-replica-claim-token-00000000',
             lease_until = UTC_TIMESTAMP(6) + INTERVAL 60 SECOND",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, token): (String, String) = sqlx::query_as("SELECT status, claim_token FROM jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        (status.as_str(), token.as_str()),
        ("running", "another-replica-claim-token-00000000"),
        "the first worker's outcome did not touch the job it lost"
    );
}
