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
