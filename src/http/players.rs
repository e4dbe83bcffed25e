//! `/players`: per-player settings.

use super::{
    AppState,
    extract::{Json, Path},
};
use crate::{
    domain::PlayerId,
    error::{ApiError, ErrorBody},
    service::{
        memory,
        spend::{self, BudgetInput, BudgetView},
    },
};
use axum::{extract::State, http::StatusCode};

/// Set a player's monthly budget (`null`: back to `PLAYER_MONTHLY_BUDGET_USD`).
#[utoipa::path(put, path = "/players/{player_id}/budget", tag = "usage",
    params(("player_id" = String, Path, description = "Player id", min_length = 1, max_length = 64)),
    request_body = BudgetInput,
    responses(
        (status = 200, description = "The player's month under the new limit", body = BudgetView),
        (status = 400, description = "Invalid limit", body = ErrorBody),
    ))]
pub async fn put_budget(
    State(state): State<AppState>,
    Path(player_id): Path<String>,
    Json(input): Json<BudgetInput>,
) -> Result<Json<BudgetView>, ApiError> {
    let player_id = PlayerId::parse(&player_id)?;
    Ok(Json(
        spend::set_budget(&state.pool, &state.config, &player_id, input).await?,
    ))
}

/// Right to be forgotten: erase a player's conversations, messages, summaries, memories,
/// affinity and pending jobs. Usage rows keep their tokens and cost, unlinked.
#[utoipa::path(delete, path = "/players/{player_id}", tag = "memory",
    params(("player_id" = String, Path, description = "Player id", min_length = 1, max_length = 64)),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "No such player", body = ErrorBody),
    ))]
pub async fn erase_player(
    State(state): State<AppState>,
    Path(player_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let player_id = PlayerId::parse(&player_id)?;
    memory::erase_player(&state.pool, &player_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
