//! The service layer: decides and orchestrates; no HTTP types, no SQL text.

pub mod characters;
pub mod context;
pub mod conversations;
pub mod fallback;
pub mod pricing;
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
}

impl Services {
    pub fn new(config: Arc<Config>, pool: MySqlPool) -> anyhow::Result<Self> {
        Ok(Self {
            llm: OpenAiClient::new(&config.llm)?,
            usage: usage::UsageTracker::new(config.prices.clone()),
            config,
            pool,
        })
    }
}
