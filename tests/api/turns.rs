//! A player's turn, end to end.

use crate::{
    helpers::{TestApp, decimal},
    mock_provider::MockReply,
};
use reqwest::StatusCode;
use serde_json::json;

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct UsageRow {
    player_id: String,
    conversation_id: String,
    purpose: String,
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    cost_usd: rust_decimal::Decimal,
    outcome: String,
}

#[tokio::test]
async fn a_first_turn_stores_two_messages_and_one_priced_usage_row() {
    let app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;

    let response = app
        .post_turn(
            "c-42",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "Any rooms free?",
                   "affinity": 35, "context": {"location": "tavern", "time_of_day": "night"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let turn: serde_json::Value = response.json().await.unwrap();

    assert_eq!(turn["conversation_id"], "c-42");
    assert_eq!(turn["player_message"]["seq"], 1);
    assert_eq!(turn["player_message"]["role"], "player");
    assert_eq!(turn["player_message"]["content"], "Any rooms free?");
    assert_eq!(turn["reply"]["seq"], 2);
    assert_eq!(turn["reply"]["role"], "character");
    assert_eq!(turn["reply"]["content"], "One left, upstairs.");
    assert_eq!(turn["reply"]["source"], "llm");
    assert_eq!(turn["source"], "llm");
    assert!(turn["fallback_reason"].is_null());
    assert_eq!(turn["usage"]["prompt_tokens"], 412);
    assert_eq!(turn["usage"]["completion_tokens"], 18);
    // gpt-4o-mini: 412 × 0.15 + 18 × 0.60 = 72.6 micro-dollars.
    assert_eq!(
        decimal(&turn["usage"]["cost_usd"]),
        "0.000073".parse().unwrap()
    );

    assert_eq!(
        app.stored_messages("c-42").await,
        vec![
            (1, "player".into(), "Any rooms free?".into(), None),
            (
                2,
                "character".into(),
                "One left, upstairs.".into(),
                Some("llm".into())
            ),
        ]
    );
    let usage: Vec<UsageRow> = sqlx::query_as(
        "SELECT player_id, conversation_id, purpose, prompt_tokens, completion_tokens,
             total_tokens, cost_usd, outcome
         FROM usage_records",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        usage,
        vec![UsageRow {
            player_id: "p-7".into(),
            conversation_id: "c-42".into(),
            purpose: "conversation".into(),
            prompt_tokens: 412,
            completion_tokens: 18,
            total_tokens: 430,
            cost_usd: "0.000073".parse().unwrap(),
            outcome: "success".into(),
        }]
    );
}

#[tokio::test]
async fn the_provider_call_follows_the_openai_protocol() {
    let app = TestApp::spawn_with(&[("LLM_MAX_TOKENS", "77"), ("LLM_MODEL", "gpt-4o")]).await;
    app.create_mara("innkeeper_mara").await;
    app.say("c-1", "p-7", "innkeeper_mara", "Hello").await;

    let request = app.provider.last_request();
    assert_eq!(
        request.header("authorization"),
        Some("Bearer test-provider-key")
    );
    assert_eq!(request.header("x-request-purpose"), Some("conversation"));
    assert_eq!(request.body["model"], "gpt-4o");
    assert_eq!(request.body["max_tokens"], 77);
    assert_eq!(request.body["user"], "p-7");
}

#[tokio::test]
async fn a_characters_own_model_overrides_the_default() {
    let app = TestApp::spawn().await;
    let response = app
        .put_character(
            "sage",
            json!({"name": "Sage", "persona": "Wise.", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let turn = app.say("c-1", "p-1", "sage", "Hello").await;
    assert_eq!(app.provider.last_request().body["model"], "gpt-4o");
    // gpt-4o: 412 × 2.50 + 18 × 10.00 = 1210 micro-dollars.
    assert_eq!(
        decimal(&turn["usage"]["cost_usd"]),
        "0.00121".parse().unwrap()
    );
}

#[tokio::test]
async fn the_prompt_holds_persona_tier_context_and_exactly_the_last_n_messages() {
    let app = TestApp::spawn_with(&[("CONTEXT_RECENT_MESSAGES", "4")]).await;
    app.create_mara("innkeeper_mara").await;
    app.provider.enqueue([
        MockReply::text("reply one", 10, 2),
        MockReply::text("reply two", 10, 2),
        MockReply::text("reply three", 10, 2),
    ]);
    for line in ["line one", "line two", "line three"] {
        app.say("c-1", "p-7", "innkeeper_mara", line).await;
    }
    let response = app
        .post_turn(
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "line four",
                   "affinity": 60, "context": {"location": "tavern", "weather": "storm"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let messages = app.provider.last_request().messages();
    let (role, system) = &messages[0];
    assert_eq!(role, "system");
    assert!(
        system.contains("Gruff innkeeper of the Crooked Stag. Speaks plainly."),
        "{system}"
    );
    assert!(system.contains("tier: high"), "{system}");
    assert!(system.contains(r#""location":"tavern""#), "{system}");
    assert!(system.contains(r#""weather":"storm""#), "{system}");
    let rest: Vec<(&str, &str)> = messages[1..]
        .iter()
        .map(|(role, content)| (role.as_str(), content.as_str()))
        .collect();
    assert_eq!(
        rest,
        vec![
            ("user", "line two"),
            ("assistant", "reply two"),
            ("user", "line three"),
            ("assistant", "reply three"),
            ("user", "line four"),
        ]
    );
}

#[tokio::test]
async fn the_latest_affinity_is_remembered_for_the_next_turn() {
    let app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    let response = app
        .post_turn(
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "Grr", "affinity": -20}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.say("c-1", "p-7", "innkeeper_mara", "Sorry").await;
    let system = &app.provider.last_request().messages()[0].1;
    assert!(system.contains("tier: low"), "{system}");
}

#[tokio::test]
async fn a_conversation_reused_by_another_player_or_character_is_refused_with_409() {
    let app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    app.create_mara("blacksmith").await;
    app.say("c-1", "p-7", "innkeeper_mara", "Hello").await;
    let calls = app.provider.request_count();

    for (player, character) in [("p-8", "innkeeper_mara"), ("p-7", "blacksmith")] {
        let response = app
            .post_turn(
                "c-1",
                json!({"player_id": player, "character_id": character, "content": "Mine now"}),
            )
            .await;
        let (status, code) = crate::helpers::error_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::CONFLICT, "conversation_conflict")
        );
    }
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
    assert_eq!(
        app.provider.request_count(),
        calls,
        "no LLM call for a refused turn"
    );
}

#[tokio::test]
async fn unicode_and_sql_looking_ids_are_stored_and_returned_intact() {
    let app = TestApp::spawn().await;
    let character = "Ünïcødé'); DROP TABLE characters; --";
    let player = "игрок \"🐉\" OR 1=1";
    let conversation = "会話/42?x=1#frag";
    app.create_mara(character).await;
    let turn = app.say(conversation, player, character, "Ça va? 🍺").await;
    assert_eq!(turn["conversation_id"], conversation);
    assert_eq!(turn["player_message"]["content"], "Ça va? 🍺");

    let (status, stored) = app
        .get_json(&format!("/characters/{}", urlencoding::encode(character)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["id"], character);
    let (status, history) = app
        .get_json(&format!(
            "/conversations/{}/messages",
            urlencoding::encode(conversation)
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["messages"][0]["content"], "Ça va? 🍺");
    let (status, usage) = app
        .get_json(&format!("/usage?player_id={}", urlencoding::encode(player)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["calls"], 1);
    // Ids differing only by case are different ids (a case-insensitive collation
    // would find the character under its lower-case spelling).
    let lower = character.to_lowercase();
    assert_ne!(lower, character);
    let (status, _) = app
        .get_json(&format!("/characters/{}", urlencoding::encode(&lower)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.count("characters").await, 1);
}

#[tokio::test]
async fn without_an_llm_key_the_reply_is_a_fallback_and_no_call_is_made() {
    let app = TestApp::spawn_with(&[("LLM_API_KEY", "")]).await;
    app.create_mara("innkeeper_mara").await;
    let response = app
        .post_turn(
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "Hello", "affinity": 80}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let turn: serde_json::Value = response.json().await.unwrap();
    assert_eq!(turn["source"], "fallback");
    assert_eq!(turn["fallback_reason"], "llm_not_configured");
    assert_eq!(turn["reply"]["source"], "fallback");
    assert_eq!(
        turn["reply"]["content"], "Ah, my favourite guest!",
        "the character's high-tier line"
    );
    assert_eq!(app.provider.request_count(), 0);
    assert_eq!(app.count("usage_records").await, 0);
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
}

#[tokio::test]
async fn a_provider_failure_becomes_a_fallback_with_its_usage_recorded() {
    let app = TestApp::spawn_with(&[("LLM_MAX_RETRIES", "0")]).await;
    app.create_mara("innkeeper_mara").await;
    app.provider.enqueue([MockReply::Status(500)]);
    let response = app
        .post_turn(
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": "Hello", "affinity": -5}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let turn: serde_json::Value = response.json().await.unwrap();
    assert_eq!(turn["source"], "fallback");
    assert_eq!(turn["fallback_reason"], "llm_error");
    assert_eq!(turn["reply"]["content"], "Make it quick.");
    assert_eq!(
        app.stored_messages("c-1").await[1],
        (
            2,
            "character".into(),
            "Make it quick.".into(),
            Some("fallback".into())
        )
    );
    let (outcome, status, cost): (String, Option<u16>, rust_decimal::Decimal) =
        sqlx::query_as("SELECT outcome, http_status, cost_usd FROM usage_records")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((outcome.as_str(), status), ("http_error", Some(500)));
    assert!(cost.is_zero());
}

#[tokio::test]
async fn an_unusable_provider_answer_becomes_a_fallback() {
    let app = TestApp::spawn_with(&[("LLM_MAX_RETRIES", "0")]).await;
    app.create_mara("innkeeper_mara").await;
    app.provider.enqueue([MockReply::Garbage]);
    let turn = app.say("c-1", "p-7", "innkeeper_mara", "Hello").await;
    assert_eq!(turn["fallback_reason"], "llm_error");
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM usage_records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(outcome, "invalid_response");
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_becomes_a_fallback() {
    let app = TestApp::spawn_with(&[("LLM_TIMEOUT_MS", "200"), ("LLM_MAX_RETRIES", "0")]).await;
    app.create_mara("innkeeper_mara").await;
    app.provider.enqueue([MockReply::Delayed(
        std::time::Duration::from_secs(2),
        Box::new(MockReply::text("too late", 1, 1)),
    )]);
    let turn = app.say("c-1", "p-7", "innkeeper_mara", "Hello").await;
    assert_eq!(turn["fallback_reason"], "llm_error");
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM usage_records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(outcome, "timeout");
}

#[tokio::test]
async fn missing_provider_usage_is_estimated_with_the_tokenizer_and_flagged() {
    let app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    app.provider.enqueue([MockReply::Text {
        content: "hello world".into(),
        usage: None,
    }]);
    let turn = app.say("c-1", "p-7", "innkeeper_mara", "Hello").await;
    assert_eq!(
        turn["usage"]["completion_tokens"], 2,
        "o200k: 'hello world' is two tokens"
    );
    let prompt_tokens = turn["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        prompt_tokens > 50,
        "the system prompt alone is longer: {prompt_tokens}"
    );
    let estimated: bool = sqlx::query_scalar("SELECT tokens_estimated FROM usage_records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(estimated);
}

#[tokio::test]
async fn data_survives_a_restart_of_the_service() {
    let mut app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    app.say("c-1", "p-7", "innkeeper_mara", "Before").await;
    app.restart().await;

    let (status, history) = app.get_json("/conversations/c-1/messages").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(2));
    let turn = app.say("c-1", "p-7", "innkeeper_mara", "After").await;
    assert_eq!(turn["player_message"]["seq"], 3);
    assert_eq!(turn["reply"]["seq"], 4);
    let (_, usage) = app.get_json("/usage").await;
    assert_eq!(usage["calls"], 2);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_turns_on_one_conversation_keep_seq_gapless() {
    let app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    let turns = (0..8).map(|i| {
        app.post_turn(
            "c-1",
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": format!("line {i}")}),
        )
    });
    for response in futures::future::join_all(turns).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let seqs: Vec<u32> = app
        .stored_messages("c-1")
        .await
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<u32>>());
}
