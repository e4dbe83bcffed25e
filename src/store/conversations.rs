//! The `conversations` table: each bound to one player and one character.

use crate::domain::{CharacterId, ConversationId, PlayerId, Role, Source};
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor, MySqlPool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub player_id: PlayerId,
    pub character_id: CharacterId,
    pub last_seq: u32,
    pub summary: Option<String>,
    pub summary_seq: u32,
    pub extracted_seq: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get<'c>(
    conn: impl MySqlExecutor<'c>,
    id: &ConversationId,
) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(
        "SELECT id, player_id, character_id, last_seq, summary, summary_seq, extracted_seq,
             created_at, updated_at
         FROM conversations WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Binds the conversation on first use, then locks its row for the rest of the
/// transaction so concurrent turns take their `seq` one after another.
///
/// `ON DUPLICATE KEY UPDATE` (not `INSERT IGNORE`) because it takes an exclusive lock on
/// an existing row: with `IGNORE`, concurrent first turns each hold a shared lock and then
/// deadlock when they all ask for the exclusive one.
pub async fn create_and_lock(
    conn: &mut MySqlConnection,
    id: &ConversationId,
    player_id: &PlayerId,
    character_id: &CharacterId,
    now: DateTime<Utc>,
) -> sqlx::Result<ConversationRow> {
    sqlx::query(
        "INSERT INTO conversations (id, player_id, character_id, last_seq, created_at, updated_at)
         VALUES (?, ?, ?, 0, ?, ?)
         ON DUPLICATE KEY UPDATE last_seq = last_seq",
    )
    .bind(id)
    .bind(player_id)
    .bind(character_id)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as(
        "SELECT id, player_id, character_id, last_seq, summary, summary_seq, extracted_seq,
             created_at, updated_at
         FROM conversations WHERE id = ? FOR UPDATE",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Moves `last_seq` from `from` to `to`; false (and nothing changed) if it is no longer
/// `from`.
pub async fn advance_last_seq(
    conn: &mut MySqlConnection,
    id: &ConversationId,
    from: u32,
    to: u32,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE conversations SET last_seq = ?, updated_at = ? WHERE id = ? AND last_seq = ?",
    )
    .bind(to)
    .bind(now)
    .bind(id)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn set_last_seq(
    conn: &mut MySqlConnection,
    id: &ConversationId,
    last_seq: u32,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE conversations SET last_seq = ?, updated_at = ? WHERE id = ?")
        .bind(last_seq)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Appends imported messages: `last_seq` from `from` to `to`, `updated_at` the last
/// imported message's time, and the read marker to the end (imported history counts as
/// read). False (and nothing changed) if `last_seq` is no longer `from`.
pub async fn record_import(
    conn: &mut MySqlConnection,
    id: &ConversationId,
    from: u32,
    to: u32,
    updated_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE conversations SET last_seq = ?, read_seq = ?, updated_at = ?
         WHERE id = ? AND last_seq = ?",
    )
    .bind(to)
    .bind(to)
    .bind(updated_at)
    .bind(id)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Replaces the running summary, unless another worker already moved it on.
pub async fn save_summary(
    conn: &mut MySqlConnection,
    id: &ConversationId,
    summary: &str,
    previous_seq: u32,
    new_seq: u32,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE conversations SET summary = ?, summary_seq = ? WHERE id = ? AND summary_seq = ?",
    )
    .bind(summary)
    .bind(new_seq)
    .bind(id)
    .bind(previous_seq)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Moves the extraction watermark, unless another worker already did.
pub async fn advance_extraction(
    conn: &mut MySqlConnection,
    id: &ConversationId,
    previous_seq: u32,
    new_seq: u32,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE conversations SET extracted_seq = ? WHERE id = ? AND extracted_seq = ?",
    )
    .bind(new_seq)
    .bind(id)
    .bind(previous_seq)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn set_topics(
    conn: &mut MySqlConnection,
    id: &ConversationId,
    topics_json: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE conversations SET topics = ? WHERE id = ?")
        .bind(topics_json)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// One row of a player's conversation list, with its last message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationSummaryRow {
    pub id: ConversationId,
    pub player_id: PlayerId,
    pub character_id: CharacterId,
    pub last_seq: u32,
    pub read_seq: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub message_id: Option<u64>,
    pub message_role: Option<Role>,
    pub message_content: Option<String>,
    pub message_source: Option<Source>,
    pub message_created_at: Option<DateTime<Utc>>,
    pub message_truncated: Option<bool>,
    /// The labels extraction gave the conversation, a JSON array of strings; NULL until
    /// then.
    pub topics: Option<String>,
}

/// The columns of a `ConversationSummaryRow`, and where they come from.
macro_rules! summary_columns {
    () => {
        "c.id, c.player_id, c.character_id, c.last_seq, c.read_seq,
         c.created_at, c.updated_at, m.id AS message_id, m.role AS message_role,
         m.content AS message_content, m.source AS message_source,
         m.created_at AS message_created_at, m.truncated AS message_truncated, c.topics"
    };
}
macro_rules! summary_from {
    () => {
        " FROM conversations c
     LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq "
    };
}

const SUMMARY_SELECT: &str = concat!("SELECT ", summary_columns!(), summary_from!());
const DETAIL_SELECT: &str = concat!(
    "SELECT c.summary AS running_summary, ",
    summary_columns!(),
    summary_from!()
);

/// Where a page of the list starts: strictly after this (updated_at, id), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    pub updated_at: DateTime<Utc>,
    pub id: ConversationId,
}

/// Whose conversations a list holds: a player's, a character's, or a pair's.
#[derive(Debug, Clone, Copy)]
pub enum ListOf<'a> {
    Player(&'a PlayerId),
    Character(&'a CharacterId),
    Pair(&'a PlayerId, &'a CharacterId),
}

/// Conversations newest first: a player's (`conversations_by_player`), a character's
/// with every player (`conversations_by_character_recent`), or one pair's; with `topic`,
/// only those whose topics hold it (exactly; topics are kept lower-case). The topic is
/// a filter on the rows the index walks, not an index of its own.
pub async fn list(
    pool: &MySqlPool,
    of: ListOf<'_>,
    topic: Option<&str>,
    after: Option<&ListPosition>,
    limit: u32,
) -> sqlx::Result<Vec<ConversationSummaryRow>> {
    let mut query = sqlx::QueryBuilder::new(SUMMARY_SELECT);
    match of {
        ListOf::Player(player_id) => {
            query
                .push("WHERE c.player_id = ")
                .push_bind(player_id.to_owned());
        }
        ListOf::Character(character_id) => {
            query
                .push("WHERE c.character_id = ")
                .push_bind(character_id.to_owned());
        }
        ListOf::Pair(player_id, character_id) => {
            query
                .push("WHERE c.player_id = ")
                .push_bind(player_id.to_owned())
                .push(" AND c.character_id = ")
                .push_bind(character_id.to_owned());
        }
    }
    if let Some(topic) = topic {
        // `topics` is TEXT holding a JSON array: JSON_CONTAINS reads it as JSON on MySQL 8
        // and MariaDB 10.6+ alike; NULL (no topics yet) matches nothing.
        query
            .push(" AND JSON_CONTAINS(c.topics, JSON_QUOTE(")
            .push_bind(topic.to_owned())
            .push("))");
    }
    if let Some(after) = after {
        query
            .push(" AND (c.updated_at < ")
            .push_bind(after.updated_at)
            .push(" OR (c.updated_at = ")
            .push_bind(after.updated_at)
            .push(" AND c.id < ")
            .push_bind(after.id.clone())
            .push("))");
    }
    query
        .push(" ORDER BY c.updated_at DESC, c.id DESC LIMIT ")
        .push_bind(limit);
    query.build_query_as().fetch_all(pool).await
}

pub async fn summary(
    pool: &MySqlPool,
    id: &ConversationId,
) -> sqlx::Result<Option<ConversationSummaryRow>> {
    let mut query = sqlx::QueryBuilder::new(SUMMARY_SELECT);
    query.push("WHERE c.id = ").push_bind(id.to_owned());
    query.build_query_as().fetch_optional(pool).await
}

/// One conversation as its list shows it, with its running summary.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationDetailRow {
    #[sqlx(flatten)]
    pub listed: ConversationSummaryRow,
    /// The running summary of messages 1..summary_seq; NULL until the first refresh.
    pub running_summary: Option<String>,
}

pub async fn detail(
    pool: &MySqlPool,
    id: &ConversationId,
) -> sqlx::Result<Option<ConversationDetailRow>> {
    let mut query = sqlx::QueryBuilder::new(DETAIL_SELECT);
    query.push("WHERE c.id = ").push_bind(id.to_owned());
    query.build_query_as().fetch_optional(pool).await
}

/// Moves the read marker forward to `up_to_seq`, never back and never past the last
/// message. False when the conversation does not exist.
pub async fn mark_read(
    pool: &MySqlPool,
    id: &ConversationId,
    up_to_seq: u32,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE conversations SET read_seq = GREATEST(read_seq, LEAST(?, last_seq)) WHERE id = ?",
    )
    .bind(up_to_seq)
    .bind(id)
    .execute(pool)
    .await?;
    // MySQL counts only changed rows; an unchanged marker still means the row exists.
    if result.rows_affected() == 1 {
        return Ok(true);
    }
    Ok(get(pool, id).await?.is_some())
}

/// Whether the player and the character have ever talked (or imported a history).
pub async fn pair_has_history(
    pool: &MySqlPool,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<bool> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM conversations WHERE player_id = ? AND character_id = ? LIMIT 1",
    )
    .bind(player_id)
    .bind(character_id)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Every conversation of the pair with its highest `seq`: how far each has come (one
/// statement over `conversations_by_character`). A conversation's messages up to its
/// `last_seq` are committed with it, so what this shows is there to read.
pub async fn last_seqs_of_pair<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<Vec<(ConversationId, u32)>> {
    sqlx::query_as(
        "SELECT id, last_seq FROM conversations WHERE character_id = ? AND player_id = ?",
    )
    .bind(character_id)
    .bind(player_id)
    .fetch_all(conn)
    .await
}
