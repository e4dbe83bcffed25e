//! Housekeeping: usage spooled while the database was away is written as soon as it is
//! back (checked every second), and what has outlived its retention is deleted every
//! `HOUSEKEEPING_INTERVAL_MS`, by every replica (the deletes are idempotent): stored
//! answers, quota calls older than the hour and reservations that expired. Turns leave
//! those to this, so that their transactions only read what counts.

use crate::{
    service::Services,
    store::{idempotency, spend},
};
use sqlx::{MySqlConnection, MySqlPool};
use std::{sync::Arc, time::Duration};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

/// How often spooled usage is offered to the database again.
const SPOOL_REPLAY_EVERY: Duration = Duration::from_secs(1);

/// Rows deleted per statement, so a large backlog never holds locks for long.
const BATCH: u32 = 1000;

/// Runs until `shutdown` turns true.
pub fn spawn(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = services.config.housekeeping_interval;
        let mut next_purge = Instant::now();
        while !*shutdown.borrow() {
            if services.ledger.spooled() > 0 {
                services.ledger.replay_spool().await;
            }
            if Instant::now() >= next_purge {
                if let Err(error) = purge_idempotency_keys(&services).await {
                    tracing::warn!(%error, "could not purge old idempotency keys; next time");
                }
                if let Err(error) = prune_spend_rows(&services.pool).await {
                    tracing::warn!(%error, "could not prune quota calls and reservations; next time");
                }
                next_purge = Instant::now() + interval;
            }
            let _ =
                tokio::time::timeout(SPOOL_REPLAY_EVERY.min(interval), shutdown.changed()).await;
        }
        // Last chance for spooled usage before the pool closes.
        if services.ledger.spooled() > 0 && services.ledger.replay_spool().await == 0 {
            tracing::error!(
                spooled = services.ledger.spooled(),
                "stopping with LLM usage that could not be recorded"
            );
        }
    })
}

/// Stored answers hold message text: none outlives `IDEMPOTENCY_RETENTION_HOURS`.
async fn purge_idempotency_keys(services: &Services) -> sqlx::Result<()> {
    let retention = services.config.idempotency_retention;
    let mut purged = 0;
    loop {
        let deleted = idempotency::purge(&services.pool, retention, BATCH).await?;
        purged += deleted;
        if deleted < u64::from(BATCH) {
            break;
        }
    }
    if purged > 0 {
        tracing::info!(purged, "purged idempotency keys past their retention");
    }
    Ok(())
}

/// Quota calls older than the hour and reservations past their expiry (their replica died
/// mid-call) no longer count: the sums already skip them.
async fn prune_spend_rows(pool: &MySqlPool) -> sqlx::Result<()> {
    let calls = prune_in_batches(pool, |conn| Box::pin(spend::prune_calls(conn, BATCH))).await?;
    let reservations = prune_in_batches(pool, |conn| {
        Box::pin(spend::prune_reservations(conn, BATCH))
    })
    .await?;
    if calls + reservations > 0 {
        tracing::debug!(
            calls,
            reservations,
            "pruned quota calls and expired reservations"
        );
    }
    Ok(())
}

type Pruned<'c> = std::pin::Pin<Box<dyn Future<Output = sqlx::Result<u64>> + Send + 'c>>;

/// Runs a batched delete until a batch comes back short, each batch in a READ COMMITTED
/// transaction of its own: it locks the rows it deletes and no gaps between them, so
/// the turns inserting beside them never wait for it.
async fn prune_in_batches(
    pool: &MySqlPool,
    delete: impl for<'c> Fn(&'c mut MySqlConnection) -> Pruned<'c>,
) -> sqlx::Result<u64> {
    let mut conn = pool.acquire().await?;
    let mut pruned = 0;
    loop {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *conn)
            .await?;
        let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
        let deleted = delete(&mut tx).await?;
        tx.commit().await?;
        pruned += deleted;
        if deleted < u64::from(BATCH) {
            return Ok(pruned);
        }
    }
}
