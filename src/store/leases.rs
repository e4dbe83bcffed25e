//! The `conversation_leases` table: who may process a turn of a conversation right now.
//! Expiries are the database's clock, never a replica's.

use super::micros;
use crate::domain::ConversationId;
use sqlx::{MySqlConnection, MySqlExecutor};
use std::time::Duration;

/// Takes the lease for `hold` if it is free or expired: one statement when it is free
/// (the usual case), two when a row is there. Run inside the transaction that begins the
/// turn, the lease is taken when that commits.
pub async fn try_acquire(
    conn: &mut MySqlConnection,
    conversation_id: &ConversationId,
    holder: &str,
    hold: Duration,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT IGNORE INTO conversation_leases (conversation_id, holder, expires_at)
         VALUES (?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)",
    )
    .bind(conversation_id)
    .bind(holder)
    .bind(micros(hold))
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(true);
    }
    let taken_over = sqlx::query(
        "UPDATE conversation_leases
         SET holder = ?, expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
         WHERE conversation_id = ? AND expires_at <= UTC_TIMESTAMP(6)",
    )
    .bind(holder)
    .bind(micros(hold))
    .bind(conversation_id)
    .execute(conn)
    .await?;
    Ok(taken_over.rows_affected() == 1)
}

pub async fn release<'c>(
    conn: impl MySqlExecutor<'c>,
    conversation_id: &ConversationId,
    holder: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM conversation_leases WHERE conversation_id = ? AND holder = ?")
        .bind(conversation_id)
        .bind(holder)
        .execute(conn)
        .await?;
    Ok(())
}
