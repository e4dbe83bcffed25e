//! `/conversations`: a player's turn, the history, the inbox and read markers. The wire
//! types of these routes live here, beside their handlers; those of a turn, which the
//! streamed route shares, in `exchange`.

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    exchange::{Message, PreparedTurn, TurnInput, TurnResponse, prepare_turn},
    extract::{Json, Path, Query},
    stream,
    wire::{self, GameId},
};
use crate::{
    domain::{CharacterId, ConversationId, PlayerId},
    service::{
        conversations::{self, HistoryPage, ListCursor},
        memory::extraction::MAX_TOPIC_CHARS,
        turn::{self, exchange::TurnOutcome},
    },
};
use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;

/// A player's turn: what the player says, and the character's reply.
///
/// Never an error because of the LLM: when it is not configured or fails, the reply is
/// a fallback line (`source: fallback`) and `fallback_reason` says why.
///
/// To show the reply as it is written, use `POST /conversations/{conversation_id}/messages/stream`
/// (this route also streams when asked with `Accept: text/event-stream`, for older games).
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages", tag = "conversations",
    params(
        ("conversation_id" = GameId, Path, description = "Id chosen by the game; bound to one player and one character on first use"),
        ("Idempotency-Key" = inline(Option<wire::IdempotencyKeyHeader>), Header, nullable = false, description = "Repeat a request safely: the same key on the same conversation returns the first answer and changes nothing"),
    ),
    request_body = TurnInput,
    responses(
        (status = 200, description = "The stored exchange", body = TurnResponse,
            headers(("idempotent-replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same Idempotency-Key"))),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "Unknown character", body = ErrorBody),
        (status = 409, description = "Conversation bound to another player or character (`conversation_conflict`), busy past TURN_QUEUE_WAIT_MS (`conversation_busy`), the same Idempotency-Key still in progress (`idempotency_in_progress`), or the player erased while the turn ran (`player_erased`: nothing was stored)", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused for a different request", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub async fn post_message(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<TurnInput>,
) -> Result<Response, ApiError> {
    let PreparedTurn {
        turn,
        character,
        key,
    } = prepare_turn(&state, &conversation_id, &headers, input).await?;
    if stream::wants_event_stream(&headers) {
        return Ok(stream::turn_events(state, turn, character, key).into_response());
    }
    Ok(match turn::take_turn(state, turn, character, key).await? {
        TurnOutcome::Fresh(exchange) => Json(TurnResponse::from(*exchange)).into_response(),
        TurnOutcome::Replayed(exchange) => (
            [(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"))],
            Json(TurnResponse::from(*exchange)),
        )
            .into_response(),
    })
}

/// Tells the game that a stored answer was replayed rather than a new turn taken.
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// `GET /conversations/{id}/messages` query string.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Backwards: messages with a smaller `seq` (pass the previous page's `next_before_seq`).
    /// Not together with `after_seq` (400).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 4294967295_i64)]
    pub before_seq: Option<u32>,
    /// Forwards: messages with a greater `seq` (pass the previous page's `next_after_seq`;
    /// 0 starts at the beginning). Not together with `before_seq` (400).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub after_seq: Option<u32>,
}

/// Without `after_seq`, pages run from the newest backwards; with it, from `after_seq`
/// forwards. Inside a page, messages are always oldest first (chat order).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// Paging backwards: where the next (older) page starts, or null at seq 1.
    pub next_before_seq: Option<u32>,
    /// Paging forwards: where the next (newer) page starts, or null at the newest message.
    pub next_after_seq: Option<u32>,
}

