//! Recording: the usage row of every attempt that reached the provider, priced, with the
//! spend counters and the reservation it settles in one transaction; spooled in memory
//! and replayed when the database will not take it.

use super::{CallFor, Ledger, Reservation};
use crate::{
    llm::{Completion, LlmError},
    metrics,
    service::money::Spent,
    store::{
        self, erasure, spend,
        usage::{self as usage_store, NewUsageRecord},
    },
};
use anyhow::Context;
use sqlx::MySqlConnection;

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
pub(super) struct Spooled {
    record: NewUsageRecord,
    settles: Option<u64>,
}

impl Ledger {
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
