//! `/events` (what happened in the game) and `/characters/{id}/knowledge` (what a
//! character would know in a turn, with why).

use super::{
    super::{
        AppState,
        error::{ApiError, ErrorBody},
        extract::{Json, Path, Query},
        wire::{self, GameId},
    },
    flags_query_schema,
};
use crate::{
    domain::{CharacterId, PlayerId},
    service::world::{
        events::{
            self, Event, EventDraft, MAX_EVENT_CHARS, MAX_EVENT_FACTIONS, MAX_WITNESSES, Recorded,
        },
        knowledge, lore,
    },
};
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{Array, Object};

/// `POST /events` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct EventInput {
    /// The game's own id of the event: sending the same event again changes nothing;
    /// another event under the same id is refused (409 `event_conflict`).
    #[schema(value_type = GameId)]
    pub client_event_id: String,
    #[schema(schema_with = event_text_schema)]
    pub text: String,
    /// 1–10: how much it matters. From `GOSSIP_MIN_IMPORTANCE` (default 7) on, it spreads
    /// as gossip.
    #[serde(deserialize_with = "wire::integer::u32")]
    #[schema(minimum = 1, maximum = 10)]
    pub importance: u32,
    /// The player involved, if any: the memories are about them. Null: about no player in
    /// particular (every player's turns with the characters who know it see it).
    #[serde(default)]
    #[schema(value_type = Option<GameId>)]
    pub player_id: Option<String>,
    /// Characters that saw it (at most 100, each must exist).
    #[serde(default)]
    #[schema(schema_with = witnesses_schema)]
    pub witnesses: Vec<String>,
    /// Factions whose members learn it at once (at most 20). With neither witnesses nor
    /// factions the event is recorded and nobody knows it.
    #[serde(default)]
    #[schema(schema_with = event_factions_schema)]
    pub factions: Vec<String>,
}

fn event_text_schema() -> Object {
    wire::not_blank(
        MAX_EVENT_CHARS,
        "What happened, 1–500 characters as sent, not blank: it becomes a memory as written.",
    )
}

fn witnesses_schema() -> Array {
    wire::id_list(MAX_WITNESSES, "A character id.")
}

fn event_factions_schema() -> Array {
    wire::id_list(MAX_EVENT_FACTIONS, "A faction name.")
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    pub id: u64,
    pub client_event_id: String,
    pub text: String,
    pub importance: u8,
    pub player_id: Option<String>,
    pub witnesses: Vec<String>,
    pub factions: Vec<String>,
    /// Every character that learned it at once: the witnesses and the members the
    /// factions had then.
    pub known_by: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Event> for EventView {
    fn from(event: Event) -> Self {
        Self {
            id: event.id,
            client_event_id: event.client_event_id,
            text: event.text,
            importance: event.importance,
            player_id: event.player_id,
            witnesses: event.witnesses,
            factions: event.factions,
            known_by: event.known_by,
            created_at: event.created_at,
        }
    }
}

/// Something happened in the game: its witnesses and the members of its factions
/// remember it at once (memories with `source: "event"`), and it may spread as gossip.
#[utoipa::path(post, path = "/events", tag = "world",
    request_body = EventInput,
    responses(
        (status = 201, description = "Recorded; who knows it now", body = EventView),
        (status = 200, description = "Recorded before under this `client_event_id`: nothing changed", body = EventView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "A witness is not a character", body = ErrorBody),
        (status = 409, description = "The `client_event_id` was recorded for another event", body = ErrorBody),
    ))]
pub async fn post_event(
    State(state): State<AppState>,
    Json(input): Json<EventInput>,
) -> Result<Response, ApiError> {
    let draft = EventDraft {
        client_event_id: input.client_event_id,
        text: input.text,
        importance: i64::from(input.importance),
        player_id: input.player_id,
        witnesses: input.witnesses,
        factions: input.factions,
    };
    Ok(match events::record(&state, draft).await? {
        Recorded::New(event) => (StatusCode::CREATED, Json(EventView::from(event))).into_response(),
        Recorded::Again(event) => (StatusCode::OK, Json(EventView::from(event))).into_response(),
    })
}

