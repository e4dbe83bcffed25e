//! Characters: create or replace, read, list.

use super::fallback::FallbackLines;
use crate::{
    domain::CharacterId,
    error::ApiError,
    store::characters::{self as store, CharacterRow},
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_PERSONA_CHARS: usize = 8000;
pub const MAX_MODEL_CHARS: usize = 100;
pub const MAX_LINES_PER_TIER: usize = 50;
pub const MAX_LINE_CHARS: usize = 500;

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
pub struct Character {
    pub id: String,
    pub name: String,
    pub persona: String,
    pub model: Option<String>,
    pub fallback_lines: Option<FallbackLines>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CharacterList {
    pub characters: Vec<Character>,
}

fn bounded(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::Validation(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ApiError::Validation(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(value.to_owned())
}

fn validate_lines(lines: &FallbackLines) -> Result<FallbackLines, ApiError> {
    let tier = |name: &str, lines: &[String]| -> Result<Vec<String>, ApiError> {
        if lines.len() > MAX_LINES_PER_TIER {
            return Err(ApiError::Validation(format!(
                "fallback_lines.{name} holds at most {MAX_LINES_PER_TIER} lines"
            )));
        }
        lines
            .iter()
            .map(|line| bounded(&format!("fallback_lines.{name}[]"), line, MAX_LINE_CHARS))
            .collect()
    };
    Ok(FallbackLines {
        high: tier("high", &lines.high)?,
        medium: tier("medium", &lines.medium)?,
        low: tier("low", &lines.low)?,
    })
}

impl TryFrom<CharacterRow> for Character {
    type Error = anyhow::Error;

    fn try_from(row: CharacterRow) -> anyhow::Result<Self> {
        let fallback_lines = row
            .fallback_lines
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .with_context(|| format!("stored fallback lines of character {:?}", row.id))?;
        Ok(Self {
            id: row.id,
            name: row.name,
            persona: row.persona,
            model: row.model,
            fallback_lines,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[tracing::instrument(skip_all, fields(character_id = %id))]
pub async fn put(
    pool: &MySqlPool,
    id: CharacterId,
    input: CharacterInput,
) -> Result<Character, ApiError> {
    let name = bounded("name", &input.name, MAX_NAME_CHARS)?;
    let persona = bounded("persona", &input.persona, MAX_PERSONA_CHARS)?;
    let model = input
        .model
        .as_deref()
        .map(|model| bounded("model", model, MAX_MODEL_CHARS))
        .transpose()?;
    let fallback_lines = input
        .fallback_lines
        .as_ref()
        .map(validate_lines)
        .transpose()?
        .map(|lines| serde_json::to_string(&lines))
        .transpose()
        .context("encoding fallback lines")?;
    let now = crate::store::now();
    store::upsert(
        pool,
        &CharacterRow {
            id: id.as_str().to_owned(),
            name,
            persona,
            model,
            fallback_lines,
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    get(pool, &id).await
}

pub async fn get(pool: &MySqlPool, id: &CharacterId) -> Result<Character, ApiError> {
    let row = store::get(pool, id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("character {:?} not found", id.as_str())))?;
    Ok(Character::try_from(row)?)
}

pub async fn list(pool: &MySqlPool) -> Result<CharacterList, ApiError> {
    let characters = store::list(pool)
        .await?
        .into_iter()
        .map(Character::try_from)
        .collect::<anyhow::Result<_>>()?;
    Ok(CharacterList { characters })
}
