//! Memory that understands: embeddings of messages and facts (the mock provider's
//! deterministic `/embeddings`), relevance by meaning in prompts and in
//! `GET /memory/search`, lexical when embeddings are off or down, re-embedding on a
//! change of model, and vectors gone with an erasure.

use crate::{
    helpers::{TestApp, error_code},
    memory::{eventually, extraction, jobs_left, with_quick_jobs},
    mock_provider::MockReply,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EMBEDDINGS_ON: [(&str, &str); 2] = [
    ("EMBEDDING_MODEL", "text-embedding-3-small"),
    ("HOUSEKEEPING_INTERVAL_MS", "100"),
];

async fn spawn(extra: &[(&'static str, &'static str)]) -> TestApp {
    let mut vars = with_quick_jobs(&EMBEDDINGS_ON);
    vars.extend_from_slice(extra);
    let app = TestApp::spawn_with(&vars).await;
    app.create_mara("mara").await;
    app
}

async fn settled(app: &TestApp) {
    eventually("the background work is done", || async {
        jobs_left(app).await == 0
    })
    .await;
}

async fn vectors(app: &TestApp, kind: &str, model: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM memory_vectors WHERE kind = ? AND model = ?")
        .bind(kind)
        .bind(model)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Mara's memory of p-1 searched with `query`, the results (200 asserted).
pub(crate) async fn search(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app
        .get_json(&format!(
            "/memory/search?character_id=mara&player_id=p-1&{query}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"].as_array().cloned().unwrap_or_default()
}

/// Two facts learned by the first extraction (every 5th player line): a cat of middling
/// importance and a very important thing that has nothing to do with animals.
async fn learn_two_facts(app: &TestApp) {
    app.provider.enqueue_for(
        "fact_extraction",
        [extraction(json!({"facts": [
            {"text": "Player has a cat named Whiskers", "importance": 5},
            {"text": "Player is the heir to the duchy of Amberfell", "importance": 9}
        ]}))],
    );
    for i in 1..=5 {
        app.say("c-1", "p-1", "mara", &format!("small talk number {i}"))
            .await;
    }
    settled(app).await;
}

fn remembered(system: &str) -> &str {
    system
        .split("You remember: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or("")
}

#[tokio::test]
async fn a_question_about_pets_finds_the_cat_not_the_more_important_fact() {
    let app = spawn(&[("MEMORY_FACTS_IN_PROMPT", "1")]).await;
    learn_two_facts(&app).await;
    assert_eq!(vectors(&app, "fact", "text-embedding-3-small").await, 2);

    let results = search(&app, "q=Do%20you%20like%20pets%3F&kinds=fact").await;
    assert_eq!(results[0]["kind"], "fact");
    assert_eq!(
        results[0]["text"], "Player has a cat named Whiskers",
        "{results:?}"
    );
    assert_eq!(results[0]["importance"], 5);
    assert!(results[0].get("seq").is_none() && results[0].get("role").is_none());

    app.say("c-1", "p-1", "mara", "Do you like pets?").await;
    let system = app.provider.last_request().messages()[0].1.clone();
    assert_eq!(
        remembered(&system),
        r#"["Player has a cat named Whiskers"]"#,
        "{system}"
    );

    // Every embedding went out as a paid call of its own purpose, for the player.
    let calls = app.provider.requests_for("embedding");
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(
            |call| call.body["user"] == "p-1" && call.body["model"] == "text-embedding-3-small"
        )
    );
    let (rows, tokens): (i64, rust_decimal::Decimal) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0) FROM usage_records
         WHERE purpose = 'embedding' AND player_id = 'p-1' AND outcome = 'success'
             AND completion_tokens = 0",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows as usize, calls.len());
    assert!(
        tokens > rust_decimal::Decimal::ZERO,
        "billed by the provider's usage"
    );
}

#[tokio::test]
async fn without_embeddings_the_same_question_gets_the_more_important_fact() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[("MEMORY_FACTS_IN_PROMPT", "1")])).await;
    app.create_mara("mara").await;
    learn_two_facts(&app).await;
    app.say("c-1", "p-1", "mara", "Do you like pets?").await;
    let system = app.provider.last_request().messages()[0].1.clone();
    assert_eq!(
        remembered(&system),
        r#"["Player is the heir to the duchy of Amberfell"]"#,
        "words alone cannot see that a cat is a pet"
    );
    assert!(app.provider.requests_for("embedding").is_empty());
    assert_eq!(app.count("memory_vectors").await, 0);
    // Search works by words: "cat" finds the cat, in facts and in messages.
    app.say("c-1", "p-1", "mara", "My cat Whiskers caught a rat")
        .await;
    let results = search(&app, "q=cat").await;
    let kinds: Vec<&str> = results.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"fact") && kinds.contains(&"message"),
        "{results:?}"
    );
    let message = results.iter().find(|r| r["kind"] == "message").unwrap();
    assert_eq!(message["role"], "player");
    assert_eq!(message["conversation_id"], "c-1");
    assert!(message["seq"].as_u64().is_some() && message.get("importance").is_none());
    assert!(
        search(&app, "q=dragons").await.is_empty(),
        "nothing relevant, nothing found"
    );
}

