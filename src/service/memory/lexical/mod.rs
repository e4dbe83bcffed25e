//! Relevance by words: each pair's messages in a BM25 index (`index`, `bm25`) built by a
//! per-language analyzer (`analyzer`), kept per replica for the pairs served lately and
//! brought up to date from MySQL, the source of truth, before each use: the pair's
//! conversations and their highest `seq` (one statement), then only the messages past
//! what the index holds (a second one, when there are any). Every replica reads the same
//! rows, so every replica ranks alike.

pub mod analyzer;
pub mod bm25;
pub mod index;
pub mod names;

use super::pair_cache::{Entry, PairCache};
use crate::{
    domain::{CharacterId, PlayerId},
    store::{conversations, messages},
};
use index::{Applied, PairText};
use sqlx::MySqlConnection;
use std::sync::{Arc, RwLock};

/// A pair's index, shared by the searches and turns that read it; a refresh appends to
/// it in place.
pub type SharedText = Arc<RwLock<PairText>>;

impl Entry for RwLock<PairText> {
    fn bytes(&self) -> usize {
        read(self).bytes()
    }

    fn fresher_than(&self, other: &Self) -> bool {
        read(self).len() > read(other).len()
    }
}

/// The pair's index for reading (a poisoned lock still holds a consistent index: a
/// panic mid-append leaves at worst a message unindexed until the next build).
pub fn read(text: &RwLock<PairText>) -> std::sync::RwLockReadGuard<'_, PairText> {
    text.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(text: &RwLock<PairText>) -> std::sync::RwLockWriteGuard<'_, PairText> {
    text.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This replica's lexical indexes of the pairs it served lately.
#[derive(Debug)]
pub struct TextCache {
    pairs: PairCache<RwLock<PairText>>,
}

impl TextCache {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            pairs: PairCache::new(budget_bytes),
        }
    }

    /// The pair's index, up to date with what `conn` sees; `generation` is the
    /// player's erasure count as the caller read it.
    pub async fn pair(
        &self,
        conn: &mut MySqlConnection,
        player_id: &PlayerId,
        character_id: &CharacterId,
        generation: u32,
    ) -> sqlx::Result<SharedText> {
        let key = (player_id.clone(), character_id.clone());
        let same_kind = |text: &RwLock<PairText>| read(text).generation == generation;
        let last_seqs =
            conversations::last_seqs_of_pair(&mut *conn, player_id, character_id).await?;
        if let Some(cached) = self.pairs.get(&key).filter(|text| same_kind(text)) {
            let behind = read(&cached).behind(&last_seqs);
            if behind.is_empty() {
                return Ok(cached);
            }
            let rows = messages::after_seqs(&mut *conn, &behind).await?;
            let applied = write(&cached).apply(rows);
            if applied == Applied::Done {
                self.pairs.keep(key, cached.clone(), same_kind);
                return Ok(cached);
            }
        }
        let rows = if last_seqs.is_empty() {
            Vec::new()
        } else {
            let from_start: Vec<_> = last_seqs
                .into_iter()
                .map(|(conversation, _)| (conversation, 0))
                .collect();
            messages::after_seqs(&mut *conn, &from_start).await?
        };
        let built = Arc::new(RwLock::new(PairText::build(generation, rows)));
        self.pairs.keep(key, built.clone(), same_kind);
        Ok(built)
    }
}