/// `GET /events` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events involving this player.
    #[param(value_type = Option<GameId>)]
    pub player_id: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_before`: events older than the event of this id.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)]
    pub before: Option<u64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// Newest first.
    pub events: Vec<EventView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<u64>,
}

/// The events the game reported, newest first.
#[utoipa::path(get, path = "/events", tag = "world",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_events(
    State(state): State<AppState>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    let player_id = query
        .player_id
        .as_deref()
        .map(PlayerId::parse)
        .transpose()?;
    let limit = super::super::conversations::page_size(query.limit, 20, 100)?;
    if query
        .before
        .is_some_and(|before| before == 0 || before > i64::MAX as u64)
    {
        return Err(ApiError::Validation(
            "before must be from 1 to 9223372036854775807".into(),
        ));
    }
    let events = events::list(&state, player_id.as_ref(), query.before, limit).await?;
    let next_before = (events.len() == limit as usize)
        .then(|| events.last().map(|event| event.id))
        .flatten();
    Ok(Json(EventList {
        events: events.into_iter().map(EventView::from).collect(),
        next_before,
    }))
}

/// `GET /characters/{id}/knowledge` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KnowledgeQuery {
    /// The player of the turn: the memories about them (and those about no player in
    /// particular). Without it, only the latter.
    #[param(value_type = Option<GameId>)]
    pub player_id: Option<String>,
    /// The game flags set, comma-separated, as a turn would send them.
    #[param(schema_with = flags_query_schema)]
    pub flags: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KnownLore {
    pub id: String,
    pub text: String,
    /// Why the character knows it: its scope, and the flags it requires.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KnownMemory {
    pub id: u64,
    pub text: String,
    /// `conversation`, `import`, `event` or `gossip`.
    #[schema(value_type = String)]
    pub source: crate::domain::MemorySource,
    pub importance: u8,
    /// Where it came from: the conversation, the event, or whom it was heard from.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Knowledge {
    /// Everything the character may know now, best first (a turn carries the few that
    /// bear most on the line).
    pub lore: Vec<KnownLore>,
    /// Best first, by importance and recency (a turn adds relevance to the line).
    pub memories: Vec<KnownMemory>,
}

/// What a character would know in a turn now, with the reason for each item: for
/// writers debugging lore gates, factions and gossip.
#[utoipa::path(get, path = "/characters/{character_id}/knowledge", tag = "world",
    params(("character_id" = GameId, Path, description = "Character id"), KnowledgeQuery),
    responses(
        (status = 200, description = "What it knows, and why", body = Knowledge),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 404, description = "No such character", body = ErrorBody),
    ))]
pub async fn character_knowledge(
    State(state): State<AppState>,
    Path(character_id): Path<String>,
    Query(query): Query<KnowledgeQuery>,
) -> Result<Json<Knowledge>, ApiError> {
    let character_id = CharacterId::parse(&character_id)?;
    let player_id = query
        .player_id
        .as_deref()
        .map(PlayerId::parse)
        .transpose()?;
    let flags = lore::parse_flags(&wire::comma_list(query.flags.as_deref()))?;
    let known = knowledge::of(&state, &character_id, player_id.as_ref(), &flags).await?;
    Ok(Json(Knowledge {
        lore: known
            .lore
            .into_iter()
            .map(|(entry, reason)| KnownLore {
                id: entry.id,
                text: entry.text,
                reason,
            })
            .collect(),
        memories: known
            .memories
            .into_iter()
            .map(|(memory, reason)| KnownMemory {
                id: memory.id,
                text: memory.text,
                source: memory.source,
                importance: memory.importance,
                reason,
            })
            .collect(),
    }))
}
