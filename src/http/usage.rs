//! `/usage`: tokens and spend for dashboards.

use super::{
    AppState,
    extract::{Json, Query},
};
use crate::{
    error::{ApiError, ErrorBody},
    service::usage::{self, UsageQuery, UsageReport},
};
use axum::extract::State;

/// Totals of LLM calls (calls, tokens, cost) over the last `days`, with an optional breakdown.
#[utoipa::path(get, path = "/usage", tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Totals and breakdown", body = UsageReport),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn get_usage(
    State(state): State<AppState>,
    Query(query): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    Ok(Json(usage::report(&state.pool, query).await?))
}
