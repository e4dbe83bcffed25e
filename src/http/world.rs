//! The shared world: `/lore` (world knowledge the studio writes), `/events` (what
//! happened in the game) and `/characters/{id}/knowledge` (what a character would know
//! in a turn, with why).

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{Json, Path, Query},
    wire::{self, GameId},
};
use crate::{
    domain::{CharacterId, LoreId, PlayerId, ScopeId},
    service::world::{
        events::{
            self, Event, EventDraft, MAX_EVENT_CHARS, MAX_EVENT_FACTIONS, MAX_WITNESSES, Recorded,
        },
        knowledge,
        lore::{self, LoreDraft, LoreEntry, MAX_LORE_CHARS, MAX_REQUIRED_FLAGS, MAX_TAGS, Scope},
    },
};
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{
    AllOfBuilder, Array, Object, ObjectBuilder, OneOfBuilder, OpenApi, RefOr,
    schema::{SchemaType, Type},
};

/// `PUT /lore/{id}` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct LoreInput {
    #[schema(schema_with = lore_text_schema)]
    pub text: String,
    /// Who may know it: `world` (every character), `faction` (the members of the faction
    /// `scope_id`) or `character` (the character `scope_id`).
    #[schema(pattern = "^(world|faction|character)$")]
    pub scope: String,
    /// The faction or character of the scope; null (or absent) for `world`.
    #[serde(default)]
    #[schema(schema_with = scope_id_schema)]
    pub scope_id: Option<String>,
    /// Labels for writers (at most 20, each as ids are); they count as words of the entry
    /// when a turn picks what bears on the line.
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
    /// Game flags that must all be among a turn's `flags` for the entry to be known (at
    /// most 20, each as ids are; none: always known in scope).
    #[serde(default)]
    #[schema(schema_with = required_flags_schema)]
    pub requires_flags: Vec<String>,
}

/// The scope rule in the document: a `world` entry has no `scope_id`, a `faction` or
/// `character` entry names one. Properties alone cannot say that one field depends on
/// another, so `LoreInput` becomes its properties and one of the two shapes; a client or
/// a fuzzer reading the document then knows what `put_lore` refuses.
pub fn document_scope_rule(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(fields) = components.schemas.remove("LoreInput") else {
        return;
    };
    let shape = |scopes: &[&str], scope_id: ObjectBuilder| {
        ObjectBuilder::new()
            .property(
                "scope",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(scopes.iter().copied())),
            )
            .property("scope_id", scope_id)
    };
    let world = shape(&["world"], ObjectBuilder::new().schema_type(Type::Null));
    let named = shape(
        &["faction", "character"],
        ObjectBuilder::new().schema_type(Type::String),
    )
    .required("scope_id");
    let rule = OneOfBuilder::new()
        .description(Some(
            "A `world` entry has no `scope_id` (null or absent); a `faction` or `character` entry names one.",
        ))
        .item(world)
        .item(named);
    let input = AllOfBuilder::new().item(fields).item(rule);
    components
        .schemas
        .insert("LoreInput".into(), RefOr::T(input.into()));
}

fn lore_text_schema() -> Object {
    wire::not_blank(
        MAX_LORE_CHARS,
        "What the world knows, 1–2000 characters as sent, not blank. Surrounding whitespace is dropped.",
    )
}

fn scope_id_schema() -> Object {
    let mut id = wire::id_schema("A faction name or a character id, as ids are; null for `world`.");
    id.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    id
}

fn tags_schema() -> Array {
    wire::id_list(MAX_TAGS, "A tag.")
}