/// A page size within `1..=max`, `default` when not given.
pub fn page_size(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::Validation(format!(
            "limit must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

impl HistoryQuery {
    fn page(&self) -> Result<HistoryPage, ApiError> {
        match (self.before_seq, self.after_seq) {
            (Some(0), _) => Err(ApiError::Validation("before_seq must be at least 1".into())),
            (Some(_), Some(_)) => Err(ApiError::Validation(
                "before_seq and after_seq page in opposite directions: give one".into(),
            )),
            (before_seq, None) => Ok(HistoryPage::Backwards { before_seq }),
            (None, Some(after_seq)) => Ok(HistoryPage::Forwards { after_seq }),
        }
    }
}

/// A conversation in a player's list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub player_id: String,
    pub character_id: String,
    pub message_count: u32,
    /// The character's messages after the player's read marker.
    pub unread_count: u32,
    /// The player has read up to this seq (`POST /conversations/{id}/read`).
    pub read_seq: u32,
    pub last_message: Option<Message>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A few short labels for the conversation, lower-case, from fact extraction (every
    /// `FACT_EXTRACTION_EVERY` player messages); empty until then.
    pub topics: Vec<String>,
}

impl From<conversations::ConversationSummary> for ConversationSummary {
    fn from(summary: conversations::ConversationSummary) -> Self {
        Self {
            id: summary.id.into_string(),
            player_id: summary.player_id.into_string(),
            character_id: summary.character_id.into_string(),
            message_count: summary.message_count,
            unread_count: summary.unread_count,
            read_seq: summary.read_seq,
            last_message: summary.last_message.map(Message::from),
            created_at: summary.created_at,
            updated_at: summary.updated_at,
            topics: summary.topics,
        }
    }
}

/// `GET /conversations` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Whose conversations. Give this, `character_id`, or both (neither: 400).
    #[param(value_type = Option<GameId>)]
    pub player_id: Option<String>,
    /// Only those with this character; without `player_id`, the character's conversations
    /// with every player.
    #[param(value_type = Option<GameId>)]
    pub character_id: Option<String>,
    /// Only conversations carrying this topic (`topic_schema` says how, in the document).
    #[param(schema_with = topic_schema)]
    pub topic: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`, as given (opaque; any other is refused with 400).
    #[param(pattern = r"^(?:[0-9a-fA-F]{2})+$")]
    pub cursor: Option<String>,
}

fn topic_schema() -> Object {
    wire::not_blank(
        MAX_TOPIC_CHARS,
        "Only conversations whose `topics` hold this one (compared trimmed and lower-case, as topics are kept): 1–40 characters, not blank. Works with the other filters and paging.",
    )
}

/// Newest (most recently updated) first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /conversations/{id}/read` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ReadMarker {
    /// The player has read everything up to this seq. Never moves the marker back; a seq
    /// past the last message is clamped to it.
    #[serde(deserialize_with = "wire::integer::u32")]
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub up_to_seq: u32,
}

/// A conversation's history, one page at a time.
///
/// Without `after_seq`, pages run from the newest backwards (pass `next_before_seq` as
/// `before_seq` for the next, older page); with `after_seq`, forwards (pass
/// `next_after_seq`). Inside a page messages are always oldest first.
#[utoipa::path(get, path = "/conversations/{conversation_id}/messages", tag = "conversations",
    params(("conversation_id" = GameId, Path, description = "Conversation id"), HistoryQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
    ))]
pub async fn list_messages(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let conversation_id = ConversationId::parse(&conversation_id)?;
    let limit = page_size(
        query.limit,
        conversations::DEFAULT_PAGE,
        conversations::MAX_PAGE,
    )?;
    let page = conversations::history(&state, &conversation_id, query.page()?, limit).await?;
    Ok(Json(MessagePage {
        messages: page.messages.into_iter().map(Message::from).collect(),
        next_before_seq: page.next_before_seq,
        next_after_seq: page.next_after_seq,
    }))
}

/// Conversations, most recently updated first, with counts, unread count, the last
/// message and topics: a player's (`player_id`), a character's with every player
/// (`character_id`), or one pair's (both); `topic` keeps those carrying it. At least one
/// of the two ids is required (400 otherwise).
#[utoipa::path(get, path = "/conversations", tag = "conversations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of conversations", body = ConversationList),
        (status = 400, description = "Invalid query, or neither `player_id` nor `character_id`", body = ErrorBody),
    ))]
pub async fn list_conversations(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let player_id = query
        .player_id
        .as_deref()
        .map(PlayerId::parse)
        .transpose()?;
    let character_id = query
        .character_id
        .as_deref()
        .map(CharacterId::parse)
        .transpose()?;
    let limit = page_size(
        query.limit,
        conversations::DEFAULT_LIST_PAGE,
        conversations::MAX_LIST_PAGE,
    )?;
    let after = query
        .cursor
        .as_deref()
        .map(ListCursor::decode)
        .transpose()?;
    if let Some(topic) = &query.topic
        && (topic.trim().is_empty() || topic.chars().count() > MAX_TOPIC_CHARS)
    {
        return Err(ApiError::Validation(format!(
            "topic must be 1 to {MAX_TOPIC_CHARS} characters, not blank"
        )));
    }
    let list = conversations::list(
        &state,
        player_id.as_ref(),
        character_id.as_ref(),
        query.topic.as_deref(),
        limit,
        after.as_ref(),
    )
    .await?;
    Ok(Json(ConversationList {
        conversations: list
            .conversations
            .into_iter()
            .map(ConversationSummary::from)
            .collect(),
        next_cursor: list.next.as_ref().map(ListCursor::encode),
    }))
}

/// One conversation: as in the list, and with its running summary.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationSummary,
    /// The running summary of the messages older than the recent window, as the prompt
    /// gets it; null until the first refresh (`SUMMARY_BATCH` messages must have left the
    /// window of `CONTEXT_RECENT_MESSAGES`).
    pub summary: Option<String>,
}

impl From<conversations::ConversationDetail> for ConversationDetail {
    fn from(detail: conversations::ConversationDetail) -> Self {
        Self {
            conversation: detail.listed.into(),
            summary: detail.summary,
        }
    }
}

/// One conversation, as in the list, with its running summary.
#[utoipa::path(get, path = "/conversations/{conversation_id}", tag = "conversations",
    params(("conversation_id" = GameId, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationDetail),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
    ))]
pub async fn get_conversation(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let conversation_id = ConversationId::parse(&conversation_id)?;
    Ok(Json(
        conversations::detail(&state, &conversation_id)
            .await?
            .into(),
    ))
}

/// Move the player's read marker forward (never back; clamped to the last message).
#[utoipa::path(post, path = "/conversations/{conversation_id}/read", tag = "conversations",
    params(("conversation_id" = GameId, Path, description = "Conversation id")),
    request_body = ReadMarker,
    responses(
        (status = 200, description = "The conversation with its new unread count", body = ConversationSummary),
        (status = 400, description = "Invalid marker", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
    ))]
pub async fn mark_read(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    Json(marker): Json<ReadMarker>,
) -> Result<Json<ConversationSummary>, ApiError> {
    let conversation_id = ConversationId::parse(&conversation_id)?;
    Ok(Json(
        conversations::mark_read(&state, &conversation_id, marker.up_to_seq)
            .await?
            .into(),
    ))
}
