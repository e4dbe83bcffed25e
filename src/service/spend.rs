//! The spend guard: the per-player call quota, the monthly budget and the global daily
//! cap, reserved in the database before a call and settled after it.

use crate::{
    config::Config,
    domain::PlayerId,
    error::ApiError,
    store::{self, spend},
};
use anyhow::Context;
use chrono::Duration as ChronoDuration;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use std::time::Duration;

/// What was reserved for a call; give it back with `release` if the call is not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub quota_call: Option<u64>,
    pub budget: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `PLAYER_LLM_CALLS_PER_HOUR` reached.
    RateLimited,
    /// The player's month, or the global day, cannot afford the worst case.
    BudgetExceeded,
}

/// A player's month at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStatus {
    pub spent: Decimal,
    pub reserved: Decimal,
    pub limit: Decimal,
    pub warning_ratio: Decimal,
}

impl BudgetStatus {
    /// At or past the warning ratio (counting calls in flight): background work waits
    /// and the cheaper model is used.
    pub fn warning(&self) -> bool {
        self.spent + self.reserved >= self.limit * self.warning_ratio
    }

    pub fn over_budget(&self) -> bool {
        self.spent >= self.limit
    }

    /// Whether a call costing at most `worst_case` still fits.
    pub fn affords(&self, worst_case: Decimal) -> bool {
        self.spent + self.reserved + worst_case <= self.limit
    }
}

/// A reservation outlives the call it covers by this much before it is presumed dead.
const RESERVATION_GRACE: Duration = Duration::from_secs(60);

fn chrono(duration: Duration) -> ChronoDuration {
    ChronoDuration::from_std(duration).unwrap_or(ChronoDuration::MAX)
}

/// Reads the player's month without locking (for choosing a model, for dashboards).
pub async fn status(
    pool: &MySqlPool,
    config: &Config,
    player_id: &str,
) -> sqlx::Result<BudgetStatus> {
    let now = store::now();
    let limit = spend::monthly_limit(pool, player_id)
        .await?
        .unwrap_or(config.player_monthly_budget_usd);
    Ok(BudgetStatus {
        spent: spend::month_spend(pool, player_id, &spend::month_of(now)).await?,
        reserved: spend::reserved(pool, player_id, now).await?,
        limit,
        warning_ratio: config.budget_warning_ratio,
    })
}

/// Reserves a call of at most `worst_case` USD: one quota slot (when `take_quota`) and
/// the worst case against the player's month and the global day, atomically.
#[tracing::instrument(skip_all, fields(player_id))]
pub async fn reserve(
    pool: &MySqlPool,
    config: &Config,
    player_id: &str,
    take_quota: bool,
    worst_case: Decimal,
) -> Result<Result<Reservation, Refusal>, ApiError> {
    store::retry_lock_conflicts(|| try_reserve(pool, config, player_id, take_quota, worst_case))
        .await
}

async fn try_reserve(
    pool: &MySqlPool,
    config: &Config,
    player_id: &str,
    take_quota: bool,
    worst_case: Decimal,
) -> Result<Result<Reservation, Refusal>, ApiError> {
    let now = store::now();
    let mut tx = pool.begin().await.context("starting a reservation")?;
    let own_limit = spend::lock_player(&mut tx, player_id, now).await?;

    let quota_call = if take_quota {
        let hour_ago = now - ChronoDuration::hours(1);
        spend::prune_calls(&mut tx, player_id, hour_ago).await?;
        let calls = spend::calls_since(&mut tx, player_id, hour_ago).await?;
        if calls >= i64::from(config.player_llm_calls_per_hour) {
            return Ok(Err(Refusal::RateLimited));
        }
        Some(spend::insert_call(&mut tx, player_id, now).await?)
    } else {
        None
    };

    let month = BudgetStatus {
        spent: spend::month_spend(&mut *tx, player_id, &spend::month_of(now)).await?,
        reserved: spend::reserved(&mut *tx, player_id, now).await?,
        limit: own_limit.unwrap_or(config.player_monthly_budget_usd),
        warning_ratio: config.budget_warning_ratio,
    };
    if !month.affords(worst_case) {
        return Ok(Err(Refusal::BudgetExceeded));
    }
    if let Some(daily_cap) = config.global_daily_budget_usd {
        // Not under a global lock (that would serialize every player): concurrent turns
        // of different players may overshoot by the reservations in flight, as promised.
        let day = spend::day_spend(&mut tx, now.date_naive()).await?
            + spend::reserved_globally(&mut tx, now).await?;
        if day + worst_case > daily_cap {
            return Ok(Err(Refusal::BudgetExceeded));
        }
    }
    let expires_at = now + chrono(config.llm.deadline + RESERVATION_GRACE);
    let budget = spend::insert_reservation(&mut tx, player_id, worst_case, now, expires_at).await?;
    tx.commit().await.context("committing a reservation")?;
    // Housekeeping outside the decision: expired rows are already ignored by the sums.
    if let Err(error) = spend::prune_reservations(pool, player_id, now).await {
        tracing::debug!(%error, "could not prune expired reservations; next time");
    }
    Ok(Ok(Reservation { quota_call, budget }))
}

