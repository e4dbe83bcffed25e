//! Every Prometheus metric the service exposes: the one recorder of the process, the
//! names and labels of all series, and the helpers that record them.
//!
//! Counters and histograms are recorded where things happen (HTTP middleware, the usage
//! tracker, the circuit breakers, the turn); gauges that describe shared state (the job
//! queue, the connection pool) are sampled when `/metrics` is scraped, so they cost
//! nothing between scrapes and are never stale.
//!
//! Labels only ever take values from small sets (routes as declared, purposes, models
//! from configuration and characters, outcomes, reasons): never ids, keys or text.

use crate::domain::Usd;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rust_decimal::prelude::ToPrimitive;
use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

/// HTTP requests by `method`, `route` (the matched route template, or `unmatched`) and
/// `status`.
pub const HTTP_REQUESTS: &str = "npc_http_requests_total";
/// HTTP request latency by `method` and `route`, `status`.
pub const HTTP_DURATION: &str = "npc_http_request_duration_seconds";
/// LLM attempts (every attempt, retries included) by `purpose`, `model` and `outcome`
/// (`success`, `http_error`, `timeout`, `invalid_response`, `connection_error`).
pub const LLM_CALLS: &str = "npc_llm_calls_total";
/// LLM attempt latency by `purpose`, `model` and `outcome`.
pub const LLM_DURATION: &str = "npc_llm_call_duration_seconds";
/// Tokens by `purpose`, `model` and `kind` (`prompt`, `completion`).
pub const LLM_TOKENS: &str = "npc_llm_tokens_total";
/// Cost in micro-USD (millionths of a dollar, the precision of the usage records, so the
/// counter is exact) by `purpose` and `model`. Divide by 1e6 for USD.
pub const LLM_COST: &str = "npc_llm_cost_microusd_total";
/// Calls of models with no known price (charged at the assumed price), by `model`.
pub const LLM_UNPRICED: &str = "npc_llm_unpriced_calls_total";
/// Retries (attempts after the first) by `purpose` and `model`.
pub const LLM_RETRIES: &str = "npc_llm_retries_total";
/// Turns answered, by `source` (`llm`, `fallback`).
pub const TURNS: &str = "npc_turns_total";
/// Fallback replies by `reason` (`rate_limited`, `budget_exceeded`, `llm_error`,
/// `llm_not_configured`, `circuit_open`).
pub const FALLBACKS: &str = "npc_fallbacks_total";
/// LLM calls refused before they were made, by `kind` (`quota`, `budget`).
pub const REFUSALS: &str = "npc_refusals_total";
/// Circuit breaker state per `model`: 0 closed, 1 half-open, 2 open (this replica's view).
pub const CIRCUIT_STATE: &str = "npc_circuit_state";
/// Background jobs by `status` (`pending`, `running`, `parked`), all replicas.
pub const JOBS: &str = "npc_jobs";
/// Age of the oldest pending background job (0 when none is pending).
pub const JOBS_OLDEST_PENDING_AGE: &str = "npc_jobs_oldest_pending_age_seconds";
/// LLM usage records this replica holds in memory because the database could not take
/// them; replayed as soon as it can.
pub const USAGE_SPOOLED: &str = "npc_usage_spooled_records";
/// Database connections of this replica's pool by `state` (`in_use`, `idle`).
pub const DB_CONNECTIONS: &str = "npc_db_pool_connections";
/// Hearsay memories written by gossip (characters who heard a memory of another).
pub const GOSSIP_HEARD: &str = "npc_gossip_heard_total";

/// Histogram buckets in seconds: HTTP requests are mostly milliseconds, LLM calls up
/// to the 20 s deadline.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
];
const LLM_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 20.0, 30.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder the first time it is called; later calls (tests
/// start many apps in one process) share it. `None` if another recorder got there
/// first, in which case `/metrics` answers 503.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(Matcher::Full(LLM_DURATION.into()), LLM_BUCKETS)
                })
                .and_then(PrometheusBuilder::install_recorder);
            match handle {
                Ok(handle) => {
                    describe();
                    spawn_upkeep(handle.clone());
                    Some(handle)
                }
                Err(error) => {
                    tracing::error!(%error, "cannot install the metrics recorder; /metrics is disabled");
                    None
                }
            }
        })
        .as_ref()
}

/// The installed recorder's handle, installing it if needed.
pub fn handle() -> Option<&'static PrometheusHandle> {
    install()
}

