//! Per-player monthly budgets: one player's month, a player's own limit, and the players
//! at or over their warning threshold, a page at a time.

use super::BudgetStatus;
use crate::{
    domain::{MONEY_SCALE, ParseError, PlayerId, Usd},
    service::{Services, error::ServiceResult},
    store::spend::{self, SpendPosition},
};
use anyhow::Context;
use rust_decimal::Decimal;

/// A player's month as dashboards see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerMonth {
    pub player_id: String,
    /// UTC calendar month, `YYYY-MM`.
    pub month: String,
    pub spent: Usd,
    pub limit: Usd,
    pub remaining: Usd,
    pub warning: bool,
    pub over_budget: bool,
}

/// Which players `at_or_over` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threshold {
    /// At or past the warning ratio.
    #[default]
    Warning,
    /// At or past the limit.
    Over,
}

/// A page of players by spend, highest first.
#[derive(Debug, Clone)]
pub struct BudgetPage {
    pub month: String,
    pub players: Vec<PlayerMonth>,
    pub next: Option<BudgetCursor>,
}

pub const DEFAULT_BUDGETS_PAGE: u32 = 100;
pub const MAX_BUDGETS_PAGE: u32 = 1000;
/// Largest monthly limit accepted: what `DECIMAL(12,6)` holds.
pub const MAX_LIMIT_USD: i64 = 999_999;

/// Where a page of budgets ends: the last row's spend and player id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCursor(SpendPosition);

impl BudgetCursor {
    /// Opaque to clients: hex of `spent|player_id`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}|{}", self.0.spent_usd, self.0.player_id))
    }

    pub fn decode(raw: &str) -> Result<Self, ParseError> {
        let invalid = || ParseError("cursor is not one this service gave".into());
        let bytes = hex::decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (spent, player_id) = text.split_once('|').ok_or_else(invalid)?;
        Ok(Self(SpendPosition {
            spent_usd: spent.parse().map_err(|_| invalid())?,
            player_id: PlayerId::parse(player_id)
                .map_err(|_| invalid())?
                .into_string(),
        }))
    }
}

/// A monthly limit as the game sent it: within what the column holds, six places.
pub fn parse_limit(raw: &str) -> Result<Usd, ParseError> {
    let limit: Usd = raw
        .parse()
        .map_err(|_| ParseError("monthly_limit_usd must be a number".into()))?;
    if limit.is_negative() || limit > Usd::new(Decimal::from(MAX_LIMIT_USD)) {
        return Err(ParseError(format!(
            "monthly_limit_usd must be between 0 and {MAX_LIMIT_USD}"
        )));
    }
    Ok(Usd::new(limit.decimal().round_dp(MONEY_SCALE)))
}

fn view(player_id: String, month: String, status: BudgetStatus) -> PlayerMonth {
    PlayerMonth {
        player_id,
        month,
        spent: status.spent,
        limit: status.limit,
        remaining: (status.limit - status.spent).max(Usd::ZERO),
        warning: status.warning(),
        over_budget: status.over_budget(),
    }
}

/// This month of one player. Dashboards see settled spend only, not calls in flight.
pub async fn month(services: &Services, player_id: &PlayerId) -> ServiceResult<PlayerMonth> {
    let (month, status) = services.ledger.month_status(player_id).await?;
    Ok(view(
        player_id.as_str().to_owned(),
        month,
        BudgetStatus {
            reserved: Usd::ZERO,
            ..status
        },
    ))
}

/// Sets (or with `None`, clears) the player's own monthly limit.
pub async fn set_limit(
    services: &Services,
    player_id: &PlayerId,
    limit: Option<Usd>,
) -> ServiceResult<PlayerMonth> {
    let mut tx = services
        .pool
        .begin()
        .await
        .context("starting a budget change")?;
    services.ledger.lock_player(&mut tx, player_id).await?;
    spend::set_monthly_limit(&mut tx, player_id, limit).await?;
    tx.commit().await.context("committing a budget change")?;
    month(services, player_id).await
}

/// Players at or over `threshold` this month, highest spend first, `limit` per page.
pub async fn at_or_over(
    services: &Services,
    threshold: Threshold,
    limit: u32,
    after: Option<&BudgetCursor>,
) -> ServiceResult<BudgetPage> {
    let config = &services.config;
    let ratio = match threshold {
        Threshold::Warning => config.budget_warning_ratio,
        Threshold::Over => Decimal::ONE,
    };
    let month = spend::month_of(crate::store::database_now(&services.pool).await?);
    // One more than the page: whether it exists says if there is a next page.
    let mut rows = spend::at_or_over(
        &services.pool,
        &month,
        config.player_monthly_budget_usd,
        ratio,
        after.map(|cursor| &cursor.0),
        limit + 1,
    )
    .await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| {
            BudgetCursor(SpendPosition {
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
            let status = BudgetStatus {
                spent: row.spent_usd,
                reserved: Usd::ZERO,
                limit: row
                    .monthly_limit_usd
                    .unwrap_or(config.player_monthly_budget_usd),
                warning_ratio: config.budget_warning_ratio,
            };
            view(row.player_id, month.clone(), status)
        })
        .collect();
    Ok(BudgetPage {
        month,
        players,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budgets_cursor_round_trips_and_rejects_forgeries() -> Result<(), ParseError> {
        let cursor = BudgetCursor(SpendPosition {
            spent_usd: "4.123456".parse().unwrap_or_default(),
            player_id: "p|7 ü".into(),
        });
        assert_eq!(BudgetCursor::decode(&cursor.encode())?, cursor);
        for bad in ["", "zz", &hex::encode("no-bar"), &hex::encode("x|p")] {
            assert!(BudgetCursor::decode(bad).is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn limits_are_bounded_and_kept_to_six_places() {
        assert_eq!(parse_limit("2.5"), Ok("2.5".parse().unwrap_or_default()));
        assert_eq!(
            parse_limit("0.0000004"),
            Ok(Usd::ZERO),
            "rounded to what the column keeps"
        );
        assert!(parse_limit("-1").is_err());
        assert!(parse_limit("1000000").is_err());
        assert!(parse_limit("lots").is_err());
    }
}
