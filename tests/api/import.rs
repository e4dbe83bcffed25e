//! History import: a studio's past conversations appended with gapless `seq`, idempotent
//! by `client_id`, then summarized and extracted in the background.

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::memory::{QUICK_JOBS, eventually_within};

/// A fixed past: 2026-01-01T00:00:00Z.
fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

fn at(second: i64) -> String {
    (start() + ChronoDuration::seconds(second)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Message `i` of a studio's history: the player on even `i`, the character on odd,
/// one a second.
fn message(i: usize) -> Value {
    json!({
        "client_id": format!("m-{i}"),
        "role": if i.is_multiple_of(2) { "player" } else { "character" },
        "content": format!("line {i}"),
        "created_at": at(i as i64),
    })
}

fn history(range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(message).collect()
}

fn body(messages: Vec<Value>) -> Value {
    json!({"player_id": "p-1", "character_id": "mara", "messages": messages})
}

async fn post_import(app: &TestApp, conversation_id: &str, body: &Value) -> Response {
    app.request(
        Method::POST,
        &format!("/conversations/{conversation_id}/import"),
    )
    .json(body)
    .send()
    .await
    .unwrap()
}

/// An import that must succeed; its answer.
async fn import(app: &TestApp, conversation_id: &str, messages: Vec<Value>) -> Value {
    let response = post_import(app, conversation_id, &body(messages)).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// (seq, client_id, role, content, source, created_at) of every stored message.
type Row = (
    u32,
    Option<String>,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
);

async fn stored(app: &TestApp, conversation_id: &str) -> Vec<Row> {
    sqlx::query_as(
        "SELECT seq, client_id, role, content, source, created_at FROM messages
         WHERE conversation_id = ? ORDER BY seq",
    )
    .bind(conversation_id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn jobs_left(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status <> 'parked'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn watermarks(app: &TestApp, conversation_id: &str) -> (u32, u32) {
    sqlx::query_as("SELECT summary_seq, extracted_seq FROM conversations WHERE id = ?")
        .bind(conversation_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Waits (up to 30 s: a 500-message backlog) until `check` holds.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(30), check).await;
}

/// The messages one extraction or summarization call read.
fn batch_of(request: &crate::mock_provider::RecordedRequest, key: &str) -> Vec<Value> {
    let user: Value = serde_json::from_str(&request.messages()[1].1).unwrap();
    user[key].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_imported_history_of_500_messages_is_kept_in_order_then_summarized_and_extracted() {
    let app = TestApp::spawn_with(&QUICK_JOBS).await;
    app.create_mara("mara").await;
    app.provider.enqueue_for(
        "fact_extraction",
        [MockReply::text(
            &json!({"facts": [{"text": "Player has a cat named Whiskers", "importance": 7}]})
                .to_string(),
            300,
            20,
        )],
    );

    let answer = import(&app, "c-1", history(0..500)).await;
    assert_eq!(
        answer,
        json!({"imported": 500, "skipped": 0, "last_seq": 500})
    );
    assert!(
        app.provider.requests().is_empty(),
        "no conversation call for an import"
    );

    let rows = stored(&app, "c-1").await;
    assert_eq!(rows.len(), 500);
    for (i, (seq, client_id, role, content, source, created_at)) in rows.iter().enumerate() {
        assert_eq!(*seq as usize, i + 1, "gapless, in order");
        assert_eq!(client_id.as_deref(), Some(format!("m-{i}").as_str()));
        assert_eq!(content, &format!("line {i}"));
        assert_eq!(
            created_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            at(i as i64)
        );
        if i.is_multiple_of(2) {
            assert_eq!((role.as_str(), source), ("player", &None));
        } else {
            assert_eq!(
                (role.as_str(), source.as_deref()),
                ("character", Some("import"))
            );
        }
    }
    // The history as the game reads it: the last page, with the imported source.
    let (status, page) = app.get_json("/conversations/c-1/messages?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["messages"][1]["seq"], 500);
    assert_eq!(page["messages"][1]["source"], "import");
    assert_eq!(page["messages"][1]["created_at"], at(499));
    assert!(page["messages"][0].get("source").is_none());
    // The conversation's time is its last message's, and all of it counts as read.
    let (_, conversation) = app.get_json("/conversations/c-1").await;
    assert_eq!(conversation["updated_at"], at(499));
    assert_eq!(conversation["message_count"], 500);
    assert_eq!(conversation["unread_count"], 0);
    assert_eq!(conversation["read_seq"], 500);

    eventually(
        "the history is summarized and extracted to its end",
        || async { jobs_left(&app).await == 0 && watermarks(&app, "c-1").await == (490, 500) },
    )
    .await;

    // Summaries: the 490 messages out of the window, in calls of at most 60.
    let summaries = app.provider.requests_for("summarization");
    let folded: Vec<usize> = summaries
        .iter()
        .map(|request| batch_of(request, "new_messages").len())
        .collect();
    assert_eq!(folded.iter().sum::<usize>(), 490, "{folded:?}");
    assert!(folded.iter().all(|n| *n <= 60), "{folded:?}");
    // Extraction: every message once, at most one call per FACT_EXTRACTION_EVERY × 4.
    let extractions = app.provider.requests_for("fact_extraction");
    let read: Vec<usize> = extractions
        .iter()
        .map(|request| batch_of(request, "new_exchange").len())
        .collect();
    assert_eq!(read.iter().sum::<usize>(), 500, "{read:?}");
    assert!(extractions.len() <= 500 / 20, "{read:?}");
    assert!(read.iter().all(|n| *n >= 20), "{read:?}");
    assert_eq!(
        batch_of(&extractions[0], "new_exchange")[0]["text"],
        "line 0"
    );
    for request in summaries.iter().chain(&extractions) {
        assert_eq!(request.body["user"], "p-1");
    }

    let (status, memory) = app
        .get_json("/memory?character_id=mara&player_id=p-1")
        .await;
    assert_eq!(status, StatusCode::OK);
    let facts = memory["facts"].as_array().unwrap();
    assert_eq!(facts.len(), 1, "{memory}");
    assert_eq!(facts[0]["text"], "Player has a cat named Whiskers");
    assert_eq!(facts[0]["source"], "import");
    assert_eq!(facts[0]["conversation_id"], "c-1");
    let (source, from, to): (String, u32, u32) =
        sqlx::query_as("SELECT source, from_seq, to_seq FROM memory_facts")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((source.as_str(), from), ("import", 1));
    assert_eq!(to as usize, read[0]);
}

#[tokio::test]
async fn the_request_itself_calls_no_llm_and_schedules_the_background_work() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    import(&app, "c-1", history(0..40)).await;
    assert!(app.provider.all_requests().is_empty());
    let mut kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM jobs ORDER BY kind")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    kinds.sort();
    assert_eq!(kinds, vec!["extract_facts", "summarize"]);

    // Fewer than FACT_EXTRACTION_EVERY × 4 new messages wait for more.
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    import(&app, "c-1", history(0..19)).await;
    assert_eq!(jobs_left(&app).await, 1, "a summary only");
}

#[tokio::test]
async fn a_batch_sent_again_changes_nothing_and_answers_all_skipped() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    let first = import(&app, "c-1", history(0..30)).await;
    assert_eq!(first, json!({"imported": 30, "skipped": 0, "last_seq": 30}));
    let before = stored(&app, "c-1").await;
    let (_, conversation_before) = app.get_json("/conversations/c-1").await;

    let again = import(&app, "c-1", history(0..30)).await;
    assert_eq!(again, json!({"imported": 0, "skipped": 30, "last_seq": 30}));
    assert_eq!(stored(&app, "c-1").await, before);
    let (_, conversation_after) = app.get_json("/conversations/c-1").await;
    assert_eq!(conversation_after, conversation_before);

    // Even after a turn, when its times are older than the last message: de-duplication
    // comes before every other check.
    app.say("c-1", "p-1", "mara", "Back again").await;
    let again = import(&app, "c-1", history(0..30)).await;
    assert_eq!(again, json!({"imported": 0, "skipped": 30, "last_seq": 32}));
}

#[tokio::test]
async fn a_partial_overlap_imports_only_the_new_messages() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    import(&app, "c-1", history(0..10)).await;
    let answer = import(&app, "c-1", history(5..15)).await;
    assert_eq!(answer, json!({"imported": 5, "skipped": 5, "last_seq": 15}));
    let rows = stored(&app, "c-1").await;
    assert_eq!(rows.len(), 15);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.0 as usize, i + 1);
        assert_eq!(row.1.as_deref(), Some(format!("m-{i}").as_str()));
    }
}

#[tokio::test]
async fn the_same_client_id_with_other_content_is_a_conflict_and_changes_nothing() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    import(&app, "c-1", history(0..4)).await;
    let before = stored(&app, "c-1").await;
    let mut changed = history(2..8);
    changed[1]["content"] = json!("something else");
    let response = post_import(&app, "c-1", &body(changed)).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::CONFLICT, "import_conflict".into())
    );
    let mut changed = history(2..8);
    changed[0]["role"] = json!("character");
    let response = post_import(&app, "c-1", &body(changed)).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::CONFLICT, "import_conflict".into())
    );
    assert_eq!(stored(&app, "c-1").await, before);
}

