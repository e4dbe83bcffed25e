//! Which memories go into a prompt or a search: a score of importance, recency and
//! relevance to what the player just said (or the search's query). Relevance is by
//! meaning (the cosine of unit vectors) where the query and the item have a vector of
//! the current model, else by words. Pure and local: no LLM call, no database.

use super::{
    extraction::normalize,
    vectors::{PairVectors, cosine},
};
use crate::store::facts::FactRow;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// Weights of the three signals; they sum to 1 so a score stays within [0, 1]. Relevance
/// weighs most: a fact about what the player is talking about beats a more important
/// one about something else.
pub const IMPORTANCE_WEIGHT: f64 = 0.3;
pub const RECENCY_WEIGHT: f64 = 0.2;
pub const RELEVANCE_WEIGHT: f64 = 0.5;
/// What a message counts as in importance: messages have none of their own.
pub const MESSAGE_IMPORTANCE: u8 = 5;

/// What memories are ranked against.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    /// The content words of the query (empty: no query).
    words: HashSet<String>,
    /// The query's vector and the pair's vectors of the same model, when embeddings are
    /// on and the query could be embedded.
    meaning: Option<(&'a [f32], &'a PairVectors)>,
}

impl<'a> Query<'a> {
    /// Relevance by words only.
    pub fn words(text: &str) -> Self {
        Self {
            words: terms(text),
            meaning: None,
        }
    }

    /// Relevance by meaning where vectors exist, by words elsewhere.
    pub fn meaning(text: &str, vector: &'a [f32], pair: &'a PairVectors) -> Self {
        Self {
            words: terms(text),
            meaning: Some((vector, pair)),
        }
    }

    /// How relevant a fact is, 0 to 1: the cosine with its vector when it has a current
    /// one (negative counts as 0), else the share of the query's words it holds.
    pub fn fact(&self, fact: &FactRow) -> f64 {
        self.meaning
            .and_then(|(query, pair)| Some(cosine(query, pair.fact(fact.id, &fact.text_hash)?)))
            .map(|similarity| similarity.clamp(0.0, 1.0))
            .unwrap_or_else(|| relevance(&self.words, &fact.text))
    }

    /// How relevant a message is, 0 to 1, as for facts.
    pub fn message(&self, vector: Option<&[f32]>, text: &str) -> f64 {
        match (self.meaning, vector) {
            (Some((query, _)), Some(vector)) => cosine(query, vector).clamp(0.0, 1.0),
            _ => relevance(&self.words, text),
        }
    }
}
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
    share(query, &terms(fact_text))
}

/// Share of the query's terms among an item's (its `terms`, computed once), 0 to 1.
pub fn share(query: &HashSet<String>, item: &HashSet<String>) -> f64 {
    if query.is_empty() {
        return 0.0;
    }
    query.intersection(item).count() as f64 / query.len() as f64
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

/// A fact's score for `query` at `now`, with its relevance alone.
pub fn fact_score(fact: &FactRow, query: &Query<'_>, now: DateTime<Utc>) -> (f64, f64) {
    let touched = fact
        .last_used_at
        .unwrap_or(fact.updated_at)
        .max(fact.updated_at);
    let relevance = query.fact(fact);
    (
        score(fact.importance, recency(now, touched), relevance),
        relevance,
    )
}

/// A message's score: as a fact of middling importance, as recent as when it was said.
pub fn message_score(relevance: f64, said_at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    score(MESSAGE_IMPORTANCE, recency(now, said_at), relevance)
}

/// The best `limit` facts for `query`, best first, each with its score.
pub fn rank<'a>(
    facts: &'a [FactRow],
    query: &Query<'_>,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<(&'a FactRow, f64)> {
    let mut scored: Vec<(&FactRow, f64)> = facts
        .iter()
        .map(|fact| (fact, fact_score(fact, query, now).0))
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
            text_hash: format!("hash of {text}"),
            importance,
            source: crate::domain::MemorySource::Conversation,
            heard_from: None,
            heard_from_name: None,
            event_id: None,
            derived_from: None,
            hops: 0,
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
        assert!((score(5, 1.0, 0.0) - 0.35).abs() < 1e-9);
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
        let ranked = rank(&facts, &Query::words("How is your cat?"), Utc::now(), 2);
        assert_eq!(ranked[0].0.id, 2);
        let unqueried = rank(&facts, &Query::default(), Utc::now(), 2);
        assert_eq!(unqueried[0].0.id, 1, "without a query importance leads");
    }

    #[test]
    fn by_meaning_a_cat_fact_beats_a_much_more_important_unrelated_one() {
        let facts = vec![
            fact(1, "Player is the heir to the duchy", 9, 0),
            fact(2, "Player has a cat named Whiskers", 5, 0),
            fact(3, "Player likes pets of every kind", 5, 0),
        ];
        let mut pair = PairVectors::default();
        pair.insert_fact(1, &facts[0].text_hash, vec![0.0, 1.0]);
        pair.insert_fact(2, &facts[1].text_hash, vec![0.8, 0.6]);
        // Fact 3's vector is of an older text: it counts by words.
        pair.insert_fact(3, "stale", vec![1.0, 0.0]);
        let query = Query::meaning("Do you like animals?", &[1.0, 0.0], &pair);
        assert!((query.fact(&facts[1]) - 0.8).abs() < 1e-6);
        assert_eq!(query.fact(&facts[0]), 0.0);
        assert!(
            (query.fact(&facts[2]) - 1.0 / 2.0).abs() < 1e-9,
            "like of like, animal"
        );
        let ranked = rank(&facts, &query, Utc::now(), 3);
        assert_eq!(ranked[0].0.id, 2);
        assert_eq!(ranked[2].0.id, 1);
        assert!(
            Query::words("Do you like pets?").fact(&facts[1]) == 0.0,
            "words miss it"
        );
    }

    #[test]
    fn old_facts_fade_behind_fresh_ones_of_equal_importance() {
        let facts = vec![
            fact(1, "Player sold a horse", 5, 60),
            fact(2, "Player bought a boat", 5, 1),
        ];
        assert_eq!(rank(&facts, &Query::default(), Utc::now(), 1)[0].0.id, 2);
    }

    #[test]
    fn ranking_respects_the_limit() {
        let facts: Vec<FactRow> = (0..50)
            .map(|i| fact(i, &format!("fact number {i}"), 5, 0))
            .collect();
        assert_eq!(
            rank(&facts, &Query::words("number"), Utc::now(), 5).len(),
            5
        );
    }
}
