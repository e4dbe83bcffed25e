//! `/memory`: what characters remember about players.

use super::{
    AppState,
    conversations::page_size,
    error::{ApiError, ErrorBody},
    extract::{Json, Path, Query},
    wire::GameId,
};
use crate::{
    domain::{CharacterId, PlayerId, Role},
    service::memory::{
        facts, recall,
        search::{self, HitKind, Search},
    },
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
    /// Where it was learned: `conversation` (the turns), `import` (imported history),
    /// `event` (a game event it witnessed or its faction learned) or `gossip` (heard from
    /// another character).
    #[schema(value_type = String)]
    pub source: crate::domain::MemorySource,
    /// Gossip: the character it was heard from.
    pub heard_from: Option<String>,
    /// The game event it comes from, directly or through gossip.
    pub event_id: Option<u64>,
    /// Gossip: the memory it was derived from (deleting that deletes this).
    pub derived_from: Option<u64>,
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
    let limit = page_size(query.limit, DEFAULT_FACTS, recall::MAX_LISTED)?;
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
                source: fact.source,
                heard_from: fact.heard_from,
                event_id: fact.event_id,
                derived_from: fact.derived_from,
                created_at: fact.created_at,
                updated_at: fact.updated_at,
                last_used_at: fact.last_used_at,
                conversation_id: fact.conversation_id,
            })
            .collect(),
    }))
}

/// `GET /memory/search` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    #[param(value_type = GameId)]
    pub character_id: String,
    #[param(value_type = GameId)]
    pub player_id: String,
    /// What to look for.
    #[param(value_type = SearchText, inline)]
    pub q: String,
    /// At most this many results (1–50, default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
    /// What to search, comma-separated: `fact`, `message` (default both).
    #[param(
        pattern = "^(fact|message)(,(fact|message))*$",
        example = "fact,message"
    )]
    pub kinds: Option<String>,
}

/// The documented bound of `q`: the default `MAX_MESSAGE_CHARS`.
const DOCUMENTED_MAX_QUERY_CHARS: usize = 2000;

/// A search's text, as the document shows it.
pub struct SearchText;

impl utoipa::PartialSchema for SearchText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::wire::not_blank(
            DOCUMENTED_MAX_QUERY_CHARS,
            "What to look for: 1 to `MAX_MESSAGE_CHARS` (default 2000) characters as sent, not blank.",
        )
        .into()
    }
}

impl utoipa::ToSchema for SearchText {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("SearchText")
    }
}

/// What a search result is.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    Fact,
    Message,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    pub kind: ResultKind,
    /// The fact's or the message's id.
    pub id: u64,
    pub text: String,
    /// 0 to 1, higher is better: relevance to the query (by words, fused with meaning
    /// when embeddings are on), then importance and recency as tie-breakers.
    pub score: f64,
    pub created_at: DateTime<Utc>,
    /// The conversation the message is in, or the fact was learned in.
    pub conversation_id: Option<String>,
    /// Messages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// Messages only: `player` or `character`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// Facts only: 1–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub importance: Option<u8>,
    /// Messages only: the messages just before and after it in its conversation, in
    /// order (the question an answer answers, the answer a question got).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<ContextLine>>,
    /// Facts only: the lines of the conversation it was learned in that it came from
    /// (those that share most words with it), in order; empty when it was not learned
    /// in a conversation (an event, gossip) or those lines are gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Vec<ContextLine>>,
}

/// A past message shown beside a result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContextLine {
    pub id: u64,
    pub conversation_id: String,
    pub seq: u32,
    /// `player` or `character`.
    #[schema(value_type = String)]
    pub role: Role,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

impl From<search::Line> for ContextLine {
    fn from(line: search::Line) -> Self {
        Self {
            id: line.id,
            conversation_id: line.conversation_id,
            seq: line.seq,
            role: line.role,
            text: line.text,
            created_at: line.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Best first; only what is relevant to the query at all.
    pub results: Vec<SearchResult>,
}

const DEFAULT_RESULTS: u32 = 10;
const MAX_RESULTS: u32 = 50;

/// `kinds` as (facts, messages).
fn kinds(raw: Option<&str>) -> Result<(bool, bool), ApiError> {
    let Some(raw) = raw else {
        return Ok((true, true));
    };
    let (mut facts, mut messages) = (false, false);
    for kind in raw.split(',') {
        match kind {
            "fact" => facts = true,
            "message" => messages = true,
            other => {
                return Err(ApiError::Validation(format!(
                    "kinds: {other:?} is neither \"fact\" nor \"message\""
                )));
            }
        }
    }
    Ok((facts, messages))
}

/// Facts and past messages of a (character, player) pair ranked for a query: by words
/// (BM25, stemmed, stop words dropped), fused with meaning when embeddings are on
/// (`EMBEDDING_MODEL`). A message comes with its neighbours (`context`), a fact with the
/// lines it was learned from (`evidence`).
#[utoipa::path(get, path = "/memory/search", tag = "memory",
    params(SearchQuery),
    responses(
        (status = 200, description = "The results, best first", body = SearchResults),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn search_memory(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let player_id = PlayerId::parse(&query.player_id)?;
    let character_id = CharacterId::parse(&query.character_id)?;
    let limit = page_size(query.limit, DEFAULT_RESULTS, MAX_RESULTS)?;
    let (facts, messages) = kinds(query.kinds.as_deref())?;
    let text = query.q.trim();
    if text.is_empty() {
        return Err(ApiError::Validation("q must not be blank".into()));
    }
    let chars = query.q.chars().count();
    if chars > state.config.max_message_chars {
        return Err(ApiError::Validation(format!(
            "q must be at most {} characters (got {chars})",
            state.config.max_message_chars
        )));
    }
    let hits = search::search(
        &state,
        Search {
            player_id: &player_id,
            character_id: &character_id,
            text,
            limit,
            facts,
            messages,
        },
    )
    .await?;
    Ok(Json(SearchResults {
        results: hits
            .into_iter()
            .map(|hit| {
                let lines: Vec<ContextLine> =
                    hit.context.into_iter().map(ContextLine::from).collect();
                let (context, evidence) = match hit.kind {
                    HitKind::Fact => (None, Some(lines)),
                    HitKind::Message => (Some(lines), None),
                };
                SearchResult {
                    kind: match hit.kind {
                        HitKind::Fact => ResultKind::Fact,
                        HitKind::Message => ResultKind::Message,
                    },
                    id: hit.id,
                    text: hit.text,
                    score: (hit.score * 10_000.0).round() / 10_000.0,
                    created_at: hit.created_at,
                    conversation_id: hit.conversation_id,
                    seq: hit.seq,
                    role: hit.role,
                    importance: hit.importance,
                    context,
                    evidence,
                }
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
