//! Erasure is final: a turn that began before `DELETE /players/{id}` brings nothing back,
//! and "delete my data" does not reset a budget (this month's spend, the quota and the
//! limit carry over under a keyed hash of the id).

use crate::{
    helpers::{TestApp, decimal, error_code},
    mock_provider::MockReply,
};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::time::Duration;

fn line(conversation: &str, content: &str) -> (String, Value) {
    (
        conversation.to_owned(),
        json!({"player_id": "p-1", "character_id": "mara", "content": content}),
    )
}

async fn erase(app: &TestApp) -> StatusCode {
    app.request(Method::DELETE, "/players/p-1")
        .send()
        .await
        .unwrap()
        .status()
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

async fn budget(app: &TestApp) -> Value {
    app.get_json("/usage/budget?player_id=p-1").await.1
}

#[tokio::test]
async fn a_turn_in_flight_during_an_erasure_brings_nothing_back() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    let (conversation, body) = line("c-1", "Hello");
    assert_eq!(
        app.post_turn(&conversation, body).await.status(),
        StatusCode::OK
    );
    let first_cost = decimal(&budget(&app).await["spent_usd"]);

    app.provider.enqueue([MockReply::Delayed(
        Duration::from_millis(1500),
        Box::new(MockReply::text("Too late.", 300, 20)),
    )]);
    let in_flight = app
        .request(Method::POST, "/conversations/c-1/messages")
        .json(&json!({"player_id": "p-1", "character_id": "mara", "content": "Still there?"}))
        .send();
    let in_flight = tokio::spawn(in_flight);
    while app.provider.request_count() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(erase(&app).await, StatusCode::NO_CONTENT);

    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(
        error_code(answer).await,
        (StatusCode::CONFLICT, "player_erased".into())
    );
    for (what, sql) in [
        ("player", "SELECT COUNT(*) FROM players WHERE id = 'p-1'"),
        (
            "conversation",
            "SELECT COUNT(*) FROM conversations WHERE id = 'c-1'",
        ),
        (
            "messages",
            "SELECT COUNT(*) FROM messages WHERE conversation_id = 'c-1'",
        ),
        (
            "spend",
            "SELECT COUNT(*) FROM player_monthly_spend WHERE player_id = 'p-1'",
        ),
        (
            "linked usage",
            "SELECT COUNT(*) FROM usage_records WHERE player_id = 'p-1'",
        ),
    ] {
        assert_eq!(
            count(&app, sql).await,
            0,
            "the erased player's {what} came back"
        );
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM usage_records").await,
        2,
        "the late call is billed, unlinked"
    );

    // The id used again starts as a new player, carrying this month's spend, the late
    // call's included.
    let (conversation, body) = line("c-2", "A new start");
    assert_eq!(
        app.post_turn(&conversation, body).await.status(),
        StatusCode::OK
    );
    let costs: Vec<Decimal> = sqlx::query_scalar("SELECT cost_usd FROM usage_records ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(costs.len(), 3);
    assert_eq!(first_cost, costs[0]);
    assert_eq!(
        decimal(&budget(&app).await["spent_usd"]),
        costs.iter().sum::<Decimal>()
    );
    assert_eq!(app.stored_messages("c-2").await.len(), 2);
    assert!(app.stored_messages("c-1").await.is_empty());
}

#[tokio::test]
async fn erasure_does_not_reset_the_months_spend_the_quota_or_the_limit() {
    let app =
        TestApp::spawn_with(&[("PLAYER_LLM_CALLS_PER_HOUR", "2"), ("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    let limit = app
        .request(Method::PUT, "/players/p-1/budget")
        .json(&json!({"monthly_limit_usd": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(limit.status(), StatusCode::OK);
    for content in ["One", "Two"] {
        let (conversation, body) = line("c-1", content);
        let turn: Value = app
            .post_turn(&conversation, body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(turn["source"], "llm", "{turn}");
    }
    let before = budget(&app).await;
    assert!(decimal(&before["spent_usd"]) > Decimal::ZERO);

    assert_eq!(erase(&app).await, StatusCode::NO_CONTENT);
    let (_, usage) = app.get_json("/usage?player_id=p-1").await;
    assert_eq!(
        usage["calls"], 0,
        "the erased player's usage rows are unlinked"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM quota_calls WHERE player_id = 'p-1'"
        )
        .await,
        0,
        "no row names the erased id"
    );

    let (conversation, body) = line("c-9", "I am back");
    let turn: Value = app
        .post_turn(&conversation, body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        turn["fallback_reason"], "rate_limited",
        "the hour's two calls still count: {turn}"
    );
    let after = budget(&app).await;
    assert_eq!(after["spent_usd"], before["spent_usd"], "{after}");
    assert_eq!(decimal(&after["limit_usd"]), Decimal::new(5, 1), "{after}");
    assert_eq!(app.provider.request_count(), 2);
}
