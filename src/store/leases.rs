//! The `conversation_leases` table: who may process a turn of a conversation right now.

use crate::domain::ConversationId;
use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

/// Takes the lease if it is free or expired. Two autocommit statements, so no lock is
/// held between them or afterwards.
pub async fn try_acquire(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    holder: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT IGNORE INTO conversation_leases (conversation_id, holder, expires_at) VALUES (?, ?, ?)",
    )
    .bind(conversation_id)
    .bind(holder)
    .bind(expires_at)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(true);
    }
    let taken_over = sqlx::query(
        "UPDATE conversation_leases SET holder = ?, expires_at = ?
         WHERE conversation_id = ? AND expires_at <= ?",
    )
    .bind(holder)
    .bind(expires_at)
    .bind(conversation_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(taken_over.rows_affected() == 1)
}

pub async fn release(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    holder: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM conversation_leases WHERE conversation_id = ? AND holder = ?")
        .bind(conversation_id)
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}
