//! The money ledger: the whole life of a reservation (reserve before a call, settle with
//! its usage row, or release) and the usage row of every attempt that reached the
//! provider. Every paid call goes through here, so spend is counted one way only.
//!
//! Reserving runs in a transaction that locks the player's row: concurrent turns of one
//! player, on any replica, take their decisions one at a time. A reservation that its
//! replica never settled (it died mid-call) expires and stops counting.

use super::{BudgetStatus, Spent};
pub use crate::store::spend::{LockedPlayer, month_of};
use crate::{
    config::Config,
    domain::{CharacterId, ConversationId, PlayerId, PlayerKeys, Usd, prices::Pricing},
    llm::{Completion, LlmError, Purpose},
    metrics,
    service::error::{ServiceError, ServiceResult},
    store::{
        self, erasure, spend,
        usage::{self as usage_store, NewUsageRecord},
    },
};

/// Spend rows housekeeping deletes per statement, so a backlog never holds locks long.
const PRUNE_BATCH: u32 = 1000;
use anyhow::Context;
use chrono::Duration as ChronoDuration;
use sqlx::{MySqlConnection, MySqlPool};
use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

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

/// Worst-case money held for one call in flight. Settle it with the answer
/// (`Ledger::settle`) or `release` it; dropped while still held (the call was cancelled),
/// it is released in the background.
#[derive(Debug)]
pub struct Reservation {
    id: u64,
    pool: MySqlPool,
    held: bool,
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

/// Usage records kept in memory at most while the database cannot take them.
const SPOOL_CAPACITY: usize = 10_000;

/// A paid attempt's usage could not be written: it is spooled for replay, and the call
/// must not pretend all is well (the turn answers 503).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("LLM usage could not be recorded; it is spooled for replay")]
pub struct Unrecorded {
    /// What the attempt cost, recorded or not.
    pub spent: Spent,
}

#[derive(Debug)]
struct Spooled {
    record: NewUsageRecord,
    settles: Option<u64>,
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

    /// Records an attempt that failed when another follows; the reservation stays held
    /// for it. If the write fails, the record is spooled for replay (`replay_spool`).
    pub async fn record_retried(
        &self,
        call: &CallFor<'_>,
        model: &str,
        error: &LlmError,
    ) -> Result<Spent, Unrecorded> {
        self.write(call, model, Err(error), None).await
    }

    /// Records the attempt that ended the call, answered or not, and settles the call's
    /// reservation with it, in one transaction. If the write fails, the record is spooled
    /// with the reservation to settle on replay, and the reservation is kept meanwhile:
    /// what was spent stays counted.
    pub async fn close(
        &self,
        mut reservation: Reservation,
        call: &CallFor<'_>,
        model: &str,
        result: Result<&Completion, &LlmError>,
    ) -> Result<Spent, Unrecorded> {
        // Settled by the write or by its replay; if neither, it expires counted.
        reservation.held = false;
        self.write(call, model, result, Some(reservation.id)).await
    }

    /// As `close` for an answer, but the usage row and the settlement are left to the
    /// caller's transaction (`write_pending`), so that a turn stores its reply and what it
    /// cost in one commit. Pending usage that transaction did not write must go to
    /// `settle_pending`: until then, the reservation keeps the money counted.
    pub fn close_later(
        &self,
        mut reservation: Reservation,
        call: &CallFor<'_>,
        model: &str,
        completion: &Completion,
    ) -> (Spent, PendingUsage) {
        reservation.held = false;
        let (spent, record) = self.price(call, model, Ok(completion));
        let pending = PendingUsage {
            record,
            spent,
            settles: reservation.id,
        };
        (spent, pending)
    }

    /// Writes pending usage inside the caller's transaction, which has checked that the
    /// player was not erased since the call began (so the row is linked).
    pub async fn write_pending(
        &self,
        tx: &mut MySqlConnection,
        pending: &PendingUsage,
    ) -> anyhow::Result<()> {
        write_record_in(tx, &pending.record, Some(pending.settles), false).await
    }

    /// Writes pending usage on its own: its caller's transaction did not commit. Spooled
    /// for replay if the database will not take it.
    pub async fn settle_pending(&self, pending: PendingUsage) -> Result<Spent, Unrecorded> {
        self.commit_record(pending.record, Some(pending.settles), pending.spent)
            .await
    }

