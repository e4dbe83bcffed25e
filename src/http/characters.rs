//! `/characters`: the NPCs the game registers.

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{Json, Path},
    wire::{self, GameId},
};
use crate::{
    domain::CharacterId,
    service::{
        characters::{
            self, Character, CharacterDraft, MAX_FACTIONS, MAX_LINE_CHARS, MAX_LINES_PER_TIER,
            MAX_MODEL_CHARS, MAX_NAME_CHARS, MAX_PERSONA_CHARS,
        },
        turn::fallback,
    },
};
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{
    RefOr, Schema,
    schema::{ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, SchemaType, Type},
};

/// `PUT /characters/{id}` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CharacterInput {
    #[schema(schema_with = name_schema)]
    pub name: String,
    #[schema(schema_with = persona_schema)]
    pub persona: String,
    #[serde(default)]
    #[schema(schema_with = model_schema)]
    pub model: Option<String>,
    #[serde(default)]
    #[schema(schema_with = fallback_lines_schema)]
    pub fallback_lines: Option<FallbackLines>,
    /// The factions it belongs to (at most 20 names, each as ids are; default none):
    /// lore scoped to a faction is known to its members, and memories of a member spread
    /// to the others as gossip.
    #[serde(default)]
    #[schema(schema_with = factions_schema)]
    pub factions: Vec<String>,
}

fn factions_schema() -> utoipa::openapi::Array {
    wire::id_list(MAX_FACTIONS, "A faction name.")
}

// Text fields are not blank and bounded as sent (`service::characters`), then trimmed.

fn name_schema() -> Object {
    wire::not_blank(MAX_NAME_CHARS, "Display name, 1–100 characters, not blank.")
}

fn persona_schema() -> Object {
    wire::not_blank(
        MAX_PERSONA_CHARS,
        "Who the character is and how they speak, 1–8000 characters, not blank.",
    )
}

fn model_schema() -> Object {
    let mut model = wire::not_blank(
        MAX_MODEL_CHARS,
        "Model for this character instead of `LLM_MODEL`, 1–100 characters; null for `LLM_MODEL`.",
    );
    model.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    model
}

/// `FallbackLines` as the game may send it: up to 50 lines per tier, each 1–500
/// characters, not blank; no other tiers.
fn fallback_lines_schema() -> RefOr<Schema> {
    let tier = || {
        ArrayBuilder::new()
            .items(wire::not_blank(
                MAX_LINE_CHARS,
                "A line, 1–500 characters, not blank.",
            ))
            .max_items(Some(MAX_LINES_PER_TIER))
    };
    let lines = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Canned lines per affinity tier (`high` >= 50, `medium` 0..=49, `low` < 0), used when the LLM is not called or fails; an empty or missing tier uses the built-in lines.",
        ))
        .property("high", tier())
        .property("medium", tier())
        .property("low", tier())
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
    OneOfBuilder::new()
        .item(lines)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

/// A character's own lines per affinity tier; an empty tier uses the built-in lines.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
// A misspelt tier would otherwise vanish without a word.
#[serde(deny_unknown_fields)]
pub struct FallbackLines {
    #[serde(default)]
    pub high: Vec<String>,
    #[serde(default)]
    pub medium: Vec<String>,
    #[serde(default)]
    pub low: Vec<String>,
}

impl From<FallbackLines> for fallback::FallbackLines {
    fn from(lines: FallbackLines) -> Self {
        Self {
            high: lines.high,
            medium: lines.medium,
            low: lines.low,
        }
    }
}

impl From<fallback::FallbackLines> for FallbackLines {
    fn from(lines: fallback::FallbackLines) -> Self {
        Self {
            high: lines.high,
            medium: lines.medium,
            low: lines.low,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Character)]
pub struct CharacterView {
    pub id: String,
    pub name: String,
    pub persona: String,
    pub model: Option<String>,
    pub fallback_lines: Option<FallbackLines>,
    pub factions: Vec<String>,
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
            fallback_lines: character.fallback_lines.map(FallbackLines::from),
            factions: character
                .factions
                .into_iter()
                .map(|faction| faction.into_string())
                .collect(),
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
    params(("character_id" = GameId, Path, description = "Id chosen by the game")),
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
        fallback_lines: input.fallback_lines.map(fallback::FallbackLines::from),
        factions: input.factions,
    };
    Ok(Json(characters::put(&state, id, draft).await?.into()))
}

/// Read one character.
#[utoipa::path(get, path = "/characters/{character_id}", tag = "characters",
    params(("character_id" = GameId, Path, description = "Character id")),
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
