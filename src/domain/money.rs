//! Money: US dollars as exact decimals, six places as in the `DECIMAL(12,6)` columns.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{
    fmt,
    iter::Sum,
    ops::{Add, AddAssign, Mul, Sub},
    str::FromStr,
};

/// Places kept for money, as in the `DECIMAL(12,6)` columns.
pub const MONEY_SCALE: u32 = 6;

/// An amount of US dollars. Never a float until it is rendered in JSON (as a number, the
/// shape of the API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Usd(Decimal);

impl Usd {
    pub const ZERO: Self = Self(Decimal::ZERO);

    pub const fn new(amount: Decimal) -> Self {
        Self(amount)
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// Rounded half away from zero to the six places the database keeps.
    pub fn rounded(self) -> Self {
        Self(
            self.0
                .round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::MidpointAwayFromZero),
        )
    }

    /// Millionths of a dollar, the precision of the usage records (for exact counters).
    pub fn micros(self) -> Decimal {
        self.0 * Decimal::from(1_000_000)
    }

    pub fn max(self, other: Self) -> Self {
        Self(self.0.max(other.0))
    }
}

impl From<Decimal> for Usd {
    fn from(amount: Decimal) -> Self {
        Self(amount)
    }
}

impl FromStr for Usd {
    type Err = rust_decimal::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Decimal::from_str(text)
            .or_else(|_| Decimal::from_scientific(text))
            .map(Self)
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Add for Usd {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self(self.0 + other.0)
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, other: Self) {
        self.0 += other.0;
    }
}

impl Sub for Usd {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        Self(self.0 - other.0)
    }
}

/// A share of an amount (a warning ratio).
impl Mul<Decimal> for Usd {
    type Output = Self;
    fn mul(self, ratio: Decimal) -> Self {
        Self(self.0 * ratio)
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Add::add)
    }
}

/// A JSON number, as the API has always shown money.
impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::float::serialize(&self.0, serializer)
    }
}

/// Accepts a JSON number (read through its shortest text, so 0.000073 stays exact) or
/// a string.
impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <Decimal as Deserialize>::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        text.parse().unwrap_or_else(|_| panic!("bad amount {text}"))
    }

    #[test]
    fn amounts_round_half_away_from_zero_to_six_places() {
        assert_eq!(usd("0.0000005").rounded(), usd("0.000001"));
        assert_eq!(usd("0.0000004").rounded(), Usd::ZERO);
        assert_eq!(usd("1e-6"), usd("0.000001"));
    }

    #[test]
    fn json_round_trips_exactly() -> serde_json::Result<()> {
        for text in ["0.000073", "0.3", "4.59", "999999.999999", "0"] {
            let amount = usd(text);
            let json = serde_json::to_string(&amount)?;
            assert_eq!(serde_json::from_str::<Usd>(&json)?, amount, "{json}");
        }
        assert_eq!(serde_json::to_string(&usd("0.000073"))?, "0.000073");
        Ok(())
    }
}