    /// Writes the spooled records in order, until one fails again; how many were written.
    pub async fn replay_spool(&self) -> usize {
        let mut written = 0;
        loop {
            let next = self
                .spool
                .lock()
                .ok()
                .and_then(|mut spool| spool.pop_front());
            let Some(spooled) = next else { break };
            match self.write_record(&spooled.record, spooled.settles).await {
                Ok(()) => written += 1,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "spooled usage still cannot be recorded"
                    );
                    if let Ok(mut spool) = self.spool.lock() {
                        spool.push_front(spooled);
                    }
                    break;
                }
            }
        }
        metrics::usage_spooled(self.spooled());
        if written > 0 {
            tracing::info!(written, "recorded spooled usage");
        }
        written
    }

    /// Usage records waiting for the database.
    pub fn spooled(&self) -> usize {
        self.spool.lock().map(|spool| spool.len()).unwrap_or(0)
    }

    fn spool(&self, record: NewUsageRecord, settles: Option<u64>) {
        let Ok(mut spool) = self.spool.lock() else {
            return;
        };
        if spool.len() >= SPOOL_CAPACITY {
            // Bounded: a database gone for good must not take the memory with it.
            if let Some(lost) = spool.pop_front() {
                tracing::error!(
                    player_id = %lost.record.player_id,
                    cost_usd = %lost.record.cost_usd,
                    "usage spool full; the oldest record is lost"
                );
            }
        }
        spool.push_back(Spooled { record, settles });
        metrics::usage_spooled(spool.len());
    }

    /// The usage row of one attempt, its cost added to the spend counters and, when
    /// given, the reservation it settles: one transaction. Attempts that never reached the
    /// provider (connection refused) cost nothing and get no row.
    async fn write(
        &self,
        call: &CallFor<'_>,
        model: &str,
        result: Result<&Completion, &LlmError>,
        settles: Option<u64>,
    ) -> Result<Spent, Unrecorded> {
        let reached = result.err().is_none_or(|error| error.reached_provider());
        let (spent, record) = self.price(call, model, result);
        if !reached {
            // Nothing to bill; a call that ends here only gives its reservation back.
            if let Some(reservation) = settles
                && let Err(error) = spend::delete_reservation(&self.pool, reservation).await
            {
                tracing::warn!(%error, "could not release a budget reservation; it will expire");
            }
            return Ok(spent);
        }
        self.commit_record(record, settles, spent).await
    }

    /// What an attempt cost and its usage row, not yet written; counted in the metrics
    /// here, where every attempt of every purpose passes, rather than where the row
    /// commits: a failed write must not hide what the provider was paid. An attempt that
    /// never reached the provider costs nothing.
    fn price(
        &self,
        call: &CallFor<'_>,
        model: &str,
        result: Result<&Completion, &LlmError>,
    ) -> (Spent, NewUsageRecord) {
        let (usage, latency, outcome, http_status) = match result {
            Ok(completion) => (Some(completion.usage), completion.latency, "success", None),
            Err(error) => (
                error.billed,
                error.latency,
                error.outcome(),
                error.http_status(),
            ),
        };
        let (prompt_tokens, completion_tokens, estimated) = usage
            .map(|usage| {
                (
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.estimated,
                )
            })
            .unwrap_or_default();
        let reached = result.err().is_none_or(|error| error.reached_provider());
        let pricing = self.pricing(model);
        let spent = if reached {
            if pricing.assumed {
                metrics::unpriced_call(model);
            }
            Spent {
                prompt_tokens,
                completion_tokens,
                cost_usd: pricing.price.cost(prompt_tokens, completion_tokens),
            }
        } else {
            Spent::default()
        };
        metrics::llm_call(
            call.purpose.as_str(),
            model,
            outcome,
            latency,
            spent.prompt_tokens,
            spent.completion_tokens,
            spent.cost_usd,
        );
        let record = NewUsageRecord {
            player_id: call.player_id.clone(),
            player_key: self.keys.key(call.player_id),
            generation: call.generation,
            conversation_id: call.conversation_id.cloned(),
            character_id: call.character_id.cloned(),
            purpose: call.purpose.as_str(),
            model: model.to_owned(),
            prompt_tokens: spent.prompt_tokens,
            completion_tokens: spent.completion_tokens,
            tokens_estimated: estimated,
            cost_usd: spent.cost_usd,
            price_assumed: pricing.assumed,
            latency_ms: u32::try_from(latency.as_millis()).unwrap_or(u32::MAX),
            outcome,
            http_status,
            created_at: crate::clock::now(),
        };
        (spent, record)
    }

    /// Writes a record in its own transaction (lock conflicts retried); spooled for
    /// replay when the database will not take it.
    async fn commit_record(
        &self,
        record: NewUsageRecord,
        settles: Option<u64>,
        spent: Spent,
    ) -> Result<Spent, Unrecorded> {
        match store::retry_lock_conflicts(|| self.write_record(&record, settles)).await {
            Ok(()) => Ok(spent),
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "cannot record LLM usage; spooled for replay"
                );
                self.spool(record, settles);
                Err(Unrecorded { spent })
            }
        }
    }

    async fn write_record(
        &self,
        record: &NewUsageRecord,
        settles: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await.context("starting a usage record")?;
        // A player erased since the call began: the row keeps its figures, unlinked, and
        // the spend counts against what the erasure carries over, under no id.
        let erased = erasure::generation_locked(&mut tx, &record.player_key)
            .await
            .context("reading the player's erasures")?
            != record.generation;
        write_record_in(&mut tx, record, settles, erased).await?;
        tx.commit().await.context("committing a usage record")?;
        Ok(())
    }
}

/// A paid answer's usage, priced but not written yet (`Ledger::close_later`).
#[derive(Debug)]
pub struct PendingUsage {
    record: NewUsageRecord,
    spent: Spent,
    /// The reservation it settles.
    settles: u64,
}

/// The usage row, the spend counters (or, for a player erased since the call began, the
/// erasure's carry) and the settled reservation, inside the caller's transaction.
async fn write_record_in(
    tx: &mut MySqlConnection,
    record: &NewUsageRecord,
    settles: Option<u64>,
    erased: bool,
) -> anyhow::Result<()> {
    usage_store::insert(tx, record, !erased)
        .await
        .context("recording LLM usage")?;
    if let Some(reservation) = settles {
        spend::delete_reservation(&mut *tx, reservation)
            .await
            .context("settling a budget reservation")?;
    }
    // Failed attempts cost nothing: no need to touch the (shared) counters.
    if record.cost_usd.is_zero() {
        return Ok(());
    }
    if erased {
        // The month is carried under no id.
        let month = spend::month_of(record.created_at);
        erasure::carry_spend(tx, &record.player_key, &month, record.cost_usd)
            .await
            .context("carrying the spend of an erased player")?;
    } else {
        spend::add_month_spend(tx, &record.player_id, record.cost_usd, record.created_at)
            .await
            .context("adding to the month's spend")?;
    }
    // Last: the day's shard stays locked until the commit.
    spend::add_day_spend(tx, record.cost_usd, record.created_at)
        .await
        .context("adding to the day's spend")?;
    Ok(())
}
