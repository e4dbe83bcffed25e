//! The `jobs` table: durable background work, claimed with `FOR UPDATE SKIP LOCKED`
//! under a claim token. Every time here is the database's clock.

use super::micros;
use crate::domain::{CharacterId, ConversationId, PlayerId};
use sqlx::{Acquire, MySqlConnection, MySqlPool};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRow {
    pub id: u64,
    pub kind: String,
    pub conversation_id: ConversationId,
    pub player_id: PlayerId,
    pub character_id: CharacterId,
    /// Including the current one.
    pub attempts: u32,
}

/// Schedules a job unless one of the same kind is already pending for the conversation.
pub async fn schedule(
    conn: &mut MySqlConnection,
    kind: &str,
    conversation_id: &ConversationId,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO jobs (kind, conversation_id, player_id, character_id, status, attempts,
             run_after, pending_key, created_at, updated_at)
         VALUES (?, ?, ?, ?, 'pending', 0, UTC_TIMESTAMP(6), ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))
         ON DUPLICATE KEY UPDATE updated_at = updated_at",
    )
    .bind(kind)
    .bind(conversation_id)
    .bind(player_id)
    .bind(character_id)
    .bind(format!("{kind}:{conversation_id}"))
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the oldest ready job (pending and due, or running with an expired lease) for
/// `lease`, under the claim `token` that every later update of it must name. Workers on
/// every replica can call this at once: `SKIP LOCKED` hands each a different row.
pub async fn claim(pool: &MySqlPool, lease: Duration, token: &str) -> sqlx::Result<Option<JobRow>> {
    let mut conn = pool.acquire().await?;
    // Read committed: the scan locks only the row it takes, not the gaps between pending
    // jobs, so turns scheduling new jobs never wait on (or deadlock with) a claim.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *conn)
        .await?;
    let mut tx = conn.begin().await?;
    let job: Option<JobRow> = sqlx::query_as(
        "SELECT id, kind, conversation_id, player_id, character_id, attempts FROM jobs
         WHERE (status = 'pending' AND run_after <= UTC_TIMESTAMP(6))
            OR (status = 'running' AND lease_until <= UTC_TIMESTAMP(6))
         ORDER BY run_after, id LIMIT 1
         FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(mut job) = job else {
        tx.commit().await?;
        return Ok(None);
    };
    sqlx::query(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1,
             lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, claim_token = ?,
             pending_key = NULL, updated_at = UTC_TIMESTAMP(6)
         WHERE id = ?",
    )
    .bind(micros(lease))
    .bind(token)
    .bind(job.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    job.attempts += 1;
    Ok(Some(job))
}

/// Extends the lease of a job still held under `token`; false when it is not (another
/// worker took it over after the lease ran out).
pub async fn heartbeat(
    pool: &MySqlPool,
    id: u64,
    token: &str,
    lease: Duration,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE jobs SET lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
         WHERE id = ? AND claim_token = ? AND status = 'running'",
    )
    .bind(micros(lease))
    .bind(id)
    .bind(token)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Done: the job goes. False when the claim was no longer `token`'s.
pub async fn complete(pool: &MySqlPool, id: u64, token: &str) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM jobs WHERE id = ? AND claim_token = ?")
        .bind(id)
        .bind(token)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Back to pending, due after `delay`. `counted` false gives the attempt back (the job
/// was deferred, not failed). False when the claim was no longer `token`'s.
pub async fn reschedule(
    pool: &MySqlPool,
    id: u64,
    token: &str,
    delay: Duration,
    error: Option<&str>,
    counted: bool,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE jobs SET status = 'pending', lease_until = NULL, claim_token = NULL,
             run_after = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND,
             last_error = COALESCE(?, last_error),
             attempts = IF(?, attempts, GREATEST(attempts, 1) - 1), updated_at = UTC_TIMESTAMP(6)
         WHERE id = ? AND claim_token = ?",
    )
    .bind(micros(delay))
    .bind(error)
    .bind(counted)
    .bind(id)
    .bind(token)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives up on a job: kept with its last error, visible in metrics, never retried. False
/// when the claim was no longer `token`'s.
pub async fn park(pool: &MySqlPool, id: u64, token: &str, error: &str) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE jobs SET status = 'parked', lease_until = NULL, claim_token = NULL,
             last_error = ?, updated_at = UTC_TIMESTAMP(6)
         WHERE id = ? AND claim_token = ?",
    )
    .bind(error)
    .bind(id)
    .bind(token)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Jobs by status with the age (µs, by the database's clock) of the oldest of each, for
/// `/metrics`: one scan of the `jobs_ready (status, run_after)` index, a table that holds
/// only unfinished work.
pub async fn queue_stats(pool: &MySqlPool) -> sqlx::Result<Vec<(String, i64, i64)>> {
    sqlx::query_as(
        "SELECT status, COUNT(*),
             CAST(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), UTC_TIMESTAMP(6)) AS SIGNED)
         FROM jobs GROUP BY status",
    )
    .fetch_all(pool)
    .await
}