#[tokio::test]
async fn invalid_batches_are_refused_with_400_and_change_nothing() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0"), ("MAX_MESSAGE_CHARS", "100")]).await;
    app.create_mara("mara").await;
    import(&app, "c-1", history(0..4)).await;
    let before = stored(&app, "c-1").await;

    let with = |i: usize, field: &str, value: Value| {
        let mut messages = history(4..8);
        messages[i][field] = value;
        body(messages)
    };
    let future = (Utc::now() + ChronoDuration::days(2)).to_rfc3339();
    let cases: Vec<(&str, Value)> = vec![
        ("no messages", body(vec![])),
        ("501 messages", body(history(4..505))),
        ("a bad role", with(1, "role", json!("narrator"))),
        ("a role in capitals", with(1, "role", json!("Player"))),
        ("empty content", with(0, "content", json!(""))),
        ("blank content", with(0, "content", json!("   "))),
        (
            "content too long",
            with(0, "content", json!("a".repeat(101))),
        ),
        ("a control character", with(0, "content", json!("a\u{7}b"))),
        ("an empty client_id", with(2, "client_id", json!(""))),
        (
            "a client_id of 65",
            with(2, "client_id", json!("x".repeat(65))),
        ),
        ("a padded client_id", with(2, "client_id", json!(" m-6"))),
        ("a client_id twice", with(3, "client_id", json!("m-4"))),
        (
            "a time that is not one",
            with(1, "created_at", json!("yesterday")),
        ),
        (
            "a date without a time",
            with(1, "created_at", json!("2026-01-01")),
        ),
        (
            "no time zone",
            with(1, "created_at", json!("2026-01-01T00:00:05")),
        ),
        (
            "a time before 1970",
            with(1, "created_at", json!("1969-07-20T20:17:00Z")),
        ),
        ("a time in the future", with(3, "created_at", json!(future))),
        ("decreasing times", with(3, "created_at", json!(at(5)))),
        (
            "a bad player_id",
            json!({"player_id": "", "character_id": "mara", "messages": history(4..6)}),
        ),
    ];
    for (what, body) in cases {
        let response = post_import(&app, "c-1", &body).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "validation_failed".into()),
            "{what}"
        );
    }
    // What conflicts with the conversation as it stands now is 409.
    let out_of_order: Vec<(&str, Value)> = vec![
        (
            "before the last message",
            with(0, "created_at", json!(at(2))),
        ),
        (
            "before the last message, alone",
            body(vec![
                json!({"client_id": "m-x", "role": "player", "content": "hi", "created_at": at(1)}),
            ]),
        ),
    ];
    for (what, body) in out_of_order {
        let response = post_import(&app, "c-1", &body).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::CONFLICT, "import_out_of_order".into()),
            "{what}"
        );
    }
    let malformed: Vec<(&str, Value)> = vec![
        (
            "messages not a list",
            json!({"player_id": "p-1", "character_id": "mara", "messages": {}}),
        ),
        (
            "no messages field",
            json!({"player_id": "p-1", "character_id": "mara"}),
        ),
        ("a message without a time", {
            let mut messages = history(4..6);
            messages[0].as_object_mut().unwrap().remove("created_at");
            body(messages)
        }),
        ("a number as content", with(0, "content", json!(12))),
        ("null as role", with(0, "role", Value::Null)),
        ("a list", json!([1, 2])),
    ];
    for (what, body) in malformed {
        let response = post_import(&app, "c-1", &body).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_json".into()),
            "{what}"
        );
    }
    assert_eq!(stored(&app, "c-1").await, before);
    assert_eq!(jobs_left(&app).await, 0);
}

