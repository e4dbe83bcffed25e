//! Chaos: hundreds of turns against a provider that fails a third of the time (429s,
//! 500s, hangs past the timeout, garbage). Every turn still gets an answer, every history
//! stays whole, and every attempt that reached the provider is billed exactly once.

use crate::{helpers::TestApp, mock_provider::RecordedRequest};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

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

    // Answers, counted before anything is asserted, so that the summary always prints.
    let answers: Vec<&(String, StatusCode, Value)> =
        outcomes.iter().flat_map(|(_, turns)| turns).collect();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
    let mut fallback_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, status, body) in &answers {
        *statuses.entry(status.as_u16()).or_default() += 1;
        if *status == StatusCode::OK {
            let source = body["source"].as_str().unwrap_or("missing");
            *by_source.entry(source.to_owned()).or_default() += 1;
            if source == "fallback" {
                let reason = body["fallback_reason"].as_str().unwrap_or("missing");
                *fallback_reasons.entry(reason.to_owned()).or_default() += 1;
            }
        }
    }
    let server_errors: usize = statuses
        .iter()
        .filter(|(status, _)| **status >= 500)
        .map(|(_, n)| n)
        .sum();
    let llm_replies = by_source.get("llm").copied().unwrap_or_default();
    let fallbacks = by_source.get("fallback").copied().unwrap_or_default();

    // Faults and billing. Background work (summaries, extraction) may still be calling
    // the provider: take the books when every request that reached it is billed.
    let Books {
        settled,
        requests,
        faults,
        usage,
        usage_cost,
        spend,
        per_player,
        quota_rows,
        open_reservations,
    } = settled_books(app).await;
    let dialogue_requests = requests
        .iter()
        .filter(|request| request.header("x-request-purpose") == Some("conversation"))
        .count();
    let rows = |purpose: Option<&str>, outcome: Option<&str>, status: Option<u16>| -> usize {
        usage
            .iter()
            .filter(|(p, o, s, _)| {
                purpose.is_none_or(|purpose| p == purpose)
                    && outcome.is_none_or(|outcome| o == outcome)
                    && (status.is_none() || *s == status)
            })
            .map(|(_, _, _, n)| usize::try_from(*n).unwrap_or_default())
            .sum()
    };

    eprintln!(
        "chaos: {} turns ({CONVERSATIONS} conversations x {TURNS_PER_CONVERSATION}, {PLAYERS} players) in {elapsed:?}; \
         {} provider requests ({dialogue_requests} dialogue); faults {faults:?}; usage rows {usage:?}; \
         {llm_replies} llm replies, {fallbacks} fallbacks {fallback_reasons:?}; \
         statuses {statuses:?} ({server_errors} 5xx); cost {usage_cost:?} billed, {spend:?} in spend counters; \
         {quota_rows} quota rows, {open_reservations} open reservations",
        answers.len(),
        requests.len(),
    );

    assert_eq!(answers.len(), CONVERSATIONS * TURNS_PER_CONVERSATION);
    let failed: Vec<String> = answers
        .iter()
        .filter(|(_, status, _)| *status != StatusCode::OK)
        .map(|(content, status, body)| format!("{content}: {status} {body}"))
        .collect();
    assert_eq!(server_errors, 0, "{failed:#?}");
    assert!(failed.is_empty(), "{failed:#?}");
    for (content, _, body) in &answers {
        assert_eq!(body["reply"]["source"], body["source"], "{body}");
        let reply = body["reply"]["content"].as_str().unwrap_or_default();
        assert!(!reply.trim().is_empty(), "an empty reply: {body}");
        assert_eq!(
            body["player_message"]["content"],
            content.as_str(),
            "{body}"
        );
        if body["source"] == "llm" {
            assert!(body["fallback_reason"].is_null(), "{body}");
        }
    }
    assert_eq!(llm_replies + fallbacks, answers.len(), "{by_source:?}");
    assert!(
        fallback_reasons.keys().all(|reason| reason == "llm_error"),
        "only provider failures cause fallbacks here: {fallback_reasons:?}"
    );
    assert!(
        llm_replies > answers.len() / 2,
        "with retries, a 30 % fault rate leaves most turns to the LLM"
    );

    // Every attempt reached the mock, and every one is billed once.
    assert!(
        settled,
        "the books never balanced: usage rows behind provider requests, or reservations left open"
    );
    // Every request has its row; a row more is only a timed-out attempt the mock never
    // read (see `settled_books`).
    let within_timeouts = |rows_found: usize, requests_seen: usize, timeouts: usize| {
        (requests_seen..=requests_seen + timeouts).contains(&rows_found)
    };
    assert!(
        within_timeouts(
            rows(None, None, None),
            requests.len(),
            rows(None, Some("timeout"), None)
        ),
        "usage rows vs provider requests: {usage:?}, {} requests",
        requests.len()
    );
    assert!(
        within_timeouts(
            rows(Some("conversation"), None, None),
            dialogue_requests,
            rows(Some("conversation"), Some("timeout"), None)
        ),
        "dialogue usage rows vs dialogue requests: {usage:?}, {dialogue_requests} requests"
    );
    assert_eq!(
        rows(Some("conversation"), Some("success"), None),
        llm_replies,
        "one successful dialogue call per LLM reply"
    );
    let fault_count = |kind: &str| faults.get(kind).copied().unwrap_or_default();
    // Each injected fault fails one attempt: as itself, or as a timeout when this (busy,
    // two-core) machine delivered even the fault too late. A slow healthy answer may time
    // out as well, so timeouts can only be bounded from below.
    let (rate_limited, server_error, garbage, timeouts) = (
        rows(None, Some("http_error"), Some(429)),
        rows(None, Some("http_error"), Some(500)),
        rows(None, Some("invalid_response"), None),
        rows(None, Some("timeout"), None),
    );
    assert!(
        rate_limited <= fault_count("429"),
        "{usage:?} vs {faults:?}"
    );
    assert!(
        server_error <= fault_count("500"),
        "{usage:?} vs {faults:?}"
    );
    assert!(garbage <= fault_count("garbage"), "{usage:?} vs {faults:?}");
    assert!(
        rate_limited + server_error + garbage + timeouts >= faults.values().sum::<usize>(),
        "every fault failed an attempt: {usage:?} vs {faults:?}"
    );
    assert!(usage_cost.is_some_and(|cost| cost > Decimal::ZERO));
    assert_eq!(usage_cost, spend, "usage cost vs spend counters");
    for (player, cost, spent) in &per_player {
        assert_eq!(cost, spent, "{player}: usage cost vs spend counter");
    }
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

