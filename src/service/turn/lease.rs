//! One turn at a time per conversation, across replicas: a lease row in MySQL, polled for
//! (with backoff, see `polling`), so no connection or transaction is held while the
//! provider thinks.

use super::polling::Poller;
use crate::{
    domain::ConversationId,
    service::{ServiceError, ServiceResult},
    store::{self, leases},
};
use sqlx::MySqlPool;
use std::time::Duration;

/// The right to process one turn of a conversation; give it back with `release`.
#[derive(Debug)]
pub struct Lease {
    conversation_id: ConversationId,
    holder: String,
}

/// Waits up to `wait` for the conversation's lease, then answers 409 `conversation_busy`.
/// `hold_for` bounds how long a holder that died keeps others out.
pub async fn acquire(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    hold_for: Duration,
    wait: Duration,
) -> ServiceResult<Lease> {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut poller = Poller::new(wait);
    loop {
        match leases::try_acquire(pool, conversation_id, &holder, hold_for).await {
            Ok(true) => {
                return Ok(Lease {
                    conversation_id: conversation_id.clone(),
                    holder,
                });
            }
            Ok(false) => {}
            // Waiters inserting the same key while the holder deletes it can deadlock in
            // InnoDB; for a waiter that is just another "not yet".
            Err(error) if store::is_lock_conflict(&error) => {}
            Err(error) => return Err(error.into()),
        }
        if !poller.pause().await {
            return Err(ServiceError::ConversationBusy);
        }
    }
}

impl Lease {
    /// Best effort: a lease not released expires after `hold_for`.
    pub async fn release(self, pool: &MySqlPool) {
        let released = store::retry_lock_conflicts(|| {
            leases::release(pool, &self.conversation_id, &self.holder)
        })
        .await;
        if let Err(error) = released {
            tracing::warn!(%error, "could not release a conversation lease; it will expire");
        }
    }
}
