//! A turn as the game sent it, parsed: who speaks to whom, what, and in which situation.

use crate::{
    domain::{Affinity, CharacterId, ConversationId, MessageText, ParseError, PlayerId},
    store::conversations::ConversationRow,
};
use serde_json::{Map, Value, json};

/// Largest `context` object the game may send, in bytes of JSON.
pub const MAX_CONTEXT_BYTES: usize = 4096;

/// A turn whose input has been parsed.
#[derive(Debug, Clone)]
pub struct Turn {
    pub conversation_id: ConversationId,
    pub player_id: PlayerId,
    pub character_id: CharacterId,
    pub content: MessageText,
    pub affinity: Option<Affinity>,
    /// Free-form facts from the game (location, time of day…) for this line only.
    pub context: Option<Map<String, Value>>,
    /// The game flags set now (`met_the_king`…): lore that requires them may be known.
    pub flags: Vec<String>,
}

impl Turn {
    /// The parts parsed at the edge, plus the one rule across them: a bounded context.
    pub fn new(
        conversation_id: ConversationId,
        player_id: PlayerId,
        character_id: CharacterId,
        content: MessageText,
        affinity: Option<Affinity>,
        context: Option<Map<String, Value>>,
        flags: Vec<String>,
    ) -> Result<Self, ParseError> {
        let flags = crate::service::world::lore::parse_flags(&flags)?;
        if let Some(context) = &context {
            let size = serde_json::to_vec(context)
                .map(|bytes| bytes.len())
                .unwrap_or(usize::MAX);
            if size > MAX_CONTEXT_BYTES {
                return Err(ParseError(format!(
                    "context must be at most {MAX_CONTEXT_BYTES} bytes of JSON"
                )));
            }
        }
        Ok(Self {
            conversation_id,
            player_id,
            character_id,
            content,
            affinity,
            context,
            flags,
        })
    }

    /// A conversation is bound to the player and character of its first turn.
    pub fn may_use(&self, conversation: &ConversationRow) -> bool {
        self.may_use_bound_to(
            conversation.player_id.as_str(),
            conversation.character_id.as_str(),
        )
    }

    /// As `may_use`, for a conversation known by whom it is bound to.
    pub fn may_use_bound_to(&self, player_id: &str, character_id: &str) -> bool {
        player_id == self.player_id.as_str() && character_id == self.character_id.as_str()
    }

    /// The request as parsed, in a fixed form: what an `Idempotency-Key` is bound to.
    pub fn canonical(&self) -> Vec<u8> {
        let mut value = json!({
            "player_id": self.player_id.as_str(),
            "character_id": self.character_id.as_str(),
            "content": self.content.as_str(),
            "affinity": self.affinity.map(Affinity::value),
            "context": self.context,
        });
        // Only when sent, so keys stored before flags existed still match their requests.
        if !self.flags.is_empty() {
            let mut flags = self.flags.clone();
            flags.sort();
            value["flags"] = json!(flags);
        }
        serde_json::to_vec(&value).unwrap_or_default()
    }
}
