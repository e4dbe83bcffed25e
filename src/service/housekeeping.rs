//! Housekeeping: usage spooled while the database was away is written as soon as it is
//! back (checked every second), and what has outlived its retention is deleted every
//! `HOUSEKEEPING_INTERVAL_MS`, by every replica (the deletes are idempotent): stored
//! answers, quota calls older than the hour and reservations that expired. Turns leave
//! those to this, so that their transactions only read what counts. With embeddings on,
//! it also finds history without a vector of the current model and schedules it.

use crate::{service::Services, store::idempotency};
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
                if let Err(error) = services.ledger.prune_expired().await {
                    tracing::warn!(%error, "could not prune quota calls and reservations; next time");
                }
                if let Err(error) = crate::service::memory::embeddings::sweep(&services).await {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "could not sweep for history to embed; next time"
                    );
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
