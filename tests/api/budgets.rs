//! Monthly budgets: reserved before a call, settled after it, never overshot.

use crate::{
    helpers::{TestApp, decimal},
    mock_provider::MockReply,
};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// A model whose every call costs exactly 0.021 USD: 100 completion tokens at 210 USD
/// per million, prompts free, and `LLM_MAX_TOKENS=100` so the worst case is the real cost.
fn pricey_model() -> (tempfile_path::TempPath, [(&'static str, &'static str); 3]) {
    let path = tempfile_path::TempPath::new(r#"{"pricey": {"input": 0, "output": 210}}"#);
    (
        path,
        [
            ("LLM_MODEL", "pricey"),
            ("LLM_MAX_TOKENS", "100"),
            ("PLAYER_MONTHLY_BUDGET_USD", "0.05"),
        ],
    )
}

mod tempfile_path {
    /// A file removed when dropped.
    pub struct TempPath(pub std::path::PathBuf);

    impl TempPath {
        pub fn new(contents: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("npc-prices-{}.json", uuid::Uuid::new_v4()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }

        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

async fn spawn_pricey(extra: &[(&str, &str)]) -> (TestApp, tempfile_path::TempPath) {
    let (prices, vars) = pricey_model();
    let mut all: Vec<(&str, &str)> = vars.to_vec();
    all.push(("MODEL_PRICES_FILE", prices.as_str()));
    all.extend_from_slice(extra);
    let app = TestApp::spawn_with(&all).await;
    app.provider
        .set_default(MockReply::text("Costly words.", 0, 100));
    app.create_mara("mara").await;
    (app, prices)
}

#[tokio::test]
async fn a_budget_refuses_the_call_it_cannot_afford() {
    let (app, _prices) = spawn_pricey(&[]).await;
    for i in 0..2 {
        let turn = app.say("c-1", "p-1", "mara", &format!("line {i}")).await;
        assert_eq!(turn["source"], "llm");
        assert_eq!(decimal(&turn["usage"]["cost_usd"]), dec("0.021"));
    }
    let turn = app.say("c-1", "p-1", "mara", "one more").await;
    assert_eq!(turn["fallback_reason"], "budget_exceeded");
    assert_eq!(app.provider.request_count(), 2, "no call over budget");

    let (status, budget) = app.get_json("/usage/budget?player_id=p-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(budget["player_id"], "p-1");
    assert_eq!(
        budget["month"],
        chrono::Utc::now().format("%Y-%m").to_string()
    );
    assert_eq!(decimal(&budget["spent_usd"]), dec("0.042"));
    assert_eq!(decimal(&budget["limit_usd"]), dec("0.05"));
    assert_eq!(decimal(&budget["remaining_usd"]), dec("0.008"));
    assert_eq!(budget["warning"], true, "0.042 is past 80 % of 0.05");
    assert_eq!(budget["over_budget"], false);
    let turn = app.say("c-2", "p-2", "mara", "another wallet").await;
    assert_eq!(turn["source"], "llm", "other players are unaffected");
}

#[tokio::test]
async fn concurrent_turns_never_spend_past_the_budget() {
    let (app, _prices) = spawn_pricey(&[]).await;
    app.provider.set_default(MockReply::Delayed(
        std::time::Duration::from_millis(100),
        Box::new(MockReply::text("Costly words.", 0, 100)),
    ));
    let conversations: Vec<String> = (0..10).map(|i| format!("c-{i}")).collect();
    let turns = conversations.iter().map(|conversation| {
        app.post_turn(
            conversation,
            json!({"player_id": "p-1", "character_id": "mara", "content": "spend"}),
        )
    });
    let mut sources = Vec::new();
    for response in futures::future::join_all(turns).await {
        assert_eq!(response.status(), StatusCode::OK);
        let turn: Value = response.json().await.unwrap();
        sources.push(turn["fallback_reason"].as_str().unwrap_or("llm").to_owned());
    }
    let calls = sources.iter().filter(|s| *s == "llm").count();
    assert_eq!(calls, 2, "{sources:?}");
    assert_eq!(app.provider.request_count(), 2);
    let spent: Decimal = sqlx::query_scalar("SELECT COALESCE(SUM(cost_usd), 0) FROM usage_records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(spent <= dec("0.05"), "spent {spent}");
    let reservations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM budget_reservations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(reservations, 0, "every reservation was settled or released");
}

#[tokio::test]
async fn a_players_own_limit_overrides_the_default_and_null_restores_it() {
    let (app, _prices) = spawn_pricey(&[]).await;
    for i in 0..2 {
        app.say("c-1", "p-1", "mara", &format!("line {i}")).await;
    }
    let response = app
        .request(Method::PUT, "/players/p-1/budget")
        .json(&json!({"monthly_limit_usd": 0.1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let budget: Value = response.json().await.unwrap();
    assert_eq!(decimal(&budget["limit_usd"]), dec("0.1"));
    assert_eq!(budget["warning"], false);
    let turn = app.say("c-1", "p-1", "mara", "more").await;
    assert_eq!(turn["source"], "llm");

    let response = app
        .request(Method::PUT, "/players/p-1/budget")
        .json(&json!({"monthly_limit_usd": null}))
        .send()
        .await
        .unwrap();
    let budget: Value = response.json().await.unwrap();
    assert_eq!(decimal(&budget["limit_usd"]), dec("0.05"));
    assert_eq!(budget["over_budget"], true, "0.063 spent of 0.05");

    for bad in [
        json!({"monthly_limit_usd": -1}),
        json!({"monthly_limit_usd": "lots"}),
        json!([null]),
        json!({}),
        json!({"monthly_limt_usd": 1}),
    ] {
        let response = app
            .request(Method::PUT, "/players/p-1/budget")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn dashboards_list_the_players_in_the_warning_band_and_over_budget() {
    let (app, _prices) = spawn_pricey(&[]).await;
    // p-1 spends 0.042 (warning), p-2 0.021 (fine), p-3 0.063 under a 0.06 limit (over).
    for i in 0..2 {
        app.say("c-1", "p-1", "mara", &format!("{i}")).await;
    }
    app.say("c-2", "p-2", "mara", "x").await;
    let response = app
        .request(Method::PUT, "/players/p-3/budget")
        .json(&json!({"monthly_limit_usd": 0.07}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for i in 0..3 {
        app.say("c-3", "p-3", "mara", &format!("{i}")).await;
    }
    app.request(Method::PUT, "/players/p-3/budget")
        .json(&json!({"monthly_limit_usd": 0.06}))
        .send()
        .await
        .unwrap();

    let ids = |list: &Value| -> Vec<String> {
        list["players"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["player_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, warning) = app.get_json("/usage/budgets?status=warning").await;
    assert_eq!(ids(&warning), vec!["p-3", "p-1"]);
    let (_, over) = app.get_json("/usage/budgets?status=over").await;
    assert_eq!(ids(&over), vec!["p-3"]);
    assert_eq!(over["players"][0]["over_budget"], true);
    let (status, _) = app.get_json("/usage/budgets?status=sideways").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn in_the_warning_band_the_cheaper_model_is_used() {
    let app = TestApp::spawn_with(&[
        ("LLM_MODEL", "gpt-4o"),
        ("LLM_FALLBACK_MODEL", "gpt-4o-mini"),
    ])
    .await;
    app.create_mara("mara").await;
    sqlx::query(
        "INSERT INTO player_monthly_spend (player_id, month, spent_usd, updated_at)
         VALUES ('p-1', DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m'), 4.2, UTC_TIMESTAMP(6))",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.say("c-1", "p-1", "mara", "thrifty").await;
    assert_eq!(app.provider.last_request().body["model"], "gpt-4o-mini");
    app.say("c-2", "p-2", "mara", "big spender").await;
    assert_eq!(app.provider.last_request().body["model"], "gpt-4o");
}

#[tokio::test]
async fn reservations_of_a_dead_replica_stop_counting_when_they_expire() {
    let (app, _prices) = spawn_pricey(&[]).await;
    let reserve = |expires: &'static str| {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO budget_reservations (player_id, amount_usd, created_at, expires_at)
             VALUES ('p-1', 0.04, UTC_TIMESTAMP(6), {expires})"
        )))
    };
    reserve("UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE")
        .execute(&app.pool)
        .await
        .unwrap();
    let turn = app.say("c-1", "p-1", "mara", "blocked").await;
    assert_eq!(
        turn["fallback_reason"], "budget_exceeded",
        "a live reservation counts"
    );
    sqlx::query("UPDATE budget_reservations SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND")
        .execute(&app.pool)
        .await
        .unwrap();
    let turn = app.say("c-1", "p-1", "mara", "free again").await;
    assert_eq!(turn["source"], "llm");
}

#[tokio::test]
async fn the_global_daily_cap_stops_every_player() {
    let (app, _prices) = spawn_pricey(&[("GLOBAL_DAILY_BUDGET_USD", "0.05")]).await;
    app.say("c-1", "p-1", "mara", "a").await;
    app.say("c-2", "p-2", "mara", "b").await;
    let turn = app.say("c-3", "p-3", "mara", "c").await;
    assert_eq!(turn["fallback_reason"], "budget_exceeded");
    assert_eq!(app.provider.request_count(), 2);
}

#[tokio::test]
async fn a_model_with_no_price_is_charged_an_assumed_price_and_still_meets_the_budget() {
    // 1,000 prompt and 100 completion tokens at gpt-4o's 2.50 / 10.00 (the highest
    // built-in prices): 0.0035 USD a call. A budget of 0.005 affords one such call.
    let app = TestApp::spawn_with(&[
        ("LLM_MODEL", "local-llama"),
        ("PLAYER_MONTHLY_BUDGET_USD", "0.005"),
        ("BUDGET_WARNING_RATIO", "1"),
    ])
    .await;
    app.provider
        .set_default(MockReply::text("Unpriced words.", 1000, 100));
    app.create_mara("mara").await;
    let turn = json!({"player_id": "p-1", "character_id": "mara", "content": "Hello"});
    let (status, first) = {
        let response = app.post_turn("c-1", turn.clone()).await;
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["source"], "llm", "{first}");
    assert_eq!(decimal(&first["usage"]["cost_usd"]), dec("0.0035"));
    let (cost, assumed): (Decimal, bool) =
        sqlx::query_as("SELECT cost_usd, price_assumed FROM usage_records")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (cost, assumed),
        (dec("0.0035"), true),
        "the record says the price was assumed"
    );

    let second: Value = app.post_turn("c-1", turn).await.json().await.unwrap();
    assert_eq!(second["fallback_reason"], "budget_exceeded", "{second}");
    assert_eq!(app.provider.request_count(), 1, "no call past the budget");
}

#[tokio::test]
async fn housekeeping_forgets_quota_calls_past_the_hour_and_expired_reservations_only() {
    let app = TestApp::spawn_with(&[("HOUSEKEEPING_INTERVAL_MS", "100")]).await;
    for statement in [
        "INSERT INTO quota_calls (player_id, reserved_at) VALUES
             ('p-1', UTC_TIMESTAMP(6) - INTERVAL 61 MINUTE),
             ('p-1', UTC_TIMESTAMP(6) - INTERVAL 59 MINUTE)",
        "INSERT INTO budget_reservations (player_id, amount_usd, created_at, expires_at) VALUES
             ('p-1', 0.01, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) - INTERVAL 1 SECOND),
             ('p-1', 0.01, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL 1 HOUR)",
    ] {
        sqlx::query(statement).execute(&app.pool).await.unwrap();
    }
    let left = || async {
        (
            app.count("quota_calls").await,
            app.count("budget_reservations").await,
        )
    };
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while left().await != (1, 1) {
        assert!(
            std::time::Instant::now() < give_up,
            "still there: {:?}",
            left().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (calls_in_the_hour, live_reservations): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM quota_calls WHERE reserved_at > UTC_TIMESTAMP(6) - INTERVAL 1 HOUR),
                (SELECT COUNT(*) FROM budget_reservations WHERE expires_at > UTC_TIMESTAMP(6))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (calls_in_the_hour, live_reservations),
        (1, 1),
        "what still counts stays"
    );
}