#[tokio::test]
async fn an_older_line_from_another_conversation_reaches_the_prompt_when_it_bears_on_this_one() {
    let app = spawn(&[]).await;
    app.say("c-1", "p-1", "mara", "My old hound Rex guards the farm")
        .await;
    for i in 1..=3 {
        app.say(
            "c-1",
            "p-1",
            "mara",
            &format!("the weather is grey today {i}"),
        )
        .await;
    }
    settled(&app).await;
    app.say("c-2", "p-1", "mara", "Do you like pets?").await;
    let system = app.provider.last_request().messages()[0].1.clone();
    let notes = system
        .split("Earlier lines that bear on this: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no older lines in {system}"));
    assert!(
        notes.contains("The player once said (")
            && notes.contains("): My old hound Rex guards the farm"),
        "dated: {notes}"
    );
    assert!(!notes.contains("weather"), "{notes}");

    // Search finds it too, across conversations, with where it was said.
    let results = search(&app, "q=pets&kinds=message").await;
    let older = results
        .iter()
        .find(|result| result["conversation_id"] == "c-1")
        .unwrap_or_else(|| panic!("{results:?}"));
    assert_eq!(older["text"], "My old hound Rex guards the farm");
    assert_eq!(older["seq"], 1);
    assert_eq!(older["role"], "player");
}

#[tokio::test]
async fn an_embedding_outage_is_never_the_games_and_loses_no_vector() {
    let app = spawn(&[("JOB_MAX_ATTEMPTS", "20")]).await;
    app.provider.enqueue_for(
        "embedding",
        std::iter::repeat_n(MockReply::Status(503), 10_000),
    );
    for i in 1..=2 {
        let turn = app
            .say("c-1", "p-1", "mara", &format!("my cat is hungry {i}"))
            .await;
        assert_eq!(turn["source"], "llm", "the turn goes on by words");
    }
    let results = search(&app, "q=cat&kinds=message").await;
    let leading: Vec<&Value> = results.iter().take(2).map(|r| &r["text"]).collect();
    assert_eq!(
        leading,
        [&json!("my cat is hungry 2"), &json!("my cat is hungry 1")],
        "search answers by words meanwhile (the answers after them next): {results:?}"
    );
    // Three failed calls of the game's (two turns, one search): the circuit stays shut.
    app.provider.clear_script("embedding");
    settled(&app).await;
    assert_eq!(
        vectors(&app, "message", "text-embedding-3-small").await,
        4,
        "the jobs waited out the outage"
    );
    let failed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM usage_records WHERE purpose = 'embedding' AND outcome = 'http_error'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(failed >= 1, "failed attempts are recorded");
    let parked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'parked'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0);
}

#[tokio::test]
async fn a_provider_without_embeddings_stops_costing_turns_a_call() {
    let app = spawn(&[("LLM_CIRCUIT_FAILURES", "2")]).await;
    app.provider
        .enqueue_for("embedding", std::iter::repeat_n(MockReply::Status(404), 50));
    for i in 1..=4 {
        let turn = app.say("c-1", "p-1", "mara", &format!("hello {i}")).await;
        assert_eq!(turn["source"], "llm");
    }
    // Two turns' failures opened the embedding model's circuit; the dialogue's is shut.
    let turn_calls = app
        .provider
        .requests_for("embedding")
        .iter()
        .filter(|call| {
            call.body["input"]
                .as_array()
                .is_some_and(|input| input.len() == 1)
        })
        .count();
    assert!(turn_calls <= 3, "{turn_calls} embedding calls from 4 turns");
    assert_eq!(app.provider.request_count(), 4);
}

#[tokio::test]
async fn a_slow_embedding_costs_the_turn_at_most_its_timeout() {
    let app = spawn(&[("EMBEDDING_TIMEOUT_MS", "200")]).await;
    app.provider.enqueue_for(
        "embedding",
        [MockReply::Delayed(
            std::time::Duration::from_secs(3),
            Box::new(MockReply::text("", 1, 0)),
        )],
    );
    let started = std::time::Instant::now();
    let turn = app.say("c-1", "p-1", "mara", "hello there").await;
    assert_eq!(turn["source"], "llm");
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
}

