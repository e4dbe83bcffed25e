//! `GET /usage`: totals and each breakdown.

use crate::{
    helpers::{TestApp, decimal},
    mock_provider::MockReply,
};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// key → (calls, prompt, completion, total, cost)
fn breakdown(report: &Value) -> Vec<(String, u64, u64, u64, u64, Decimal)> {
    report["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["key"].as_str().unwrap().to_owned(),
                row["calls"].as_u64().unwrap(),
                row["prompt_tokens"].as_u64().unwrap(),
                row["completion_tokens"].as_u64().unwrap(),
                row["total_tokens"].as_u64().unwrap(),
                decimal(&row["cost_usd"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn usage_reports_totals_and_every_breakdown() {
    let app = TestApp::spawn_with(&[("LLM_MAX_RETRIES", "0")]).await;
    app.create_mara("mara").await;
    let response = app
        .put_character(
            "sage",
            json!({"name": "Sage", "persona": "Wise.", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // p-1 talks to Mara twice (gpt-4o-mini), p-2 to the sage once (gpt-4o), and one
    // call of p-2's fails (a usage row at cost 0).
    app.provider.enqueue([
        MockReply::text("a", 1000, 100),
        MockReply::text("b", 2000, 200),
        MockReply::text("c", 100_000, 1000),
        MockReply::Status(503),
    ]);
    app.say("c-1", "p-1", "mara", "one").await;
    app.say("c-1", "p-1", "mara", "two").await;
    app.say("c-2", "p-2", "sage", "three").await;
    app.say("c-2", "p-2", "sage", "four").await;
    // Rows of other purposes and an old row outside the window, written as later
    // issues' background work will write them.
    sqlx::query(
        "INSERT INTO usage_records (player_id, conversation_id, purpose, model, prompt_tokens,
             completion_tokens, total_tokens, cost_usd, latency_ms, outcome, created_at)
         VALUES ('p-1', 'c-1', 'summarization', 'gpt-4o-mini', 500, 50, 550, 0.000105, 10, 'success', UTC_TIMESTAMP(6)),
                ('p-1', 'c-1', 'conversation', 'gpt-4o-mini', 9, 9, 18, 1.000000, 10, 'success', UTC_TIMESTAMP(6) - INTERVAL 40 DAY)",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    // mini: 1000×0.15+100×0.6 = 210 µ$; 2000×0.15+200×0.6 = 420 µ$; summary 105 µ$.
    // 4o: 100000×2.5+1000×10 = 260000 µ$.
    let (status, all) = app.get_json("/usage").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["calls"], 5);
    assert_eq!(all["prompt_tokens"], 103_500);
    assert_eq!(all["completion_tokens"], 1350);
    assert_eq!(all["total_tokens"], 104_850);
    assert_eq!(decimal(&all["cost_usd"]), dec("0.260735"));
    assert_eq!(all["breakdown"], json!([]));
    assert!(all["from"].is_string() && all["to"].is_string());

    let (_, by_purpose) = app.get_json("/usage?group_by=purpose").await;
    assert_eq!(
        breakdown(&by_purpose),
        vec![
            (
                "conversation".into(),
                4,
                103_000,
                1300,
                104_300,
                dec("0.26063")
            ),
            ("summarization".into(), 1, 500, 50, 550, dec("0.000105")),
        ]
    );
    let (_, by_model) = app.get_json("/usage?group_by=model").await;
    assert_eq!(
        breakdown(&by_model),
        vec![
            ("gpt-4o".into(), 2, 100_000, 1000, 101_000, dec("0.26")),
            ("gpt-4o-mini".into(), 3, 3500, 350, 3850, dec("0.000735")),
        ]
    );
    let (_, by_player) = app.get_json("/usage?group_by=player").await;
    assert_eq!(
        breakdown(&by_player),
        vec![
            ("p-1".into(), 3, 3500, 350, 3850, dec("0.000735")),
            ("p-2".into(), 2, 100_000, 1000, 101_000, dec("0.26")),
        ]
    );
    let (_, by_day) = app.get_json("/usage?group_by=day").await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let days = breakdown(&by_day);
    assert_eq!(days.iter().map(|d| d.1).sum::<u64>(), 5);
    assert!(days.iter().any(|d| d.0 == today), "{days:?}");

    let (_, p1) = app.get_json("/usage?player_id=p-1&group_by=purpose").await;
    assert_eq!(p1["calls"], 3);
    assert_eq!(decimal(&p1["cost_usd"]), dec("0.000735"));
    let (_, c2) = app.get_json("/usage?conversation_id=c-2").await;
    assert_eq!(c2["calls"], 2);
    assert_eq!(decimal(&c2["cost_usd"]), dec("0.26"));
    let (_, long) = app.get_json("/usage?player_id=p-1&days=60").await;
    assert_eq!(long["calls"], 4, "the 40-day-old row is inside 60 days");
    assert_eq!(decimal(&long["cost_usd"]), dec("1.000735"));
    let (_, nobody) = app.get_json("/usage?player_id=nobody").await;
    assert_eq!(nobody["calls"], 0);
    assert_eq!(decimal(&nobody["cost_usd"]), Decimal::ZERO);
}
