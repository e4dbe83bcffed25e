//! `/players`: per-player settings, and the right to be forgotten.

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{Json, Path},
    usage::BudgetView,
    wire::GameId,
};
use crate::{
    domain::PlayerId,
    service::{memory::erasure, money::budgets},
};
use axum::{extract::State, http::StatusCode};
use serde::Deserialize;

/// `PUT /players/{player_id}/budget` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct BudgetInput {
    /// USD per UTC calendar month; `null` returns to `PLAYER_MONTHLY_BUDGET_USD`.
    /// Required: a misspelt field must not silently reset a player's limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, required = true, minimum = 0, maximum = 999999)]
    pub monthly_limit_usd: Option<Option<serde_json::Number>>,
}

/// `Some(value)` when the field is there, even as `null`; a missing field stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<serde_json::Number>>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer).map(Some)
}

/// The number as a plain decimal. serde_json writes very small or large numbers in
/// exponent form (`2.5e-7`), which is a number to JSON and to the document but not to the
/// limit's decimal parser; six places are all a limit keeps, and past them the value is
/// out of range anyway. A negative stays at least one seventh place below zero, so that
/// rounding never carries it over to a zero the range check would let through.
fn plain_decimal(number: &serde_json::Number) -> String {
    let text = number.to_string();
    match number.as_f64() {
        Some(value) if text.contains(['e', 'E']) && value < 0.0 => {
            format!("{:.7}", value.min(-1e-7))
        }
        Some(value) if text.contains(['e', 'E']) => format!("{value:.7}"),
        _ => text,
    }
}

/// Set a player's monthly budget (`null`: back to `PLAYER_MONTHLY_BUDGET_USD`).
#[utoipa::path(put, path = "/players/{player_id}/budget", tag = "usage",
    params(("player_id" = GameId, Path, description = "Player id")),
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
    let limit = input
        .monthly_limit_usd
        .ok_or_else(|| {
            ApiError::Validation(
                "monthly_limit_usd is required: a number, or null for the default".into(),
            )
        })?
        .map(|number| budgets::parse_limit(&plain_decimal(&number)))
        .transpose()?;
    Ok(Json(
        budgets::set_limit(&state, &player_id, limit).await?.into(),
    ))
}

/// Right to be forgotten: erase a player's conversations, messages, summaries, memories,
/// affinity and pending jobs. Usage rows keep their tokens and cost, unlinked.
#[utoipa::path(delete, path = "/players/{player_id}", tag = "memory",
    params(("player_id" = GameId, Path, description = "Player id")),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "No such player", body = ErrorBody),
    ))]
pub async fn erase_player(
    State(state): State<AppState>,
    Path(player_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let player_id = PlayerId::parse(&player_id)?;
    erasure::erase_player(&state, &player_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
