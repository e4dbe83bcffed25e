//! How a character feels about a player, and the tier that picks tone and fallback lines.

use super::ParseError;
use serde::{Deserialize, Serialize};

/// An integer in [-100, 100].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Affinity(i32);

impl Affinity {
    pub const MIN: i64 = -100;
    pub const MAX: i64 = 100;

    pub fn parse(raw: i64) -> Result<Self, ParseError> {
        if !(Self::MIN..=Self::MAX).contains(&raw) {
            return Err(ParseError(format!(
                "affinity must be between {} and {} (got {raw})",
                Self::MIN,
                Self::MAX
            )));
        }
        // In range, so the narrowing cannot truncate.
        Ok(Self(raw as i32))
    }

    pub fn value(self) -> i32 {
        self.0
    }

    pub fn tier(self) -> AffinityTier {
        match self.0 {
            50.. => AffinityTier::High,
            0..=49 => AffinityTier::Medium,
            _ => AffinityTier::Low,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AffinityTier {
    High,
    Medium,
    Low,
}

impl AffinityTier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(raw: i64) -> AffinityTier {
        match Affinity::parse(raw) {
            Ok(affinity) => affinity.tier(),
            Err(error) => panic!("{raw} refused: {error}"),
        }
    }

    #[test]
    fn tiers_change_exactly_at_zero_and_fifty() {
        assert_eq!(tier(-100), AffinityTier::Low);
        assert_eq!(tier(-1), AffinityTier::Low);
        assert_eq!(tier(0), AffinityTier::Medium);
        assert_eq!(tier(49), AffinityTier::Medium);
        assert_eq!(tier(50), AffinityTier::High);
        assert_eq!(tier(100), AffinityTier::High);
    }

    #[test]
    fn out_of_range_affinity_is_refused() {
        assert!(Affinity::parse(-101).is_err());
        assert!(Affinity::parse(101).is_err());
        assert!(Affinity::parse(i64::MAX).is_err());
    }
}
