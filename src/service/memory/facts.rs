//! Long-term facts: the extraction job that learns them from the conversation, and
//! forgetting one.

use super::{
    MESSAGES_PER_JOB, background_call,
    extraction::{self, Extraction},
};
use crate::{
    domain::{ConversationId, MemorySource, Role},
    llm::Purpose,
    service::{
        ServiceError, ServiceResult, Services,
        jobs::{self, JobDone, JobKind},
        world::gossip,
    },
    store::{
        self, conversations, erasure,
        facts::{self, FactRow, NewFact, Provenance},
        jobs::JobRow,
        messages, players,
    },
};
use anyhow::Context;
use sha2::{Digest, Sha256};

/// Known facts shown to the extractor, so it can update or delete them.
const KNOWN_FACTS_FOR_EXTRACTION: u32 = 50;
const EXTRACTION_MAX_TOKENS: u32 = 600;

pub fn text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(extraction::normalize(text).as_bytes()))
}

/// Reads the messages since the watermark and applies what the extractor found.
/// `generation`: the player's erasure count when the job began; the write checks it.
pub async fn extract_facts(
    services: &Services,
    job: &JobRow,
    generation: u32,
) -> anyhow::Result<JobDone> {
    let pool = &services.pool;
    let Some(conversation) = conversations::get(pool, &job.conversation_id).await? else {
        return Ok(JobDone::Finished);
    };
    let from = conversation.extracted_seq;
    // One origin a call (imported history, or turns), so each fact says where it was
    // learned. Imported history goes in batches of at least FACT_EXTRACTION_EVERY × 4
    // messages (at most one call per that many), shared evenly; turns' messages up to
    // MESSAGES_PER_JOB a call, as ever.
    let Some((imported, run_end)) =
        messages::run_after(pool, &conversation.id, from, conversation.last_seq).await?
    else {
        return Ok(JobDone::Finished);
    };
    let batch = if imported {
        let least = services
            .config
            .fact_extraction_every
            .saturating_mul(jobs::IMPORT_EXTRACTION_FACTOR);
        jobs::next_batch(run_end - from, MESSAGES_PER_JOB.max(least), least)
    } else {
        (run_end - from).min(MESSAGES_PER_JOB)
    };
    let source = if imported {
        MemorySource::Import
    } else {
        MemorySource::Conversation
    };
    let new = messages::range(pool, &conversation.id, from, from + batch, batch).await?;
    let Some(to) = new.last().map(|message| message.seq) else {
        return Ok(JobDone::Finished);
    };
    // The facts as the extractor sees them; if they change before its findings are
    // stored (another conversation's extraction), the findings are read again.
    let seen = facts::version(pool, &job.player_id, &job.character_id).await?;
    let known = facts::candidates(
        pool,
        &job.player_id,
        &job.character_id,
        KNOWN_FACTS_FOR_EXTRACTION,
    )
    .await?;
    let known_view: Vec<(u64, &str, u8)> = known
        .iter()
        .map(|f| (f.id, f.text.as_str(), f.importance))
        .collect();
    let exchange: Vec<(bool, &str)> = new
        .iter()
        .map(|m| (m.role == Role::Player, m.content.as_str()))
        .collect();
    let prompt = extraction::prompt(&known_view, &exchange);
    let Some(completion) = background_call(
        services,
        job,
        generation,
        Purpose::FactExtraction,
        prompt,
        EXTRACTION_MAX_TOKENS,
    )
    .await?
    else {
        return Ok(JobDone::Deferred);
    };
    // Not an object at all: a failed attempt (retried, then parked); nothing advances.
    let extraction = extraction::parse(&completion.content)?;
    if extraction.skipped > 0 {
        tracing::warn!(
            skipped = extraction.skipped,
            "fact extraction returned malformed or instruction-like parts; skipped them"
        );
    }
    let applied = store::retry_lock_conflicts(|| {
        apply(
            services,
            job,
            generation,
            &conversation.id,
            (from, to, source),
            (&known, seen),
            &extraction,
        )
    })
    .await?;
    if applied == Applied::Stale {
        // Nothing was stored and the watermark stays: the same messages, read again
        // against the facts as they are now, by the job that follows at once.
        tracing::info!("the pair's facts changed during extraction; extracting again");
        return Ok(JobDone::MoreToDo);
    }
    let applied = applied == Applied::Stored;
    // The rest of a backlog (imported history, above all) follows at once, while it is
    // due by the same rule a turn applies.
    let rest = jobs::Progress {
        last_seq: conversation.last_seq,
        summary_seq: conversation.summary_seq,
        extracted_seq: to,
    };
    let more = jobs::due(
        rest,
        u32::MAX,
        u32::MAX,
        services.config.fact_extraction_every,
    )
    .contains(&jobs::JobKind::ExtractFacts);
    Ok(if applied && more {
        JobDone::MoreToDo
    } else {
        JobDone::Finished
    })
}

