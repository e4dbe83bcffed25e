//! The service layer: decides and orchestrates; no HTTP types, no SQL text.
//!
//! - `turn/`: a player's turn, from the parsed input to the stored exchange (prompt,
//!   reply, fallback lines, idempotency keys, the conversation lease).
//! - `memory/`: what characters remember (recall, summaries, fact extraction) and the
//!   background job worker that builds it.
//! - `money/`: the ledger (reserve, settle, release), budgets and usage reports.
//! - `paid_call/`: the one paid LLM call every purpose goes through, and the circuit.
//! - `world/`: what characters share: lore, game events and gossip.
//! - `import.rs`: a studio's past conversations appended, serialized with turns.
//! - `characters.rs`, `conversations.rs`: the resources the game reads and writes.
//! - `error.rs`: what can go wrong, in the service's words; `housekeeping.rs`: purges
//!   what has outlived its retention.

pub mod characters;
pub mod conversations;
pub mod error;
pub mod housekeeping;
pub mod import;
pub mod jobs;
pub mod memory;
pub mod money;
pub mod paid_call;
pub mod turn;
pub mod world;

pub use error::{ServiceError, ServiceResult};

use crate::{
    config::Config,
    domain::PlayerKeys,
    llm::{OpenAiCompatible, Provider},
};
use anyhow::Context;
use money::ledger::Ledger;
use paid_call::circuit::CircuitBreakers;
use sqlx::MySqlPool;
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// Everything a request may need, built once at start-up and shared by all handlers.
#[derive(Debug)]
pub struct Services {
    pub config: Arc<Config>,
    pub pool: MySqlPool,
    /// `/readyz`'s own connection, so probes and turns never wait for each other.
    pub readiness: MySqlPool,
    /// The provider every paid call goes to (`llm::Provider`).
    pub llm: Arc<dyn Provider>,
    /// `None` with `EMBEDDING_MODEL` unset: relevance by words only.
    pub embeddings: Option<memory::embeddings::Embeddings>,
    /// This replica's lexical indexes of the pairs' messages.
    pub texts: memory::lexical::TextCache,
    pub ledger: Ledger,
    pub circuits: CircuitBreakers,
    /// Player ids under the keyed hash erasure remembers them by.
    pub keys: PlayerKeys,
    /// This replica's copy of the lore, reloaded when a turn sees it changed.
    pub lore: world::lore::LoreCache,
    /// The turns in flight, each on a task of its own (it outlives a client that hung
    /// up): shutdown waits for them before the pool closes.
    pub turns: TaskTracker,
}

/// The name of the erasure hash key in `service_secrets`.
const ERASURE_HASH_KEY: &str = "erasure_hash_key";

impl Services {
    /// Builds the state over a migrated database: `ERASURE_HASH_KEY`, or the key the
    /// first replica made and stored, so every replica hashes erased players alike.
    pub async fn build(config: Arc<Config>, pool: MySqlPool) -> anyhow::Result<Self> {
        let secret = match &config.erasure_hash_key {
            Some(secret) => secret.expose().to_owned(),
            None => crate::store::secrets::get_or_create(&pool, ERASURE_HASH_KEY, || {
                hex::encode(rand::random::<[u8; 32]>())
            })
            .await
            .context("reading the erasure hash key")?,
        };
        let keys = PlayerKeys::new(secret.as_bytes());
        Ok(Self {
            llm: Arc::new(OpenAiCompatible::new(
                &config.llm,
                config.embedding.as_ref(),
            )?),
            embeddings: config.embedding.as_ref().map(|embedding| {
                memory::embeddings::Embeddings::new(embedding, config.memory_cache_bytes)
            }),
            texts: memory::lexical::TextCache::new(config.memory_cache_bytes),
            ledger: Ledger::new(pool.clone(), config.clone(), keys.clone()),
            keys,
            circuits: CircuitBreakers::new(
                config.llm.circuit_failures,
                config.llm.circuit_cooldown,
                // A probe is a whole turn's LLM work at most.
                config.llm.deadline,
            ),
            lore: Default::default(),
            turns: TaskTracker::new(),
            readiness: crate::store::readiness_pool(&config.database_url)?,
            config,
            pool,
        })
    }

    /// `/readyz`: can the database run a query right now?
    pub async fn database_answers(&self) -> bool {
        crate::store::ping(&self.readiness).await
    }
}
