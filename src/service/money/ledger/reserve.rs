//! Reserving: a call's worst case held against the player's month, the global day and
//! the hourly quota, decided under the player's lock; and the reservation's life until it
//! is settled (`record`) or released.

use super::{CallFor, Ledger, LockedPlayer};
use crate::{
    domain::{PlayerId, Usd},
    service::{
        error::{ServiceError, ServiceResult},
        money::BudgetStatus,
    },
    store::{self, spend},
};
use chrono::Duration as ChronoDuration;
use sqlx::{MySqlConnection, MySqlPool};
use std::time::Duration;

/// A reservation outlives the call it covers by this much before it is presumed dead.
const RESERVATION_GRACE: Duration = Duration::from_secs(60);

/// Why a call may not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `PLAYER_LLM_CALLS_PER_HOUR` reached.
    RateLimited,
    /// The player's month, or the global day, cannot afford the worst case.
    BudgetExceeded,
}

/// What a reservation attempt came to.
enum Decided {
    Reserved(u64),
    Refused(Refusal),
    /// The player was erased since the call began.
    Erased,
}

/// A locked player's month (`Ledger::locked_month`): the budget and the quota's hour.
#[derive(Debug, Clone, Copy)]
pub struct LockedMonth {
    pub status: BudgetStatus,
    /// Calls that took a quota slot in the last hour.
    calls_last_hour: i64,
}

/// Worst-case money held for one call in flight. Settle it with the answer
/// (`Ledger::settle`) or `release` it; dropped while still held (the call was cancelled),
/// it is released in the background.
#[derive(Debug)]
pub struct Reservation {
    pub(super) id: u64,
    pool: MySqlPool,
    pub(super) held: bool,
}

impl Reservation {
    /// Leaves the reservation to expire: a paid attempt's usage could not be recorded,
    /// so the money stays counted until then.
    pub fn keep(mut self) {
        self.held = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (pool, id) = (self.pool.clone(), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = spend::delete_reservation(&pool, id).await {
                    tracing::warn!(%error, "could not release a dropped reservation; it will expire");
                }
            });
        }
    }
}

impl Ledger {
    /// Reserves a call of at most `worst_case`: one quota slot (when `take_quota`) and the
    /// worst case against the player's month and the global day, atomically.
    #[tracing::instrument(skip_all)]
    pub async fn reserve(
        &self,
        call: &CallFor<'_>,
        take_quota: bool,
        worst_case: Usd,
    ) -> ServiceResult<Result<Reservation, Refusal>> {
        let decided = store::retry_lock_conflicts(|| async {
            self.try_reserve(call, take_quota, worst_case)
                .await
                .map_err(ServiceError::from)
        })
        .await?;
        match decided {
            Decided::Reserved(id) => Ok(Ok(self.held(id))),
            Decided::Refused(refusal) => Ok(Err(refusal)),
            Decided::Erased => Err(ServiceError::PlayerErased(
                call.player_id.as_str().to_owned(),
            )),
        }
    }

    async fn try_reserve(
        &self,
        call: &CallFor<'_>,
        take_quota: bool,
        worst_case: Usd,
    ) -> sqlx::Result<Decided> {
        let player_id = call.player_id;
        let mut tx = self.pool.begin().await?;
        let locked = self.lock_player(&mut tx, player_id).await?;
        // Erased since the call began: reserving would bring the player back (dropping
        // the transaction undoes the row just made for them).
        if locked.generation != call.generation {
            return Ok(Decided::Erased);
        }
        let month = self.locked_month(&mut tx, player_id, &locked).await?;
        match self
            .reserve_locked(&mut tx, player_id, &locked, &month, take_quota, worst_case)
            .await?
        {
            Ok(id) => {
                tx.commit().await?;
                Ok(Decided::Reserved(id))
            }
            Err(refusal) => Ok(Decided::Refused(refusal)),
        }
    }

    /// The player's month and hour as the reservation decides on them, inside the
    /// transaction that locked the player (`spend::lock_player`): one statement.
    pub async fn locked_month(
        &self,
        tx: &mut MySqlConnection,
        player_id: &PlayerId,
        locked: &LockedPlayer,
    ) -> sqlx::Result<LockedMonth> {
        // Windows and expiries by the database's clock: a replica whose clock runs fast
        // must not see others' reservations as expired, nor a fuller hour as empty.
        let now = locked.now;
        let (spent, reserved, calls_last_hour) = spend::player_window(
            tx,
            player_id,
            &spend::month_of(now),
            now,
            now - ChronoDuration::hours(1),
        )
        .await?;
        let status = BudgetStatus {
            spent,
            reserved,
            limit: locked
                .own_limit
                .unwrap_or(self.config.player_monthly_budget_usd),
            warning_ratio: self.config.budget_warning_ratio,
        };
        Ok(LockedMonth {
            status,
            calls_last_hour,
        })
    }

    /// Decides a call of at most `worst_case` and, when it may go, takes its quota slot
    /// (when `take_quota`) and reserves its worst case: inside the caller's transaction,
    /// under the player's lock, `month` read there (`locked_month`). Nothing is written
    /// when the call is refused. The reservation is the caller's once the transaction
    /// commits (`Ledger::held`).
    pub async fn reserve_locked(
        &self,
        tx: &mut MySqlConnection,
        player_id: &PlayerId,
        locked: &LockedPlayer,
        month: &LockedMonth,
        take_quota: bool,
        worst_case: Usd,
    ) -> sqlx::Result<Result<u64, Refusal>> {
        let config = &self.config;
        let now = locked.now;
        if take_quota && month.calls_last_hour >= i64::from(config.player_llm_calls_per_hour) {
            return Ok(Err(Refusal::RateLimited));
        }
        if !month.status.affords(worst_case) {
            return Ok(Err(Refusal::BudgetExceeded));
        }
        if let Some(daily_cap) = config.global_daily_budget_usd {
            // Not under a global lock (that would serialize every player): concurrent turns
            // of different players may overshoot by the reservations in flight, as promised.
            let day = spend::day_spend(tx, now.date_naive()).await?
                + spend::reserved_globally(tx, now).await?;
            if day + worst_case > daily_cap {
                return Ok(Err(Refusal::BudgetExceeded));
            }
        }
        if take_quota {
            spend::insert_call(tx, player_id, now).await?;
        }
        let hold = ChronoDuration::from_std(config.llm.deadline + RESERVATION_GRACE)
            .unwrap_or(ChronoDuration::MAX);
        // Expired rows are ignored by the sums; housekeeping deletes them.
        let id = spend::insert_reservation(tx, player_id, worst_case, now, now + hold).await?;
        Ok(Ok(id))
    }

    /// The reservation `reserve_locked` made, once its transaction committed.
    pub fn held(&self, id: u64) -> Reservation {
        Reservation {
            id,
            pool: self.pool.clone(),
            held: true,
        }
    }
}
