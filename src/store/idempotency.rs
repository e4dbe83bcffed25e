//! The `idempotency_keys` table: a key per conversation, its request's hash and, once
//! the turn is stored, its response.

use crate::domain::ConversationId;
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool};

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
    expires_at: DateTime<Utc>,
}

/// Claims `key` for `token`, in a short transaction of its own.
pub async fn claim(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    key: &str,
    request_hash: &str,
    token: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Claim> {
    let mut tx = pool.begin().await?;
    // Creates the row or, when it exists, locks it exclusively (see conversations.rs).
    sqlx::query(
        "INSERT INTO idempotency_keys (conversation_id, idempotency_key, request_hash, claim_token, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE conversation_id = conversation_id",
    )
    .bind(conversation_id)
    .bind(key)
    .bind(request_hash)
    .bind(token)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    let row: Row = sqlx::query_as(
        "SELECT request_hash, claim_token, response, expires_at FROM idempotency_keys
         WHERE conversation_id = ? AND idempotency_key = ? FOR UPDATE",
    )
    .bind(conversation_id)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    let claim = if row.claim_token == token {
        Claim::Claimed
    } else if let Some(response) = row.response {
        Claim::Done {
            request_hash: row.request_hash,
            response,
        }
    } else if row.expires_at <= now {
        // The first request's replica died mid-turn; nothing of it was stored.
        sqlx::query(
            "UPDATE idempotency_keys SET request_hash = ?, claim_token = ?, created_at = ?, expires_at = ?
             WHERE conversation_id = ? AND idempotency_key = ?",
        )
        .bind(request_hash)
        .bind(token)
        .bind(now)
        .bind(expires_at)
        .bind(conversation_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        Claim::Claimed
    } else {
        Claim::InProgress {
            request_hash: row.request_hash,
        }
    };
    tx.commit().await?;
    Ok(claim)
}

/// Stores the response, inside the turn's own transaction: the key is done exactly when
/// the turn is stored.
pub async fn complete(
    conn: &mut MySqlConnection,
    conversation_id: &ConversationId,
    key: &str,
    token: &str,
    response: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response = ?
         WHERE conversation_id = ? AND idempotency_key = ? AND claim_token = ?",
    )
    .bind(response)
    .bind(conversation_id)
    .bind(key)
    .bind(token)
    .execute(conn)
    .await?;
    Ok(())
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