#[tokio::test]
async fn a_turn_after_an_import_continues_the_seq_and_only_its_reply_is_unread() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    // An odd number, so the replies that follow take odd seqs.
    import(&app, "c-1", history(0..7)).await;
    let (_, listed) = app.get_json("/conversations?player_id=p-1").await;
    assert_eq!(listed["conversations"][0]["unread_count"], 0);
    assert_eq!(listed["conversations"][0]["read_seq"], 7);

    let turn = app.say("c-1", "p-1", "mara", "Remember me?").await;
    assert_eq!(turn["player_message"]["seq"], 8);
    assert_eq!(turn["reply"]["seq"], 9);
    // The turn's prompt carries the imported history as its window.
    let prompt = app.provider.last_request().messages();
    assert!(
        prompt.iter().any(|(_, content)| content == "line 6"),
        "{prompt:?}"
    );
    let (_, conversation) = app.get_json("/conversations/c-1").await;
    assert_eq!(conversation["unread_count"], 1);
    assert_eq!(conversation["message_count"], 9);
    app.say("c-1", "p-1", "mara", "Hello?").await;
    let response = app
        .request(Method::POST, "/conversations/c-1/read")
        .json(&json!({"up_to_seq": 10}))
        .send()
        .await
        .unwrap();
    let marked: Value = response.json().await.unwrap();
    assert_eq!(marked["unread_count"], 1, "the reply at 11 is still unread");

    // And an import after the turns goes on from there.
    let later: Vec<Value> = (0..3)
        .map(|i| {
            json!({"client_id": format!("late-{i}"), "role": "player", "content": "later",
                   "created_at": Utc::now().to_rfc3339()})
        })
        .collect();
    let answer = import(&app, "c-1", later).await;
    assert_eq!(answer, json!({"imported": 3, "skipped": 0, "last_seq": 14}));
    let seqs: Vec<u32> = stored(&app, "c-1").await.iter().map(|row| row.0).collect();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_conversation_bound_elsewhere_is_a_conflict_and_an_unknown_character_not_found() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.create_mara("smith").await;
    app.say("c-1", "p-1", "mara", "Hello").await;
    let before = stored(&app, "c-1").await;
    for (player, character) in [("p-2", "mara"), ("p-1", "smith")] {
        let body =
            json!({"player_id": player, "character_id": character, "messages": history(0..3)});
        let response = post_import(&app, "c-1", &body).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::CONFLICT, "conversation_conflict".into()),
            "{player} {character}"
        );
    }
    let body = json!({"player_id": "p-1", "character_id": "nobody", "messages": history(0..3)});
    let response = post_import(&app, "c-2", &body).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    assert_eq!(stored(&app, "c-1").await, before);
    assert!(stored(&app, "c-2").await.is_empty());
    assert_eq!(app.count("conversations").await, 1);

    // An import binds a new conversation like a first turn.
    import(&app, "c-3", history(0..2)).await;
    let response = app
        .post_turn(
            "c-3",
            json!({"player_id": "p-2", "character_id": "mara", "content": "Mine now"}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::CONFLICT, "conversation_conflict".into())
    );
}

