//! Reading a conversation's history.

use crate::{
    domain::ConversationId,
    error::ApiError,
    store::{
        conversations,
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
    /// Only messages with a smaller `seq`: pass the previous page's `next_before_seq`.
    pub before_seq: Option<u32>,
}

/// Pages run newest first; the messages inside a page are oldest first (chat order).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// Where the next (older) page starts, or null when this page reaches seq 1.
    pub next_before_seq: Option<u32>,
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
    if conversations::get(pool, id.as_str()).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "conversation {:?} not found",
            id.as_str()
        )));
    }
    let rows = messages::page(pool, id.as_str(), query.before_seq, limit).await?;
    // seq is gapless, so anything above 1 at the start of the page has older messages.
    let next_before_seq = rows.first().map(|row| row.seq).filter(|seq| *seq > 1);
    Ok(MessagePage {
        messages: rows.into_iter().map(Message::from).collect(),
        next_before_seq,
    })
}
