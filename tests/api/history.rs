//! Reading a conversation's history, page by page.

use crate::{helpers::TestApp, mock_provider::MockReply};
use reqwest::StatusCode;

#[tokio::test]
async fn history_pages_run_newest_first_with_messages_oldest_first_inside() {
    let app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    app.provider
        .enqueue((1..=3).map(|i| MockReply::text(&format!("reply {i}"), 5, 1)));
    for i in 1..=3 {
        app.say("c-1", "p-7", "innkeeper_mara", &format!("line {i}"))
            .await;
    }

    let (status, page) = app.get_json("/conversations/c-1/messages?limit=4").await;
    assert_eq!(status, StatusCode::OK);
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4, 5, 6]);
    assert_eq!(page["messages"][0]["content"], "line 2");
    assert_eq!(page["messages"][0]["role"], "player");
    assert!(
        page["messages"][0].get("source").is_none(),
        "player lines have no source"
    );
    assert_eq!(page["messages"][1]["source"], "llm");
    assert!(
        page["messages"][1]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(page["next_before_seq"], 3);

    let (_, older) = app
        .get_json("/conversations/c-1/messages?limit=4&before_seq=3")
        .await;
    let seqs: Vec<u64> = older["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    assert!(older["next_before_seq"].is_null());

    let (_, all) = app.get_json("/conversations/c-1/messages").await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 6);
    assert!(all["next_before_seq"].is_null());
}

#[tokio::test]
async fn the_turn_answer_matches_what_history_returns() {
    let app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    let turn = app.say("c-1", "p-7", "innkeeper_mara", "Hello").await;
    let (_, page) = app.get_json("/conversations/c-1/messages").await;
    assert_eq!(page["messages"][0], turn["player_message"]);
    assert_eq!(page["messages"][1], turn["reply"]);
}

#[tokio::test]
async fn an_unknown_conversation_is_404() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/conversations/nope/messages").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