/// What became of an extraction's findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Stored,
    /// Erased since, or another worker stored these messages' findings: dropped.
    Dropped,
    /// The pair's facts changed since the extractor read them: its updates and
    /// deletions may be of an old view. Nothing stored.
    Stale,
}

async fn apply(
    services: &Services,
    job: &JobRow,
    generation: u32,
    conversation_id: &ConversationId,
    (from, to, source): (u32, u32, MemorySource),
    (known, seen): (&[FactRow], facts::PairVersion),
    extraction: &Extraction,
) -> anyhow::Result<Applied> {
    let now = crate::clock::now();
    let owned: std::collections::HashSet<u64> = known.iter().map(|fact| fact.id).collect();
    let mut tx = services
        .pool
        .begin()
        .await
        .context("starting to store facts")?;
    // Erased since the job began: nothing learned from the erased messages comes back.
    let key = services.keys.key(&job.player_id);
    if erasure::generation_locked(&mut tx, &key).await? != generation {
        return Ok(Applied::Dropped);
    }
    if facts::version_locked(&mut tx, &job.player_id, &job.character_id).await? != seen {
        return Ok(Applied::Stale);
    }
    // Only the worker that moves the watermark applies its findings: a duplicate job
    // that read the same messages changes nothing.
    if !conversations::advance_extraction(&mut tx, conversation_id, from, to).await? {
        return Ok(Applied::Dropped);
    }
    fn learned<'a>(
        job: &'a JobRow,
        conversation_id: &'a ConversationId,
        (from, to, source): (u32, u32, MemorySource),
        proposed: &'a extraction::ProposedFact,
        hash: &'a str,
        spread_after: Option<std::time::Duration>,
    ) -> NewFact<'a> {
        NewFact {
            player_id: job.player_id.as_str(),
            character_id: job.character_id.as_str(),
            text: &proposed.text,
            text_hash: hash,
            importance: proposed.importance,
            source,
            provenance: Provenance::default(),
            learned_in: Some((conversation_id, from + 1, to)),
            spread_after,
        }
    }
    let mut stored = 0;
    for proposed in &extraction.facts {
        let hash = text_hash(&proposed.text);
        // A new memory important enough spreads as gossip in time.
        let spread_after = gossip::spread_after(&services.config.gossip, proposed.importance, 0);
        let fact = learned(
            job,
            conversation_id,
            (from, to, source),
            proposed,
            &hash,
            spread_after,
        );
        stored += usize::from(facts::insert(&mut tx, &fact, now).await?);
    }
    for (id, proposed) in &extraction.updates {
        if !owned.contains(id) {
            tracing::warn!(
                id,
                "extractor tried to update a fact that is not this player's; skipped"
            );
            continue;
        }
        let hash = text_hash(&proposed.text);
        let fact = learned(
            job,
            conversation_id,
            (from, to, source),
            proposed,
            &hash,
            None,
        );
        facts::update(&mut tx, *id, &fact, now).await?;
    }
    for id in &extraction.deletes {
        if owned.contains(id) {
            facts::delete_owned(&mut tx, *id, &job.player_id, &job.character_id).await?;
        } else {
            tracing::warn!(
                id,
                "extractor tried to delete a fact that is not this player's; skipped"
            );
        }
    }
    if let Some(topics) = &extraction.topics {
        conversations::set_topics(&mut tx, conversation_id, &serde_json::to_string(topics)?)
            .await?;
    }
    if let Some(mood) = &extraction.mood {
        players::set_mood(
            &mut tx,
            &job.player_id,
            &job.character_id,
            (&mood.label, mood.intensity, &mood.reason),
            now,
        )
        .await?;
    }
    // New and rewritten facts need vectors of their text.
    if services.embeddings.is_some() && (stored > 0 || !extraction.updates.is_empty()) {
        store::jobs::schedule(
            &mut tx,
            JobKind::Embed.as_str(),
            conversation_id,
            &job.player_id,
            &job.character_id,
        )
        .await?;
    }
    tx.commit().await.context("committing facts")?;
    tracing::info!(
        stored,
        updated = extraction.updates.len(),
        deleted = extraction.deletes.len(),
        source = source.as_str(),
        "facts extracted"
    );
    Ok(Applied::Stored)
}

/// Forgets one fact.
pub async fn forget(services: &Services, fact_id: u64) -> ServiceResult<()> {
    if facts::delete(&services.pool, fact_id).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!("fact {fact_id} not found")))
    }
}
