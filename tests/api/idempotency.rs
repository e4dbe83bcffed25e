//! `Idempotency-Key`: a repeated turn returns the stored answer and changes nothing.

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

async fn keyed(app: &TestApp, conversation: &str, key: &str, body: &Value) -> Response {
    app.request(
        Method::POST,
        &format!("/conversations/{conversation}/messages"),
    )
    .header("Idempotency-Key", key)
    .json(body)
    .send()
    .await
    .unwrap()
}

fn hello() -> Value {
    json!({"player_id": "p-1", "character_id": "mara", "content": "Hello", "affinity": 10})
}

#[tokio::test]
async fn a_replayed_idempotency_key_returns_the_first_reply_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let first = keyed(&app, "c-1", "turn-1", &hello()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.text().await.unwrap();

    let second = keyed(&app, "c-1", "turn-1", &hello()).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.text().await.unwrap(), first, "byte for byte");

    assert_eq!(app.provider.request_count(), 1);
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
    assert_eq!(app.count("usage_records").await, 1);

    // Another key is another turn.
    let third = keyed(&app, "c-1", "turn-2", &hello()).await;
    let third: Value = third.json().await.unwrap();
    assert_eq!(third["player_message"]["seq"], 3);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_make_one_turn() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Delayed(
        Duration::from_millis(300),
        Box::new(MockReply::text("Once.", 5, 1)),
    )]);
    let body = hello();
    let requests = (0..4).map(|_| keyed(&app, "c-1", "same-key", &body));
    let mut bodies = Vec::new();
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.status(), StatusCode::OK);
        bodies.push(response.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    assert_eq!(app.provider.request_count(), 1);
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    assert_eq!(
        keyed(&app, "c-1", "k", &hello()).await.status(),
        StatusCode::OK
    );
    let other = json!({"player_id": "p-1", "character_id": "mara", "content": "Something else"});
    let response = keyed(&app, "c-1", "k", &other).await;
    assert_eq!(
        error_code(response).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused".into()
        )
    );
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
    assert_eq!(app.provider.request_count(), 1);
}

#[tokio::test]
async fn keys_are_scoped_to_their_conversation() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    assert_eq!(
        keyed(&app, "c-1", "k", &hello()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        keyed(&app, "c-2", "k", &hello()).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.provider.request_count(), 2);
    assert_eq!(app.stored_messages("c-2").await.len(), 2);
}

#[tokio::test]
async fn a_key_whose_turn_failed_is_freed_for_the_games_retry() {
    let app = TestApp::spawn_with(&[("TURN_QUEUE_WAIT_MS", "200")]).await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Delayed(
        Duration::from_millis(1200),
        Box::new(MockReply::text("Slow.", 5, 1)),
    )]);
    let slow = app.post_turn(
        "c-1",
        json!({"player_id": "p-1", "character_id": "mara", "content": "first"}),
    );
    let keyed_while_busy = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        keyed(&app, "c-1", "k", &hello()).await
    };
    let (slow, busy) = tokio::join!(slow, keyed_while_busy);
    assert_eq!(slow.status(), StatusCode::OK);
    assert_eq!(
        error_code(busy).await,
        (StatusCode::CONFLICT, "conversation_busy".into())
    );

    let retried = keyed(&app, "c-1", "k", &hello()).await;
    assert_eq!(retried.status(), StatusCode::OK);
    assert!(
        retried.headers().get("idempotent-replayed").is_none(),
        "processed afresh"
    );
    let turn: Value = retried.json().await.unwrap();
    assert_eq!(turn["player_message"]["seq"], 3);
}

#[tokio::test]
async fn an_invalid_key_is_refused() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let response = keyed(&app, "c-1", &"k".repeat(129), &hello()).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "validation_failed".into())
    );
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn a_turn_whose_key_was_taken_over_is_not_stored_and_answers_with_the_new_holders_reply() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::Delayed(
            Duration::from_millis(1500),
            Box::new(MockReply::text("First.", 5, 1)),
        ),
        MockReply::text("Second.", 5, 1),
    ]);
    let first = app
        .request(Method::POST, "/conversations/c-1/messages")
        .header("Idempotency-Key", "k")
        .json(&hello())
        .send();
    let first = tokio::spawn(first);
    // The first request is in its provider call: make its claim look like that of a
    // replica that died, so the next request with the key takes it over.
    while app.provider.request_count() < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("UPDATE idempotency_keys SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND")
        .execute(&app.pool)
        .await
        .unwrap();
    let second = keyed(&app, "c-1", "k", &hello()).await;
    let first = first.await.unwrap().unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let (first, second) = (first.text().await.unwrap(), second.text().await.unwrap());
    assert_eq!(first, second, "one key, one answer");
    let answer: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(answer["reply"]["content"], "Second.");
    assert_eq!(
        app.stored_messages("c-1").await.len(),
        2,
        "the turn that lost its key was rolled back"
    );
    assert_eq!(app.provider.request_count(), 2);
    assert_eq!(app.count("usage_records").await, 2, "both calls are billed");
}

#[tokio::test]
async fn stored_answers_are_purged_after_the_retention_period() {
    let app = TestApp::spawn_with(&[
        ("IDEMPOTENCY_RETENTION_HOURS", "1"),
        ("HOUSEKEEPING_INTERVAL_MS", "50"),
    ])
    .await;
    app.create_mara("mara").await;
    assert_eq!(
        keyed(&app, "c-1", "k", &hello()).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.count("idempotency_keys").await, 1);
    sqlx::query("UPDATE idempotency_keys SET created_at = created_at - INTERVAL 2 HOUR")
        .execute(&app.pool)
        .await
        .unwrap();
    let mut waited = 0;
    while app.count("idempotency_keys").await > 0 {
        assert!(waited < 100, "the old answer was not purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    // The key is new again: a new turn, not a replay of text that should be gone.
    let again = keyed(&app, "c-1", "k", &hello()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.stored_messages("c-1").await.len(), 4);
}

#[tokio::test]
async fn an_answer_past_the_retention_period_is_not_replayed_even_before_the_purge() {
    let app = TestApp::spawn_with(&[
        ("IDEMPOTENCY_RETENTION_HOURS", "1"),
        ("HOUSEKEEPING_INTERVAL_MS", "3600000"),
    ])
    .await;
    app.create_mara("mara").await;
    assert_eq!(
        keyed(&app, "c-1", "k", &hello()).await.status(),
        StatusCode::OK
    );
    sqlx::query("UPDATE idempotency_keys SET created_at = created_at - INTERVAL 2 HOUR")
        .execute(&app.pool)
        .await
        .unwrap();
    let again = keyed(&app, "c-1", "k", &hello()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.stored_messages("c-1").await.len(), 4);
}
