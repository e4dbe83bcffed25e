//! Housekeeping: what has outlived its retention is deleted, every
//! `HOUSEKEEPING_INTERVAL_MS`, by every replica (the deletes are idempotent).

use crate::{service::Services, store::idempotency};
use std::sync::Arc;
use tokio::{sync::watch, task::JoinHandle};

/// Rows deleted per statement, so a large backlog never holds locks for long.
const BATCH: u32 = 1000;

/// Runs until `shutdown` turns true.
pub fn spawn(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = services.config.housekeeping_interval;
        while !*shutdown.borrow() {
            if let Err(error) = purge_idempotency_keys(&services).await {
                tracing::warn!(%error, "could not purge old idempotency keys; next time");
            }
            let _ = tokio::time::timeout(interval, shutdown.changed()).await;
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
