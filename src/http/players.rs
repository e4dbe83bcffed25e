//! `/players`: per-player settings.

use super::{
    AppState,
    extract::{Json, Path},
};
use crate::{
    domain::PlayerId,
    error::{ApiError, ErrorBody},
    service::spend::{self, BudgetInput, BudgetView},
};
use axum::extract::State;

/// Set a player's monthly budget (`null`: back to `PLAYER_MONTHLY_BUDGET_USD`).
#[utoipa::path(put, path = "/players/{player_id}/budget", tag = "usage",
    params(("player_id" = String, Path, description = "Player id")),
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
