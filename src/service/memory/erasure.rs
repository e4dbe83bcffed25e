//! The right to be forgotten.

use crate::{
    domain::PlayerId,
    service::{ServiceError, ServiceResult, Services},
    store::{self, erasure},
};
use anyhow::Context;

/// Right to be forgotten: the player's data goes; this month's spend, the limit and the
/// quota carry over under a keyed hash of the id; turns, calls and jobs begun before
/// write nothing back (the erasure count they read has changed).
#[tracing::instrument(skip_all)]
pub async fn erase_player(services: &Services, player_id: &PlayerId) -> ServiceResult<()> {
    store::retry_lock_conflicts(|| try_erase(services, player_id)).await
}

async fn try_erase(services: &Services, player_id: &PlayerId) -> ServiceResult<()> {
    let mut tx = services.pool.begin().await.context("starting an erasure")?;
    let now = store::database_now(&mut *tx).await?;
    let key = services.keys.key(player_id);
    let month = crate::service::money::ledger::month_of(now);
    let found = erasure::erase_player(&mut tx, player_id, &key, &month, now).await?;
    if !found {
        return Err(ServiceError::NotFound(format!(
            "player {:?} not found",
            player_id.as_str()
        )));
    }
    tx.commit().await.context("committing an erasure")?;
    tracing::info!("player erased");
    Ok(())
}
