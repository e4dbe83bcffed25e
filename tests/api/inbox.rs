//! The conversation inbox: the list, one conversation, read markers, paging both ways.

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn mark_read(app: &TestApp, conversation: &str, up_to_seq: Value) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, &format!("/conversations/{conversation}/read"))
        .json(&json!({ "up_to_seq": up_to_seq }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_list_shows_counts_unread_and_the_last_message_newest_first() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.create_mara("smith").await;
    app.provider
        .enqueue((1..=4).map(|i| MockReply::text(&format!("reply {i}"), 5, 1)));
    app.say("c-old", "p-1", "mara", "first").await;
    app.say("c-old", "p-1", "mara", "second").await;
    app.say("c-new", "p-1", "smith", "hello smith").await;
    app.say("c-other", "p-2", "mara", "not yours").await;

    let (status, list) = app.get_json("/conversations?player_id=p-1").await;
    assert_eq!(status, StatusCode::OK);
    let conversations = list["conversations"].as_array().unwrap();
    let ids: Vec<&str> = conversations
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["c-new", "c-old"]);
    let old = &conversations[1];
    assert_eq!(old["player_id"], "p-1");
    assert_eq!(old["character_id"], "mara");
    assert_eq!(old["message_count"], 4);
    assert_eq!(old["unread_count"], 2);
    assert_eq!(old["last_message"]["seq"], 4);
    assert_eq!(old["last_message"]["content"], "reply 2");
    assert_eq!(old["last_message"]["source"], "llm");
    assert!(old["updated_at"].is_string());
    assert!(list["next_cursor"].is_null());

    let (_, smith_only) = app
        .get_json("/conversations?player_id=p-1&character_id=smith")
        .await;
    assert_eq!(smith_only["conversations"].as_array().unwrap().len(), 1);
    let (status, mut one) = app.get_json("/conversations/c-old").await;
    assert_eq!(status, StatusCode::OK);
    // One conversation is its entry of the list, with the running summary (none yet).
    let summary = one.as_object_mut().unwrap().remove("summary");
    assert_eq!(summary, Some(serde_json::Value::Null));
    assert_eq!(one, *old);
    assert_eq!(
        app.get_json("/conversations/nope").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_json("/conversations").await.0,
        StatusCode::BAD_REQUEST,
        "a player, a character or both are required"
    );
}

#[tokio::test]
async fn read_markers_zero_the_unread_count_and_never_move_back() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    for i in 0..3 {
        app.say("c-1", "p-1", "mara", &format!("line {i}")).await;
    }
    let (status, read) = mark_read(&app, "c-1", json!(2)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (read["read_seq"].clone(), read["unread_count"].clone()),
        (json!(2), json!(2))
    );
    let (_, read) = mark_read(&app, "c-1", json!(1)).await;
    assert_eq!(read["read_seq"], 2, "never backwards");
    let (_, read) = mark_read(&app, "c-1", json!(999)).await;
    assert_eq!(
        (read["read_seq"].clone(), read["unread_count"].clone()),
        (json!(6), json!(0)),
        "clamped to the last message"
    );
    app.say("c-1", "p-1", "mara", "more").await;
    let (_, one) = app.get_json("/conversations/c-1").await;
    assert_eq!(one["unread_count"], 1);

    let (status, body) = mark_read(&app, "c-1", json!(-1)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_json"))
    );
    assert_eq!(
        mark_read(&app, "nope", json!(1)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn paging_returns_every_conversation_and_every_message_exactly_once() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    for c in 0..7 {
        app.say(&format!("c-{c}"), "p-1", "mara", "hi").await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/conversations?player_id=p-1&limit=3&cursor={cursor}"),
            None => "/conversations?player_id=p-1&limit=3".to_owned(),
        };
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(
            page["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|c| format!("c-{c}")).collect();
    assert_eq!(seen, expected);
    let (status, _) = app.get_json("/conversations?player_id=p-1&cursor=zz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for i in 0..6 {
        app.say("c-long", "p-1", "mara", &format!("line {i}")).await;
    }
    let mut forward = Vec::new();
    let mut after = 0;
    loop {
        let (_, page) = app
            .get_json(&format!(
                "/conversations/c-long/messages?after_seq={after}&limit=5"
            ))
            .await;
        forward.extend(
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["seq"].as_u64().unwrap()),
        );
        assert!(page["next_before_seq"].is_null());
        match page["next_after_seq"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(forward, (1..=12).collect::<Vec<u64>>());
    let mut backward = Vec::new();
    let mut path = "/conversations/c-long/messages?limit=5".to_owned();
    loop {
        let (_, page) = app.get_json(&path).await;
        let mut seqs: Vec<u64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        seqs.reverse();
        backward.extend(seqs);
        match page["next_before_seq"].as_u64() {
            Some(next) => {
                path = format!("/conversations/c-long/messages?limit=5&before_seq={next}")
            }
            None => break,
        }
    }
    assert_eq!(backward, (1..=12).rev().collect::<Vec<u64>>());
    let response = app
        .request(
            Method::GET,
            "/conversations/c-long/messages?after_seq=1&before_seq=5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "validation_failed".into())
    );
}
