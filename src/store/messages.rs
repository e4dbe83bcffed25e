//! The `messages` table: gapless `seq` per conversation; imported ones carry the
//! studio's `client_id`.

use crate::domain::{ClientMessageId, ConversationId, FallbackReason, Role, Source};
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

/// A message imported earlier, as its `client_id` names it: what a re-sent one is
/// compared with.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ImportedRow {
    pub client_id: ClientMessageId,
    pub role: Role,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

/// Of these `client_id`s, those already imported into the conversation (one statement
/// over the `messages_by_client_id` key).
pub async fn imported<'c>(
    conn: impl MySqlExecutor<'c>,
    conversation_id: &ConversationId,
    client_ids: &[&ClientMessageId],
) -> sqlx::Result<Vec<ImportedRow>> {
    if client_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::new(
        "SELECT client_id, role, content, created_at FROM messages WHERE conversation_id = ",
    );
    query
        .push_bind(conversation_id.clone())
        .push(" AND client_id IN (");
    let mut separated = query.separated(", ");
    for client_id in client_ids {
        separated.push_bind((*client_id).clone());
    }
    query.push(")");
    query.build_query_as().fetch_all(conn).await
}

/// A message to import: `seq` is given by the caller, under the conversation's lease.
#[derive(Debug, Clone, Copy)]
pub struct NewImported<'a> {
    pub seq: u32,
    pub client_id: &'a ClientMessageId,
    pub role: Role,
    pub content: &'a str,
    /// `import` for the character's lines, none for the player's (as for turns).
    pub source: Option<Source>,
    pub created_at: DateTime<Utc>,
}

/// Inserts imported messages in one statement (a batch is at most a few hundred rows,
/// far from the protocol's 65,535 parameters).
pub async fn insert_imported(
    conn: &mut MySqlConnection,
    conversation_id: &ConversationId,
    rows: &[NewImported<'_>],
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::new(
        "INSERT INTO messages (conversation_id, client_id, seq, role, content, source, created_at) ",
    );
    query.push_values(rows, |mut values, row| {
        values
            .push_bind(conversation_id.clone())
            .push_bind(row.client_id.clone())
            .push_bind(row.seq)
            .push_bind(row.role)
            .push_bind(row.content.to_owned())
            .push_bind(row.source)
            .push_bind(row.created_at);
    });
    query.build().execute(conn).await?;
    Ok(())
}

/// When the message at `seq` was written, if there is one.
pub async fn created_at<'c>(
    conn: impl MySqlExecutor<'c>,
    conversation_id: &ConversationId,
    seq: u32,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT created_at FROM messages WHERE conversation_id = ? AND seq = ?")
        .bind(conversation_id)
        .bind(seq)
        .fetch_optional(conn)
        .await
}

/// The run of messages in `(after_seq, up_to_seq]` that share the origin of the first
/// (imported, or from turns): whether they were imported, and the seq of the run's last
/// message (`None` when the range is empty). Extraction reads one origin at a time, so
/// that each fact says where it was learned.
pub async fn run_after(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    after_seq: u32,
    up_to_seq: u32,
) -> sqlx::Result<Option<(bool, u32)>> {
    if after_seq >= up_to_seq {
        return Ok(None);
    }
    let imported: Option<bool> = sqlx::query_scalar(
        "SELECT client_id IS NOT NULL FROM messages WHERE conversation_id = ? AND seq = ?",
    )
    .bind(conversation_id)
    .bind(after_seq + 1)
    .fetch_optional(pool)
    .await?;
    let Some(imported) = imported else {
        return Ok(None);
    };
    let other: Option<u32> = sqlx::query_scalar(
        "SELECT MIN(seq) FROM messages
         WHERE conversation_id = ? AND seq > ? AND seq <= ? AND (client_id IS NOT NULL) <> ?",
    )
    .bind(conversation_id)
    .bind(after_seq + 1)
    .bind(up_to_seq)
    .bind(imported)
    .fetch_one(pool)
    .await?;
    Ok(Some((imported, other.map_or(up_to_seq, |seq| seq - 1))))
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

/// The messages of each `(conversation, seq)` after that `seq`, in conversation and
/// `seq` order (one statement over `messages_by_conversation`).
pub async fn after_seqs<'c>(
    conn: impl MySqlExecutor<'c>,
    after: &[(ConversationId, u32)],
) -> sqlx::Result<Vec<MessageRow>> {
    if after.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::new(
        "SELECT id, conversation_id, seq, role, content, source, fallback_reason, truncated, created_at
         FROM messages WHERE ",
    );
    let mut separated = query.separated(" OR ");
    for (conversation_id, seq) in after {
        separated
            .push("(conversation_id = ")
            .push_bind_unseparated(conversation_id)
            .push_unseparated(" AND seq > ")
            .push_bind_unseparated(*seq)
            .push_unseparated(")");
    }
    query.push(" ORDER BY conversation_id, seq");
    query.build_query_as().fetch_all(conn).await
}
