//! The `messages` table: gapless `seq` per conversation.

use crate::domain::{CharacterId, ConversationId, FallbackReason, PlayerId, Role, Source};
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor, MySqlPool, QueryBuilder};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageRow {
    pub id: u64,
    pub conversation_id: ConversationId,
    pub seq: u32,
    pub role: Role,
    pub content: String,
    pub source: Option<Source>,
    pub fallback_reason: Option<FallbackReason>,
    /// A reply cut short (deadline or byte cap), kept as far as it went.
    pub truncated: bool,
    pub created_at: DateTime<Utc>,
}

/// Inserts a message and returns it with its id.
pub async fn insert(conn: &mut MySqlConnection, mut row: MessageRow) -> sqlx::Result<MessageRow> {
    let result = sqlx::query(
        "INSERT INTO messages (conversation_id, seq, role, content, source, fallback_reason, truncated, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&row.conversation_id)
    .bind(row.seq)
    .bind(row.role)
    .bind(&row.content)
    .bind(row.source)
    .bind(row.fallback_reason)
    .bind(row.truncated)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    row.id = result.last_insert_id();
    Ok(row)
}

/// The last `limit` messages, oldest first.
pub async fn recent<'c>(
    conn: impl MySqlExecutor<'c>,
    conversation_id: &ConversationId,
    limit: u32,
) -> sqlx::Result<Vec<MessageRow>> {
    page(conn, conversation_id, None, limit).await
}

/// Up to `limit` messages with `seq < before_seq` (or the newest ones), oldest first.
pub async fn page<'c>(
    conn: impl MySqlExecutor<'c>,
    conversation_id: &ConversationId,
    before_seq: Option<u32>,
    limit: u32,
) -> sqlx::Result<Vec<MessageRow>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut rows: Vec<MessageRow> = sqlx::query_as(
        "SELECT id, conversation_id, seq, role, content, source, fallback_reason, truncated, created_at
         FROM messages WHERE conversation_id = ? AND seq < ?
         ORDER BY seq DESC LIMIT ?",
    )
    .bind(conversation_id)
    .bind(before_seq.unwrap_or(u32::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// Up to `limit` messages with `seq > after_seq`, oldest first.
pub async fn page_after(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    after_seq: u32,
    limit: u32,
) -> sqlx::Result<Vec<MessageRow>> {
    range(pool, conversation_id, after_seq, u32::MAX, limit).await
}

/// Messages with `after_seq < seq <= up_to_seq`, oldest first, at most `limit`.
pub async fn range(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    after_seq: u32,
    up_to_seq: u32,
    limit: u32,
) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as(
        "SELECT id, conversation_id, seq, role, content, source, fallback_reason, truncated, created_at
         FROM messages WHERE conversation_id = ? AND seq > ? AND seq <= ?
         ORDER BY seq LIMIT ?",
    )
    .bind(conversation_id)
    .bind(after_seq)
    .bind(up_to_seq)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The messages with these ids, oldest first.
pub async fn by_ids<'c>(
    conn: impl MySqlExecutor<'c>,
    ids: &[u64],
) -> sqlx::Result<Vec<MessageRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::new(
        "SELECT id, conversation_id, seq, role, content, source, fallback_reason, truncated, created_at
         FROM messages WHERE id IN (",
    );
    let mut separated = query.separated(", ");
    for id in ids {
        separated.push_bind(*id);
    }
    query.push(") ORDER BY created_at, id");
    query.build_query_as().fetch_all(conn).await
}

/// Every message between the player and the character, in all their conversations,
/// oldest first (a lexical search reads them all).
pub async fn of_pair(
    pool: &MySqlPool,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as(
        "SELECT m.id, m.conversation_id, m.seq, m.role, m.content, m.source, m.fallback_reason,
             m.truncated, m.created_at
         FROM conversations c JOIN messages m ON m.conversation_id = c.id
         WHERE c.player_id = ? AND c.character_id = ?
         ORDER BY m.created_at, m.id",
    )
    .bind(player_id)
    .bind(character_id)
    .fetch_all(pool)
    .await
}
