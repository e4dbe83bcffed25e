//! Which memories go into a prompt or a search: a score of importance, recency and
//! relevance to what the player just said (or the search's query). Relevance is by
//! words (BM25 over the pair's facts, with the pair's analyzer) fused with relevance by
//! meaning (the cosine of unit vectors) where the query and the item have a vector of
//! the current model (`fusion`). Pure and local: no LLM call, no database.

use super::{
    extraction::normalize,
    fusion,
    lexical::{analyzer::Analyzer, bm25, index::PairText},
    vectors::{PairVectors, cosine},
};
use crate::store::facts::FactRow;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// How much each signal weighs; they sum to 1 so a score stays within [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub importance: f64,
    pub recency: f64,
    pub relevance: f64,
}

/// For a prompt: relevance weighs most, but what matters and what is fresh still count
/// (a prompt carries a few facts, and the most important belong there).
pub const PROMPT: Weights = Weights {
    importance: 0.3,
    recency: 0.2,
    relevance: 0.5,
};

/// For a search: what was asked for decides; importance and recency only break ties.
pub const SEARCH: Weights = Weights {
    importance: 0.05,
    recency: 0.05,
    relevance: 0.9,
};

/// What a message counts as in importance: messages have none of their own.
pub const MESSAGE_IMPORTANCE: u8 = 5;

/// What memories are ranked against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// The query and the analyzer it and the items are read with (`None`: no query).
    words: Option<(&'a str, &'a Analyzer)>,
    /// The pair's index, whose memo holds the facts' terms.
    index: Option<&'a PairText>,
    /// The query's vector and the pair's vectors of the same model, when embeddings are
    /// on and the query could be embedded.
    meaning: Option<(&'a [f32], &'a PairVectors)>,
}

impl<'a> Query<'a> {
    /// Relevance by words only.
    pub fn words(text: &'a str, analyzer: &'a Analyzer) -> Self {
        Self {
            words: Some((text, analyzer)),
            index: None,
            meaning: None,
        }
    }

    /// Relevance by the words of the pair's analyzer, the facts' terms from its memo.
    pub fn of_pair(
        text: &'a str,
        index: &'a PairText,
        meaning: Option<(&'a [f32], &'a PairVectors)>,
    ) -> Self {
        Self {
            words: Some((text, index.analyzer())),
            index: Some(index),
            meaning,
        }
    }

    /// Relevance by words fused with relevance by meaning where vectors exist.
    pub fn meaning(
        text: &'a str,
        analyzer: &'a Analyzer,
        vector: &'a [f32],
        pair: &'a PairVectors,
    ) -> Self {
        Self {
            words: Some((text, analyzer)),
            index: None,
            meaning: Some((vector, pair)),
        }
    }

    pub fn vector(&self) -> Option<&'a [f32]> {
        self.meaning.map(|(vector, _)| vector)
    }

    pub fn text(&self) -> Option<&'a str> {
        self.words.map(|(text, _)| text)
    }

    /// The relevance of each of `facts`, 0 to 1, in their order.
    pub fn facts(&self, facts: &[FactRow]) -> Vec<f64> {
        let lexical = match (self.words, self.index) {
            (Some((text, analyzer)), Some(index)) => {
                bm25::relevance(&analyzer.terms(text), &index.fact_terms(facts))
            }
            (Some((text, analyzer)), None) => {
                let terms: Vec<Vec<String>> = facts
                    .iter()
                    .map(|fact| analyzer.terms(&fact.text))
                    .collect();
                bm25::relevance(&analyzer.terms(text), &terms)
            }
            (None, _) => vec![0.0; facts.len()],
        };
        let dense: Option<Vec<Option<f64>>> = self.meaning.map(|(query, pair)| {
            facts
                .iter()
                .map(|fact| Some(cosine(query, pair.fact(fact.id, &fact.text_hash)?)))
                .collect()
        });
        fusion::relevance(&lexical, dense.as_deref())
    }
}

/// A fact untouched this long counts half as recent.
pub const RECENCY_HALF_LIFE_DAYS: f64 = 7.0;

const STOPWORDS: &[&str] = &[
    "the", "and", "but", "for", "are", "was", "were", "you", "your", "have", "has", "had", "with",
    "that", "this", "what", "who", "how", "why", "when", "where", "any", "can", "could", "would",
    "should", "will", "not", "from", "they", "them", "their", "there", "about", "just", "player",
];

/// Content words of a text for lore's ranking: lower-cased, without stopwords or very
/// short words, a plural "s" dropped so "cats" finds "cat".
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

pub fn score(weights: Weights, importance: u8, recency: f64, relevance: f64) -> f64 {
    weights.importance * f64::from(importance.min(10)) / 10.0
        + weights.recency * recency
        + weights.relevance * relevance
}

/// How recently a fact was used or changed.
fn touched(fact: &FactRow) -> DateTime<Utc> {
    fact.last_used_at
        .unwrap_or(fact.updated_at)
        .max(fact.updated_at)
}

/// A message's score: as a fact of middling importance, as recent as when it was said.
pub fn message_score(
    weights: Weights,
    relevance: f64,
    said_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> f64 {
    score(
        weights,
        MESSAGE_IMPORTANCE,
        recency(now, said_at),
        relevance,
    )
}

/// A ranked fact: its score and, of that, its relevance.
#[derive(Debug, Clone, Copy)]
pub struct RankedFact<'a> {
    pub fact: &'a FactRow,
    pub score: f64,
    pub relevance: f64,
}

