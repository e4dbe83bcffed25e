//! What a turn answers: the player's line and the reply, as stored, and what they cost.

use crate::{
    domain::{ConversationId, FallbackReason, Source, Usd},
    service::{conversations::Message, money::Spent},
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A stored exchange. Serialized in the API's shape: it is also what an `Idempotency-Key`
/// keeps and replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub conversation_id: ConversationId,
    pub player_message: Message,
    pub reply: Message,
    pub fallback_reason: Option<FallbackReason>,
    pub usage: TurnUsage,
    /// How the character's mood suggests the game move its affinity, -10..=10
    /// (`memory::mood`): only on the pair's first turn after the mood changed. Answers
    /// stored before this field existed replay with none.
    #[serde(default)]
    pub affinity_hint: Option<i8>,
}

/// What the reply cost and how long the LLM took to give it. Kept in the API's shape
/// (`usage` of a turn): the stored answer of an `Idempotency-Key` holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub cost_usd: Usd,
    /// The reply's LLM time (`Reply::llm_time`), in milliseconds. Answers stored before
    /// this field existed replay with 0.
    #[serde(default)]
    pub latency_ms: u32,
}

impl TurnUsage {
    pub fn new(spent: Spent, llm_time: Duration) -> Self {
        Self {
            prompt_tokens: spent.prompt_tokens,
            completion_tokens: spent.completion_tokens,
            cost_usd: spent.cost_usd,
            latency_ms: u32::try_from(llm_time.as_millis()).unwrap_or(u32::MAX),
        }
    }
}

impl Exchange {
    pub fn source(&self) -> Source {
        FallbackReason::source_of(self.fallback_reason)
    }
}

/// A turn's answer: new, or the stored exchange of an earlier request with the same
/// `Idempotency-Key`.
#[derive(Debug, Clone)]
pub enum TurnOutcome {
    Fresh(Box<Exchange>),
    Replayed(Box<Exchange>),
}
