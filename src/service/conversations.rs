//! Reading conversations: a player's list, one conversation, its history, read markers.

use crate::{
    domain::{CharacterId, ConversationId, ParseError, PlayerId, Role, Source},
    service::{ServiceError, ServiceResult, Services, memory::extraction},
    store::{
        conversations::{self, ConversationSummaryRow, ListOf, ListPosition},
        messages::{self, MessageRow},
    },
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A stored message. Serialized as the API shows it (the idempotent answer of a turn
/// keeps its messages in this form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: u64,
    /// 1, 2, 3… per conversation, gapless.
    pub seq: u32,
    pub role: Role,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// For character messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// A reply cut short (the turn's deadline, or its byte cap), kept as far as it went.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
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
            truncated: row.truncated,
        }
    }
}

/// Which way a page of history runs from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// The newest page, or the one before `before_seq`, going backwards.
    Backwards { before_seq: Option<u32> },
    /// The page after `after_seq`, going forwards (0 starts at the beginning).
    Forwards { after_seq: u32 },
}

/// A page of messages, oldest first inside the page.
#[derive(Debug, Clone)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub next_before_seq: Option<u32>,
    pub next_after_seq: Option<u32>,
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

fn not_found(id: &ConversationId) -> ServiceError {
    ServiceError::NotFound(format!("conversation {:?} not found", id.as_str()))
}

#[tracing::instrument(skip_all, fields(conversation_id = %id))]
pub async fn history(
    services: &Services,
    id: &ConversationId,
    page: HistoryPage,
    limit: u32,
) -> ServiceResult<MessagePage> {
    let pool = &services.pool;
    let Some(conversation) = conversations::get(pool, id).await? else {
        return Err(not_found(id));
    };
    match page {
        HistoryPage::Forwards { after_seq } => {
            let rows = messages::page_after(pool, id, after_seq, limit).await?;
            let next_after_seq = rows
                .last()
                .map(|row| row.seq)
                .filter(|seq| *seq < conversation.last_seq);
            Ok(MessagePage {
                messages: rows.into_iter().map(Message::from).collect(),
                next_before_seq: None,
                next_after_seq,
            })
        }
        HistoryPage::Backwards { before_seq } => {
            let rows = messages::page(pool, id, before_seq, limit).await?;
            // seq is gapless, so anything above 1 at the start of the page has older messages.
            let next_before_seq = rows.first().map(|row| row.seq).filter(|seq| *seq > 1);
            Ok(MessagePage {
                messages: rows.into_iter().map(Message::from).collect(),
                next_before_seq,
                next_after_seq: None,
            })
        }
    }
}

/// A conversation as its list shows it.
#[derive(Debug, Clone)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub player_id: PlayerId,
    pub character_id: CharacterId,
    pub message_count: u32,
    /// The character's messages after the player's read marker.
    pub unread_count: u32,
    pub read_seq: u32,
    pub last_message: Option<Message>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The labels fact extraction gave the conversation; empty until it has.
    pub topics: Vec<String>,
}

/// The stored topics; empty when there are none yet. The column is only ever written
/// from a `Vec<String>`, so anything else is a stored fault, logged and shown as none.
fn topics(id: &ConversationId, stored: Option<&str>) -> Vec<String> {
    let Some(stored) = stored else {
        return Vec::new();
    };
    serde_json::from_str(stored).unwrap_or_else(|error| {
        tracing::warn!(conversation_id = %id, %error, "stored topics are not a list of strings");
        Vec::new()
    })
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
                truncated: row.message_truncated.unwrap_or(false),
            }),
            _ => None,
        };
        Self {
            topics: topics(&row.id, row.topics.as_deref()),
            id: row.id,
            player_id: row.player_id,
            character_id: row.character_id,
            message_count: row.last_seq,
            unread_count: unread(row.read_seq, row.last_seq),
            read_seq: row.read_seq,
            last_message,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The character's messages after the read marker, without reading them. After the
/// marker, messages are turns (the player's line, then the reply), so the replies are
/// every other seq counting back from the last, which is a reply. Imported history,
/// whose roles follow no pattern, is never after the marker: an import moves the marker
/// to its end, and it may leave `last_seq` odd, which is why this counts from the end
/// rather than taking the even seqs.
fn unread(read_seq: u32, last_seq: u32) -> u32 {
    (last_seq - read_seq.min(last_seq)).div_ceil(2)
}

/// A page of a player's conversations, most recently updated first.
#[derive(Debug, Clone)]
pub struct ConversationList {
    pub conversations: Vec<ConversationSummary>,
    pub next: Option<ListCursor>,
}

pub const DEFAULT_LIST_PAGE: u32 = 20;
pub const MAX_LIST_PAGE: u32 = 100;

/// Where a page of the list ended: its last (updated_at, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor(ListPosition);

impl ListCursor {
    /// Opaque to clients: hex of `micros:id`.
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "{}:{}",
            self.0.updated_at.timestamp_micros(),
            self.0.id
        ))
    }

    pub fn decode(cursor: &str) -> Result<Self, ParseError> {
        let invalid = || ParseError("cursor is not one this service gave out".into());
        let bytes = hex::decode(cursor).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(Self(ListPosition {
            updated_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
            id: ConversationId::parse(id).map_err(|_| invalid())?,
        }))
    }
}

