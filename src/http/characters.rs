//! `/characters`: the NPCs the game registers.

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{Json, Path},
};
use crate::{
    domain::CharacterId,
    service::{
        characters::{self, Character, CharacterDraft},
        turn::fallback::FallbackLines,
    },
};
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `PUT /characters/{id}` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CharacterInput {
    /// Display name, 1–100 characters.
    pub name: String,
    /// Who the character is and how they speak, 1–8000 characters.
    pub persona: String,
    /// Model for this character instead of `LLM_MODEL`.
    #[serde(default)]
    pub model: Option<String>,
    /// Canned lines per affinity tier, used when the LLM is not called or fails.
    #[serde(default)]
    pub fallback_lines: Option<FallbackLines>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Character)]
pub struct CharacterView {
    pub id: String,
    pub name: String,
    pub persona: String,
    pub model: Option<String>,
    pub fallback_lines: Option<FallbackLines>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Character> for CharacterView {
    fn from(character: Character) -> Self {
        Self {
            id: character.id,
            name: character.name,
            persona: character.persona,
            model: character.model,
            fallback_lines: character.fallback_lines,
            created_at: character.created_at,
            updated_at: character.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CharacterList {
    pub characters: Vec<CharacterView>,
}

/// Create or replace a character.
#[utoipa::path(put, path = "/characters/{character_id}", tag = "characters",
    params(("character_id" = String, Path, description = "Id chosen by the game, 1–64 characters", min_length = 1, max_length = 64)),
    request_body = CharacterInput,
    responses(
        (status = 200, description = "The stored character", body = CharacterView),
        (status = 400, description = "Invalid input", body = ErrorBody),
    ))]
pub async fn put_character(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(input): Json<CharacterInput>,
) -> Result<Json<CharacterView>, ApiError> {
    let id = CharacterId::parse(&id)?;
    let draft = CharacterDraft {
        name: input.name,
        persona: input.persona,
        model: input.model,
        fallback_lines: input.fallback_lines,
    };
    Ok(Json(characters::put(&state, id, draft).await?.into()))
}

/// Read one character.
#[utoipa::path(get, path = "/characters/{character_id}", tag = "characters",
    params(("character_id" = String, Path, description = "Character id", min_length = 1, max_length = 64)),
    responses(
        (status = 200, description = "The character", body = CharacterView),
        (status = 404, description = "No such character", body = ErrorBody),
    ))]
pub async fn get_character(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CharacterView>, ApiError> {
    let id = CharacterId::parse(&id)?;
    Ok(Json(characters::get(&state, &id).await?.into()))
}

/// List all characters, by id.
#[utoipa::path(get, path = "/characters", tag = "characters",
    responses((status = 200, description = "All characters", body = CharacterList)))]
pub async fn list_characters(
    State(state): State<AppState>,
) -> Result<Json<CharacterList>, ApiError> {
    let characters = characters::list(&state).await?;
    Ok(Json(CharacterList {
        characters: characters.into_iter().map(CharacterView::from).collect(),
    }))
}
