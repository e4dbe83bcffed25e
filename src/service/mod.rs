//! The service layer: decides and orchestrates; no HTTP types, no SQL text.

pub mod characters;
pub mod circuit;
pub mod context;
pub mod conversations;
pub mod extraction;
pub mod fallback;
pub mod idempotency;
pub mod jobs;
pub mod lease;
pub mod memory;
pub mod pricing;
pub mod reply;
pub mod retrieval;
pub mod spend;
pub mod turn;
pub mod usage;

use crate::{config::Config, llm::OpenAiClient};
use sqlx::MySqlPool;
use std::sync::Arc;

/// Everything a request may need, built once at start-up and shared by all handlers.
#[derive(Debug)]
pub struct Services {
    pub config: Arc<Config>,
    pub pool: MySqlPool,
    pub llm: OpenAiClient,
    pub usage: usage::UsageTracker,
    pub circuits: circuit::CircuitBreakers,
}

impl Services {
    pub fn new(config: Arc<Config>, pool: MySqlPool) -> anyhow::Result<Self> {
        Ok(Self {
            llm: OpenAiClient::new(&config.llm)?,
            usage: usage::UsageTracker::new(config.prices.clone()),
            circuits: circuit::CircuitBreakers::new(
                config.llm.circuit_failures,
                config.llm.circuit_cooldown,
                // A probe is a whole turn's LLM work at most.
                config.llm.deadline,
            ),
            config,
            pool,
        })
    }
}