/// The best `limit` facts for `query`, best first.
pub fn rank<'a>(
    facts: &'a [FactRow],
    query: &Query<'_>,
    weights: Weights,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<RankedFact<'a>> {
    let mut scored: Vec<RankedFact<'a>> = facts
        .iter()
        .zip(query.facts(facts))
        .map(|(fact, relevance)| RankedFact {
            fact,
            score: score(
                weights,
                fact.importance,
                recency(now, touched(fact)),
                relevance,
            ),
            relevance,
        })
        .collect();
    // Ties go to the newer fact, then the higher id, so the order is stable.
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.fact.updated_at.cmp(&a.fact.updated_at))
            .then(b.fact.id.cmp(&a.fact.id))
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
        assert!((score(PROMPT, 10, 1.0, 1.0) - 1.0).abs() < 1e-9);
        assert!((score(PROMPT, 0, 0.0, 0.0)).abs() < 1e-9);
        assert!((score(PROMPT, 5, 1.0, 0.0) - 0.35).abs() < 1e-9);
        assert!((score(SEARCH, 10, 1.0, 1.0) - 1.0).abs() < 1e-9);
        let now = Utc::now();
        assert!((recency(now, now) - 1.0).abs() < 1e-9);
        assert!((recency(now, now - Duration::days(7)) - 0.5).abs() < 1e-6);
        assert!((recency(now, now - Duration::days(14)) - 0.25).abs() < 1e-6);
    }

    fn ids(ranked: &[RankedFact<'_>]) -> Vec<u64> {
        ranked.iter().map(|ranked| ranked.fact.id).collect()
    }

    #[test]
    fn a_relevant_fact_beats_a_slightly_more_important_one() {
        let english = Analyzer::english();
        let facts = vec![
            fact(1, "Player fears the sea", 7, 0),
            fact(2, "Player has a cat named Whiskers", 6, 0),
        ];
        let query = Query::words("How is your cat?", &english);
        assert_eq!(ids(&rank(&facts, &query, PROMPT, Utc::now(), 2))[0], 2);
        let unqueried = rank(&facts, &Query::default(), PROMPT, Utc::now(), 2);
        assert_eq!(ids(&unqueried)[0], 1, "without a query importance leads");
    }

    #[test]
    fn relevance_by_words_is_bm25_as_a_share_of_the_query() {
        let english = Analyzer::english();
        let facts = vec![
            fact(1, "Player has a cat named Whiskers", 5, 0),
            fact(2, "Player visited the lighthouse", 5, 0),
            fact(3, "Whiskers the cat sleeps on the lighthouse stairs", 5, 0),
        ];
        let relevance = Query::words("Where does Whiskers sleep?", &english).facts(&facts);
        assert_eq!(relevance[1], 0.0);
        assert!(relevance[2] > relevance[0], "two of the words beat one");
        assert!(relevance.iter().all(|r| (0.0..=1.0).contains(r)));
        assert!(Query::default().facts(&facts).iter().all(|r| *r == 0.0));
    }

    #[test]
    fn by_meaning_a_cat_fact_beats_a_much_more_important_unrelated_one() {
        let english = Analyzer::english();
        let facts = vec![
            fact(1, "Player is the heir to the duchy", 9, 0),
            fact(2, "Player has a cat named Whiskers", 5, 0),
            fact(3, "Player likes pets of every kind", 4, 0),
        ];
        let mut pair = PairVectors::default();
        pair.insert_fact(1, &facts[0].text_hash, vec![0.0, 1.0]);
        pair.insert_fact(2, &facts[1].text_hash, vec![0.8, 0.6]);
        // Fact 3's vector is of an older text: it counts by words only.
        pair.insert_fact(3, "stale", vec![1.0, 0.0]);
        let query = Query::meaning("Do you like animals?", &english, &[1.0, 0.0], &pair);
        let relevance = query.facts(&facts);
        assert!(relevance[1] > relevance[0]);
        assert!(relevance[2] > 0.0, "like of like");
        let ranked = rank(&facts, &query, SEARCH, Utc::now(), 3);
        assert_eq!(ranked[0].fact.id, 2);
        assert_eq!(ranked[2].fact.id, 1);
        let words = Query::words("Do you like animals?", &english).facts(&facts);
        assert_eq!(words[1], 0.0, "words miss it");
    }

    #[test]
    fn old_facts_fade_behind_fresh_ones_of_equal_importance() {
        let facts = vec![
            fact(1, "Player sold a horse", 5, 60),
            fact(2, "Player bought a boat", 5, 1),
        ];
        assert_eq!(
            ids(&rank(&facts, &Query::default(), PROMPT, Utc::now(), 1)),
            vec![2]
        );
    }

    #[test]
    fn ranking_respects_the_limit() {
        let english = Analyzer::english();
        let facts: Vec<FactRow> = (0..50)
            .map(|i| fact(i, &format!("fact number {i}"), 5, 0))
            .collect();
        let query = Query::words("number", &english);
        assert_eq!(rank(&facts, &query, PROMPT, Utc::now(), 5).len(), 5);
    }
}