/// Releases a reservation whose call was not made or failed: the slot of the quota
/// stays taken only when `call_made`.
pub async fn release(
    pool: &MySqlPool,
    reservation: Reservation,
    call_made: bool,
) -> sqlx::Result<()> {
    spend::delete_reservation(pool, reservation.budget).await?;
    if !call_made && let Some(call) = reservation.quota_call {
        spend::delete_call(pool, call).await?;
    }
    Ok(())
}

/// `GET /usage/budget` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    pub player_id: String,
    /// UTC calendar month, `YYYY-MM`.
    pub month: String,
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    pub spent_usd: Decimal,
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    pub limit_usd: Decimal,
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    pub remaining_usd: Decimal,
    /// Spend reached `BUDGET_WARNING_RATIO` of the limit.
    pub warning: bool,
    pub over_budget: bool,
}

/// `GET /usage/budgets` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetList {
    pub month: String,
    /// Highest spend first.
    pub players: Vec<BudgetView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `PUT /players/{player_id}/budget` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct BudgetInput {
    /// USD per UTC calendar month; `null` returns to `PLAYER_MONTHLY_BUDGET_USD`.
    /// Required: a misspelt field must not silently reset a player's limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, required = true)]
    pub monthly_limit_usd: Option<Option<serde_json::Number>>,
}

/// `Some(value)` when the field is there, even as `null`; a missing field stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<serde_json::Number>>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer).map(Some)
}

/// `GET /usage/budget` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetQuery {
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub player_id: String,
}

/// `GET /usage/budgets` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetsQuery {
    /// `warning` (at or past the warning ratio, the default) or `over` (at or past the limit).
    #[param(pattern = "^(warning|over)$")]
    pub status: Option<String>,
    /// Players per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

pub const DEFAULT_BUDGETS_PAGE: u32 = 100;
pub const MAX_BUDGETS_PAGE: u32 = 1000;

/// An opaque page cursor: the last row's spend and player id, hex-encoded.
fn encode_cursor(position: &spend::SpendPosition) -> String {
    hex::encode(format!("{}|{}", position.spent_usd, position.player_id))
}

fn decode_cursor(raw: &str) -> Result<spend::SpendPosition, ApiError> {
    let invalid = || ApiError::Validation("cursor is not one this service gave".into());
    let bytes = hex::decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (spent, player_id) = text.split_once('|').ok_or_else(invalid)?;
    Ok(spend::SpendPosition {
        spent_usd: spent.parse().map_err(|_| invalid())?,
        player_id: PlayerId::parse(player_id)
            .map_err(|_| invalid())?
            .as_str()
            .to_owned(),
    })
}

fn view(
    player_id: String,
    month: String,
    spent: Decimal,
    limit: Decimal,
    ratio: Decimal,
) -> BudgetView {
    let status = BudgetStatus {
        spent,
        reserved: Decimal::ZERO,
        limit,
        warning_ratio: ratio,
    };
    BudgetView {
        player_id,
        month,
        spent_usd: spent,
        limit_usd: limit,
        remaining_usd: (limit - spent).max(Decimal::ZERO),
        warning: status.warning(),
        over_budget: status.over_budget(),
    }
}

pub async fn budget(
    pool: &MySqlPool,
    config: &Config,
    player_id: &PlayerId,
) -> Result<BudgetView, ApiError> {
    let now = store::now();
    let status = status(pool, config, player_id.as_str()).await?;
    Ok(view(
        player_id.as_str().to_owned(),
        spend::month_of(now),
        status.spent,
        status.limit,
        config.budget_warning_ratio,
    ))
}

