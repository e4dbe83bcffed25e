//! `/usage`: tokens and spend for dashboards.

use super::{
    AppState,
    extract::{Json, Query},
};
use crate::{
    domain::PlayerId,
    error::{ApiError, ErrorBody},
    service::{
        spend::{self, BudgetList, BudgetQuery, BudgetView, BudgetsQuery},
        usage::{self, UsageQuery, UsageReport},
    },
};
use axum::extract::State;

/// Totals of LLM calls (calls, tokens, cost) over a range (`from`/`to`, or the last
/// `days`), filtered by player, conversation or character, with an optional breakdown.
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

/// This month's spend of one player against their limit.
#[utoipa::path(get, path = "/usage/budget", tag = "usage",
    params(BudgetQuery),
    responses(
        (status = 200, description = "The player's month", body = BudgetView),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn get_budget(
    State(state): State<AppState>,
    Query(query): Query<BudgetQuery>,
) -> Result<Json<BudgetView>, ApiError> {
    let player_id = PlayerId::parse(&query.player_id)?;
    Ok(Json(
        spend::budget(&state.pool, &state.config, &player_id).await?,
    ))
}

/// Players at or past their warning threshold (or their limit) this month, highest
/// spend first, a page at a time (`limit`, then `cursor` = the previous `next_cursor`).
#[utoipa::path(get, path = "/usage/budgets", tag = "usage",
    params(BudgetsQuery),
    responses(
        (status = 200, description = "Players by spend, highest first", body = BudgetList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_budgets(
    State(state): State<AppState>,
    Query(query): Query<BudgetsQuery>,
) -> Result<Json<BudgetList>, ApiError> {
    Ok(Json(
        spend::budgets(&state.pool, &state.config, query).await?,
    ))
}
