//! Characters: create or replace, read, list.

use super::{ServiceError, ServiceResult, Services, turn::fallback::FallbackLines};
use crate::{
    domain::{CharacterId, Faction, bounded_text, parse_names},
    store::characters::{self as store, CharacterRow},
};
use anyhow::Context;
use chrono::{DateTime, Utc};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_PERSONA_CHARS: usize = 8000;
pub const MAX_MODEL_CHARS: usize = 100;
pub const MAX_LINES_PER_TIER: usize = 50;
pub const MAX_LINE_CHARS: usize = 500;
pub const MAX_FACTIONS: usize = 20;

/// A character as the game describes it, before the checks.
#[derive(Debug, Clone)]
pub struct CharacterDraft {
    pub name: String,
    pub persona: String,
    pub model: Option<String>,
    pub fallback_lines: Option<FallbackLines>,
    pub factions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Character {
    pub id: String,
    pub name: String,
    pub persona: String,
    pub model: Option<String>,
    pub fallback_lines: Option<FallbackLines>,
    /// The factions it belongs to: lore scoped to them is known to it, and gossip spreads
    /// between their members.
    pub factions: Vec<Faction>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn validate_lines(lines: &FallbackLines) -> Result<FallbackLines, ServiceError> {
    let tier = |name: &str, lines: &[String]| -> Result<Vec<String>, ServiceError> {
        if lines.len() > MAX_LINES_PER_TIER {
            return Err(ServiceError::Invalid(format!(
                "fallback_lines.{name} holds at most {MAX_LINES_PER_TIER} lines"
            )));
        }
        lines
            .iter()
            .map(|line| {
                bounded_text(&format!("fallback_lines.{name}[]"), line, MAX_LINE_CHARS)
                    .map_err(ServiceError::from)
            })
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
        let factions = row
            .factions
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .with_context(|| format!("stored factions of character {:?}", row.id))?
            .unwrap_or_default();
        Ok(Self {
            id: row.id,
            name: row.name,
            persona: row.persona,
            model: row.model,
            fallback_lines,
            factions,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[tracing::instrument(skip_all, fields(character_id = %id))]
pub async fn put(
    services: &Services,
    id: CharacterId,
    input: CharacterDraft,
) -> ServiceResult<Character> {
    let name = bounded_text("name", &input.name, MAX_NAME_CHARS)?;
    let persona = bounded_text("persona", &input.persona, MAX_PERSONA_CHARS)?;
    let model = input
        .model
        .as_deref()
        .map(|model| bounded_text("model", model, MAX_MODEL_CHARS))
        .transpose()?;
    let fallback_lines = input
        .fallback_lines
        .as_ref()
        .map(validate_lines)
        .transpose()?
        .map(|lines| serde_json::to_string(&lines))
        .transpose()
        .context("encoding fallback lines")?;
    let factions = parse_names("factions", &input.factions, MAX_FACTIONS, Faction::parse)?;
    let now = crate::clock::now();
    store::upsert(
        &services.pool,
        &CharacterRow {
            id: id.as_str().to_owned(),
            name,
            persona,
            model,
            fallback_lines,
            factions: Some(serde_json::to_string(&factions).context("encoding factions")?),
            created_at: now,
            updated_at: now,
        },
        &factions,
    )
    .await?;
    get(services, &id).await
}

pub async fn get(services: &Services, id: &CharacterId) -> ServiceResult<Character> {
    let row = store::get(&services.pool, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("character {:?} not found", id.as_str())))?;
    Ok(Character::try_from(row)?)
}

pub async fn list(services: &Services) -> ServiceResult<Vec<Character>> {
    Ok(store::list(&services.pool)
        .await?
        .into_iter()
        .map(Character::try_from)
        .collect::<anyhow::Result<_>>()?)
}
