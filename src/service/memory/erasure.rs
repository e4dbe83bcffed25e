//! The right to be forgotten.

use crate::{
    domain::PlayerId,
    service::{ServiceError, ServiceResult, Services},
    store::{self, erasure},
};
use anyhow::Context;

/// Right to be forgotten.
#[tracing::instrument(skip_all)]
pub async fn erase_player(services: &Services, player_id: &PlayerId) -> ServiceResult<()> {
    store::retry_lock_conflicts(|| try_erase(services, player_id)).await
}

async fn try_erase(services: &Services, player_id: &PlayerId) -> ServiceResult<()> {
    let mut tx = services.pool.begin().await.context("starting an erasure")?;
    let found = erasure::erase_player(&mut tx, player_id).await?;
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
