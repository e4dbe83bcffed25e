//! One turn at a time per conversation, across replicas: a lease row in MySQL, taken in
//! the transaction that begins the turn (`begin`) and given back in the one that stores
//! it (`write`), so no connection or transaction is held while the provider thinks.

use crate::{
    domain::ConversationId,
    store::{self, leases},
};
use sqlx::{MySqlConnection, MySqlPool};
use std::time::Duration;

/// The right to process one turn of a conversation; give it back with `release` (or
/// `release_in` the transaction that stores the turn).
#[derive(Debug)]
pub struct Lease {
    conversation_id: ConversationId,
    holder: String,
}

impl Lease {
    /// Takes the conversation's lease for `hold_for` (bounding how long a holder that
    /// died keeps others out), if it is free or expired. Inside a transaction, it is
    /// taken when that commits.
    pub async fn try_take(
        conn: &mut MySqlConnection,
        conversation_id: &ConversationId,
        hold_for: Duration,
    ) -> sqlx::Result<Option<Lease>> {
        let holder = uuid::Uuid::new_v4().to_string();
        let taken = leases::try_acquire(conn, conversation_id, &holder, hold_for).await?;
        Ok(taken.then(|| Lease {
            conversation_id: conversation_id.clone(),
            holder,
        }))
    }

    /// Gives the lease back inside the caller's transaction: it is free once that commits.
    pub async fn release_in(&self, conn: &mut MySqlConnection) -> sqlx::Result<()> {
        leases::release(conn, &self.conversation_id, &self.holder).await
    }

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