/// Histogram samples are folded into their buckets on every render; between scrapes
/// (or with no scraper at all) upkeep keeps that buffer from growing.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start metrics upkeep; histograms drain on scrape only");
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by method, route and status"
    );
    describe_counter!(
        LLM_CALLS,
        "LLM attempts (retries included) by purpose, model and outcome"
    );
    describe_histogram!(
        LLM_DURATION,
        Unit::Seconds,
        "LLM attempt latency by purpose, model and outcome"
    );
    describe_counter!(
        LLM_TOKENS,
        "LLM tokens by purpose, model and kind (prompt, completion)"
    );
    describe_counter!(
        LLM_COST,
        "LLM cost in micro-USD (1e-6 USD) by purpose and model"
    );
    describe_counter!(
        LLM_UNPRICED,
        "LLM calls of models with no known price, charged at the assumed price"
    );
    describe_counter!(LLM_RETRIES, "LLM retries by purpose and model");
    describe_gauge!(
        USAGE_SPOOLED,
        "LLM usage records held in memory until the database takes them"
    );
    describe_counter!(TURNS, "Turns answered, by source (llm, fallback)");
    describe_counter!(GOSSIP_HEARD, "Hearsay memories written by gossip");
    describe_counter!(FALLBACKS, "Fallback replies by reason");
    describe_counter!(
        REFUSALS,
        "LLM calls refused before they were made, by kind (quota, budget)"
    );
    describe_gauge!(
        CIRCUIT_STATE,
        "Circuit breaker per model: 0 closed, 1 half-open, 2 open (this replica)"
    );
    describe_gauge!(JOBS, "Background jobs by status, all replicas");
    describe_gauge!(
        JOBS_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest pending background job"
    );
    describe_gauge!(
        DB_CONNECTIONS,
        "Database connections of this replica's pool by state (in_use, idle)"
    );
}

/// A method label from a fixed set, whatever a client sends.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times every request under its route template
/// (`/conversations/{conversation_id}/messages`), or `unmatched` for paths no route
/// knows, so that scanners cannot create series.
pub async fn track_http(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// One LLM attempt, as the usage tracker records it.
pub fn llm_call(
    purpose: &str,
    model: &str,
    outcome: &str,
    latency: Duration,
    prompt_tokens: u32,
    completion_tokens: u32,
    cost_usd: Usd,
) {
    let purpose = purpose.to_owned();
    let model = model.to_owned();
    let labels = [
        ("purpose", purpose.clone()),
        ("model", model.clone()),
        ("outcome", outcome.to_owned()),
    ];
    counter!(LLM_CALLS, &labels).increment(1);
    histogram!(LLM_DURATION, &labels).record(latency.as_secs_f64());
    for (kind, tokens) in [("prompt", prompt_tokens), ("completion", completion_tokens)] {
        if tokens > 0 {
            counter!(LLM_TOKENS, "purpose" => purpose.clone(), "model" => model.clone(), "kind" => kind)
                .increment(u64::from(tokens));
        }
    }
    let micro_usd = cost_usd.micros().round().to_u64().unwrap_or(0);
    // Registered even at 0, so the series exists from the first call of a model.
    counter!(LLM_COST, "purpose" => purpose, "model" => model).increment(micro_usd);
}

/// A call of a model with no known price.
pub fn unpriced_call(model: &str) {
    counter!(LLM_UNPRICED, "model" => model.to_owned()).increment(1);
}

/// A retry: an attempt after the first, for `purpose` on `model`.
pub fn retry(purpose: &str, model: &str) {
    counter!(LLM_RETRIES, "purpose" => purpose.to_owned(), "model" => model.to_owned())
        .increment(1);
}

/// A fallback reply, by the `fallback_reason` the turn answered with.
pub fn fallback(reason: &str) {
    counter!(FALLBACKS, "reason" => reason.to_owned()).increment(1);
}

/// An LLM call refused before it was made: `kind` is `quota` or `budget`.
pub fn refusal(kind: &str) {
    counter!(REFUSALS, "kind" => kind.to_owned()).increment(1);
}

/// Characters who heard a memory as gossip.
pub fn gossip_heard(count: usize) {
    counter!(GOSSIP_HEARD).increment(count as u64);
}

/// A turn answered, by `source` (`llm` or `fallback`).
pub fn turn(source: &str) {
    counter!(TURNS, "source" => source.to_owned()).increment(1);
}

/// A circuit breaker's state, as the `npc_circuit_state` gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// A circuit breaker changed state (or was first seen).
pub fn circuit_state(model: &str, state: CircuitState) {
    let value = match state {
        CircuitState::Closed => 0.0,
        CircuitState::HalfOpen => 1.0,
        CircuitState::Open => 2.0,
    };
    gauge!(CIRCUIT_STATE, "model" => model.to_owned()).set(value);
}

/// Usage records waiting in this replica's spool.
pub fn usage_spooled(records: usize) {
    gauge!(USAGE_SPOOLED).set(records as f64);
}

/// The job queue as sampled at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSample {
    pub pending: i64,
    pub running: i64,
    pub parked: i64,
    pub oldest_pending_age: Duration,
}

pub fn jobs(sample: QueueSample) {
    for (status, count) in [
        ("pending", sample.pending),
        ("running", sample.running),
        ("parked", sample.parked),
    ] {
        gauge!(JOBS, "status" => status).set(count as f64);
    }
    gauge!(JOBS_OLDEST_PENDING_AGE).set(sample.oldest_pending_age.as_secs_f64());
}

pub fn db_pool(size: u32, idle: usize) {
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    gauge!(DB_CONNECTIONS, "state" => "in_use").set(f64::from(size.saturating_sub(idle)));
    gauge!(DB_CONNECTIONS, "state" => "idle").set(f64::from(idle));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&axum::http::Method::GET), "GET");
        let odd = axum::http::Method::from_bytes(b"BREW").unwrap_or_default();
        assert_eq!(method_label(&odd), "other");
    }
}
