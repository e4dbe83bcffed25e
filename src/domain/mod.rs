//! Newtypes that parse input once at the edge: inside the service a value that exists is valid.

mod affinity;
mod ids;
mod message;
mod money;
mod player_key;
pub mod prices;
mod text;

pub use affinity::{Affinity, AffinityTier};
pub use ids::{
    CharacterId, ClientEventId, ClientMessageId, ConversationId, Faction, Flag, LoreId,
    MAX_ID_CHARS, PlayerId, ScopeId, Tag, parse_names,
};
pub use message::{FallbackReason, MemorySource, Role, Source};
pub use money::{MONEY_SCALE, Usd};
pub use player_key::{PlayerKey, PlayerKeys};
pub use text::{MessageText, bounded_text};

/// Why a value from the outside was refused; becomes a 400 `validation_failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
