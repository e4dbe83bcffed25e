//! Characters: create or replace, read, list.

use crate::helpers::{TestApp, error_code};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_character_is_created_replaced_read_and_listed() {
    let app = TestApp::spawn().await;
    let response = app
        .put_character(
            "innkeeper_mara",
            json!({"name": "Mara", "persona": "Gruff.", "model": null,
                   "fallback_lines": {"high": ["Ah, my favourite guest!"], "medium": ["What'll it be?"], "low": ["Make it quick."]}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["id"], "innkeeper_mara");
    assert_eq!(created["fallback_lines"]["medium"][0], "What'll it be?");

    let response = app
        .put_character(
            "innkeeper_mara",
            json!({"name": "Mara the Elder", "persona": "Older now.", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.create_mara("blacksmith").await;

    let (status, mara) = app.get_json("/characters/innkeeper_mara").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mara["name"], "Mara the Elder");
    assert_eq!(mara["persona"], "Older now.");
    assert_eq!(mara["model"], "gpt-4o");
    assert!(
        mara["fallback_lines"].is_null(),
        "a replace replaces every field"
    );
    assert_eq!(
        mara["created_at"], created["created_at"],
        "created_at survives a replace"
    );

    let (status, list) = app.get_json("/characters").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["characters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["blacksmith", "innkeeper_mara"]);
}

#[tokio::test]
async fn an_unknown_character_is_404() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/characters/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn invalid_characters_are_refused_and_not_stored() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"name": "", "persona": "x"}),
        json!({"name": "Mara", "persona": "  "}),
        json!({"name": "x".repeat(101), "persona": "x"}),
        json!({"name": "Mara", "persona": "x", "fallback_lines": {"high": [""]}}),
        json!({"name": "Mara", "persona": "x", "model": ""}),
    ] {
        let response = app.put_character("mara", body.clone()).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "validation_failed".into()),
            "{body}"
        );
    }
    let response = app
        .put_character(
            "mara",
            json!({"name": "M", "persona": "x", "fallback_lines": {"extreme": ["x"]}}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "invalid_json".into()),
        "an unknown tier"
    );
    let response = app.put_character("mara", json!({"persona": "x"})).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "invalid_json".into())
    );
    let response = app
        .put_character(&"m".repeat(65), json!({"name": "M", "persona": "x"}))
        .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "validation_failed".into())
    );
    assert_eq!(app.count("characters").await, 0);
}
