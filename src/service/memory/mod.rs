//! What characters remember: the running summary of each conversation (`summary`),
//! long-term facts per (player, character) (`facts`, `extraction`), their retrieval for
//! prompts and dashboards (`recall`, `retrieval`), vectors of facts and messages for
//! relevance by meaning (`embeddings`, `vectors`), the character's mood and the affinity
//! hint it suggests (`mood`), the handlers of the background jobs that build them
//! (`job_handlers`, run by `service::jobs`) and the right to be forgotten (`erasure`).

pub mod embeddings;
pub mod erasure;
pub mod extraction;
pub mod facts;
pub mod fusion;
pub mod lexical;
pub mod lines;
pub mod mood;
pub mod pair_cache;
pub mod recall;
pub mod retrieval;
pub mod search;
pub mod summary;
pub mod vectors;

use crate::{
    llm::{ChatMessage, Completion, Purpose, retry::RetryPolicy},
    service::{
        Services,
        jobs::Handlers,
        money::ledger::CallFor,
        paid_call::{CallOutcome, Delivery, PaidCall},
    },
    store::jobs::JobRow,
};
use tokio::time::Instant;

/// Messages one summarization or extraction call reads at most (but see
/// `jobs::next_batch`: imported history is extracted in batches of at least
/// `FACT_EXTRACTION_EVERY × 4`); a backlog is worked off by one job after another.
pub const MESSAGES_PER_JOB: u32 = 60;

/// The work memory hands the job runner: a summary, an extraction, embeddings.
pub fn job_handlers() -> Handlers {
    Handlers {
        summarize: |services, job, generation| {
            Box::pin(summary::summarize(services, job, generation))
        },
        extract_facts: |services, job, generation| {
            Box::pin(facts::extract_facts(services, job, generation))
        },
        embed: |services, job, generation| {
            Box::pin(embeddings::embed_pending(services, job, generation))
        },
    }
}

/// One paid call for background work, on the cheaper model when there is one: one
/// attempt (the job itself is retried with backoff), `None` when it must wait.
async fn background_call(
    services: &Services,
    job: &JobRow,
    generation: u32,
    purpose: Purpose,
    messages: Vec<ChatMessage>,
    max_tokens: u32,
) -> anyhow::Result<Option<Completion>> {
    let config = &services.config;
    if !services.llm.is_configured() {
        return Ok(None);
    }
    // The player's own lines come first: in the warning band, background work waits.
    if services.ledger.status(&job.player_id).await?.warning() {
        return Ok(None);
    }
    let model = config
        .llm
        .fallback_model
        .as_deref()
        .unwrap_or(&config.llm.model);
    let retries = RetryPolicy {
        base: config.llm.retry_base,
        max_retries: 0,
        attempt_timeout: config.llm.timeout,
    };
    let who = CallFor {
        player_id: &job.player_id,
        generation,
        conversation_id: Some(&job.conversation_id),
        character_id: Some(&job.character_id),
        purpose,
    };
    let deadline = Instant::now() + config.llm.timeout;
    let mut call = PaidCall::new(who, messages, max_tokens, retries, deadline);
    call.json_object = purpose == Purpose::FactExtraction;
    match services.paid_call(&call, model, Delivery::Whole).await? {
        CallOutcome::Answered { completion, .. } => Ok(Some(completion)),
        CallOutcome::NotCalled(_) => Ok(None),
        CallOutcome::Failed { error, .. } => {
            Err(anyhow::Error::new(error).context(format!("{} call", purpose.as_str())))
        }
    }
}
