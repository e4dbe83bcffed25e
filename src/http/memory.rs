//! `/memory`: what characters remember about players.

use super::{
    AppState,
    conversations::page_size,
    error::{ApiError, ErrorBody},
    extract::{Json, Path, Query},
    wire::GameId,
};
use crate::{
    domain::{CharacterId, PlayerId},
    service::memory::{facts, recall},
};
use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

/// `GET /memory` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemoryQuery {
    #[param(value_type = GameId)]
    pub character_id: String,
    #[param(value_type = GameId)]
    pub player_id: String,
    /// Rank by relevance to this text (lexical), as a prompt would.
    pub query: Option<String>,
    /// At most this many facts (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Fact {
    pub id: u64,
    pub text: String,
    /// 1–10.
    pub importance: u8,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it last went into a prompt.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The conversation it was learned in.
    pub conversation_id: Option<String>,
}

/// How the character feels about the player, as the last fact extraction read it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Mood {
    /// One of `friendly`, `neutral`, `wary`, `hostile`, `amused`, `grateful`, `sad`,
    /// `afraid`.
    pub label: String,
    /// 0 to 1.
    #[schema(minimum = 0, maximum = 1)]
    pub intensity: f64,
    /// Why, in the extractor's words (may be empty).
    pub reason: String,
    /// When the label or the intensity last changed (a new reason alone does not move
    /// it); null for a mood read before this was kept.
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FactList {
    /// Best first: by importance and recency, and relevance when `query` is given.
    pub facts: Vec<Fact>,
    /// How the character feels about the player (also in the prompt, beside the affinity
    /// tier); null until a fact extraction has read a mood.
    pub mood: Option<Mood>,
}

const DEFAULT_FACTS: u32 = 50;

/// What a character remembers about a player, best first, and how they feel about them.
#[utoipa::path(get, path = "/memory", tag = "memory",
    params(MemoryQuery),
    responses(
        (status = 200, description = "The facts and the mood", body = FactList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_memory(
    State(state): State<AppState>,
    Query(query): Query<MemoryQuery>,
) -> Result<Json<FactList>, ApiError> {
    let player_id = PlayerId::parse(&query.player_id)?;
    let character_id = CharacterId::parse(&query.character_id)?;
    let limit = page_size(query.limit, DEFAULT_FACTS, recall::RETRIEVAL_CANDIDATES)?;
    let remembered = recall::remembered(
        &state,
        &player_id,
        &character_id,
        query.query.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(FactList {
        mood: remembered.mood.map(|mood| Mood {
            label: mood.label,
            intensity: mood.intensity.to_f64().unwrap_or_default(),
            reason: mood.reason,
            updated_at: mood.updated_at,
        }),
        facts: remembered
            .facts
            .into_iter()
            .map(|fact| Fact {
                id: fact.id,
                text: fact.text,
                importance: fact.importance,
                created_at: fact.created_at,
                updated_at: fact.updated_at,
                last_used_at: fact.last_used_at,
                conversation_id: fact.conversation_id,
            })
            .collect(),
    }))
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
    facts::forget(&state, fact_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
