//! The money ledger: the whole life of a reservation (reserve before a call, settle with
//! its usage row, or release) and the usage row of every attempt that reached the
//! provider. Every paid call goes through here, so spend is counted one way only.
//!
//! Reserving runs in a transaction that locks the player's row: concurrent turns of one
//! player, on any replica, take their decisions one at a time. A reservation that its
//! replica never settled (it died mid-call) expires and stops counting.
//!
//! `reserve` decides and holds a call's worst case; `record` writes what an attempt cost
//! (and spools it while the database will not take it); here, prices and the player's
//! month as they are read, and the one door to locking a player.

mod record;
mod reserve;

pub use crate::store::spend::{LockedPlayer, month_of};
pub use record::{PendingUsage, Unrecorded};
pub use reserve::{LockedMonth, Refusal, Reservation};

use super::BudgetStatus;
use crate::{
    config::Config,
    domain::{CharacterId, ConversationId, PlayerId, PlayerKeys, Usd, prices::Pricing},
    llm::Purpose,
    store::spend,
};
use record::Spooled;
use sqlx::{MySqlConnection, MySqlPool};
use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
};

/// Spend rows housekeeping deletes per statement, so a backlog never holds locks long.
const PRUNE_BATCH: u32 = 1000;

/// Who a call was for, stored with its usage rows.
#[derive(Debug, Clone, Copy)]
pub struct CallFor<'a> {
    pub player_id: &'a PlayerId,
    /// The player's erasure count when the work began (`store::erasure::generation`):
    /// if it changed, the call reserves nothing and its usage is recorded unlinked.
    pub generation: u32,
    pub conversation_id: Option<&'a ConversationId>,
    pub character_id: Option<&'a CharacterId>,
    pub purpose: Purpose,
}

/// Prices, limits and the database: everything that turns tokens into money.
#[derive(Debug)]
pub struct Ledger {
    pool: MySqlPool,
    config: Arc<Config>,
    /// Models already warned about, so an unpriced model logs once, not once per call.
    unpriced_warned: Mutex<HashSet<String>>,
    /// Usage of calls that reached the provider while the database could not record it.
    spool: Mutex<VecDeque<Spooled>>,
    keys: PlayerKeys,
}

impl Ledger {
    pub fn new(pool: MySqlPool, config: Arc<Config>, keys: PlayerKeys) -> Self {
        Self {
            keys,
            pool,
            config,
            unpriced_warned: Mutex::new(HashSet::new()),
            spool: Mutex::new(VecDeque::new()),
        }
    }

    /// Quota calls older than the hour and reservations past their expiry (their
    /// replica died mid-call) no longer count: the sums already skip them. Pruned a
    /// batch at a time by housekeeping.
    pub async fn prune_expired(&self) -> sqlx::Result<()> {
        let calls = spend::prune_calls(&self.pool, PRUNE_BATCH).await?;
        let reservations = spend::prune_reservations(&self.pool, PRUNE_BATCH).await?;
        if calls + reservations > 0 {
            tracing::debug!(
                calls,
                reservations,
                "pruned quota calls and expired reservations"
            );
        }
        Ok(())
    }

    /// Locks the player's row in `tx` (creating it, with its erasure generation, the
    /// first time), as every transaction that touches a player's money or existence
    /// begins: the one door to `spend::lock_player`.
    pub async fn lock_player(
        &self,
        tx: &mut MySqlConnection,
        player_id: &PlayerId,
    ) -> sqlx::Result<LockedPlayer> {
        spend::lock_player(
            tx,
            player_id,
            &self.keys.key(player_id),
            crate::clock::now(),
        )
        .await
    }

    /// The model's price; one assumed for an unknown model is warned about once.
    fn pricing(&self, model: &str) -> Pricing {
        let pricing = self.config.prices.pricing(model);
        if pricing.assumed {
            let first_time = self
                .unpriced_warned
                .lock()
                .map(|mut warned| warned.insert(model.to_owned()))
                .unwrap_or(false);
            if first_time {
                tracing::warn!(
                    model,
                    "no price known for this model; its calls are charged at the assumed price \
                     (the prices file's \"*\" entry, else the highest known prices; set MODEL_PRICES_FILE)"
                );
            }
        }
        pricing
    }

    /// Cost of a call, at the model's price or the one assumed for it.
    pub fn cost(&self, model: &str, prompt_tokens: u32, completion_tokens: u32) -> Usd {
        self.pricing(model)
            .price
            .cost(prompt_tokens, completion_tokens)
    }

    /// Reads the player's month without locking (for choosing a model, for dashboards).
    pub async fn status(&self, player_id: &PlayerId) -> sqlx::Result<BudgetStatus> {
        self.month_status(player_id).await.map(|(_, status)| status)
    }

    /// As `status`, with the month (`YYYY-MM`, by the database's clock) it is of.
    pub async fn month_status(&self, player_id: &PlayerId) -> sqlx::Result<(String, BudgetStatus)> {
        // One connection for the three reads (background work asks before every call).
        let mut conn = self.pool.acquire().await?;
        let (now, own_limit) = spend::clock_and_limit(&mut conn, player_id).await?;
        let month = spend::month_of(now);
        let status = BudgetStatus {
            spent: spend::month_spend(&mut *conn, player_id, &month).await?,
            reserved: spend::reserved(&mut *conn, player_id, now).await?,
            limit: own_limit.unwrap_or(self.config.player_monthly_budget_usd),
            warning_ratio: self.config.budget_warning_ratio,
        };
        Ok((month, status))
    }
}