/// A page of conversations, newest first: a player's, a character's (with every player),
/// or one pair's; with `topic`, only those carrying it (compared as extraction keeps
/// topics: trimmed, lower-case). At least one of the two ids: a list of everything is not
/// offered.
pub async fn list(
    services: &Services,
    player_id: Option<&PlayerId>,
    character_id: Option<&CharacterId>,
    topic: Option<&str>,
    limit: u32,
    after: Option<&ListCursor>,
) -> ServiceResult<ConversationList> {
    let of = match (player_id, character_id) {
        (Some(player), Some(character)) => ListOf::Pair(player, character),
        (Some(player), None) => ListOf::Player(player),
        (None, Some(character)) => ListOf::Character(character),
        (None, None) => {
            return Err(ServiceError::Invalid(
                "give player_id, character_id or both".into(),
            ));
        }
    };
    let topic = match topic {
        None => None,
        // A topic no extraction could have kept (blank, too long) matches nothing.
        Some(raw) => match extraction::topic(raw) {
            Some(topic) => Some(topic),
            None => {
                return Ok(ConversationList {
                    conversations: Vec::new(),
                    next: None,
                });
            }
        },
    };
    // One more than asked tells whether another page follows.
    let mut rows = conversations::list(
        &services.pool,
        of,
        topic.as_deref(),
        after.map(|cursor| &cursor.0),
        limit + 1,
    )
    .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last()).flatten().map(|row| {
        ListCursor(ListPosition {
            updated_at: row.updated_at,
            id: row.id.clone(),
        })
    });
    Ok(ConversationList {
        conversations: rows.into_iter().map(ConversationSummary::from).collect(),
        next,
    })
}

pub async fn summary(
    services: &Services,
    id: &ConversationId,
) -> ServiceResult<ConversationSummary> {
    conversations::summary(&services.pool, id)
        .await?
        .map(ConversationSummary::from)
        .ok_or_else(|| not_found(id))
}

/// A conversation as its list shows it, and its running summary.
#[derive(Debug, Clone)]
pub struct ConversationDetail {
    pub listed: ConversationSummary,
    /// The running summary of the older messages (`SUMMARY_BATCH`); none until the first
    /// refresh.
    pub summary: Option<String>,
}

pub async fn detail(services: &Services, id: &ConversationId) -> ServiceResult<ConversationDetail> {
    let row = conversations::detail(&services.pool, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(ConversationDetail {
        listed: row.listed.into(),
        summary: row.running_summary,
    })
}

/// Moves the read marker to `up_to_seq` (never back; clamped to the last message).
pub async fn mark_read(
    services: &Services,
    id: &ConversationId,
    up_to_seq: u32,
) -> ServiceResult<ConversationSummary> {
    if !conversations::mark_read(&services.pool, id, up_to_seq).await? {
        return Err(not_found(id));
    }
    summary(services, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_replies_are_counted_back_from_the_last_message() {
        // Turns only: replies at even seqs.
        assert_eq!(unread(0, 0), 0);
        assert_eq!(unread(0, 2), 1);
        assert_eq!(unread(3, 8), 3);
        assert_eq!(unread(4, 8), 2);
        assert_eq!(unread(8, 8), 0);
        assert_eq!(unread(9, 8), 0);
        // Three imported messages (marker at 3), then turns: replies at odd seqs.
        assert_eq!(unread(3, 3), 0);
        assert_eq!(unread(3, 5), 1);
        assert_eq!(unread(4, 7), 2);
        assert_eq!(unread(5, 7), 1);
    }

    #[test]
    fn a_list_cursor_round_trips_and_rejects_forgeries() -> Result<(), ParseError> {
        let cursor = ListCursor(ListPosition {
            updated_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap_or_default(),
            id: ConversationId::parse("c:42 ü")?,
        });
        assert_eq!(ListCursor::decode(&cursor.encode())?, cursor);
        for bad in ["", "zz", &hex::encode("nocolon"), &hex::encode("x:c")] {
            assert!(ListCursor::decode(bad).is_err(), "{bad:?}");
        }
        Ok(())
    }
}
