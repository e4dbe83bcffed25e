//! The `idempotency_keys` table: a key per conversation, its request's hash and, once
//! the turn is stored, its response. Every expiry is computed with the database's clock,
//! so replicas whose clocks disagree still agree on who holds a key.

use super::micros;
use crate::domain::ConversationId;
use sqlx::{MySqlConnection, MySqlPool};
use std::time::Duration;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours to process (new, or taken over from a request that died).
    Claimed,
    /// An earlier request with this key is done; here is what it answered.
    Done {
        request_hash: String,
        response: String,
    },
    /// An earlier request with this key is still being processed.
    InProgress { request_hash: String },
}

#[derive(sqlx::FromRow)]
struct Row {
    request_hash: String,
    claim_token: String,
    response: Option<String>,
    /// The claim's holder is presumed dead.
    expired: i64,
    /// Older than the retention period: as good as purged.
    stale: i64,
}

/// Claims `key` for `token` for `hold` (a key in progress longer than that is presumed
/// dead), in a short transaction of its own. An answer older than `retention` no longer
/// counts: the key is processed afresh.
pub async fn claim(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    key: &str,
    request_hash: &str,
    token: &str,
    hold: Duration,
    retention: Duration,
) -> sqlx::Result<Claim> {
    let mut tx = pool.begin().await?;
    // Creates the row or, when it exists, locks it exclusively (see conversations.rs).
    sqlx::query(
        "INSERT INTO idempotency_keys (conversation_id, idempotency_key, request_hash, claim_token, created_at, expires_at)
         VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
         ON DUPLICATE KEY UPDATE conversation_id = conversation_id",
    )
    .bind(conversation_id)
    .bind(key)
    .bind(request_hash)
    .bind(token)
    .bind(micros(hold))
    .execute(&mut *tx)
    .await?;
    let row: Row = sqlx::query_as(
        "SELECT request_hash, claim_token, response,
             CAST(expires_at <= UTC_TIMESTAMP(6) AS SIGNED) AS expired,
             CAST(created_at <= UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND AS SIGNED) AS stale
         FROM idempotency_keys
         WHERE conversation_id = ? AND idempotency_key = ? FOR UPDATE",
    )
    .bind(micros(retention))
    .bind(conversation_id)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    let claim = match row.response {
        _ if row.claim_token == token => Claim::Claimed,
        Some(response) if row.stale == 0 => Claim::Done {
            request_hash: row.request_hash,
            response,
        },
        None if row.expired == 0 => Claim::InProgress {
            request_hash: row.request_hash,
        },
        // The first request's replica died mid-turn (nothing of it was stored), or its
        // answer is past the retention period: this request starts afresh.
        _ => {
            sqlx::query(
                "UPDATE idempotency_keys
                 SET request_hash = ?, claim_token = ?, response = NULL,
                     created_at = UTC_TIMESTAMP(6), expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
                 WHERE conversation_id = ? AND idempotency_key = ?",
            )
            .bind(request_hash)
            .bind(token)
            .bind(micros(hold))
            .bind(conversation_id)
            .bind(key)
            .execute(&mut *tx)
            .await?;
            Claim::Claimed
        }
    };
    tx.commit().await?;
    Ok(claim)
}

/// Stores the response, inside the turn's own transaction: the key is done exactly when
/// the turn is stored. False when the claim is no longer `token`'s (another request
/// took the key over): the turn must then not be stored.
pub async fn complete(
    conn: &mut MySqlConnection,
    conversation_id: &ConversationId,
    key: &str,
    token: &str,
    response: &str,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE idempotency_keys SET response = ?
         WHERE conversation_id = ? AND idempotency_key = ? AND claim_token = ? AND response IS NULL",
    )
    .bind(response)
    .bind(conversation_id)
    .bind(key)
    .bind(token)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Frees the key after a failed turn, so the game's retry is processed afresh.
pub async fn abandon(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    key: &str,
    token: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys
         WHERE conversation_id = ? AND idempotency_key = ? AND claim_token = ? AND response IS NULL",
    )
    .bind(conversation_id)
    .bind(key)
    .bind(token)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes up to `batch` keys (and the answers they keep, which hold message text)
/// created before the retention period; the number deleted.
pub async fn purge(pool: &MySqlPool, retention: Duration, batch: u32) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "DELETE FROM idempotency_keys
         WHERE created_at <= UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND
         LIMIT ?",
    )
    .bind(micros(retention))
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
