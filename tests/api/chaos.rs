//! Chaos: hundreds of turns against a provider that fails a third of the time (429s,
//! 500s, hangs past the timeout, garbage). Every turn still gets an answer, every history
//! stays whole, and every attempt that reached the provider is billed exactly once.

use crate::helpers::TestApp;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::{collections::BTreeMap, time::Instant};

const CONVERSATIONS: usize = 20;
const TURNS_PER_CONVERSATION: usize = 15;
const PLAYERS: usize = 5;

#[tokio::test]
async fn three_hundred_turns_against_a_flaky_provider_all_get_an_answer_and_are_billed_exactly() {
    let app = TestApp::spawn_with(&[
        ("LLM_TIMEOUT_MS", "150"),
        ("LLM_RETRY_BASE_MS", "5"),
        ("LLM_MAX_RETRIES", "3"),
        ("LLM_DEADLINE_MS", "3000"),
        // Keep the circuit closed, so that it does not mask the provider's faults.
        ("LLM_CIRCUIT_FAILURES", "1000"),
        ("PLAYER_LLM_CALLS_PER_HOUR", "100000"),
        ("PLAYER_MONTHLY_BUDGET_USD", "1000"),
        // Hundreds of requests a second from one address: not what this test is about.
        ("HTTP_RATE_PER_SECOND", "100000"),
        ("HTTP_RATE_BURST", "100000"),
    ])
    .await;
    app.create_mara("innkeeper_mara").await;
    app.provider.set_fault_rate(0.3);

    let started = Instant::now();
    let app = &app;
    let conversations = (0..CONVERSATIONS).map(|c| async move {
        let conversation = format!("chaos-{c:02}");
        let player = format!("p-{}", c % PLAYERS);
        let mut turns = Vec::with_capacity(TURNS_PER_CONVERSATION);
        for t in 0..TURNS_PER_CONVERSATION {
            let content = format!("{conversation} line {t:02}");
            let response = app
                .post_turn(
                    &conversation,
                    json!({"player_id": player, "character_id": "innkeeper_mara", "content": content}),
                )
                .await;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            turns.push((content, status, body));
        }
        (conversation, turns)
    });
    let outcomes = futures::future::join_all(conversations).await;
    let elapsed = started.elapsed();

    // Answers.
    let answers: Vec<&(String, StatusCode, Value)> =
        outcomes.iter().flat_map(|(_, turns)| turns).collect();
    let server_errors = answers
        .iter()
        .filter(|(_, status, _)| status.is_server_error())
        .count();
    let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
    let mut fallback_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (content, status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{content}: {body}");
        let source = body["source"].as_str().unwrap_or("missing").to_owned();
        assert_eq!(
            body["reply"]["source"].as_str(),
            Some(source.as_str()),
            "{body}"
        );
        let reply = body["reply"]["content"].as_str().unwrap_or_default();
        assert!(!reply.trim().is_empty(), "an empty reply: {body}");
        assert_eq!(
            body["player_message"]["content"],
            content.as_str(),
            "{body}"
        );
        if source == "fallback" {
            let reason = body["fallback_reason"].as_str().unwrap_or("missing");
            *fallback_reasons.entry(reason.to_owned()).or_default() += 1;
        } else {
            assert!(body["fallback_reason"].is_null(), "{body}");
        }
        *by_source.entry(source).or_default() += 1;
    }
    let llm_replies = by_source.get("llm").copied().unwrap_or_default();
    let fallbacks = by_source.get("fallback").copied().unwrap_or_default();

    // Faults and billing.
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    for kind in app.provider.faults() {
        *faults.entry(kind).or_default() += 1;
    }
    let requests = app.provider.requests();
    let conversation_requests = requests
        .iter()
        .filter(|request| request.header("x-request-purpose") == Some("conversation"))
        .count();
    let outcomes_by_kind: Vec<(String, Option<u16>, i64)> = sqlx::query_as(
        "SELECT outcome, http_status, COUNT(*) FROM usage_records
         WHERE purpose = 'conversation' GROUP BY outcome, http_status ORDER BY outcome, http_status",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let rows_where = |outcome: &str, status: Option<u16>| -> usize {
        outcomes_by_kind
            .iter()
            .filter(|(o, s, _)| o == outcome && (status.is_none() || *s == status))
            .map(|(_, _, n)| usize::try_from(*n).unwrap_or_default())
            .sum()
    };
    let usage_rows = app.count("usage_records").await;
    let conversation_usage_rows: usize = outcomes_by_kind
        .iter()
        .map(|(_, _, n)| usize::try_from(*n).unwrap_or_default())
        .sum();
    let usage_cost: Option<Decimal> = sqlx::query_scalar("SELECT SUM(cost_usd) FROM usage_records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let spend: Option<Decimal> =
        sqlx::query_scalar("SELECT SUM(spent_usd) FROM player_monthly_spend")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let usage_by_player: Vec<(String, Decimal)> = sqlx::query_as(
        "SELECT player_id, SUM(cost_usd) FROM usage_records GROUP BY player_id ORDER BY player_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let spend_by_player: Vec<(String, Decimal)> = sqlx::query_as(
        "SELECT player_id, SUM(spent_usd) FROM player_monthly_spend GROUP BY player_id ORDER BY player_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let quota_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quota_calls")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let open_reservations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM budget_reservations")
        .fetch_one(&app.pool)
        .await
        .unwrap();

    eprintln!(
        "chaos: {} turns ({CONVERSATIONS} conversations x {TURNS_PER_CONVERSATION}, {PLAYERS} players) in {elapsed:?}; \
         {} provider requests; faults {faults:?}; usage outcomes {outcomes_by_kind:?}; \
         {llm_replies} llm replies, {fallbacks} fallbacks {fallback_reasons:?}; \
         {server_errors} 5xx; cost {usage_cost:?} billed, {spend:?} in spend counters",
        answers.len(),
        requests.len(),
    );

    assert_eq!(answers.len(), CONVERSATIONS * TURNS_PER_CONVERSATION);
    assert_eq!(server_errors, 0);
    assert_eq!(llm_replies + fallbacks, answers.len(), "{by_source:?}");
    assert!(
        fallback_reasons.keys().all(|reason| reason == "llm_error"),
        "only provider failures cause fallbacks here: {fallback_reasons:?}"
    );
    assert!(
        llm_replies > 0,
        "a 30 % fault rate leaves most turns answered by the LLM"
    );

    // Every attempt reached the mock, and every one is billed once.
    assert_eq!(
        conversation_requests,
        requests.len(),
        "only dialogue calls here"
    );
    assert_eq!(
        usage_rows,
        i64::try_from(requests.len()).unwrap(),
        "usage rows vs provider requests"
    );
    assert_eq!(conversation_usage_rows, requests.len());
    assert_eq!(
        rows_where("success", None),
        llm_replies,
        "one success per LLM reply"
    );
    let fault_count = |kind: &str| faults.get(kind).copied().unwrap_or_default();
    assert_eq!(rows_where("http_error", Some(429)), fault_count("429"));
    assert_eq!(rows_where("http_error", Some(500)), fault_count("500"));
    assert_eq!(rows_where("invalid_response", None), fault_count("garbage"));
    // A hang always times out; a healthy answer slowed by a loaded machine may too.
    assert!(
        rows_where("timeout", None) >= fault_count("timeout"),
        "{outcomes_by_kind:?} vs {faults:?}"
    );
    assert_eq!(usage_cost, spend, "usage cost vs spend counters");
    assert_eq!(usage_by_player, spend_by_player, "per player");
    assert_eq!(
        quota_rows,
        i64::try_from(answers.len()).unwrap(),
        "every turn took one quota slot"
    );
    assert_eq!(
        open_reservations, 0,
        "every reservation settled or released"
    );

    // Histories.
    for (conversation, turns) in &outcomes {
        let stored = app.stored_messages(conversation).await;
        let seqs: Vec<u32> = stored.iter().map(|m| m.0).collect();
        assert_eq!(
            seqs,
            (1..=2 * TURNS_PER_CONVERSATION as u32).collect::<Vec<_>>(),
            "{conversation}: gapless"
        );
        for ((content, _, body), pair) in turns.iter().zip(stored.chunks(2)) {
            let [
                (_, player_role, player_line, _),
                (_, reply_role, reply_line, source),
            ] = pair
            else {
                panic!("{conversation}: an odd number of messages");
            };
            assert_eq!(player_role, "player");
            assert_eq!(
                player_line, content,
                "{conversation}: player lines in order"
            );
            assert_eq!(reply_role, "character");
            assert_eq!(Some(reply_line.as_str()), body["reply"]["content"].as_str());
            assert_eq!(source.as_deref(), body["source"].as_str());
        }
    }
}
