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

/// Writes a usage row as the tracker would, at a chosen time.
async fn usage_row(app: &TestApp, player: &str, character: &str, at: &str, cost: &str) {
    sqlx::query(
        "INSERT INTO usage_records (player_id, conversation_id, character_id, purpose, model,
             prompt_tokens, completion_tokens, total_tokens, cost_usd, latency_ms, outcome, created_at)
         VALUES (?, 'c-r', ?, 'conversation', 'gpt-4o-mini', 100, 10, 110, ?, 5, 'success', ?)",
    )
    .bind(player)
    .bind(character)
    .bind(cost)
    .bind(at)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn usage_reports_cover_a_date_range_by_character_and_every_day() {
    let app = TestApp::spawn().await;
    usage_row(&app, "p-1", "mara", "2026-03-01 08:00:00", "0.000100").await;
    usage_row(
        &app,
        "p-1",
        "mara",
        "2026-03-01 23:59:59.999999",
        "0.000200",
    )
    .await;
    usage_row(&app, "p-2", "sage", "2026-03-03 12:00:00", "0.000400").await;
    usage_row(&app, "p-2", "mara", "2026-03-05 00:00:00", "0.000800").await;
    usage_row(&app, "p-2", "mara", "2026-02-28 23:59:59", "0.001600").await;

    // Dates: `to` includes its whole day; the days in between come back as zeros.
    let (status, march) = app
        .get_json("/usage?from=2026-03-01&to=2026-03-04&group_by=day")
        .await;
    assert_eq!(status, StatusCode::OK, "{march}");
    assert_eq!(march["from"], "2026-03-01T00:00:00Z");
    assert_eq!(march["to"], "2026-03-05T00:00:00Z");
    assert_eq!(march["calls"], 3);
    assert_eq!(decimal(&march["cost_usd"]), dec("0.0007"));
    let days: Vec<(String, u64)> = breakdown(&march)
        .into_iter()
        .map(|row| (row.0, row.1))
        .collect();
    assert_eq!(
        days,
        vec![
            ("2026-03-01".into(), 2),
            ("2026-03-02".into(), 0),
            ("2026-03-03".into(), 1),
            ("2026-03-04".into(), 0),
        ]
    );
    assert_eq!(march["breakdown"][1]["cost_usd"], 0.0);

    // RFC 3339 times, with an offset, are exact bounds (`to` exclusive).
    let (_, window) = app
        .get_json(&format!(
            "/usage?from={}&to={}",
            urlencoding::encode("2026-03-01T10:00:00+02:00"),
            urlencoding::encode("2026-03-05T00:00:00Z"),
        ))
        .await;
    assert_eq!(window["from"], "2026-03-01T08:00:00Z");
    assert_eq!(window["calls"], 3, "08:00 included, 03-05 00:00 excluded");

    let (_, by_character) = app
        .get_json("/usage?from=2026-02-01&to=2026-03-31&group_by=character")
        .await;
    assert_eq!(
        breakdown(&by_character)
            .into_iter()
            .map(|row| (row.0, row.1, row.5))
            .collect::<Vec<_>>(),
        vec![
            ("mara".into(), 4, dec("0.0027")),
            ("sage".into(), 1, dec("0.0004")),
        ]
    );
    let (_, mara_p2) = app
        .get_json(
            "/usage?from=2026-02-01&to=2026-03-31&character_id=mara&player_id=p-2&group_by=day",
        )
        .await;
    assert_eq!(mara_p2["calls"], 2);
    assert_eq!(
        mara_p2["breakdown"].as_array().unwrap().len(),
        59,
        "every day of February (28) and March (31)"
    );

    // `days` counts back from `to`.
    let (_, two_days) = app.get_json("/usage?to=2026-03-03&days=2").await;
    assert_eq!(two_days["from"], "2026-03-02T00:00:00Z");
    assert_eq!(two_days["calls"], 1);

    for bad in [
        "/usage?from=yesterday",
        "/usage?to=2026-02-30",
        "/usage?from=2026-03-05&to=2026-03-01",
        "/usage?from=2026-03-01&days=3",
        "/usage?days=0",
        "/usage?group_by=planet",
        "/usage?character_id=",
    ] {
        let (status, body) = app.get_json(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{bad}");
    }
}

#[tokio::test]
async fn the_budgets_list_comes_in_pages() {
    let app = TestApp::spawn_with(&[("PLAYER_MONTHLY_BUDGET_USD", "1")]).await;
    // Seven players at or past 80 % of 1 USD, two ties, and one below the line.
    for (player, spent) in [
        ("p-a", "0.95"),
        ("p-b", "0.90"),
        ("p-c", "0.90"),
        ("p-d", "1.50"),
        ("p-e", "0.80"),
        ("p-f", "0.85"),
        ("p-g", "0.99"),
        ("p-low", "0.10"),
    ] {
        sqlx::query(
            "INSERT INTO player_monthly_spend (player_id, month, spent_usd, updated_at)
             VALUES (?, DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m'), ?, UTC_TIMESTAMP(6))",
        )
        .bind(player)
        .bind(spent)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut path = "/usage/budgets?status=warning&limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let players = page["players"].as_array().unwrap();
        assert!(players.len() <= 3);
        seen.extend(
            players
                .iter()
                .map(|p| p["player_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/usage/budgets?status=warning&limit=3&cursor={cursor}");
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        ["p-d", "p-g", "p-a", "p-c", "p-b", "p-f", "p-e"],
        "highest spend first, every player once"
    );
    let (_, all) = app.get_json("/usage/budgets").await;
    assert_eq!(all["players"].as_array().unwrap().len(), 7);
    assert_eq!(all["next_cursor"], Value::Null);

    for bad in [
        "/usage/budgets?limit=0",
        "/usage/budgets?limit=1001",
        "/usage/budgets?cursor=not-a-cursor",
    ] {
        let (status, _) = app.get_json(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}
