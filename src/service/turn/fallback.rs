//! Canned in-character lines for when the LLM is not called or fails: never an error.

use crate::domain::AffinityTier;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};

/// A character's own lines per affinity tier; an empty tier uses the built-in lines.
/// Stored as this JSON (`characters.fallback_lines`); the API's shape is
/// `http::characters::FallbackLines`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// A misspelt tier would otherwise vanish without a word.
#[serde(deny_unknown_fields)]
pub struct FallbackLines {
    #[serde(default)]
    pub high: Vec<String>,
    #[serde(default)]
    pub medium: Vec<String>,
    #[serde(default)]
    pub low: Vec<String>,
}

impl FallbackLines {
    pub fn tier(&self, tier: AffinityTier) -> &[String] {
        match tier {
            AffinityTier::High => &self.high,
            AffinityTier::Medium => &self.medium,
            AffinityTier::Low => &self.low,
        }
    }
}

/// Neutral enough for any character, distinct per tier, several each so a player who
/// keeps talking does not hear the same line twice in a row.
fn built_in(tier: AffinityTier) -> &'static [&'static str] {
    match tier {
        AffinityTier::High => &[
            "Ah, good to see you again, friend! Give me a moment, my thoughts are elsewhere.",
            "Always a pleasure. Forgive me, I lost my train of thought. What were we saying?",
            "You're a welcome sight! Bear with me, my mind's wandering today.",
        ],
        AffinityTier::Medium => &[
            "Hmm. Give me a moment to think on that.",
            "Let me mull that over a little while.",
            "I'm not sure what to say to that just now.",
        ],
        AffinityTier::Low => &[
            "I've nothing to say to you right now.",
            "Not now.",
            "Leave me be for a while.",
        ],
    }
}

/// Picks a line for the tier at random, avoiding `previous` (the last fallback line of
/// the conversation) whenever there is another to choose.
pub fn choose_line(
    own: Option<&FallbackLines>,
    tier: AffinityTier,
    previous: Option<&str>,
) -> String {
    let own_lines: Vec<&str> = own
        .map(|lines| lines.tier(tier).iter().map(String::as_str).collect())
        .unwrap_or_default();
    let candidates: Vec<&str> = if own_lines.is_empty() {
        built_in(tier).to_vec()
    } else {
        own_lines
    };
    let fresh: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|line| Some(*line) != previous)
        .collect();
    let pool = if fresh.is_empty() {
        &candidates
    } else {
        &fresh
    };
    pool.choose(&mut rand::rng())
        .map(|line| (*line).to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_characters_own_lines_win_over_the_built_in_ones() {
        let lines = FallbackLines {
            high: vec!["Ah, my favourite guest!".into()],
            ..FallbackLines::default()
        };
        assert_eq!(
            choose_line(Some(&lines), AffinityTier::High, None),
            "Ah, my favourite guest!"
        );
        let medium = choose_line(Some(&lines), AffinityTier::Medium, None);
        assert!(built_in(AffinityTier::Medium).contains(&medium.as_str()));
    }

    #[test]
    fn the_previous_line_is_not_repeated_when_another_exists() {
        for tier in [AffinityTier::High, AffinityTier::Medium, AffinityTier::Low] {
            let mut previous = choose_line(None, tier, None);
            for _ in 0..50 {
                let next = choose_line(None, tier, Some(&previous));
                assert_ne!(next, previous);
                previous = next;
            }
        }
    }

    #[test]
    fn a_single_line_is_repeated_rather_than_left_unsaid() {
        let lines = FallbackLines {
            low: vec!["Make it quick.".into()],
            ..FallbackLines::default()
        };
        assert_eq!(
            choose_line(Some(&lines), AffinityTier::Low, Some("Make it quick.")),
            "Make it quick."
        );
    }
}
