//! Embeddings (`EMBEDDING_MODEL`): the paid call that makes them, the background job
//! that embeds a conversation's messages and its pair's facts in batches, the sweep that
//! finds history without a vector of the current model (switched on late, or changed),
//! and the turn's one call for the player's line. A failure here is never the game's:
//! retrieval falls back to words.

use super::vectors::VectorCache;
use crate::{
    config::EmbeddingConfig,
    domain::{CharacterId, ConversationId, PlayerId},
    llm::{
        self, Completion, Purpose,
        embeddings::{EmbeddingClient, Side},
    },
    service::{
        ServiceResult, Services,
        jobs::{JobDone, JobKind},
        money::ledger::CallFor,
        paid_call::{circuit::Admission, unrecorded},
    },
    store::{
        erasure, jobs,
        jobs::JobRow,
        vectors::{self, ItemKind, NewVector},
    },
};
use anyhow::Context;
use std::time::Duration;

/// Texts one background call embeds at most, of each kind.
const BATCH: u32 = 64;

/// Messages the sweep reads per page; pages per housekeeping round.
const SWEEP_PAGE: u32 = 2000;
const SWEEP_PAGES: usize = 5;

/// The embedding side of the service: the model the provider's embedding calls are made
/// to, and this replica's vector cache.
#[derive(Debug)]
pub struct Embeddings {
    model: String,
    space: String,
    pub cache: VectorCache,
}

impl Embeddings {
    pub fn new(config: &EmbeddingConfig, cache_bytes: usize) -> Self {
        Self {
            model: config.model.clone(),
            space: llm::embeddings::space(&config.model, &config.sides),
            cache: VectorCache::new(cache_bytes),
        }
    }

    /// The model calls are made to and priced by.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// What stored vectors are of (`llm::embeddings::space`): vectors of another space
    /// are never compared with these.
    pub fn space(&self) -> &str {
        &self.space
    }

    /// Whether a query's vector is also that text's vector as a document (no side
    /// marks), so the player's line embedded for a turn needs no second call.
    pub fn query_serves_as_document(&self) -> bool {
        self.space == self.model
    }
}

/// What became of an embedding call.
#[derive(Debug)]
pub enum Embedding {
    /// One unit vector per text, in order.
    Vectors(Vec<Vec<f32>>),
    /// Not made: embeddings off, the circuit open, or the budget cannot afford it.
    NotCalled,
    /// Made and failed (logged, recorded).
    Failed,
}

impl Services {
    /// One paid embedding call for `texts`, like every paid call: the model's circuit
    /// asked, the worst case reserved (no quota slot: the quota counts dialogue), the
    /// attempt recorded and the reservation settled. `Err` only when the database fails.
    /// Query-side calls are a turn's or a search's, made while someone waits: their
    /// failures count towards opening the model's circuit, so a provider without
    /// embeddings stops costing every turn a round trip. Document-side calls are the
    /// background's: they wait for an open circuit but do not open it.
    pub async fn paid_embedding(
        &self,
        who: &CallFor<'_>,
        texts: &[String],
        side: Side,
        timeout: Duration,
    ) -> ServiceResult<Embedding> {
        let interactive = side == Side::Query;
        let Some(embeddings) = &self.embeddings else {
            return Ok(Embedding::NotCalled);
        };
        let model = embeddings.model();
        let admission = self.circuits.admit(model);
        if admission == Admission::Refused {
            return Ok(Embedding::NotCalled);
        }
        let worst_case = self.ledger.cost(model, EmbeddingClient::estimate(texts), 0);
        let reservation = match self.ledger.reserve(who, false, worst_case).await {
            Ok(Ok(reservation)) => reservation,
            Ok(Err(refusal)) => {
                self.circuits.not_called(model, admission);
                tracing::debug!(?refusal, "embedding not made");
                return Ok(Embedding::NotCalled);
            }
            Err(error) => {
                self.circuits.not_called(model, admission);
                return Err(error);
            }
        };
        match self
            .llm
            .embed(texts, side, who.player_id.as_str(), timeout)
            .await
        {
            Ok(embedded) => {
                self.circuits.record_success(model);
                // The ledger prices completions; an embedding is one with no output.
                let completion = Completion {
                    content: String::new(),
                    usage: embedded.usage,
                    latency: embedded.latency,
                    truncated: false,
                };
                self.ledger
                    .close(reservation, who, model, Ok(&completion))
                    .await
                    .map_err(unrecorded)?;
                Ok(Embedding::Vectors(embedded.vectors))
            }
            Err(error) => {
                if interactive {
                    self.circuits.record_failure(model);
                } else {
                    self.circuits.record_background_failure(model);
                }
                tracing::warn!(%error, purpose = who.purpose.as_str(), "embedding call failed");
                self.ledger
                    .close(reservation, who, model, Err(&error))
                    .await
                    .map_err(unrecorded)?;
                Ok(Embedding::Failed)
            }
        }
    }
}

