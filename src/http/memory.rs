//! `/memory`: what characters remember about players.

use super::{
    AppState,
    extract::{Json, Path, Query},
};
use crate::{
    error::{ApiError, ErrorBody},
    service::memory::{self, FactList, MemoryQuery},
};
use axum::{extract::State, http::StatusCode};

/// What a character remembers about a player, best first.
#[utoipa::path(get, path = "/memory", tag = "memory",
    params(MemoryQuery),
    responses(
        (status = 200, description = "The facts", body = FactList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_memory(
    State(state): State<AppState>,
    Query(query): Query<MemoryQuery>,
) -> Result<Json<FactList>, ApiError> {
    Ok(Json(memory::list(&state.pool, query).await?))
}

/// Forget one fact.
#[utoipa::path(delete, path = "/memory/{fact_id}", tag = "memory",
    params(("fact_id" = u64, Path, description = "Fact id")),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 404, description = "No such fact", body = ErrorBody),
    ))]
pub async fn delete_fact(
    State(state): State<AppState>,
    Path(fact_id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    memory::forget(&state.pool, fact_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
