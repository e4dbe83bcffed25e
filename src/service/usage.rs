//! The usage tracker: tokens → cost → a usage row for every call, and the reports over them.

use super::pricing::{ModelPrice, PriceTable};
use crate::{
    domain::{CharacterId, ConversationId, PlayerId},
    error::ApiError,
    llm::{Completion, LlmError, Purpose},
    metrics,
    store::{
        spend,
        usage::{self as usage_store, GroupBy, NewUsageRecord, UsageFilter, UsageSums},
    },
};
use anyhow::Context;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

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
    /// Models already warned about, so an unpriced model logs once, not once per call.
    unpriced_warned: Mutex<HashSet<String>>,
}

impl UsageTracker {
    pub fn new(prices: PriceTable) -> Self {
        Self {
            prices,
            unpriced_warned: Mutex::new(HashSet::new()),
        }
    }

    /// The model's price; an unknown model is warned about once.
    fn price(&self, model: &str) -> Option<ModelPrice> {
        let price = self.prices.price(model);
        if price.is_none() {
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
        }
        price
    }

    /// Cost of a call; an unknown model costs 0.
    pub fn cost(&self, model: &str, prompt_tokens: u32, completion_tokens: u32) -> Decimal {
        self.price(model)
            .map(|price| price.cost(prompt_tokens, completion_tokens))
            .unwrap_or_default()
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
        let price = self.price(call.model);
        if price.is_none() {
            metrics::unpriced_call(call.model);
        }
        let cost = CallCost {
            prompt_tokens: usage.0,
            completion_tokens: usage.1,
            cost_usd: price.map(|p| p.cost(usage.0, usage.1)).unwrap_or_default(),
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
        crate::store::retry_lock_conflicts(|| Self::store(pool, &record, settle)).await?;
        Ok(cost)
    }

    /// The usage row, the spend counters and the settlement, in one transaction.
    async fn store(
        pool: &MySqlPool,
        record: &NewUsageRecord,
        settle: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut tx = pool.begin().await.context("starting a usage record")?;
        usage_store::insert(&mut tx, record)
            .await
            .context("recording LLM usage")?;
        // Failed attempts cost nothing: no need to touch the (shared) counters.
        if !record.cost_usd.is_zero() {
            let player_id = record.player_id.as_deref().unwrap_or_default();
            spend::add_spend(&mut tx, player_id, record.cost_usd, record.created_at)
                .await
                .context("adding to the spend counters")?;
        }
        if let Some(reservation) = settle {
            spend::delete_reservation(&mut *tx, reservation)
                .await
                .context("settling a budget reservation")?;
        }
        tx.commit().await.context("committing a usage record")?;
        Ok(())
    }
}

/// `GET /usage` query string.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this player's calls.
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub player_id: Option<String>,
    /// Only this conversation's calls.
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub conversation_id: Option<String>,
    /// Only calls made for this character.
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub character_id: Option<String>,
    /// Start of the range, inclusive: an RFC 3339 time (`2026-11-01T00:00:00Z`) or a UTC
    /// date (`2026-11-01`, from its midnight). Not together with `days`.
    pub from: Option<String>,
    /// End of the range, exclusive: an RFC 3339 time, or a UTC date, which includes that
    /// whole day. Default: now.
    pub to: Option<String>,
    /// Shortcut for `from`: this many days before `to` (1–3660, default 30).
    #[param(minimum = 1, maximum = 3660)]
    pub days: Option<u32>,
    /// Breakdown by `purpose`, `model`, `player`, `character` or `day` (UTC,
    /// `YYYY-MM-DD`, every day of the range, zeros included).
    #[param(pattern = "^(purpose|model|day|player|character)$")]
    pub group_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageTotals {
    /// The group's key (purpose, model, player id, character id or day).
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
    /// Start of the range, inclusive.
    pub from: DateTime<Utc>,
    /// End of the range, exclusive.
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
        "character" => Ok(GroupBy::Character),
        other => Err(ApiError::Validation(format!(
            "group_by must be one of purpose, model, day, player, character (got {other:?})"
        ))),
    }
}

/// Which end of a range a bare date stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The date's midnight.
    Start,
    /// The next midnight: the range includes the whole date.
    End,
}

/// An RFC 3339 time (any offset, converted to UTC) or a `YYYY-MM-DD` UTC date.
fn parse_instant(name: &str, raw: &str, end: End) -> Result<DateTime<Utc>, ApiError> {
    let raw = raw.trim();
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let date = match end {
            End::Start => Some(date),
            End::End => date.succ_opt(),
        };
        if let Some(midnight) = date.and_then(|date| date.and_hms_opt(0, 0, 0)) {
            return Ok(midnight.and_utc());
        }
    }
    // An unencoded `+` in a query string arrives as a space: `…T10:00:00 01:00`.
    let repaired = match raw.rsplit_once(' ') {
        Some((time, offset)) if time.contains('T') && offset.contains(':') => {
            format!("{time}+{offset}")
        }
        _ => raw.to_owned(),
    };
    DateTime::parse_from_rfc3339(&repaired)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::Validation(format!(
                "{name} must be an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)"
            ))
        })
}

