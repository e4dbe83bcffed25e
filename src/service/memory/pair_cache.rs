//! What a replica keeps in memory per (player, character) pair it served lately — the
//! pair's vectors, its lexical index — so retrieval reads only what changed since, not
//! all of a pair's history each time. Bounded in bytes, the least recently used pairs go
//! first. An entry says itself which erasure generation it is of: after an erasure (on
//! any replica) the caller's generation differs and the entry is rebuilt, so no cache
//! serves an erased player's memory.

use crate::domain::{CharacterId, PlayerId};
use lru::LruCache;
use std::sync::{Arc, Mutex};

pub type Pair = (PlayerId, CharacterId);

/// What a cache entry must tell about itself.
pub trait Entry {
    /// Bytes it holds, roughly.
    fn bytes(&self) -> usize;
    /// Whether it holds more of the same pair's history than `other` (two callers may
    /// refresh the same pair at once: the fresher copy is kept).
    fn fresher_than(&self, other: &Self) -> bool;
}

#[derive(Debug)]
pub struct PairCache<T> {
    budget: usize,
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    /// Each entry with the bytes it was counted at when kept (an entry that grows in
    /// place is kept again to count it anew).
    pairs: LruCache<Pair, (Arc<T>, usize)>,
    bytes: usize,
}

impl<T: Entry> PairCache<T> {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            budget: budget_bytes,
            inner: Mutex::new(Inner {
                pairs: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The pair's entry, marked as the most recently used.
    pub fn get(&self, key: &Pair) -> Option<Arc<T>> {
        self.lock().pairs.get(key).map(|(entry, _)| entry.clone())
    }

    /// Stores the entry as the newest (unless a fresher one of the same kind is there),
    /// or counts anew the bytes of one kept already, then forgets the least recently used
    /// others until the cache fits its budget (an entry larger than all of it is kept
    /// alone).
    pub fn keep(&self, key: Pair, entry: Arc<T>, same_kind: impl Fn(&T) -> bool) {
        let mut inner = self.lock();
        if let Some((existing, _)) = inner.pairs.peek(&key)
            && !Arc::ptr_eq(existing, &entry)
            && same_kind(existing)
            && existing.fresher_than(&entry)
        {
            return;
        }
        let added = entry.bytes();
        if let Some((_, counted)) = inner.pairs.put(key, (entry, added)) {
            inner.bytes -= counted;
        }
        inner.bytes += added;
        while inner.bytes > self.budget && inner.pairs.len() > 1 {
            match inner.pairs.pop_lru() {
                Some((_, (_, counted))) => inner.bytes -= counted,
                None => break,
            }
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    #[cfg(test)]
    pub fn holds(&self, key: &Pair) -> bool {
        self.lock().pairs.peek(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sized(usize, u32);

    impl Entry for Sized {
        fn bytes(&self) -> usize {
            self.0
        }
        fn fresher_than(&self, other: &Self) -> bool {
            self.1 > other.1
        }
    }

    fn key(n: &str) -> Pair {
        (
            PlayerId::parse(n).unwrap(),
            CharacterId::parse("c").unwrap(),
        )
    }

    #[test]
    fn the_least_recently_used_pair_goes_beyond_the_budget() {
        let cache = PairCache::new(20);
        cache.keep(key("a"), Arc::new(Sized(10, 1)), |_| true);
        cache.keep(key("b"), Arc::new(Sized(10, 1)), |_| true);
        assert_eq!(cache.bytes(), 20);
        cache.get(&key("a"));
        cache.keep(key("c"), Arc::new(Sized(10, 1)), |_| true);
        assert_eq!(cache.bytes(), 20);
        assert!(cache.holds(&key("a")) && cache.holds(&key("c")));
        assert!(!cache.holds(&key("b")));
        cache.keep(key("huge"), Arc::new(Sized(50, 1)), |_| true);
        assert!(cache.holds(&key("huge")), "kept alone");
        assert_eq!(cache.bytes(), 50);
    }

    #[test]
    fn a_staler_copy_does_not_replace_a_fresher_one() {
        let cache = PairCache::new(100);
        cache.keep(key("a"), Arc::new(Sized(10, 5)), |_| true);
        cache.keep(key("a"), Arc::new(Sized(12, 4)), |_| true);
        assert_eq!(cache.get(&key("a")).unwrap().1, 5);
        cache.keep(key("a"), Arc::new(Sized(12, 4)), |_| false);
        assert_eq!(cache.get(&key("a")).unwrap().1, 4, "another generation");
        assert_eq!(cache.bytes(), 12);
    }
}
