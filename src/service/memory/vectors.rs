//! A replica's vectors of the pairs it served lately (`pair_cache`), so semantic
//! retrieval reads only what changed since (one indexed statement, usually no row), not
//! every vector of a pair each time. An entry is of one erasure generation and one model:
//! after an erasure (on any replica) or a change of model it is thrown away.

use super::pair_cache::{Entry, PairCache};
use crate::{
    domain::{CharacterId, PlayerId},
    store::vectors::{self, ItemKind, VectorRow},
};
use sqlx::MySqlExecutor;
use std::{collections::HashMap, sync::Arc};

/// One stored vector, as retrieval uses it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub conversation_id: Option<String>,
    pub seq: Option<u32>,
    /// Facts: the hash of the text the vector is of.
    pub text_hash: Option<String>,
    pub vector: Arc<[f32]>,
}

/// A pair's vectors of one model.
#[derive(Debug, Clone, Default)]
pub struct PairVectors {
    generation: u32,
    model: String,
    /// The highest `rev` read: the next refresh asks for what is newer.
    through_rev: u64,
    pub items: HashMap<(ItemKind, u64), Stored>,
    bytes: usize,
}

impl PairVectors {
    pub fn apply(&mut self, rows: Vec<VectorRow>) {
        for row in rows {
            self.through_rev = self.through_rev.max(row.rev);
            let added = weight(row.vector.len());
            let stored = Stored {
                conversation_id: row.conversation_id,
                seq: row.seq,
                text_hash: row.text_hash,
                vector: row.vector.into(),
            };
            if let Some(old) = self.items.insert((row.kind, row.item_id), stored) {
                self.bytes -= weight(old.vector.len());
            }
            self.bytes += added;
        }
    }

    /// The vector of a fact, if it is of the fact's current text.
    pub fn fact(&self, id: u64, text_hash: &str) -> Option<&[f32]> {
        self.items
            .get(&(ItemKind::Fact, id))
            .filter(|stored| stored.text_hash.as_deref() == Some(text_hash))
            .map(|stored| &*stored.vector)
    }

    #[cfg(test)]
    pub fn insert_fact(&mut self, id: u64, text_hash: &str, vector: Vec<f32>) {
        self.items.insert(
            (ItemKind::Fact, id),
            Stored {
                conversation_id: None,
                seq: None,
                text_hash: Some(text_hash.to_owned()),
                vector: vector.into(),
            },
        );
    }

    pub fn messages(&self) -> impl Iterator<Item = (u64, &Stored)> {
        self.items
            .iter()
            .filter(|((kind, _), _)| *kind == ItemKind::Message)
            .map(|((_, id), stored)| (*id, stored))
    }
}

/// Bytes an item holds, roughly: the floats and the bookkeeping around them.
fn weight(dimensions: usize) -> usize {
    dimensions * 4 + 128
}

/// The cosine of two unit vectors (their dot product); 0 when their sizes differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    f64::from(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())
}

/// This replica's vectors of the pairs it served lately.
#[derive(Debug)]
pub struct VectorCache {
    pairs: PairCache<PairVectors>,
}

impl Entry for PairVectors {
    fn bytes(&self) -> usize {
        self.bytes
    }

    fn fresher_than(&self, other: &Self) -> bool {
        self.through_rev > other.through_rev
    }
}

impl VectorCache {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            pairs: PairCache::new(budget_bytes),
        }
    }

    /// The pair's vectors of `model`, brought up to date with one statement on `conn`;
    /// `generation` is the player's erasure count as the caller read it.
    pub async fn pair<'c>(
        &self,
        conn: impl MySqlExecutor<'c>,
        player_id: &PlayerId,
        character_id: &CharacterId,
        model: &str,
        generation: u32,
    ) -> sqlx::Result<Arc<PairVectors>> {
        let key = (player_id.clone(), character_id.clone());
        let same_kind = |pair: &PairVectors| pair.generation == generation && pair.model == model;
        let cached = self.pairs.get(&key).filter(|pair| same_kind(pair));
        let after = cached.as_ref().map_or(0, |pair| pair.through_rev);
        let rows = vectors::since(conn, player_id, character_id, model, after).await?;
        if rows.is_empty()
            && let Some(pair) = cached
        {
            return Ok(pair);
        }
        let mut pair = match cached {
            Some(pair) => Arc::unwrap_or_clone(pair),
            None => PairVectors {
                generation,
                model: model.to_owned(),
                ..PairVectors::default()
            },
        };
        pair.apply(rows);
        let pair = Arc::new(pair);
        self.pairs.keep(key, pair.clone(), same_kind);
        Ok(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rev: u64, kind: ItemKind, id: u64, vector: Vec<f32>) -> VectorRow {
        VectorRow {
            rev,
            kind,
            item_id: id,
            conversation_id: None,
            seq: None,
            text_hash: Some("h".into()),
            vector,
        }
    }

    #[test]
    fn a_newer_vector_replaces_the_older_and_the_bytes_follow() {
        let mut pair = PairVectors::default();
        pair.apply(vec![row(1, ItemKind::Fact, 7, vec![1.0, 0.0])]);
        pair.apply(vec![row(5, ItemKind::Fact, 7, vec![0.0, 1.0])]);
        assert_eq!(pair.through_rev, 5);
        assert_eq!(pair.items.len(), 1);
        assert_eq!(pair.bytes, weight(2));
        assert_eq!(pair.fact(7, "h"), Some(&[0.0f32, 1.0][..]));
        assert_eq!(
            pair.fact(7, "other text"),
            None,
            "a rewritten fact is stale"
        );
    }

    #[test]
    fn cosine_of_unit_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-9);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-9);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
    }
}
