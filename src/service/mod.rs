//! The service layer: decides and orchestrates; no HTTP types, no SQL text.
//!
//! - `turn/`: a player's turn, from the parsed input to the stored exchange (prompt,
//!   reply, fallback lines, idempotency keys, the conversation lease).
//! - `memory/`: what characters remember (recall, summaries, fact extraction) and the
//!   background job worker that builds it.
//! - `money/`: the ledger (reserve, settle, release), budgets and usage reports.
//! - `paid_call/`: the one paid LLM call every purpose goes through, and the circuit.
//! - `characters.rs`, `conversations.rs`: the resources the game reads and writes.
//! - `error.rs`: what can go wrong, in the service's words.

pub mod characters;
pub mod conversations;
pub mod error;
pub mod memory;
pub mod money;
pub mod paid_call;
pub mod turn;

pub use error::{ServiceError, ServiceResult};

use crate::{config::Config, llm::OpenAiClient};
use money::ledger::Ledger;
use paid_call::circuit::CircuitBreakers;
use sqlx::MySqlPool;
use std::sync::Arc;

/// Everything a request may need, built once at start-up and shared by all handlers.
#[derive(Debug)]
pub struct Services {
    pub config: Arc<Config>,
    pub pool: MySqlPool,
    /// `/readyz`'s own connection, so probes and turns never wait for each other.
    pub readiness: MySqlPool,
    pub llm: OpenAiClient,
    pub ledger: Ledger,
    pub circuits: CircuitBreakers,
}

impl Services {
    pub fn new(config: Arc<Config>, pool: MySqlPool) -> anyhow::Result<Self> {
        Ok(Self {
            llm: OpenAiClient::new(&config.llm)?,
            ledger: Ledger::new(pool.clone(), config.clone()),
            circuits: CircuitBreakers::new(
                config.llm.circuit_failures,
                config.llm.circuit_cooldown,
                // A probe is a whole turn's LLM work at most.
                config.llm.deadline,
            ),
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