fn required_flags_schema() -> Array {
    wire::id_list(MAX_REQUIRED_FLAGS, "A game flag.")
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Lore {
    pub id: String,
    pub text: String,
    /// `world`, `faction` or `character`.
    pub scope: String,
    pub scope_id: Option<String>,
    pub tags: Vec<String>,
    pub requires_flags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<LoreEntry> for Lore {
    fn from(entry: LoreEntry) -> Self {
        Self {
            id: entry.id,
            text: entry.text,
            scope: entry.scope.as_str().to_owned(),
            scope_id: entry.scope_id,
            tags: entry.tags,
            requires_flags: entry.requires_flags,
            created_at: entry.created_at,
            updated_at: entry.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoreList {
    /// By id.
    pub lore: Vec<Lore>,
}

/// Create or replace a lore entry.
#[utoipa::path(put, path = "/lore/{lore_id}", tag = "world",
    params(("lore_id" = GameId, Path, description = "Id chosen by the studio")),
    request_body = LoreInput,
    responses(
        (status = 200, description = "The stored entry", body = Lore),
        (status = 400, description = "Invalid input", body = ErrorBody),
    ))]
pub async fn put_lore(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(input): Json<LoreInput>,
) -> Result<Json<Lore>, ApiError> {
    let id = LoreId::parse(&id)?;
    let draft = LoreDraft {
        text: input.text,
        scope: input.scope,
        scope_id: input.scope_id,
        tags: input.tags,
        requires_flags: input.requires_flags,
    };
    Ok(Json(lore::put(&state, id, draft).await?.into()))
}

/// Read one lore entry.
#[utoipa::path(get, path = "/lore/{lore_id}", tag = "world",
    params(("lore_id" = GameId, Path, description = "Lore id")),
    responses(
        (status = 200, description = "The entry", body = Lore),
        (status = 404, description = "No such entry", body = ErrorBody),
    ))]
pub async fn get_lore(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Lore>, ApiError> {
    let id = LoreId::parse(&id)?;
    Ok(Json(lore::get(&state, &id).await?.into()))
}

/// Delete a lore entry.
#[utoipa::path(delete, path = "/lore/{lore_id}", tag = "world",
    params(("lore_id" = GameId, Path, description = "Lore id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such entry", body = ErrorBody),
    ))]
pub async fn delete_lore(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = LoreId::parse(&id)?;
    lore::delete(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /lore` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoreQuery {
    /// Only entries of this scope: `world`, `faction` or `character`.
    #[param(pattern = "^(world|faction|character)$")]
    pub scope: Option<String>,
    /// Only entries of this faction or character.
    #[param(value_type = Option<GameId>)]
    pub scope_id: Option<String>,
    /// Only entries carrying every one of these tags, comma-separated.
    #[param(schema_with = tags_filter_schema)]
    pub tags: Option<String>,
}

/// A comma-separated list of at most `max` names in a query string.
fn name_list(max: usize, what: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "Comma-separated {what} (at most {max}), each as ids are (1–64 characters, no control characters, no whitespace at either end, no comma); empty for none."
        )))
        .pattern(Some(wire::name_list_pattern(max)))
        .build()
}

fn tags_filter_schema() -> Object {
    name_list(MAX_TAGS, "tags")
}

fn flags_query_schema() -> Object {
    name_list(lore::MAX_TURN_FLAGS, "game flags")
}

/// The lore, by id: all of it, or of one scope, scope id or set of tags.
#[utoipa::path(get, path = "/lore", tag = "world",
    params(LoreQuery),
    responses(
        (status = 200, description = "The entries", body = LoreList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_lore(
    State(state): State<AppState>,
    Query(query): Query<LoreQuery>,
) -> Result<Json<LoreList>, ApiError> {
    let scope = query.scope.as_deref().map(Scope::parse).transpose()?;
    let scope_id = query.scope_id.as_deref().map(ScopeId::parse).transpose()?;
    let tags = crate::domain::parse_names(
        "tags",
        &wire::comma_list(query.tags.as_deref()),
        MAX_TAGS,
        crate::domain::Tag::parse,
    )?;
    let tags: Vec<String> = tags.into_iter().map(|tag| tag.into_string()).collect();
    let entries = lore::list(&state, scope, scope_id.as_ref().map(ScopeId::as_str), &tags).await?;
    Ok(Json(LoreList {
        lore: entries.into_iter().map(Lore::from).collect(),
    }))
}

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
    let limit = super::conversations::page_size(query.limit, 20, 100)?;
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
