//! `/characters`: the NPCs the game registers.

use super::{
    AppState,
    extract::{Json, Path},
};
use crate::{
    domain::CharacterId,
    error::{ApiError, ErrorBody},
    service::characters::{self, Character, CharacterInput, CharacterList},
};
use axum::extract::State;

/// Create or replace a character.
#[utoipa::path(put, path = "/characters/{character_id}", tag = "characters",
    params(("character_id" = String, Path, description = "Id chosen by the game, 1–64 characters", min_length = 1, max_length = 64)),
    request_body = CharacterInput,
    responses(
        (status = 200, description = "The stored character", body = Character),
        (status = 400, description = "Invalid input", body = ErrorBody),
    ))]
pub async fn put_character(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(input): Json<CharacterInput>,
) -> Result<Json<Character>, ApiError> {
    let id = CharacterId::parse(&id)?;
    Ok(Json(characters::put(&state.pool, id, input).await?))
}

/// Read one character.
#[utoipa::path(get, path = "/characters/{character_id}", tag = "characters",
    params(("character_id" = String, Path, description = "Character id", min_length = 1, max_length = 64)),
    responses(
        (status = 200, description = "The character", body = Character),
        (status = 404, description = "No such character", body = ErrorBody),
    ))]
pub async fn get_character(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Character>, ApiError> {
    let id = CharacterId::parse(&id)?;
    Ok(Json(characters::get(&state.pool, &id).await?))
}

/// List all characters, by id.
#[utoipa::path(get, path = "/characters", tag = "characters",
    responses((status = 200, description = "All characters", body = CharacterList)))]
pub async fn list_characters(
    State(state): State<AppState>,
) -> Result<Json<CharacterList>, ApiError> {
    Ok(Json(characters::list(&state.pool).await?))
}
