//! The usage tracker: tokens → cost → a usage row for every call, and the reports over them.

use super::pricing::PriceTable;
use crate::{
    domain::{ConversationId, PlayerId},
    error::ApiError,
    llm::{Completion, LlmError, Purpose},
    metrics,
    store::{
        spend,
        usage::{self as usage_store, GroupBy, NewUsageRecord, UsageFilter, UsageSums},
    },
};
use anyhow::Context;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use std::{collections::HashSet, sync::Mutex};

/// Who a call was for, stored with its usage row.
#[derive(Debug, Clone)]
pub struct CallContext<'a> {
    pub player_id: &'a str,
    pub conversation_id: Option<&'a str>,
    pub character_id: Option<&'a str>,
    pub purpose: Purpose,
    pub model: &'a str,
}

/// What a call cost, as the turn reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallCost {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    pub cost_usd: Decimal,
}

impl CallCost {
    pub fn add(&mut self, other: CallCost) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cost_usd += other.cost_usd;
    }
}

#[derive(Debug)]
pub struct UsageTracker {
    prices: PriceTable,
    /// Keep the global per-day counter (only needed with `GLOBAL_DAILY_BUDGET_USD`).
    count_daily: bool,
    /// Models already warned about, so an unpriced model logs once, not once per call.
    unpriced_warned: Mutex<HashSet<String>>,
}

impl UsageTracker {
    pub fn new(prices: PriceTable, count_daily: bool) -> Self {
        Self {
            prices,
            count_daily,
            unpriced_warned: Mutex::new(HashSet::new()),
        }
    }

    /// Cost of a call; an unknown model costs 0 and is warned about once.
    pub fn cost(&self, model: &str, prompt_tokens: u32, completion_tokens: u32) -> Decimal {
        match self.prices.price(model) {
            Some(price) => price.cost(prompt_tokens, completion_tokens),
            None => {
                let first_time = self
                    .unpriced_warned
                    .lock()
                    .map(|mut warned| warned.insert(model.to_owned()))
                    .unwrap_or(false);
                if first_time {
                    tracing::warn!(
                        model,
                        "no price known for this model; its calls are recorded at cost 0 (set MODEL_PRICES_FILE)"
                    );
                }
                Decimal::ZERO
            }
        }
    }

    /// Stores the usage row of one attempt and adds its cost to the spend counters, and
    /// settles (deletes) the call's budget reservation when given, all in one transaction.
    /// Attempts that never reached the provider (connection refused) cost nothing and are
    /// not recorded.
    pub async fn record(
        &self,
        pool: &MySqlPool,
        call: &CallContext<'_>,
        result: &Result<Completion, LlmError>,
        settle: Option<u64>,
    ) -> anyhow::Result<CallCost> {
        let (usage, latency, outcome, http_status, estimated) = match result {
            Ok(completion) => (
                (
                    completion.usage.prompt_tokens,
                    completion.usage.completion_tokens,
                ),
                completion.latency,
                "success",
                None,
                completion.usage.estimated,
            ),
            Err(error) if error.reached_provider() => (
                (0, 0),
                error.latency,
                error.outcome(),
                error.http_status(),
                false,
            ),
            Err(error) => {
                // Never reached the provider: nothing to bill, but still an attempt.
                metrics::llm_call(
                    call.purpose.as_str(),
                    call.model,
                    error.outcome(),
                    error.latency,
                    0,
                    0,
                    Decimal::ZERO,
                );
                return Ok(CallCost::default());
            }
        };
        let cost = CallCost {
            prompt_tokens: usage.0,
            completion_tokens: usage.1,
            cost_usd: self.cost(call.model, usage.0, usage.1),
        };
        // Counted here, where every attempt of every purpose passes, rather than where
        // the row commits: a failed write must not hide what the provider was paid.
        metrics::llm_call(
            call.purpose.as_str(),
            call.model,
            outcome,
            latency,
            cost.prompt_tokens,
            cost.completion_tokens,
            cost.cost_usd,
        );
        if self.prices.price(call.model).is_none() {
            metrics::unpriced_call(call.model);
        }
        let record = NewUsageRecord {
            player_id: Some(call.player_id.to_owned()),
            conversation_id: call.conversation_id.map(str::to_owned),
            character_id: call.character_id.map(str::to_owned),
            purpose: call.purpose.as_str(),
            model: call.model.to_owned(),
            prompt_tokens: cost.prompt_tokens,
            completion_tokens: cost.completion_tokens,
            tokens_estimated: estimated,
            cost_usd: cost.cost_usd,
            latency_ms: u32::try_from(latency.as_millis()).unwrap_or(u32::MAX),
            outcome,
            http_status,
            created_at: crate::store::now(),
        };
        let mut tx = pool.begin().await.context("starting a usage record")?;
        usage_store::insert(&mut tx, &record)
            .await
            .context("recording LLM usage")?;
        spend::add_spend(
            &mut tx,
            call.player_id,
            cost.cost_usd,
            record.created_at,
            self.count_daily,
        )
        .await
        .context("adding to the spend counters")?;
        if let Some(reservation) = settle {
            spend::delete_reservation(&mut *tx, reservation)
                .await
                .context("settling a budget reservation")?;
        }
        tx.commit().await.context("committing a usage record")?;
        Ok(cost)
    }
}

