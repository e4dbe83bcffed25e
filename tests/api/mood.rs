//! Topics and mood in the open: the mood beside the facts in `GET /memory`, topics on
//! conversations and `?topic=`, the mood in the prompt, the turn's `affinity_hint` once
//! per change of mood, and all of it gone with the player.

use crate::{
    helpers::TestApp,
    memory::{eventually, extraction, jobs_left, with_quick_jobs},
    streaming::events,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `FACT_EXTRACTION_EVERY` (5) player lines in `conversation`, each answered; their
/// `affinity_hint`s.
async fn five_lines(app: &TestApp, conversation: &str, player: &str) -> Vec<Value> {
    let mut hints = Vec::new();
    for i in 1..=5 {
        let turn = app
            .say(conversation, player, "mara", &format!("line {i}"))
            .await;
        assert!(
            turn.as_object().unwrap().contains_key("affinity_hint"),
            "{turn}"
        );
        hints.push(turn["affinity_hint"].clone());
    }
    hints
}

async fn mood_of(app: &TestApp, player: &str) -> Value {
    let (status, body) = app
        .get_json(&format!("/memory?character_id=mara&player_id={player}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.as_object().unwrap().contains_key("mood"), "{body}");
    body["mood"].clone()
}

/// The ids and topics of a `GET /conversations` page, and its `next_cursor`.
async fn listed(app: &TestApp, query: &str) -> (Vec<(String, Value)>, Value) {
    let (status, body) = app.get_json(&format!("/conversations?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let rows = body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_owned(), c["topics"].clone()))
        .collect();
    (rows, body["next_cursor"].clone())
}

fn ids(rows: &[(String, Value)]) -> Vec<&str> {
    rows.iter().map(|(id, _)| id.as_str()).collect()
}

fn friendly_extraction() -> Value {
    json!({
        "facts": [{"text": "Player has a cat named Whiskers", "importance": 7}],
        "topics": ["Pets", "lodging"],
        "mood": {"label": "friendly", "intensity": 0.6, "reason": "The player was kind."}
    })
}

#[tokio::test]
async fn topics_and_mood_appear_after_extraction_are_injected_and_hinted_once() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[])).await;
    app.create_mara("mara").await;
    app.provider
        .enqueue_for("fact_extraction", [extraction(friendly_extraction())]);
    assert!(mood_of(&app, "p-1").await.is_null(), "no mood before");
    let hints = five_lines(&app, "c-1", "p-1").await;
    assert!(hints.iter().all(Value::is_null), "{hints:?}");
    eventually("the mood is stored", || async {
        !mood_of(&app, "p-1").await.is_null()
    })
    .await;

    let (_, memory) = app
        .get_json("/memory?character_id=mara&player_id=p-1")
        .await;
    assert_eq!(
        memory["facts"][0]["text"],
        "Player has a cat named Whiskers"
    );
    let mood = &memory["mood"];
    assert_eq!(mood["label"], "friendly");
    assert_eq!(mood["intensity"], 0.6);
    assert_eq!(mood["reason"], "The player was kind.");
    let changed_at = mood["updated_at"].as_str().unwrap().to_owned();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&changed_at).is_ok(),
        "{changed_at}"
    );

    // Topics are kept lower-case, in the list and on the conversation.
    let (rows, _) = listed(&app, "player_id=p-1").await;
    assert_eq!(rows, vec![("c-1".into(), json!(["pets", "lodging"]))]);
    let (status, one) = app.get_json("/conversations/c-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["topics"], json!(["pets", "lodging"]));

    // The next turn (with an Idempotency-Key: the stored answer keeps the hint) has the
    // mood in its prompt and the hint in its answer: friendly 0.7 × 0.6 × 10 = 4.2.
    let body = json!({"player_id": "p-1", "character_id": "mara", "content": "Hello again"});
    let send = || {
        app.request(Method::POST, "/conversations/c-1/messages")
            .header("Idempotency-Key", "after-the-mood")
            .json(&body)
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first["affinity_hint"], 4, "{first}");
    let system = app.provider.last_request().messages()[0].1.clone();
    assert!(
        system.contains("mood towards the player: friendly (intensity 0.6 of 1)"),
        "{system}"
    );
    let replayed = send().await.unwrap();
    assert_eq!(
        replayed
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed, first, "the stored answer carries the same hint");

    // Applied once: the following turn, streamed, and a new conversation of the same pair
    // carry none.
    let response = app
        .request(Method::POST, "/conversations/c-1/messages/stream")
        .json(&json!({"player_id": "p-1", "character_id": "mara", "content": "And then?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let streamed = events(&response.text().await.unwrap());
    let (name, done) = streamed.last().unwrap();
    assert_eq!(name, "done", "{streamed:?}");
    assert!(
        done.as_object().unwrap()["affinity_hint"].is_null(),
        "{done}"
    );
    let elsewhere = app.say("c-2", "p-1", "mara", "A new talk").await;
    assert!(elsewhere["affinity_hint"].is_null(), "{elsewhere}");
    assert!(
        app.provider.last_request().messages()[0]
            .1
            .contains("friendly")
    );
    // A conversation extraction has not read yet has no topics.
    let (_, c2) = app.get_json("/conversations/c-2").await;
    assert_eq!(c2["topics"], json!([]));
    assert_eq!(
        mood_of(&app, "p-1").await["updated_at"],
        changed_at.as_str()
    );
}

#[tokio::test]
async fn the_hint_comes_again_only_when_the_mood_changes() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[])).await;
    app.create_mara("mara").await;
    let reason = |mood: Value| extraction(json!({"facts": [], "mood": mood}));
    app.provider.enqueue_for(
        "fact_extraction",
        [
            reason(json!({"label": "wary", "intensity": 0.5, "reason": "A stranger."})),
            // The same mood for another reason: not a change.
            reason(json!({"label": "wary", "intensity": 0.5, "reason": "Still a stranger."})),
            reason(json!({"label": "hostile", "intensity": 0.8, "reason": "He stole."})),
        ],
    );
    let mut hints = Vec::new();
    for round in 0..3 {
        hints.extend(five_lines(&app, "c-1", "p-1").await);
        eventually("the extraction is applied", || async {
            jobs_left(&app).await == 0 && app.provider.requests_for("fact_extraction").len() > round
        })
        .await;
    }
    hints.push(app.say("c-1", "p-1", "mara", "last").await["affinity_hint"].clone());
    // wary -0.4 × 0.5 × 10 = -2 on the line after the first extraction; nothing after the
    // second (same label and intensity); hostile -1.0 × 0.8 × 10 = -8 after the third.
    let mut expected = vec![Value::Null; 16];
    expected[5] = json!(-2);
    expected[15] = json!(-8);
    assert_eq!(hints, expected);
    let mood = mood_of(&app, "p-1").await;
    assert_eq!(mood["label"], "hostile");
    assert_eq!(mood["reason"], "He stole.");
}

#[tokio::test]
async fn conversations_filter_by_topic_with_the_other_filters_and_paging() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.create_mara("smith").await;
    // Oldest first: c-1 (p-1, mara), c-2 (p-1, mara), c-3 (p-1, smith), c-4 (p-1, mara,
    // no topics yet), c-5 (p-2, mara).
    for (conversation, player, character) in [
        ("c-1", "p-1", "mara"),
        ("c-2", "p-1", "mara"),
        ("c-3", "p-1", "smith"),
        ("c-4", "p-1", "mara"),
        ("c-5", "p-2", "mara"),
    ] {
        app.say(conversation, player, character, "Hello").await;
    }
    // As extraction writes them (its own test above); here only the filter is at stake.
    for (conversation, topics) in [
        ("c-1", r#"["pets","lodging"]"#),
        ("c-2", r#"["pets"]"#),
        ("c-3", r#"["pets","smithing"]"#),
        ("c-5", r#"["pets"]"#),
    ] {
        sqlx::query("UPDATE conversations SET topics = ? WHERE id = ?")
            .bind(topics)
            .bind(conversation)
            .execute(&app.pool)
            .await
            .unwrap();
    }

    let (rows, _) = listed(&app, "player_id=p-1").await;
    assert_eq!(ids(&rows), ["c-4", "c-3", "c-2", "c-1"]);
    assert_eq!(rows[0].1, json!([]), "no topics yet: an empty list");
    let (rows, _) = listed(&app, "player_id=p-1&topic=pets").await;
    assert_eq!(ids(&rows), ["c-3", "c-2", "c-1"]);
    let (rows, _) = listed(&app, "player_id=p-1&topic=%20Pets%20").await;
    assert_eq!(ids(&rows), ["c-3", "c-2", "c-1"], "trimmed, any case");
    let (rows, _) = listed(&app, "player_id=p-1&topic=lodging").await;
    assert_eq!(rows, vec![("c-1".into(), json!(["pets", "lodging"]))]);
    let (rows, _) = listed(&app, "player_id=p-1&character_id=mara&topic=pets").await;
    assert_eq!(ids(&rows), ["c-2", "c-1"]);
    let (rows, _) = listed(&app, "character_id=mara&topic=pets").await;
    assert_eq!(ids(&rows), ["c-5", "c-2", "c-1"]);
    for nothing in [
        "weather",
        "pet",
        "%22pets%22",
        "a%22%5D%20OR%201%3D1",
        "%00",
    ] {
        let (rows, _) = listed(&app, &format!("player_id=p-1&topic={nothing}")).await;
        assert!(rows.is_empty(), "{nothing}: {rows:?}");
    }

    // Paging through a filtered list: the cursor keeps the filter's order.
    let (first, cursor) = listed(&app, "player_id=p-1&topic=pets&limit=2").await;
    assert_eq!(ids(&first), ["c-3", "c-2"]);
    let cursor = cursor.as_str().unwrap().to_owned();
    let (second, end) = listed(
        &app,
        &format!("player_id=p-1&topic=pets&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&second), ["c-1"]);
    assert!(end.is_null());

    for bad in ["", "%20%20", &"x".repeat(41)] {
        let (status, body) = app
            .get_json(&format!("/conversations?player_id=p-1&topic={bad}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed");
    }
    let (status, _) = app.get_json("/conversations?topic=pets").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "still needs a player or a character"
    );
}

#[tokio::test]
async fn a_reply_without_topics_or_mood_still_yields_its_facts() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[])).await;
    app.create_mara("mara").await;
    app.provider.enqueue_for(
        "fact_extraction",
        [
            extraction(json!({"facts": [{"text": "Player sings badly", "importance": 3}]})),
            extraction(json!({
                "facts": [{"text": "Player fears the sea", "importance": 8}],
                "topics": "not a list",
                "mood": {"label": "ecstatic", "intensity": 2}
            })),
        ],
    );
    for round in 0..2 {
        five_lines(&app, "c-1", "p-1").await;
        eventually("the extraction is applied", || async {
            jobs_left(&app).await == 0 && app.provider.requests_for("fact_extraction").len() > round
        })
        .await;
    }
    let (_, memory) = app
        .get_json("/memory?character_id=mara&player_id=p-1")
        .await;
    let mut facts: Vec<&str> = memory["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fact| fact["text"].as_str().unwrap())
        .collect();
    facts.sort_unstable();
    assert_eq!(facts, ["Player fears the sea", "Player sings badly"]);
    assert!(memory["mood"].is_null(), "{memory}");
    let (_, one) = app.get_json("/conversations/c-1").await;
    assert_eq!(one["topics"], json!([]));
    let turn = app.say("c-1", "p-1", "mara", "Well?").await;
    assert!(turn["affinity_hint"].is_null());
    assert!(
        !app.provider.last_request().messages()[0]
            .1
            .contains("mood towards the player"),
    );
}

#[tokio::test]
async fn erasure_takes_the_mood_and_the_topics_with_it() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[])).await;
    app.create_mara("mara").await;
    app.provider.enqueue_for(
        "fact_extraction",
        [
            extraction(friendly_extraction()),
            extraction(friendly_extraction()),
        ],
    );
    five_lines(&app, "c-1", "p-1").await;
    five_lines(&app, "c-9", "p-2").await;
    eventually("both moods are stored", || async {
        !mood_of(&app, "p-1").await.is_null() && !mood_of(&app, "p-2").await.is_null()
    })
    .await;
    eventually("the background work is done", || async {
        jobs_left(&app).await == 0
    })
    .await;
    let (rows, _) = listed(&app, "character_id=mara&topic=pets").await;
    assert_eq!(rows.len(), 2);

    let response = app
        .request(Method::DELETE, "/players/p-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert!(mood_of(&app, "p-1").await.is_null());
    let (_, memory) = app
        .get_json("/memory?character_id=mara&player_id=p-1")
        .await;
    assert_eq!(memory["facts"], json!([]));
    let (rows, _) = listed(&app, "player_id=p-1").await;
    assert!(rows.is_empty());
    let (rows, _) = listed(&app, "character_id=mara&topic=pets").await;
    assert_eq!(ids(&rows), ["c-9"], "another player's topics stay");
    assert_eq!(
        app.get_json("/conversations/c-1").await.0,
        StatusCode::NOT_FOUND
    );
    for left in [
        "SELECT COUNT(*) FROM affinities WHERE player_id = 'p-1'",
        "SELECT COUNT(*) FROM conversations WHERE player_id = 'p-1'",
    ] {
        let count: i64 = sqlx::query_scalar(left).fetch_one(&app.pool).await.unwrap();
        assert_eq!(count, 0, "{left}");
    }
    assert_eq!(mood_of(&app, "p-2").await["label"], "friendly");

    // The id used again starts without a mood, and its first turn carries no hint.
    let again = app.say("c-1", "p-1", "mara", "Hello?").await;
    assert!(again["affinity_hint"].is_null());
    assert!(
        !app.provider.last_request().messages()[0]
            .1
            .contains("mood towards the player")
    );
}
