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
    /// Where it was learned: `conversation` (the turns) or `import` (imported history).
    #[schema(value_type = String)]
    pub source: crate::domain::MemorySource,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it last went into a prompt.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The conversation it was learned in.
    pub conversation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FactList {
    /// Best first: by importance and recency, and relevance when `query` is given.
    pub facts: Vec<Fact>,
}

const DEFAULT_FACTS: u32 = 50;

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
    let player_id = PlayerId::parse(&query.player_id)?;
    let character_id = CharacterId::parse(&query.character_id)?;
    let limit = page_size(query.limit, DEFAULT_FACTS, recall::RETRIEVAL_CANDIDATES)?;
    let facts = recall::list(
        &state,
        &player_id,
        &character_id,
        query.query.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(FactList {
        facts: facts
            .into_iter()
            .map(|fact| Fact {
                id: fact.id,
                text: fact.text,
                importance: fact.importance,
                source: fact.source,
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
