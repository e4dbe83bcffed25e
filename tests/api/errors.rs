//! Bad input gets a 4xx with the JSON error body and changes nothing.

use crate::helpers::{TestApp, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn turn(content: &str) -> Value {
    json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": content})
}

#[tokio::test]
async fn every_bad_turn_gets_its_4xx_json_and_leaves_the_history_unchanged() {
    let app = TestApp::spawn_with(&[("MAX_MESSAGE_CHARS", "50")]).await;
    app.create_mara("innkeeper_mara").await;
    app.say("c-1", "p-7", "innkeeper_mara", "Hello").await;
    let before = app.stored_messages("c-1").await;
    let calls = app.provider.request_count();
    let long_id = "x".repeat(65);

    let json_cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "c-1",
            turn(""),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            turn("   \n "),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            turn(&"a".repeat(51)),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "hi", "affinity": 101}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "hi", "affinity": -101}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "hi", "affinity": "high"}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "hi", "affinity": 1.5}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "hi", "context": "tavern"}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "hi", "context": {"blob": "x".repeat(5000)}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara"}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "content": "hi"}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "c-1",
            json!({"player_id": 7, "character_id": "innkeeper_mara", "content": "hi"}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "c-1",
            json!({"player_id": long_id, "character_id": "innkeeper_mara", "content": "hi"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            json!({"player_id": "", "character_id": "innkeeper_mara", "content": "hi"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "c-1",
            json!({"player_id": "p-7", "character_id": "nobody", "content": "hi"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "c-1",
            json!([1, 2, 3]),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            long_id.as_str(),
            turn("hi"),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
    ];
    for (conversation, body, status, code) in json_cases {
        let response = app.post_turn(conversation, body.clone()).await;
        assert_eq!(
            error_code(response).await,
            (status, code.to_owned()),
            "{body}"
        );
    }

    let raw_cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "application/json",
            b"".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "text/plain",
            br#"{"player_id":"p-7","character_id":"innkeeper_mara","content":"hi"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "application/json",
            serde_json::to_vec(&turn(&"a".repeat(70_000))).unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (content_type, body, status, code) in raw_cases {
        let response = app
            .request(Method::POST, "/conversations/c-1/messages")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (status, code.to_owned()),
            "{content_type}"
        );
    }

    assert_eq!(app.stored_messages("c-1").await, before);
    assert_eq!(
        app.provider.request_count(),
        calls,
        "no LLM call for bad input"
    );
    assert_eq!(app.count("conversations").await, 1);
    assert_eq!(app.count("players").await, 1);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_the_json_error_body() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::GET, "/no/such/route")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let response = app
        .request(Method::DELETE, "/characters")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
}

#[tokio::test]
async fn bad_query_strings_are_refused_with_400() {
    let app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    app.say("c-1", "p-7", "innkeeper_mara", "Hello").await;
    for path in [
        "/conversations/c-1/messages?limit=0",
        "/conversations/c-1/messages?limit=201",
        "/conversations/c-1/messages?limit=abc",
        "/conversations/c-1/messages?before_seq=0",
        "/usage?days=0",
        "/usage?days=lots",
        "/usage?group_by=colour",
    ] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "validation_failed".into()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = TestApp::spawn().await;
    let response = app.request(Method::GET, "/healthz").send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    let response = app
        .request(Method::GET, "/characters")
        .header("x-request-id", "game-req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("game-req-123")
    );
}