/// The report's range from `from`, `to` and `days`.
fn range(
    query: &UsageQuery,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = match query.to.as_deref() {
        Some(raw) => parse_instant("to", raw, End::End)?,
        None => now,
    };
    let from = match (query.from.as_deref(), query.days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Validation(
                "give either from or days, not both".into(),
            ));
        }
        (Some(raw), None) => parse_instant("from", raw, End::Start)?,
        (None, days) => {
            let days = days.unwrap_or(DEFAULT_REPORT_DAYS);
            if !(1..=MAX_REPORT_DAYS).contains(&days) {
                return Err(ApiError::Validation(format!(
                    "days must be between 1 and {MAX_REPORT_DAYS}"
                )));
            }
            to - ChronoDuration::days(i64::from(days))
        }
    };
    if from > to {
        return Err(ApiError::Validation("from must not be after to".into()));
    }
    // What MySQL's DATETIME holds, with room to spare.
    if from.year() < 1970 || to.year() > 9998 {
        return Err(ApiError::Validation(
            "from and to must lie between 1970 and 9998".into(),
        ));
    }
    if to - from > ChronoDuration::days(i64::from(MAX_REPORT_DAYS)) {
        return Err(ApiError::Validation(format!(
            "a report covers at most {MAX_REPORT_DAYS} days"
        )));
    }
    Ok((from, to))
}

/// Every UTC day the range `[from, to)` touches, as `YYYY-MM-DD`.
fn days_of(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let first = from.date_naive();
    let last = if to > from {
        (to - ChronoDuration::microseconds(1)).date_naive()
    } else {
        first
    };
    first
        .iter_days()
        .take_while(|day| *day <= last)
        .map(|day| day.format("%Y-%m-%d").to_string())
        .collect()
}

/// The rows of a day breakdown with a zero row for each day that had no calls.
fn with_every_day(rows: Vec<UsageSums>, days: Vec<String>) -> Vec<UsageSums> {
    let mut rows: HashMap<String, UsageSums> =
        rows.into_iter().map(|row| (row.key.clone(), row)).collect();
    days.into_iter()
        .map(|day| {
            rows.remove(&day).unwrap_or(UsageSums {
                key: day,
                calls: 0,
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 0,
                cost_usd: Decimal::ZERO,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all)]
pub async fn report(pool: &MySqlPool, query: UsageQuery) -> Result<UsageReport, ApiError> {
    let group_by = query.group_by.as_deref().map(parse_group_by).transpose()?;
    let (from, to) = range(&query, Utc::now())?;
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
        character_id: query
            .character_id
            .as_deref()
            .map(CharacterId::parse)
            .transpose()?
            .map(|id| id.as_str().to_owned()),
        from,
        to,
    };
    let totals = usage_store::totals(pool, &filter).await?;
    let breakdown = match group_by {
        Some(GroupBy::Day) => with_every_day(
            usage_store::breakdown(pool, &filter, GroupBy::Day).await?,
            days_of(from, to),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(from: Option<&str>, to: Option<&str>, days: Option<u32>) -> UsageQuery {
        UsageQuery {
            player_id: None,
            conversation_id: None,
            character_id: None,
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            days,
            group_by: None,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn dates_cover_whole_days_and_times_are_taken_as_given() -> Result<(), ApiError> {
        let now = at("2026-11-24T10:00:00Z");
        assert_eq!(
            range(&query(Some("2026-11-01"), Some("2026-11-03"), None), now)?,
            (at("2026-11-01T00:00:00Z"), at("2026-11-04T00:00:00Z"))
        );
        assert_eq!(
            range(
                &query(
                    Some("2026-11-01T12:00:00+02:00"),
                    Some("2026-11-02T00:00:00Z"),
                    None
                ),
                now
            )?,
            (at("2026-11-01T10:00:00Z"), at("2026-11-02T00:00:00Z"))
        );
        assert_eq!(
            range(&query(Some("2026-11-01T12:00:00 02:00"), None, None), now)?.0,
            at("2026-11-01T10:00:00Z"),
            "a + lost to query-string decoding"
        );
        assert_eq!(
            range(&query(None, None, Some(7)), now)?,
            (at("2026-11-17T10:00:00Z"), now)
        );
        assert_eq!(
            range(&query(None, Some("2026-11-10"), Some(2)), now)?,
            (at("2026-11-09T00:00:00Z"), at("2026-11-11T00:00:00Z"))
        );
        Ok(())
    }

    #[test]
    fn bad_ranges_are_refused() {
        let now = at("2026-11-24T10:00:00Z");
        for bad in [
            query(Some("yesterday"), None, None),
            query(Some("2026-13-01"), None, None),
            query(Some("2026-11-05"), Some("2026-11-01"), None),
            query(Some("2026-11-01"), None, Some(3)),
            query(None, None, Some(0)),
            query(None, None, Some(MAX_REPORT_DAYS + 1)),
            query(Some("1900-01-01"), None, None),
            query(Some("0000-01-01"), Some("0001-01-01"), None),
            query(None, Some("9999-12-31"), None),
        ] {
            assert!(range(&bad, now).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_day_breakdown_lists_every_day_of_the_range() {
        let days = days_of(at("2026-11-29T10:00:00Z"), at("2026-12-02T00:00:00Z"));
        assert_eq!(days, ["2026-11-29", "2026-11-30", "2026-12-01"]);
        let rows = with_every_day(
            vec![UsageSums {
                key: "2026-11-30".into(),
                calls: 2,
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
                cost_usd: Decimal::ONE,
            }],
            days,
        );
        let calls: Vec<(String, i64)> = rows.into_iter().map(|r| (r.key, r.calls)).collect();
        assert_eq!(
            calls,
            [
                ("2026-11-29".to_owned(), 0),
                ("2026-11-30".to_owned(), 2),
                ("2026-12-01".to_owned(), 0)
            ]
        );
        assert_eq!(
            days_of(at("2026-11-29T10:00:00Z"), at("2026-11-29T10:00:00Z")),
            ["2026-11-29"]
        );
    }
}