/// `GET /usage` query string.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this player's calls.
    pub player_id: Option<String>,
    /// Only this conversation's calls.
    pub conversation_id: Option<String>,
    /// How many days back from now (1–3660, default 30).
    pub days: Option<u32>,
    /// Breakdown by `purpose`, `model`, `day` (UTC, `YYYY-MM-DD`) or `player`.
    pub group_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageTotals {
    /// The group's key (purpose, model, day or player id).
    pub key: String,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    pub cost_usd: Decimal,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    pub cost_usd: Decimal,
    /// Empty unless `group_by` is given; ordered by key.
    pub breakdown: Vec<UsageTotals>,
}

pub const DEFAULT_REPORT_DAYS: u32 = 30;
pub const MAX_REPORT_DAYS: u32 = 3660;

fn parse_group_by(raw: &str) -> Result<GroupBy, ApiError> {
    match raw {
        "purpose" => Ok(GroupBy::Purpose),
        "model" => Ok(GroupBy::Model),
        "day" => Ok(GroupBy::Day),
        "player" => Ok(GroupBy::Player),
        other => Err(ApiError::Validation(format!(
            "group_by must be one of purpose, model, day, player (got {other:?})"
        ))),
    }
}

#[tracing::instrument(skip_all)]
pub async fn report(pool: &MySqlPool, query: UsageQuery) -> Result<UsageReport, ApiError> {
    let days = query.days.unwrap_or(DEFAULT_REPORT_DAYS);
    if !(1..=MAX_REPORT_DAYS).contains(&days) {
        return Err(ApiError::Validation(format!(
            "days must be between 1 and {MAX_REPORT_DAYS}"
        )));
    }
    let group_by = query.group_by.as_deref().map(parse_group_by).transpose()?;
    let to = Utc::now();
    let from = to - ChronoDuration::days(i64::from(days));
    let filter = UsageFilter {
        player_id: query
            .player_id
            .as_deref()
            .map(PlayerId::parse)
            .transpose()?
            .map(|id| id.as_str().to_owned()),
        conversation_id: query
            .conversation_id
            .as_deref()
            .map(ConversationId::parse)
            .transpose()?
            .map(|id| id.as_str().to_owned()),
        from,
    };
    let totals = usage_store::totals(pool, &filter).await?;
    let breakdown = match group_by {
        Some(group_by) => usage_store::breakdown(pool, &filter, group_by).await?,
        None => Vec::new(),
    };
    Ok(UsageReport {
        from,
        to,
        calls: totals.calls,
        prompt_tokens: totals.prompt_tokens,
        completion_tokens: totals.completion_tokens,
        total_tokens: totals.total_tokens,
        cost_usd: totals.cost_usd,
        breakdown: breakdown.into_iter().map(UsageTotals::from).collect(),
    })
}

impl From<UsageSums> for UsageTotals {
    fn from(sums: UsageSums) -> Self {
        Self {
            key: sums.key,
            calls: sums.calls,
            prompt_tokens: sums.prompt_tokens,
            completion_tokens: sums.completion_tokens,
            total_tokens: sums.total_tokens,
            cost_usd: sums.cost_usd,
        }
    }
}
