//! Nothing spent goes unbilled: an answer the provider was paid for is billed whether or
//! not it could be used, and an attempt that timed out after the request was sent is
//! billed as an estimate, flagged.

use crate::{helpers::TestApp, mock_provider::MockReply};
use rust_decimal::Decimal;
use serde_json::json;
use std::time::Duration;

/// (outcome, prompt tokens, completion tokens, estimated, cost) of every usage row.
async fn rows(app: &TestApp) -> Vec<(String, u32, u32, bool, Decimal)> {
    sqlx::query_as(
        "SELECT outcome, prompt_tokens, completion_tokens, tokens_estimated, cost_usd
         FROM usage_records ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

fn empty_answer_with_usage() -> MockReply {
    MockReply::Raw {
        status: 200,
        body: json!({
            "choices": [{"message": {"role": "assistant", "content": ""}}],
            "usage": {"prompt_tokens": 500, "completion_tokens": 7}
        })
        .to_string(),
    }
}

#[tokio::test]
async fn an_empty_answer_is_billed_at_the_providers_usage_and_retried() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        empty_answer_with_usage(),
        MockReply::text("Second time.", 400, 5),
    ]);
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["reply"]["content"], "Second time.");
    let rows = rows(&app).await;
    assert_eq!(rows.len(), 2);
    let (outcome, prompt, completion, estimated, cost) = rows[0].clone();
    assert_eq!(
        (outcome.as_str(), prompt, completion, estimated),
        ("invalid_response", 500, 7, false)
    );
    // 500 × 0.15 + 7 × 0.60 micro-dollars at gpt-4o-mini's prices.
    assert_eq!(cost, "0.000079".parse::<Decimal>().unwrap());
    let spent: Decimal = sqlx::query_scalar("SELECT spent_usd FROM player_monthly_spend")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        spent,
        rows.iter().map(|row| row.4).sum::<Decimal>(),
        "both count"
    );
}

#[tokio::test]
async fn a_stream_with_usage_but_no_text_is_billed() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::Stream {
            chunks: vec![],
            usage: Some((450, 3)),
            gap: Duration::from_millis(10),
            cut: false,
        },
        MockReply::text("There.", 400, 2),
    ]);
    let response = app
        .request(reqwest::Method::POST, "/conversations/c-1/messages")
        .header("accept", "text/event-stream")
        .json(&json!({"player_id": "p-1", "character_id": "mara", "content": "Hello"}))
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("There."));
    let rows = rows(&app).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1, rows[0].2, rows[0].3),
        ("invalid_response", 450, 3, false)
    );
    assert!(rows[0].4 > Decimal::ZERO);
}

#[tokio::test]
async fn an_attempt_that_timed_out_after_sending_is_billed_as_a_flagged_estimate() {
    let app = TestApp::spawn_with(&[("LLM_TIMEOUT_MS", "300"), ("LLM_MAX_RETRIES", "0")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Delayed(
        Duration::from_secs(2),
        Box::new(MockReply::text("Too slow.", 400, 5)),
    )]);
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["fallback_reason"], "llm_error");
    let rows = rows(&app).await;
    assert_eq!(rows.len(), 1);
    let (outcome, prompt, completion, estimated, cost) = rows[0].clone();
    assert_eq!(outcome, "timeout");
    assert!(prompt > 0, "the prompt it was sent");
    assert_eq!(
        completion, 120,
        "all it could have generated: LLM_MAX_TOKENS"
    );
    assert!(estimated, "flagged as an estimate");
    assert!(cost > Decimal::ZERO);
    assert_eq!(turn["usage"]["completion_tokens"], 120, "{turn}");
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_costs_nothing_and_holds_no_money() {
    // A port nothing listens on: every attempt is refused before it reaches anyone.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_with(&[
        ("LLM_BASE_URL", url.as_str()),
        ("LLM_MAX_RETRIES", "1"),
        ("LLM_RETRY_BASE_MS", "10"),
    ])
    .await;
    app.create_mara("mara").await;
    let turn = app.say("c-1", "p-1", "mara", "Hello").await;
    assert_eq!(turn["fallback_reason"], "llm_error");
    assert!(rows(&app).await.is_empty(), "no attempt reached a provider");
    assert_eq!(
        app.count("budget_reservations").await,
        0,
        "the reservation went back with the call"
    );
}
