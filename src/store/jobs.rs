//! The `jobs` table: durable background work, claimed with `FOR UPDATE SKIP LOCKED`.

use crate::domain::{CharacterId, ConversationId, PlayerId};
use chrono::{DateTime, Utc};
use sqlx::{Acquire, MySqlConnection, MySqlPool};

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
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO jobs (kind, conversation_id, player_id, character_id, status, attempts,
             run_after, pending_key, created_at, updated_at)
         VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE updated_at = updated_at",
    )
    .bind(kind)
    .bind(conversation_id)
    .bind(player_id)
    .bind(character_id)
    .bind(now)
    .bind(format!("{kind}:{conversation_id}"))
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the oldest ready job (pending and due, or running with an expired lease) for
/// `lease_until`. Workers on every replica can call this at once: `SKIP LOCKED` hands
/// each a different row.
pub async fn claim(
    pool: &MySqlPool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> sqlx::Result<Option<JobRow>> {
    let mut conn = pool.acquire().await?;
    // Read committed: the scan locks only the row it takes, not the gaps between pending
    // jobs, so turns scheduling new jobs never wait on (or deadlock with) a claim.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *conn)
        .await?;
    let mut tx = conn.begin().await?;
    let job: Option<JobRow> = sqlx::query_as(
        "SELECT id, kind, conversation_id, player_id, character_id, attempts FROM jobs
         WHERE (status = 'pending' AND run_after <= ?) OR (status = 'running' AND lease_until <= ?)
         ORDER BY run_after, id LIMIT 1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(mut job) = job else {
        tx.commit().await?;
        return Ok(None);
    };
    sqlx::query(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?,
             pending_key = NULL, updated_at = ?
         WHERE id = ?",
    )
    .bind(lease_until)
    .bind(now)
    .bind(job.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    job.attempts += 1;
    Ok(Some(job))
}

pub async fn complete(pool: &MySqlPool, id: u64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM jobs WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Back to pending, due at `run_after`. `counted` false gives the attempt back (the job
/// was deferred or interrupted, not failed).
pub async fn reschedule(
    pool: &MySqlPool,
    id: u64,
    run_after: DateTime<Utc>,
    error: Option<&str>,
    counted: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'pending', lease_until = NULL, run_after = ?,
             last_error = COALESCE(?, last_error),
             attempts = IF(?, attempts, GREATEST(attempts, 1) - 1), updated_at = ?
         WHERE id = ?",
    )
    .bind(run_after)
    .bind(error)
    .bind(counted)
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives up on a job: kept with its last error, visible in metrics, never retried.
pub async fn park(pool: &MySqlPool, id: u64, error: &str, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'parked', lease_until = NULL, last_error = ?, updated_at = ? WHERE id = ?",
    )
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Jobs by status, for metrics and tests.
pub async fn counts(pool: &MySqlPool) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")
        .fetch_all(pool)
        .await
}

/// Jobs by status with the creation time of the oldest of each, for `/metrics`: one
/// scan of the `jobs_ready (status, run_after)` index, a table that holds only unfinished
/// work.
pub async fn queue_stats(pool: &MySqlPool) -> sqlx::Result<Vec<(String, i64, DateTime<Utc>)>> {
    sqlx::query_as("SELECT status, COUNT(*), MIN(created_at) FROM jobs GROUP BY status")
        .fetch_all(pool)
        .await
}
