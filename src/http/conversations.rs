//! `/conversations`: a player's turn and the history.

use super::{
    AppState,
    extract::{Json, Path, Query},
};
use crate::{
    domain::ConversationId,
    error::{ApiError, ErrorBody},
    service::{
        conversations::{self, HistoryQuery, MessagePage},
        turn::{self, Turn, TurnInput, TurnResponse},
    },
};
use axum::extract::State;

/// A player's turn: what the player says, and the character's reply.
///
/// Never an error because of the LLM: when it is not configured or fails, the reply is
/// a fallback line (`source: fallback`) and `fallback_reason` says why.
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages", tag = "conversations",
    params(("conversation_id" = String, Path, description = "Id chosen by the game; bound to one player and one character on first use")),
    request_body = TurnInput,
    responses(
        (status = 200, description = "The stored exchange", body = TurnResponse),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "Unknown character", body = ErrorBody),
        (status = 409, description = "Conversation bound to another player or character", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub async fn post_message(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    Json(input): Json<TurnInput>,
) -> Result<Json<TurnResponse>, ApiError> {
    let conversation_id = ConversationId::parse(&conversation_id)?;
    let turn = Turn::parse(conversation_id, input, state.config.max_message_chars)?;
    Ok(Json(turn::take_turn(&state, turn).await?))
}

/// A conversation's history, one page at a time.
///
/// Pages run from the newest backwards; inside a page messages are oldest first. Pass
/// `next_before_seq` as `before_seq` for the next, older page.
#[utoipa::path(get, path = "/conversations/{conversation_id}/messages", tag = "conversations",
    params(("conversation_id" = String, Path, description = "Conversation id"), HistoryQuery),
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