#[tokio::test]
async fn a_change_of_model_re_embeds_all_of_history() {
    let mut app = spawn(&[]).await;
    learn_two_facts(&app).await;
    app.say("c-2", "p-1", "mara", "another conversation").await;
    settled(&app).await;
    assert_eq!(vectors(&app, "message", "text-embedding-3-small").await, 12);
    assert_eq!(vectors(&app, "fact", "text-embedding-3-small").await, 2);

    app.restart_with(&[("EMBEDDING_MODEL", "text-embedding-3-large")])
        .await;
    eventually("history is embedded by the new model", || async {
        vectors(&app, "message", "text-embedding-3-large").await == 12
            && vectors(&app, "fact", "text-embedding-3-large").await == 2
    })
    .await;
    assert_eq!(vectors(&app, "message", "text-embedding-3-small").await, 0);
    let results = search(&app, "q=Do%20you%20like%20pets%3F&kinds=fact").await;
    assert_eq!(results[0]["text"], "Player has a cat named Whiskers");
}

#[tokio::test]
async fn erasure_takes_the_vectors_and_deleting_a_fact_takes_its_own() {
    let app = spawn(&[]).await;
    learn_two_facts(&app).await;
    let facts = search(&app, "q=cat&kinds=fact").await;
    let cat = facts[0]["id"].as_u64().unwrap();
    let response = app
        .request(Method::DELETE, &format!("/memory/{cat}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(vectors(&app, "fact", "text-embedding-3-small").await, 1);

    let response = app
        .request(Method::DELETE, "/players/p-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("memory_vectors").await, 0);
    assert!(search(&app, "q=cat").await.is_empty());
    // The id starts afresh: nothing of the erased player comes back from a cache.
    app.say("c-9", "p-1", "mara", "Do you like pets?").await;
    let system = app.provider.last_request().messages()[0].1.clone();
    assert!(
        !system.contains("Whiskers") && !system.contains("Earlier lines"),
        "{system}"
    );
}

#[tokio::test]
async fn search_refuses_bad_queries_and_changes_nothing() {
    let app = spawn(&[]).await;
    for query in [
        "q=",
        "q=%20%20",
        "q=cat&limit=0",
        "q=cat&limit=51",
        "q=cat&kinds=fact,gossip",
        "q=cat&kinds=",
    ] {
        let response = app
            .request(
                Method::GET,
                &format!("/memory/search?character_id=mara&player_id=p-1&{query}"),
            )
            .send()
            .await
            .unwrap();
        let (status, code) = error_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{query}"
        );
    }
    let long = "a".repeat(2001);
    let response = app
        .request(
            Method::GET,
            &format!("/memory/search?character_id=mara&player_id=p-1&q={long}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A search of a pair that never talked creates nothing and calls nothing.
    assert!(search(&app, "q=cat").await.is_empty());
    assert_eq!(app.count("players").await, 0);
    assert!(app.provider.requests_for("embedding").is_empty());
}

#[tokio::test]
async fn no_message_falls_between_the_window_and_the_summary() {
    // No workers: the summary never comes. The window stays the last N messages; what
    // left it and no summary covers yet is quoted in the notes, up to two summary
    // batches of it.
    let app = TestApp::spawn_with(&[
        ("JOB_WORKERS", "0"),
        ("CONTEXT_RECENT_MESSAGES", "4"),
        ("SUMMARY_BATCH", "3"),
    ])
    .await;
    app.create_mara("mara").await;
    for i in 1..=4 {
        app.say("c-1", "p-1", "mara", &format!("line {i}")).await;
    }
    app.say("c-1", "p-1", "mara", "line 5").await;
    let prompt = app.provider.last_request().messages();
    assert_eq!(
        prompt.len(),
        1 + 4 + 1,
        "system, the window, the current line"
    );
    let gap = prompt[0]
        .1
        .split("Then, not yet in the summary: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no gap lines in {}", prompt[0].1))
        .to_owned();
    assert!(
        gap.contains("The player said: line 1") && gap.contains("The player said: line 2"),
        "{gap}"
    );
    assert!(!gap.contains("line 3"), "line 3 is in the window: {gap}");
    for i in 6..=12 {
        app.say("c-1", "p-1", "mara", &format!("line {i}")).await;
    }
    let system = app.provider.last_request().messages()[0].1.clone();
    let gap = system
        .split("Then, not yet in the summary: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_default();
    assert_eq!(gap.matches("said: ").count(), 2 * 3, "bounded: {gap}");
}
