//! What a turn answers: the player's line and the reply, as stored, and what they cost.

use crate::{
    domain::{ConversationId, FallbackReason, Source},
    service::{conversations::Message, money::Spent},
};
use serde::{Deserialize, Serialize};

/// A stored exchange. Serialized in the API's shape: it is also what an `Idempotency-Key`
/// keeps and replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub conversation_id: ConversationId,
    pub player_message: Message,
    pub reply: Message,
    pub fallback_reason: Option<FallbackReason>,
    pub usage: Spent,
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
