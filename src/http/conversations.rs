//! `/conversations`: a player's turn and the history.

use super::{
    AppState,
    extract::{Json, Path, Query},
    stream,
};
use crate::{
    domain::ConversationId,
    error::{ApiError, ErrorBody},
    service::{
        conversations::{
            self, ConversationList, ConversationSummary, HistoryQuery, ListQuery, MessagePage,
            ReadMarker,
        },
        idempotency::IdempotencyKey,
        turn::{self, Turn, TurnInput, TurnOutcome, TurnResponse},
    },
};
use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};

/// A player's turn: what the player says, and the character's reply.
///
/// Streams the reply as server-sent events when asked with `Accept: text/event-stream`.
///
/// Never an error because of the LLM: when it is not configured or fails, the reply is
/// a fallback line (`source: fallback`) and `fallback_reason` says why.
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages", tag = "conversations",
    params(
        ("conversation_id" = String, Path, description = "Id chosen by the game; bound to one player and one character on first use", min_length = 1, max_length = 64),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a request safely: the same key on the same conversation returns the first answer and changes nothing"),
    ),
    request_body = TurnInput,
    responses(
        (status = 200, description = "The stored exchange. With `Accept: text/event-stream`, server-sent events instead: `typing` (`{}`) at once, `delta` (`{\"text\": \"…\"}`) per piece of the reply, then `done` carrying this same JSON, or `error` carrying the JSON error body if the turn failed after the stream began",
            content(
                (TurnResponse = "application/json"),
                (String = "text/event-stream", example = json!("event: typing\ndata: {}\n\nevent: delta\ndata: {\"text\":\"One left, \"}\n\nevent: delta\ndata: {\"text\":\"upstairs.\"}\n\nevent: done\ndata: {\"conversation_id\":\"c-42\",…}\n\n"))
            )),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "Unknown character", body = ErrorBody),
        (status = 409, description = "Conversation bound to another player or character (`conversation_conflict`), busy past TURN_QUEUE_WAIT_MS (`conversation_busy`), or the same Idempotency-Key still in progress", body = ErrorBody),
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
    let conversation_id = ConversationId::parse(&conversation_id)?;
    let turn = Turn::parse(conversation_id, input, state.config.max_message_chars)?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(IdempotencyKey::parse(value.to_str().map_err(|_| {
            ApiError::Validation("Idempotency-Key must be printable ASCII".into())
        })?)?),
    };
    let character = turn::precheck(&state, &turn).await?;
    if stream::wants_event_stream(&headers) {
        return Ok(stream::turn_events(state, turn, character, key).into_response());
    }
    Ok(
        match turn::take_turn(state, turn, character, key, None).await? {
            TurnOutcome::Fresh(response) => Json(*response).into_response(),
            TurnOutcome::Replayed(stored) => (
                [
                    (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (IDEMPOTENT_REPLAYED, HeaderValue::from_static("true")),
                ],
                stored,
            )
                .into_response(),
        },
    )
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Tells the game that a stored answer was replayed rather than a new turn taken.
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A conversation's history, one page at a time.
///
/// Without `after_seq`, pages run from the newest backwards (pass `next_before_seq` as
/// `before_seq` for the next, older page); with `after_seq`, forwards (pass
/// `next_after_seq`). Inside a page messages are always oldest first.
#[utoipa::path(get, path = "/conversations/{conversation_id}/messages", tag = "conversations",
    params(("conversation_id" = String, Path, description = "Conversation id", min_length = 1, max_length = 64), HistoryQuery),
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
    Ok(Json(
        conversations::history(&state.pool, &conversation_id, query).await?,
    ))
}

/// A player's conversations, most recently updated first, with counts, unread count
/// and the last message.
#[utoipa::path(get, path = "/conversations", tag = "conversations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of conversations", body = ConversationList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_conversations(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    Ok(Json(conversations::list(&state.pool, query).await?))
}

/// One conversation, as in the list.
#[utoipa::path(get, path = "/conversations/{conversation_id}", tag = "conversations",
    params(("conversation_id" = String, Path, description = "Conversation id", min_length = 1, max_length = 64)),
    responses(
        (status = 200, description = "The conversation", body = ConversationSummary),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
    ))]
pub async fn get_conversation(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
) -> Result<Json<ConversationSummary>, ApiError> {
    let conversation_id = ConversationId::parse(&conversation_id)?;
    Ok(Json(
        conversations::summary(&state.pool, &conversation_id).await?,
    ))
}

/// Move the player's read marker forward (never back; clamped to the last message).
#[utoipa::path(post, path = "/conversations/{conversation_id}/read", tag = "conversations",
    params(("conversation_id" = String, Path, description = "Conversation id", min_length = 1, max_length = 64)),
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
        conversations::mark_read(&state.pool, &conversation_id, marker).await?,
    ))
}
