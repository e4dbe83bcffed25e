//! Money: prices turned into costs, the guard that reserves quota and budget before a
//! call and settles it after (`ledger`), per-player budgets (`budgets`) and the usage
//! reports dashboards read (`usage`).

pub mod budgets;
pub mod ledger;
pub mod usage;

use crate::domain::Usd;
use rust_decimal::Decimal;

/// What calls cost: tokens and money, summed over attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Spent {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub cost_usd: Usd,
}

impl Spent {
    pub fn add(&mut self, other: Spent) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cost_usd += other.cost_usd;
    }
}

/// A player's month at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStatus {
    pub spent: Usd,
    /// Worst cases of the calls in flight.
    pub reserved: Usd,
    pub limit: Usd,
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
    pub fn affords(&self, worst_case: Usd) -> bool {
        self.spent + self.reserved + worst_case <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        text.parse().unwrap_or_default()
    }

    fn status(spent: &str, reserved: &str) -> BudgetStatus {
        BudgetStatus {
            spent: usd(spent),
            reserved: usd(reserved),
            limit: usd("0.05"),
            warning_ratio: Decimal::new(8, 1),
        }
    }

    #[test]
    fn a_call_is_afforded_only_if_its_worst_case_fits_with_those_in_flight() {
        assert!(status("0.021", "0").affords(usd("0.021")));
        assert!(!status("0.021", "0.021").affords(usd("0.021")));
        assert!(
            status("0.029", "0").affords(usd("0.021")),
            "exactly at the limit is allowed"
        );
        assert!(!status("0.05", "0").affords(usd("0.000001")));
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
