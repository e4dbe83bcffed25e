//! Gossip: a memory about a player of importance at least `GOSSIP_MIN_IMPORTANCE` (from
//! a conversation, an import, an event or gossip itself) spreads `GOSSIP_DELAY_S` after
//! it is stored to the other members of its holder's factions, as hearsay: `source`
//! `gossip`, heard from the holder, derived from the memory, importance ×
//! `GOSSIP_DECAY` (floored, at least 1), at most `GOSSIP_MAX_HOPS` tellings from the
//! first-hand memory. No LLM call: the words travel as they were.
//!
//! The schedule is the memory's own `spread_at`, written with it, so it survives
//! restarts; every replica looks for what is due, and a memory spreads once (its row is
//! locked and its `spread_at` cleared in the transaction that writes the hearsay).

use crate::{
    config::GossipConfig,
    domain::MemorySource,
    service::Services,
    store::{
        self, characters,
        facts::{self, NO_PLAYER, NewFact, Provenance},
        players,
    },
};
use anyhow::Context;
use std::{sync::Arc, time::Duration};
use tokio::{sync::watch, task::JoinHandle};

/// How often a replica looks for memories due to spread.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Memories spread per look at most; the rest wait for the next.
const BATCH: u32 = 100;

/// How long after it is stored a memory at `hops` tellings from first hand spreads:
/// `None` when it is not important enough or has travelled as far as it may.
pub fn spread_after(gossip: &GossipConfig, importance: u8, hops: u8) -> Option<Duration> {
    (hops < gossip.max_hops && importance >= gossip.min_importance).then_some(gossip.delay)
}

/// The importance of what is heard from a memory of `importance`: floored, at least 1.
pub fn decayed(importance: u8, decay: f64) -> u8 {
    (f64::from(importance) * decay).floor().clamp(1.0, 10.0) as u8
}

/// Looks for due memories every second until `shutdown` turns true.
pub fn spawn(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*shutdown.borrow() {
            if let Err(error) = spread_due(&services).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "could not spread gossip; next time"
                );
            }
            let _ = tokio::time::timeout(LOOK_EVERY, shutdown.changed()).await;
        }
    })
}

/// Spreads the memories due now (by the database's clock); how many spread.
pub async fn spread_due(services: &Services) -> anyhow::Result<usize> {
    let due = facts::due_to_spread(&services.pool, BATCH).await?;
    let mut spread = 0;
    for (id, player_id) in due {
        let heard = store::retry_lock_conflicts(|| spread_one(services, id, &player_id))
            .await
            .with_context(|| format!("spreading memory {id}"))?;
        if let Some(heard) = heard {
            spread += 1;
            tracing::info!(memory_id = id, heard, "gossip spread");
        }
    }
    Ok(spread)
}

/// Spreads one memory, in one transaction; how many characters heard it, `None` when it
/// was gone or spread already.
async fn spread_one(services: &Services, id: u64, player_id: &str) -> sqlx::Result<Option<usize>> {
    let gossip = &services.config.gossip;
    let mut tx = services.pool.begin().await?;
    // The player first, as an erasure locks it first: an erasure either waits for the
    // hearsay (and deletes it with the rest) or has deleted the memory already.
    if player_id != NO_PLAYER {
        players::lock_existing(&mut tx, player_id).await?;
    }
    // Locked, then read: the read joins the teller's character row, which a locking read
    // would lock too (MariaDB has no `FOR UPDATE OF`), holding up edits of that character.
    if !facts::lock_due(&mut tx, id).await? {
        return Ok(None);
    }
    let Some(memory) = facts::get(&mut *tx, id).await? else {
        return Ok(None);
    };
    let hearers = characters::fellows(&mut *tx, &memory.character_id).await?;
    let importance = decayed(memory.importance, gossip.decay);
    let hops = memory.hops.saturating_add(1);
    let mut heard = 0;
    for hearer in &hearers {
        let hearsay = NewFact {
            player_id: &memory.player_id,
            character_id: hearer,
            text: &memory.text,
            text_hash: &memory.text_hash,
            importance,
            source: MemorySource::Gossip,
            provenance: Provenance {
                heard_from: Some(&memory.character_id),
                event_id: memory.event_id,
                derived_from: Some(memory.id),
                hops,
            },
            learned_in: None,
            spread_after: spread_after(gossip, importance, hops),
        };
        // A character who knows it already (first hand, or heard it first) keeps that.
        heard += usize::from(facts::insert(&mut tx, &hearsay, crate::clock::now()).await?);
    }
    facts::spread_done(&mut tx, id).await?;
    tx.commit().await?;
    crate::metrics::gossip_heard(heard);
    Ok(Some(heard))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_hops: u8) -> GossipConfig {
        GossipConfig {
            min_importance: 7,
            delay: Duration::from_secs(600),
            decay: 0.7,
            max_hops,
        }
    }

    #[test]
    fn importance_decays_by_telling_floored_and_never_below_one() {
        assert_eq!(decayed(10, 0.7), 7);
        assert_eq!(decayed(7, 0.7), 4);
        assert_eq!(decayed(9, 0.7), 6);
        assert_eq!(decayed(1, 0.7), 1);
        assert_eq!(decayed(8, 0.0), 1);
        assert_eq!(decayed(8, 1.0), 8);
    }

    #[test]
    fn only_important_memories_spread_and_no_further_than_the_hop_limit() {
        let later = Some(Duration::from_secs(600));
        assert_eq!(spread_after(&policy(1), 7, 0), later);
        assert_eq!(spread_after(&policy(1), 6, 0), None);
        // Heard once: with one hop allowed it goes no further, with two it may.
        assert_eq!(spread_after(&policy(1), 9, 1), None);
        assert_eq!(spread_after(&policy(2), 9, 1), later);
        assert_eq!(spread_after(&policy(0), 10, 0), None);
    }
}