#[tokio::test]
async fn an_import_waits_for_the_turn_in_progress_then_is_busy() {
    let app = TestApp::spawn_with(&[("TURN_QUEUE_WAIT_MS", "300")]).await;
    app.create_mara("mara").await;
    // A turn holds the conversation (as one on another replica would).
    sqlx::query(
        "INSERT INTO conversation_leases (conversation_id, holder, expires_at)
         VALUES ('c-1', 'another-turn', UTC_TIMESTAMP(6) + INTERVAL 1 HOUR)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let started = Instant::now();
    let response = post_import(&app, "c-1", &body(history(0..3))).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::CONFLICT, "conversation_busy".into())
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(stored(&app, "c-1").await.is_empty());

    sqlx::query("DELETE FROM conversation_leases")
        .execute(&app.pool)
        .await
        .unwrap();
    import(&app, "c-1", history(0..3)).await;
    let leases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversation_leases")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(leases, 0, "the import gave the lease back");
}

#[tokio::test]
async fn a_read_only_key_may_not_import() {
    let app = TestApp::spawn_with(&[
        ("GAME_API_KEYS", "game-key"),
        ("READONLY_API_KEYS", "dash-key"),
    ])
    .await;
    app.create_mara("mara").await;
    let response = app
        .client
        .post(format!("{}/conversations/c-1/import", app.address))
        .bearer_auth("dash-key")
        .json(&body(history(0..2)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    assert!(stored(&app, "c-1").await.is_empty());
}

#[tokio::test]
async fn the_import_takes_bodies_of_megabytes_while_other_routes_keep_their_limit() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    // 500 messages of 2,000 four-byte characters: about 4 MB of JSON.
    let long = "😀".repeat(2000);
    let messages: Vec<Value> = (0..500)
        .map(|i| {
            let mut message = message(i);
            message["content"] = json!(long);
            message
        })
        .collect();
    let big = body(messages);
    let size = serde_json::to_vec(&big).unwrap().len();
    assert!(size > 4_000_000 && size < 5 * 1024 * 1024, "{size}");
    let response = post_import(&app, "c-1", &big).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(stored(&app, "c-1").await.len(), 500);

    // Past 5 MiB, the import too is refused.
    let mut messages: Vec<Value> = (0..500).map(message).collect();
    for message in &mut messages {
        message["content"] = json!("😀".repeat(2700));
    }
    let response = post_import(&app, "c-2", &body(messages)).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    // Every other route keeps its 64 KiB.
    let response = app
        .post_turn(
            "c-3",
            json!({"player_id": "p-1", "character_id": "mara", "content": "a".repeat(100_000)}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    let response = app
        .put_character(
            "big",
            json!({"name": "Big", "persona": "x".repeat(100_000)}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
}

#[tokio::test]
async fn facts_from_turns_after_an_import_keep_the_conversation_source() {
    let app = TestApp::spawn_with(&QUICK_JOBS).await;
    app.create_mara("mara").await;
    app.provider.enqueue_for(
        "fact_extraction",
        [
            MockReply::text(
                &json!({"facts": [{"text": "Player grew up in Riverwood", "importance": 6}]})
                    .to_string(),
                300,
                20,
            ),
            MockReply::text(
                &json!({"facts": [{"text": "Player has a cat named Whiskers", "importance": 7}]})
                    .to_string(),
                300,
                20,
            ),
        ],
    );
    import(&app, "c-1", history(0..20)).await;
    eventually("the import is extracted", || async {
        watermarks(&app, "c-1").await.1 == 20 && jobs_left(&app).await == 0
    })
    .await;
    for line in [
        "I have a cat",
        "Her name is Whiskers",
        "She likes fish",
        "Hi",
        "Bye",
    ] {
        app.say("c-1", "p-1", "mara", line).await;
    }
    eventually("the turns are extracted", || async {
        watermarks(&app, "c-1").await.1 == 30 && jobs_left(&app).await == 0
    })
    .await;
    let mut facts: Vec<(String, String)> =
        sqlx::query_as("SELECT text, source FROM memory_facts ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    facts.sort();
    assert_eq!(
        facts,
        vec![
            ("Player grew up in Riverwood".into(), "import".into()),
            (
                "Player has a cat named Whiskers".into(),
                "conversation".into()
            ),
        ]
    );
}

#[tokio::test]
async fn an_imported_history_is_embedded_and_searchable_by_meaning() {
    let mut vars = QUICK_JOBS.to_vec();
    vars.push(("EMBEDDING_MODEL", "text-embedding-3-small"));
    let app = TestApp::spawn_with(&vars).await;
    app.create_mara("mara").await;
    let mut messages = history(0..500);
    messages[123]["content"] = json!("My hound Rex sleeps by the hearth");
    import(&app, "c-1", messages).await;
    eventually("all 500 messages are embedded", || async {
        app.count("memory_vectors").await == 500
    })
    .await;
    let (status, found) = app
        .get_json("/memory/search?character_id=mara&player_id=p-1&q=pets&kinds=message&limit=3")
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["results"][0]["seq"], 124, "{found}");
    assert_eq!(found["results"][0]["role"], "character");
    // Embedded in batches of 64, each a paid call of purpose `embedding`.
    let calls = app.provider.requests_for("embedding");
    assert!(
        calls.len() >= 8 && calls.len() <= 12,
        "{} calls",
        calls.len()
    );
}
