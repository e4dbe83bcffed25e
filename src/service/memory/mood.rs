//! The character's mood towards a player in the open: as `GET /memory` shows it, and
//! the `affinity_hint` a turn derives from it, once per change of mood.

use crate::{
    domain::{CharacterId, PlayerId},
    service::{ServiceResult, Services},
    store::players::{self, Standing},
};
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy, prelude::ToPrimitive};

/// How the character now feels about the player, as the last extraction read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mood {
    /// One of `extraction::MOODS`.
    pub label: String,
    /// 0 to 1.
    pub intensity: Decimal,
    pub reason: String,
    /// When the label or the intensity last changed; `None` for a mood stored before
    /// this was kept.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The character's mood towards the player; `None` until an extraction read one.
pub async fn current(
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> ServiceResult<Option<Mood>> {
    Ok(players::mood(&services.pool, player_id, character_id)
        .await?
        .map(|row| Mood {
            label: row.mood_label,
            intensity: row.mood_intensity,
            reason: row.mood_reason.unwrap_or_default(),
            updated_at: row.mood_updated_at,
        }))
}

/// How far a mood pulls affinity, in tenths of the hint's range (-10..=10), at full
/// intensity. The labels describe how the character feels *about the player*:
/// - `grateful` +10: the player did something for the character, the strongest pull up;
/// - `friendly` +7: warmth, a little below owing the player something;
/// - `amused` +4: the player is good company, a light pull;
/// - `neutral` 0;
/// - `sad` -3: sadness need not be the player's doing, so only a slight pull down;
/// - `wary` -4: distrust, the mirror of amused;
/// - `afraid` -6: the player is a threat, more than distrust;
/// - `hostile` -10: the strongest pull down.
///
/// `None` for a label the service does not know (extraction keeps only known ones).
pub fn valence_tenths(label: &str) -> Option<i8> {
    Some(match label {
        "grateful" => 10,
        "friendly" => 7,
        "amused" => 4,
        "neutral" => 0,
        "sad" => -3,
        "wary" => -4,
        "afraid" => -6,
        "hostile" => -10,
        _ => return None,
    })
}

/// The affinity change a mood suggests: valence × intensity × 10, rounded half away from
/// zero, within -10..=10. `None` for an unknown label. Exact: valence in tenths times an
/// intensity kept to two places needs no floating point.
pub fn affinity_hint(label: &str, intensity: Decimal) -> Option<i8> {
    let tenths = Decimal::from(valence_tenths(label)?);
    let intensity = intensity.clamp(Decimal::ZERO, Decimal::ONE);
    let hint = (tenths * intensity)
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i8()?;
    Some(hint.clamp(-10, 10))
}

/// Whether the mood changed after the pair's last stored turn: only then does a turn
/// carry the hint, so a game applying it applies each change once. A mood with no time
/// (stored before it was kept) is never due.
pub fn hint_due(
    mood_updated_at: Option<DateTime<Utc>>,
    last_turn_at: Option<DateTime<Utc>>,
) -> bool {
    match (mood_updated_at, last_turn_at) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(changed), Some(last_turn)) => changed > last_turn,
    }
}

/// The hint a turn carries, from the standing it read when it began; `None` when the
/// mood has not changed since the pair's last turn.
pub fn hint_for_turn(standing: Option<&Standing>) -> Option<i8> {
    let standing = standing?;
    if !hint_due(standing.mood_updated_at, standing.last_turn_at) {
        return None;
    }
    affinity_hint(standing.mood_label.as_deref()?, standing.mood_intensity?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::memory::extraction::MOODS;
    use chrono::TimeDelta;

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    #[test]
    fn every_label_the_extractor_accepts_has_a_valence() {
        for label in MOODS {
            assert!(valence_tenths(label).is_some(), "{label}");
        }
        assert_eq!(valence_tenths("ecstatic"), None);
        assert_eq!(affinity_hint("ecstatic", Decimal::ONE), None);
    }

    #[test]
    fn positive_moods_raise_negative_ones_lower_and_neutral_leaves_alone() {
        for label in ["friendly", "grateful", "amused"] {
            assert!(
                affinity_hint(label, dec("0.8")).unwrap_or_default() > 0,
                "{label}"
            );
        }
        for label in ["wary", "sad", "afraid", "hostile"] {
            assert!(
                affinity_hint(label, dec("0.8")).unwrap_or_default() < 0,
                "{label}"
            );
        }
        assert_eq!(affinity_hint("neutral", Decimal::ONE), Some(0));
    }

    #[test]
    fn the_hint_is_valence_times_intensity_times_ten_rounded_half_away_from_zero() {
        assert_eq!(affinity_hint("grateful", Decimal::ONE), Some(10));
        assert_eq!(affinity_hint("hostile", Decimal::ONE), Some(-10));
        assert_eq!(affinity_hint("friendly", dec("0.6")), Some(4)); // 4.2
        // 3.5 exactly: in floating point 0.7 × 0.5 × 10 is 3.4999…, here it is 4.
        assert_eq!(affinity_hint("friendly", dec("0.5")), Some(4));
        assert_eq!(affinity_hint("wary", dec("0.25")), Some(-1)); // -1.0
        assert_eq!(affinity_hint("sad", dec("0.5")), Some(-2)); // -1.5
        assert_eq!(affinity_hint("amused", dec("0.1")), Some(0)); // 0.4
        assert_eq!(affinity_hint("hostile", Decimal::ZERO), Some(0));
    }

    #[test]
    fn the_hint_stays_within_its_range_whatever_the_intensity() {
        for label in MOODS {
            for intensity in ["-3", "0", "0.33", "1", "7.5"] {
                let hint = affinity_hint(label, dec(intensity)).unwrap_or(99);
                assert!((-10..=10).contains(&hint), "{label} {intensity}: {hint}");
            }
        }
    }

    #[test]
    fn the_hint_is_due_only_when_the_mood_changed_after_the_last_turn() {
        let turn = DateTime::from_timestamp(1_764_000_000, 0).unwrap_or_default();
        let later = turn + TimeDelta::microseconds(1);
        assert!(hint_due(Some(later), Some(turn)));
        assert!(!hint_due(Some(turn), Some(turn)));
        assert!(!hint_due(Some(turn), Some(later)));
        assert!(hint_due(Some(turn), None));
        assert!(!hint_due(None, Some(turn)));
        assert!(!hint_due(None, None));
    }

    #[test]
    fn a_turn_gets_the_hint_of_a_changed_mood_and_none_otherwise() {
        let turn = DateTime::from_timestamp(1_764_000_000, 0).unwrap_or_default();
        let standing = |label: Option<&str>, changed: Option<DateTime<Utc>>| Standing {
            affinity: 0,
            mood_label: label.map(str::to_owned),
            mood_intensity: label.map(|_| dec("0.6")),
            mood_updated_at: changed,
            last_turn_at: Some(turn),
        };
        let later = Some(turn + TimeDelta::seconds(1));
        assert_eq!(
            hint_for_turn(Some(&standing(Some("wary"), later))),
            Some(-2)
        );
        assert_eq!(
            hint_for_turn(Some(&standing(Some("wary"), Some(turn)))),
            None
        );
        assert_eq!(hint_for_turn(Some(&standing(None, later))), None);
        assert_eq!(hint_for_turn(None), None);
    }
}
