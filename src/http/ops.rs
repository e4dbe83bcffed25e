//! Health endpoints, open to probes without a key; `/metrics` and `/jobs/stats`, behind
//! one.

use super::error::ApiError;
use super::{AppState, extract::Json};
use crate::service::jobs;
use axum::{
    extract::State,
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
};
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers; 503 while it does not.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Database unreachable", body = crate::http::error::ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.database_answers().await {
        Ok(Json(Health { status: "ready" }))
    } else {
        Err(ApiError::Unavailable("database unreachable".into()))
    }
}

/// Prometheus metrics of this replica (text exposition format), plus the shared job
/// queue sampled now.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format",
            content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "Missing or unknown API key", body = crate::http::error::ErrorBody),
        (status = 503, description = "Metrics are not available in this process", body = crate::http::error::ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(handle) = crate::metrics::handle() else {
        return Err(ApiError::Unavailable("metrics are not available".into()));
    };
    sample_shared_state(&state).await;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response())
}

/// The background job queue of all replicas.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobStats {
    /// Waiting for a worker: due now, or deferred (retry backoff, or a player in the
    /// budget warning band).
    pub pending: i64,
    /// Held by a worker now (a worker that died holds its job until the lease expires).
    pub running: i64,
    /// Given up after `JOB_MAX_ATTEMPTS` failures: kept with their last error, never
    /// retried.
    pub parked: i64,
}

/// How many background jobs (summaries, fact extraction) are pending, running and
/// parked, across all replicas, counted now.
#[utoipa::path(get, path = "/jobs/stats", tag = "operations",
    responses(
        (status = 200, description = "Jobs by status", body = JobStats),
    ))]
pub async fn job_stats(State(state): State<AppState>) -> Result<Json<JobStats>, ApiError> {
    let sample = jobs::stats(&state).await?;
    Ok(Json(JobStats {
        pending: sample.pending,
        running: sample.running,
        parked: sample.parked,
    }))
}

/// Gauges read at scrape time. A database that does not answer leaves the job gauges at
/// their last value rather than failing the scrape: the other series matter most then.
async fn sample_shared_state(state: &AppState) {
    crate::metrics::db_pool(state.pool.size(), state.pool.num_idle());
    match jobs::queue_sample(state).await {
        Ok(sample) => crate::metrics::jobs(sample),
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "cannot sample the job queue for /metrics"
        ),
    }
}
