//! The `conversations` table: each bound to one player and one character.

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: String,
    pub player_id: String,
    pub character_id: String,
    pub last_seq: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(pool: &MySqlPool, id: &str) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(
        "SELECT id, player_id, character_id, last_seq, created_at, updated_at
         FROM conversations WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
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
    id: &str,
    player_id: &str,
    character_id: &str,
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
        "SELECT id, player_id, character_id, last_seq, created_at, updated_at
         FROM conversations WHERE id = ? FOR UPDATE",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

pub async fn set_last_seq(
    conn: &mut MySqlConnection,
    id: &str,
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
