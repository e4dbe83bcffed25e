//! `POST /conversations/{id}/import`: a studio's past conversations, with the wire types
//! of the route. The body may be far larger than a turn's (`MAX_IMPORT_BODY_BYTES`).

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{Json, Path},
    wire::{self, GameId},
};
use crate::{
    domain::{CharacterId, ClientMessageId, ConversationId, MessageText, PlayerId, Role},
    service::import::{self, Import, ImportedMessage},
};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// Largest import body: 500 messages of 2,000 characters, with room for JSON's escapes.
/// Every other route keeps `MAX_BODY_BYTES`.
pub const MAX_IMPORT_BODY_BYTES: usize = 5 * 1024 * 1024;

/// `POST /conversations/{id}/import` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ImportInput {
    #[schema(value_type = GameId)]
    pub player_id: String,
    #[schema(value_type = GameId)]
    pub character_id: String,
    /// 1 to 500 messages, oldest first: times must not decrease (400), nor be before the
    /// conversation's last message (409 `import_out_of_order`); each `client_id` once
    /// (400).
    #[schema(min_items = 1, max_items = 500)]
    pub messages: Vec<ImportMessageInput>,
}

/// One message of imported history.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ImportMessageInput {
    /// The studio's id of the message, unique in the conversation: a message whose
    /// `client_id` was imported before is skipped (409 `import_conflict` when its role,
    /// content or time differ).
    #[schema(value_type = GameId)]
    pub client_id: String,
    #[schema(schema_with = role_schema)]
    pub role: String,
    #[schema(schema_with = content_schema)]
    pub content: String,
    /// RFC 3339; kept to the microsecond. Not before 1970, not in the future.
    #[schema(format = DateTime, value_type = String)]
    pub created_at: String,
}

fn role_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("Who said it: `player` or `character`."))
        .enum_values(Some(["player", "character"]))
        .build()
}

/// `MAX_MESSAGE_CHARS` is the operator's to set; the document states its default.
const DOCUMENTED_MAX_MESSAGE_CHARS: usize = 2000;

fn content_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "What was said: 1 to `MAX_MESSAGE_CHARS` (default 2000) characters as sent, not blank, no control characters but tab and line breaks. Surrounding whitespace is dropped.",
        ))
        .min_length(Some(1))
        .max_length(Some(DOCUMENTED_MAX_MESSAGE_CHARS))
        .pattern(Some(wire::MESSAGE_PATTERN))
        .build()
}

/// What an import did.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct ImportResult {
    /// Messages appended by this request.
    pub imported: u32,
    /// Messages whose `client_id` was imported before (unchanged).
    pub skipped: u32,
    /// The conversation's last seq after the import (0: no messages yet).
    pub last_seq: u32,
}

impl From<import::Imported> for ImportResult {
    fn from(imported: import::Imported) -> Self {
        Self {
            imported: imported.imported,
            skipped: imported.skipped,
            last_seq: imported.last_seq,
        }
    }
}

fn parse_import(
    conversation_id: &str,
    input: ImportInput,
    max_chars: usize,
) -> Result<Import, ApiError> {
    let conversation_id = ConversationId::parse(conversation_id)?;
    let player_id = PlayerId::parse(&input.player_id)?;
    let character_id = CharacterId::parse(&input.character_id)?;
    // The count first: a batch too large is refused before its messages are read.
    import::check_count(input.messages.len())?;
    let now = crate::clock::now();
    let messages = input
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            parse_message(message, max_chars, now)
                .map_err(|error| ApiError::Validation(format!("messages[{index}]: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Import::new(
        conversation_id,
        player_id,
        character_id,
        messages,
    )?)
}

fn parse_message(
    message: &ImportMessageInput,
    max_chars: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ImportedMessage, crate::domain::ParseError> {
    Ok(ImportedMessage {
        client_id: ClientMessageId::parse(&message.client_id)?,
        role: Role::parse(&message.role).ok_or_else(|| {
            crate::domain::ParseError(format!(
                "role must be \"player\" or \"character\" (got {:?})",
                message.role
            ))
        })?,
        content: MessageText::parse(&message.content, max_chars)?,
        created_at: import::parse_time(&message.created_at, now)?,
    })
}

/// Import a conversation's history from another system.
///
/// Appends the messages after the existing ones with gapless `seq`, keeping their times,
/// and binds the conversation like a first turn. Idempotent by `client_id`: a message
/// imported before is skipped (a batch sent again changes nothing and answers everything
/// skipped). No LLM call is made; summaries and fact extraction follow as background
/// work. Imported character lines have `source: import`; imported messages count as read.
/// Waits for turns of the conversation in progress like a turn does (`TURN_QUEUE_WAIT_MS`).
/// The body may be up to 5 MiB.
#[utoipa::path(post, path = "/conversations/{conversation_id}/import", tag = "conversations",
    params(
        ("conversation_id" = GameId, Path, description = "Id chosen by the game; bound to the player and the character on first use"),
    ),
    request_body = ImportInput,
    responses(
        (status = 200, description = "What was imported and skipped", body = ImportResult),
        (status = 400, description = "Invalid input (nothing was imported)", body = ErrorBody),
        (status = 404, description = "Unknown character", body = ErrorBody),
        (status = 409, description = "A `client_id` imported before with other content (`import_conflict`), times before the conversation's last message (`import_out_of_order`), conversation bound to another player or character (`conversation_conflict`), busy past TURN_QUEUE_WAIT_MS (`conversation_busy`), or the player erased meanwhile (`player_erased`: nothing was stored)", body = ErrorBody),
        (status = 413, description = "Body larger than 5 MiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub async fn import_history(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    Json(input): Json<ImportInput>,
) -> Result<Json<ImportResult>, ApiError> {
    let import = parse_import(&conversation_id, input, state.config.max_message_chars)?;
    Ok(Json(import::import(&state, import).await?.into()))
}