/// Largest monthly limit accepted: what `DECIMAL(12,6)` holds.
const MAX_LIMIT_USD: i64 = 999_999;

pub async fn set_budget(
    pool: &MySqlPool,
    config: &Config,
    player_id: &PlayerId,
    input: BudgetInput,
) -> Result<BudgetView, ApiError> {
    let limit = input
        .monthly_limit_usd
        .ok_or_else(|| {
            ApiError::Validation(
                "monthly_limit_usd is required: a number, or null for the default".into(),
            )
        })?
        .map(|number| {
            let limit: Decimal = number
                .to_string()
                .parse()
                .or_else(|_| Decimal::from_scientific(&number.to_string()))
                .map_err(|_| ApiError::Validation("monthly_limit_usd must be a number".into()))?;
            if limit.is_sign_negative() || limit > Decimal::from(MAX_LIMIT_USD) {
                return Err(ApiError::Validation(format!(
                    "monthly_limit_usd must be between 0 and {MAX_LIMIT_USD}"
                )));
            }
            Ok(limit.round_dp(crate::service::pricing::MONEY_SCALE))
        })
        .transpose()?;
    let mut tx = pool.begin().await.context("starting a budget change")?;
    spend::lock_player(&mut tx, player_id.as_str(), store::now()).await?;
    spend::set_monthly_limit(&mut tx, player_id.as_str(), limit).await?;
    tx.commit().await.context("committing a budget change")?;
    budget(pool, config, player_id).await
}

pub async fn budgets(
    pool: &MySqlPool,
    config: &Config,
    query: BudgetsQuery,
) -> Result<BudgetList, ApiError> {
    let threshold = match query.status.as_deref().unwrap_or("warning") {
        "warning" => config.budget_warning_ratio,
        "over" => Decimal::ONE,
        other => {
            return Err(ApiError::Validation(format!(
                "status must be warning or over (got {other:?})"
            )));
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_BUDGETS_PAGE);
    if !(1..=MAX_BUDGETS_PAGE).contains(&limit) {
        return Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_BUDGETS_PAGE}"
        )));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let month = spend::month_of(store::now());
    // One more than the page: whether it exists says if there is a next page.
    let mut rows = spend::at_or_over(
        pool,
        &month,
        config.player_monthly_budget_usd,
        threshold,
        after.as_ref(),
        limit + 1,
    )
    .await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| {
            encode_cursor(&spend::SpendPosition {
                spent_usd: last.spent_usd,
                player_id: last.player_id.clone(),
            })
        })
    } else {
        None
    };
    let players = rows
        .into_iter()
        .map(|row| {
            let limit = row
                .monthly_limit_usd
                .unwrap_or(config.player_monthly_budget_usd);
            view(
                row.player_id,
                month.clone(),
                row.spent_usd,
                limit,
                config.budget_warning_ratio,
            )
        })
        .collect();
    Ok(BudgetList {
        month,
        players,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    fn status(spent: &str, reserved: &str) -> BudgetStatus {
        BudgetStatus {
            spent: dec(spent),
            reserved: dec(reserved),
            limit: dec("0.05"),
            warning_ratio: dec("0.8"),
        }
    }

    #[test]
    fn a_call_is_afforded_only_if_its_worst_case_fits_with_those_in_flight() {
        assert!(status("0.021", "0").affords(dec("0.021")));
        assert!(!status("0.021", "0.021").affords(dec("0.021")));
        assert!(
            status("0.029", "0").affords(dec("0.021")),
            "exactly at the limit is allowed"
        );
        assert!(!status("0.05", "0").affords(dec("0.000001")));
    }

    #[test]
    fn a_budgets_cursor_round_trips_and_rejects_forgeries() -> Result<(), ApiError> {
        let position = spend::SpendPosition {
            spent_usd: dec("4.123456"),
            player_id: "p|7 ü".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&position))?, position);
        for bad in ["", "zz", &hex::encode("no-bar"), &hex::encode("x|p")] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn warning_starts_at_the_ratio_and_counts_reservations() {
        assert!(!status("0.039999", "0").warning());
        assert!(status("0.04", "0").warning());
        assert!(status("0.02", "0.02").warning());
        assert!(!status("0.049999", "0").over_budget());
        assert!(status("0.05", "0").over_budget());
    }
}
