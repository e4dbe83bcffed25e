//! Which facts go into a prompt: a score of importance, recency and relevance to what
//! the player just said. Pure and local: no LLM call, no database beyond the candidates.

use super::extraction::normalize;
use crate::store::facts::FactRow;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// Weights of the three signals; they sum to 1 so a score stays within [0, 1].
pub const IMPORTANCE_WEIGHT: f64 = 0.5;
pub const RECENCY_WEIGHT: f64 = 0.2;
pub const RELEVANCE_WEIGHT: f64 = 0.3;
/// A fact untouched this long counts half as recent.
pub const RECENCY_HALF_LIFE_DAYS: f64 = 7.0;

const STOPWORDS: &[&str] = &[
    "the", "and", "but", "for", "are", "was", "were", "you", "your", "have", "has", "had", "with",
    "that", "this", "what", "who", "how", "why", "when", "where", "any", "can", "could", "would",
    "should", "will", "not", "from", "they", "them", "their", "there", "about", "just", "player",
];

/// Content words of a text: lower-cased, without stopwords or very short words, a plural
/// "s" dropped so "cats" finds "cat".
pub fn terms(text: &str) -> HashSet<String> {
    normalize(text)
        .split(' ')
        .filter(|word| word.chars().count() >= 3 && !STOPWORDS.contains(word))
        .map(|word| {
            if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
                word[..word.len() - 1].to_owned()
            } else {
                word.to_owned()
            }
        })
        .collect()
}

/// Share of the query's terms found in the fact, 0 to 1.
pub fn relevance(query: &HashSet<String>, fact_text: &str) -> f64 {
    if query.is_empty() {
        return 0.0;
    }
    let fact = terms(fact_text);
    query.intersection(&fact).count() as f64 / query.len() as f64
}

/// 1 when just used or updated, halving every `RECENCY_HALF_LIFE_DAYS`.
pub fn recency(now: DateTime<Utc>, last_touched: DateTime<Utc>) -> f64 {
    let days = (now - last_touched).num_seconds().max(0) as f64 / 86_400.0;
    0.5f64.powf(days / RECENCY_HALF_LIFE_DAYS)
}

pub fn score(importance: u8, recency: f64, relevance: f64) -> f64 {
    IMPORTANCE_WEIGHT * f64::from(importance.min(10)) / 10.0
        + RECENCY_WEIGHT * recency
        + RELEVANCE_WEIGHT * relevance
}

/// The best `limit` facts for `query`, best first, each with its score.
pub fn rank<'a>(
    facts: &'a [FactRow],
    query: Option<&str>,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<(&'a FactRow, f64)> {
    let query = query.map(terms).unwrap_or_default();
    let mut scored: Vec<(&FactRow, f64)> = facts
        .iter()
        .map(|fact| {
            let touched = fact
                .last_used_at
                .unwrap_or(fact.updated_at)
                .max(fact.updated_at);
            let value = score(
                fact.importance,
                recency(now, touched),
                relevance(&query, &fact.text),
            );
            (fact, value)
        })
        .collect();
    // Ties go to the newer fact, then the higher id, so the order is stable.
    scored.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.0.updated_at.cmp(&a.0.updated_at))
            .then(b.0.id.cmp(&a.0.id))
    });
    scored.truncate(limit);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn fact(id: u64, text: &str, importance: u8, age_days: i64) -> FactRow {
        let at = Utc::now() - Duration::days(age_days);
        FactRow {
            id,
            player_id: "p".into(),
            character_id: "c".into(),
            text: text.into(),
            importance,
            source: crate::domain::MemorySource::Conversation,
            conversation_id: None,
            from_seq: None,
            to_seq: None,
            created_at: at,
            updated_at: at,
            last_used_at: None,
        }
    }

    #[test]
    fn terms_drop_stopwords_and_plurals() {
        let found = terms("Do you like my CATS and the dog?");
        assert!(found.contains("cat") && found.contains("dog") && found.contains("like"));
        assert!(!found.contains("the") && !found.contains("you"));
        assert!(terms("glass").contains("glass"), "ss is not a plural");
    }

    #[test]
    fn the_score_weighs_importance_recency_and_relevance() {
        assert!((score(10, 1.0, 1.0) - 1.0).abs() < 1e-9);
        assert!((score(0, 0.0, 0.0)).abs() < 1e-9);
        assert!((score(5, 1.0, 0.0) - 0.45).abs() < 1e-9);
        let now = Utc::now();
        assert!((recency(now, now) - 1.0).abs() < 1e-9);
        assert!((recency(now, now - Duration::days(7)) - 0.5).abs() < 1e-6);
        assert!((recency(now, now - Duration::days(14)) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn a_relevant_fact_beats_a_slightly_more_important_one() {
        let facts = vec![
            fact(1, "Player fears the sea", 7, 0),
            fact(2, "Player has a cat named Whiskers", 6, 0),
        ];
        let ranked = rank(&facts, Some("How is your cat?"), Utc::now(), 2);
        assert_eq!(ranked[0].0.id, 2);
        let unqueried = rank(&facts, None, Utc::now(), 2);
        assert_eq!(unqueried[0].0.id, 1, "without a query importance leads");
    }

    #[test]
    fn old_facts_fade_behind_fresh_ones_of_equal_importance() {
        let facts = vec![
            fact(1, "Player sold a horse", 5, 60),
            fact(2, "Player bought a boat", 5, 1),
        ];
        assert_eq!(rank(&facts, None, Utc::now(), 1)[0].0.id, 2);
    }

    #[test]
    fn ranking_respects_the_limit() {
        let facts: Vec<FactRow> = (0..50)
            .map(|i| fact(i, &format!("fact number {i}"), 5, 0))
            .collect();
        assert_eq!(rank(&facts, Some("number"), Utc::now(), 5).len(), 5);
    }
}
