//! `GET /metrics`: Prometheus text after real turns, behind the API key.
//!
//! The recorder is per process and tests run in parallel, so the assertions are about
//! series being present with values above zero, and about labels unique to this test
//! (a model name no other test uses).

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The sum of the samples of `name` whose labels include every `key="value"` given.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}=\"{value}\""))
        .collect();
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest),
                None => (series, ""),
            };
            (series_name == name && wanted.iter().all(|label| series_labels.contains(label)))
                .then(|| value.parse().ok())
                .flatten()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn positive(text: &str, name: &str, labels: &[(&str, &str)]) {
    let value = sample(text, name, labels);
    assert!(
        value.is_some_and(|value| value > 0.0),
        "{name}{labels:?} should be > 0, is {value:?} in:\n{text}"
    );
}

#[tokio::test]
async fn metrics_describe_turns_llm_calls_and_the_queue_and_need_a_key() {
    let mut app = TestApp::spawn_with(&[
        ("GAME_API_KEYS", "game-key"),
        ("READONLY_API_KEYS", "dash-key"),
        ("LLM_MAX_RETRIES", "0"),
        // A job per turn, left pending: this app runs no workers.
        ("FACT_EXTRACTION_EVERY", "1"),
        ("JOB_WORKERS", "0"),
    ])
    .await;
    let response = app
        .put_character(
            "gauge",
            json!({"name": "Gauge", "persona": "Counts things.", "model": "metrics-test-model"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.create_mara("mara").await;
    app.provider.enqueue([
        MockReply::text("Counted.", 300, 20),
        MockReply::text("Rooms upstairs.", 400, 30),
        MockReply::Status(503),
    ]);
    app.say("c-metrics-1", "p-metrics", "gauge", "count this")
        .await;
    app.say("c-metrics-2", "p-metrics", "mara", "any rooms?")
        .await;
    let fallback = app
        .say("c-metrics-2", "p-metrics", "mara", "and supper?")
        .await;
    assert_eq!(fallback["fallback_reason"], "llm_error");

    app.api_key = None;
    let response = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );

    app.api_key = Some("dash-key".into());
    let response = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a read-only key may read"
    );
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();

    let route = "/conversations/{conversation_id}/messages";
    positive(
        &text,
        "npc_http_requests_total",
        &[("method", "POST"), ("route", route), ("status", "200")],
    );
    positive(
        &text,
        "npc_http_requests_total",
        &[("route", "/metrics"), ("status", "401")],
    );
    positive(
        &text,
        "npc_http_request_duration_seconds_count",
        &[("route", route)],
    );
    positive(
        &text,
        "npc_http_request_duration_seconds_bucket",
        &[("route", route), ("le", "+Inf")],
    );

    let model = [("model", "metrics-test-model"), ("purpose", "conversation")];
    positive(
        &text,
        "npc_llm_calls_total",
        &[model[0], model[1], ("outcome", "success")],
    );
    positive(
        &text,
        "npc_llm_call_duration_seconds_count",
        &[model[0], model[1]],
    );
    positive(
        &text,
        "npc_llm_tokens_total",
        &[model[0], model[1], ("kind", "prompt")],
    );
    positive(
        &text,
        "npc_llm_tokens_total",
        &[model[0], model[1], ("kind", "completion")],
    );
    positive(
        &text,
        "npc_llm_unpriced_calls_total",
        &[("model", "metrics-test-model")],
    );
    // Shared with other tests from here on: the model everyone uses.
    let mini = [("model", "gpt-4o-mini"), ("purpose", "conversation")];
    positive(
        &text,
        "npc_llm_calls_total",
        &[mini[0], mini[1], ("outcome", "http_error")],
    );
    positive(&text, "npc_llm_cost_microusd_total", &mini);
    assert!(
        sample(
            &text,
            "npc_circuit_state",
            &[("model", "metrics-test-model")]
        )
        .is_some(),
        "the circuit of every model used is reported (0: closed)"
    );

    positive(&text, "npc_jobs", &[("status", "pending")]);
    positive(&text, "npc_jobs_oldest_pending_age_seconds", &[]);
    assert!(sample(&text, "npc_jobs", &[("status", "parked")]).is_some());
    assert!(sample(&text, "npc_db_pool_connections", &[("state", "idle")]).is_some());
    assert!(sample(&text, "npc_db_pool_connections", &[("state", "in_use")]).is_some());

    // Turns and fallbacks are counted by the turn itself.
    positive(&text, "npc_turns_total", &[("source", "llm")]);
    positive(&text, "npc_turns_total", &[("source", "fallback")]);
    positive(&text, "npc_fallbacks_total", &[("reason", "llm_error")]);

    // Unknown paths share one label instead of minting a series each.
    app.request(Method::GET, "/no/such/path/12345")
        .send()
        .await
        .unwrap();
    let text = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Not `12345` alone: metrics of the other tests in this process may hold those digits.
    assert!(!text.contains("/no/such/path"), "a raw path became a label");
    positive(
        &text,
        "npc_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
    );
}

#[test]
fn the_dashboard_queries_only_metrics_the_service_exposes() {
    use npc_dialogue::metrics as m;
    let exposed = [
        m::HTTP_REQUESTS,
        m::HTTP_DURATION,
        m::LLM_CALLS,
        m::LLM_DURATION,
        m::LLM_TOKENS,
        m::LLM_COST,
        m::LLM_UNPRICED,
        m::LLM_RETRIES,
        m::TURNS,
        m::FALLBACKS,
        m::REFUSALS,
        m::CIRCUIT_STATE,
        m::JOBS,
        m::JOBS_OLDEST_PENDING_AGE,
        m::DB_CONNECTIONS,
    ];
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/observability/grafana/dashboards/npc-dialogue.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut used = std::collections::HashSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("npc_").map(|_| word) {
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|suffix| name.strip_suffix(suffix))
                        .unwrap_or(name);
                    assert!(
                        exposed.contains(&base),
                        "panel {:?} queries {name}, which the service does not expose",
                        panel["title"]
                    );
                    used.insert(base.to_owned());
                }
            }
        }
    }
    for name in exposed {
        assert!(used.contains(name), "no panel shows {name}");
    }
}