/// The turn's vector of the player's line, within `EMBEDDING_TIMEOUT_MS`; `None` when
/// embeddings are off or the call did not work out (the turn goes on with words).
pub async fn line_vector(
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
    conversation_id: &ConversationId,
    line: &str,
) -> Option<Vec<f32>> {
    let timeout = services.config.embedding.as_ref()?.turn_timeout;
    let made = async {
        let who = CallFor {
            player_id,
            generation: generation(services, player_id).await?,
            conversation_id: Some(conversation_id),
            character_id: Some(character_id),
            purpose: Purpose::Embedding,
        };
        services
            .paid_embedding(&who, &[line.to_owned()], Side::Query, timeout)
            .await
    };
    match made.await {
        Ok(Embedding::Vectors(vectors)) => vectors.into_iter().next(),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, "no embedding for the line; relevance by words");
            None
        }
    }
}

/// The player's erasure count now, for a call made outside a turn's transaction.
pub async fn generation(services: &Services, player_id: &PlayerId) -> ServiceResult<u32> {
    Ok(erasure::generation(&services.pool, &services.keys.key(player_id)).await?)
}

/// The `embed` job: the conversation's messages and its pair's facts that have no vector
/// of the current model, up to `BATCH` of each in one call; `MoreToDo` if more are left.
pub async fn embed_pending(
    services: &Services,
    job: &JobRow,
    generation: u32,
) -> anyhow::Result<JobDone> {
    let Some(embeddings) = &services.embeddings else {
        // Switched off since it was scheduled: nothing to do.
        return Ok(JobDone::Finished);
    };
    let space = embeddings.space();
    let pool = &services.pool;
    let messages = vectors::messages_without(pool, &job.conversation_id, space, BATCH).await?;
    let facts =
        vectors::facts_without(pool, &job.player_id, &job.character_id, space, BATCH).await?;
    if messages.is_empty() && facts.is_empty() {
        return Ok(JobDone::Finished);
    }
    // The player's own lines come first: in the warning band, background work waits.
    if services.ledger.status(&job.player_id).await?.warning() {
        return Ok(JobDone::Deferred);
    }
    let texts: Vec<String> = messages
        .iter()
        .chain(&facts)
        .map(|item| item.text.clone())
        .collect();
    let who = CallFor {
        player_id: &job.player_id,
        generation,
        conversation_id: Some(&job.conversation_id),
        character_id: Some(&job.character_id),
        purpose: Purpose::Embedding,
    };
    let timeout = services
        .config
        .embedding
        .as_ref()
        .map_or(services.config.llm.timeout, |config| config.job_timeout);
    let vectors = match services
        .paid_embedding(&who, &texts, Side::Document, timeout)
        .await
    {
        Ok(Embedding::Vectors(vectors)) => vectors,
        Ok(Embedding::NotCalled) => return Ok(JobDone::Deferred),
        // Retried with backoff like any failed job; the vectors wait, nothing is lost.
        Ok(Embedding::Failed) => anyhow::bail!("the embedding call failed"),
        Err(error) => return Err(anyhow::anyhow!("{error}")),
    };
    let new: Vec<NewVector<'_>> = messages
        .iter()
        .map(|message| (ItemKind::Message, message))
        .chain(facts.iter().map(|fact| (ItemKind::Fact, fact)))
        .zip(&vectors)
        .map(|((kind, item), vector)| NewVector {
            kind,
            item_id: item.id,
            conversation_id: (kind == ItemKind::Message).then_some(&job.conversation_id),
            seq: item.seq,
            text_hash: item.text_hash.as_deref(),
            vector,
        })
        .collect();
    let mut tx = pool.begin().await.context("storing vectors")?;
    // Erased since the job began: nothing of the erased player's comes back.
    if erasure::generation_locked(&mut tx, &services.keys.key(&job.player_id)).await? != generation
    {
        return Ok(JobDone::Finished);
    }
    vectors::replace(
        &mut tx,
        &job.player_id,
        &job.character_id,
        space,
        &new,
        crate::clock::now(),
    )
    .await?;
    tx.commit().await.context("committing vectors")?;
    let more = messages.len() == BATCH as usize || facts.len() == BATCH as usize;
    tracing::info!(
        messages = messages.len(),
        facts = facts.len(),
        more,
        "embedded"
    );
    if more {
        return Ok(JobDone::MoreToDo);
    }
    Ok(JobDone::Finished)
}

/// Finds history without a vector of the current model, a few pages a round, and
/// schedules its conversations' `embed` jobs. How many conversations it scheduled.
pub async fn sweep(services: &Services) -> anyhow::Result<usize> {
    let Some(embeddings) = &services.embeddings else {
        return Ok(0);
    };
    let mut scheduled = 0;
    for _ in 0..SWEEP_PAGES {
        let behind = vectors::sweep_page(&services.pool, embeddings.space(), SWEEP_PAGE).await?;
        if behind.is_empty() {
            break;
        }
        let mut conn = services.pool.acquire().await?;
        for conversation in &behind {
            jobs::schedule(
                &mut conn,
                JobKind::Embed.as_str(),
                &conversation.conversation_id,
                &conversation.player_id,
                &conversation.character_id,
            )
            .await?;
        }
        scheduled += behind.len();
    }
    if scheduled > 0 {
        tracing::info!(scheduled, "conversations scheduled for embedding");
    }
    Ok(scheduled)
}
