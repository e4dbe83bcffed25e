//! Reading conversations: a player's list, one conversation, its history, read markers.

use crate::{
    domain::{CharacterId, ConversationId, PlayerId},
    error::ApiError,
    store::{
        conversations::{self, ConversationSummaryRow, ListPosition},
        messages::{self, MessageRow},
    },
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

/// A stored message, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: u64,
    /// 1, 2, 3… per conversation, gapless.
    pub seq: u32,
    /// `player` or `character`.
    pub role: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// For character messages: `llm` or `fallback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            seq: row.seq,
            role: row.role,
            content: row.content,
            created_at: row.created_at,
            source: row.source,
        }
    }
}

/// `GET /conversations/{id}/messages` query string.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// Backwards: messages with a smaller `seq` (pass the previous page's `next_before_seq`).
    pub before_seq: Option<u32>,
    /// Forwards: messages with a greater `seq` (pass the previous page's `next_after_seq`;
    /// 0 starts at the beginning). Not together with `before_seq`.
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

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

#[tracing::instrument(skip_all, fields(conversation_id = %id))]
pub async fn history(
    pool: &MySqlPool,
    id: &ConversationId,
    query: HistoryQuery,
) -> Result<MessagePage, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    if query.before_seq == Some(0) {
        return Err(ApiError::Validation("before_seq must be at least 1".into()));
    }
    if query.before_seq.is_some() && query.after_seq.is_some() {
        return Err(ApiError::Validation(
            "before_seq and after_seq page in opposite directions: give one".into(),
        ));
    }
    let Some(conversation) = conversations::get(pool, id.as_str()).await? else {
        return Err(ApiError::NotFound(format!(
            "conversation {:?} not found",
            id.as_str()
        )));
    };
    if let Some(after_seq) = query.after_seq {
        let rows = messages::page_after(pool, id.as_str(), after_seq, limit).await?;
        let next_after_seq = rows
            .last()
            .map(|row| row.seq)
            .filter(|seq| *seq < conversation.last_seq);
        return Ok(MessagePage {
            messages: rows.into_iter().map(Message::from).collect(),
            next_before_seq: None,
            next_after_seq,
        });
    }
    let rows = messages::page(pool, id.as_str(), query.before_seq, limit).await?;
    // seq is gapless, so anything above 1 at the start of the page has older messages.
    let next_before_seq = rows.first().map(|row| row.seq).filter(|seq| *seq > 1);
    Ok(MessagePage {
        messages: rows.into_iter().map(Message::from).collect(),
        next_before_seq,
        next_after_seq: None,
    })
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
}

impl From<ConversationSummaryRow> for ConversationSummary {
    fn from(row: ConversationSummaryRow) -> Self {
        let last_message = match (
            row.message_id,
            row.message_role,
            row.message_content,
            row.message_created_at,
        ) {
            (Some(id), Some(role), Some(content), Some(created_at)) => Some(Message {
                id,
                seq: row.last_seq,
                role,
                content,
                created_at,
                source: row.message_source,
            }),
            _ => None,
        };
        Self {
            id: row.id,
            player_id: row.player_id,
            character_id: row.character_id,
            message_count: row.last_seq,
            // Turns store the player's line at an odd seq and the reply at the next even
            // one, so the character's messages after the marker are the even seqs in
            // (read_seq, last_seq].
            unread_count: row.last_seq / 2 - row.read_seq.min(row.last_seq) / 2,
            read_seq: row.read_seq,
            last_message,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// `GET /conversations` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Whose conversations (required).
    pub player_id: String,
    /// Only those with this character.
    pub character_id: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Newest (most recently updated) first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

pub const DEFAULT_LIST_PAGE: u32 = 20;
pub const MAX_LIST_PAGE: u32 = 100;

/// An opaque cursor: the (updated_at, id) the page ended at, hex-encoded.
fn encode_cursor(position: &ListPosition) -> String {
    hex::encode(format!(
        "{}:{}",
        position.updated_at.timestamp_micros(),
        position.id
    ))
}

fn decode_cursor(cursor: &str) -> Result<ListPosition, ApiError> {
    let invalid = || ApiError::Validation("cursor is not one this service gave out".into());
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    Ok(ListPosition {
        updated_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
        id: id.to_owned(),
    })
}

pub async fn list(pool: &MySqlPool, query: ListQuery) -> Result<ConversationList, ApiError> {
    let player_id = PlayerId::parse(&query.player_id)?;
    let character_id = query
        .character_id
        .as_deref()
        .map(CharacterId::parse)
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIST_PAGE);
    if !(1..=MAX_LIST_PAGE).contains(&limit) {
        return Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_LIST_PAGE}"
        )));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // One more than asked tells whether another page follows.
    let mut rows = conversations::list_for_player(
        pool,
        player_id.as_str(),
        character_id.as_ref().map(CharacterId::as_str),
        after.as_ref(),
        limit + 1,
    )
    .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last()).flatten().map(|row| {
        encode_cursor(&ListPosition {
            updated_at: row.updated_at,
            id: row.id.clone(),
        })
    });
    Ok(ConversationList {
        conversations: rows.into_iter().map(ConversationSummary::from).collect(),
        next_cursor,
    })
}

pub async fn summary(
    pool: &MySqlPool,
    id: &ConversationId,
) -> Result<ConversationSummary, ApiError> {
    conversations::summary(pool, id.as_str())
        .await?
        .map(ConversationSummary::from)
        .ok_or_else(|| ApiError::NotFound(format!("conversation {:?} not found", id.as_str())))
}

/// `POST /conversations/{id}/read` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ReadMarker {
    /// The player has read everything up to this seq. Never moves the marker back; a seq
    /// past the last message is clamped to it.
    pub up_to_seq: u32,
}

pub async fn mark_read(
    pool: &MySqlPool,
    id: &ConversationId,
    marker: ReadMarker,
) -> Result<ConversationSummary, ApiError> {
    if !conversations::mark_read(pool, id.as_str(), marker.up_to_seq).await? {
        return Err(ApiError::NotFound(format!(
            "conversation {:?} not found",
            id.as_str()
        )));
    }
    summary(pool, id).await
}