/// The provider's and the database's view of the money, taken together.
struct Books {
    /// Whether they were taken at a quiet moment: every request billed, nothing reserved.
    settled: bool,
    requests: Vec<RecordedRequest>,
    faults: BTreeMap<&'static str, usize>,
    /// (purpose, outcome, http_status, rows)
    usage: Vec<(String, String, Option<u16>, i64)>,
    usage_cost: Option<Decimal>,
    spend: Option<Decimal>,
    /// (player, usage cost, spend counters)
    per_player: Vec<(String, Option<Decimal>, Option<Decimal>)>,
    quota_rows: i64,
    open_reservations: i64,
}

/// Takes the books, again until (for up to 15 s) no request arrived while they were
/// being read, every request has its usage row and no reservation is open.
async fn settled_books(app: &TestApp) -> Books {
    // Generous: on a loaded machine background work can take a while to drain.
    let give_up = Instant::now() + Duration::from_secs(40);
    loop {
        let before = app.provider.all_requests().len();
        let usage: Vec<(String, String, Option<u16>, i64)> = sqlx::query_as(
            "SELECT purpose, outcome, http_status, COUNT(*) FROM usage_records
             GROUP BY purpose, outcome, http_status ORDER BY purpose, outcome, http_status",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        // One statement, one snapshot: a usage row and its spend are committed together.
        let (usage_cost, spend, quota_rows, open_reservations): (
            Option<Decimal>,
            Option<Decimal>,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT (SELECT SUM(cost_usd) FROM usage_records),
                    (SELECT SUM(spent_usd) FROM player_monthly_spend),
                    (SELECT COUNT(*) FROM quota_calls),
                    (SELECT COUNT(*) FROM budget_reservations)",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let per_player = sqlx::query_as(
            "SELECT player_id, SUM(cost), SUM(spent) FROM (
                 SELECT player_id, cost_usd AS cost, NULL AS spent FROM usage_records
                 UNION ALL
                 SELECT player_id, NULL, spent_usd FROM player_monthly_spend
             ) AS money GROUP BY player_id ORDER BY player_id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        // Faults first: the mock records a request before choosing its fault.
        let mut faults: BTreeMap<&'static str, usize> = BTreeMap::new();
        for kind in app.provider.faults() {
            *faults.entry(kind).or_default() += 1;
        }
        let requests = app.provider.all_requests();
        let billed: i64 = usage.iter().map(|row| row.3).sum();
        let timed_out: i64 = usage
            .iter()
            .filter(|row| row.1 == "timeout")
            .map(|row| row.3)
            .sum();
        let recorded = i64::try_from(requests.len()).unwrap_or(i64::MAX);
        // Rows may exceed the requests the mock saw by timed-out attempts only: on a
        // starved machine the client can give up on a request (and bill it, as it may
        // have reached the provider) before the mock has read it.
        let settled = before == requests.len()
            && (recorded..=recorded + timed_out).contains(&billed)
            && open_reservations == 0;
        if settled || Instant::now() > give_up {
            return Books {
                settled,
                requests,
                faults,
                usage,
                usage_cost,
                spend,
                per_player,
                quota_rows,
                open_reservations,
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
