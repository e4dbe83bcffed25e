//! An import's batch as parsed: its messages, each with the studio's id, speaker, text and
//! time, checked one by one and as a whole before anything is read from the database.

use crate::{
    domain::{
        CharacterId, ClientMessageId, ConversationId, MessageText, ParseError, PlayerId, Role,
    },
    store::messages::ImportedRow,
};
use chrono::{DateTime, Utc};
use std::{collections::HashSet, time::Duration};

/// Most messages one request may import.
pub const MAX_MESSAGES: usize = 500;

/// How far ahead of this replica's clock an imported time may be (the studio's clock may
/// run a little ahead); further is a mistake, and would put the history after the turns
/// that follow it.
pub const FUTURE_SKEW: Duration = Duration::from_secs(300);

/// One message of imported history, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedMessage {
    pub client_id: ClientMessageId,
    pub role: Role,
    pub content: MessageText,
    /// At the database's precision (microseconds).
    pub created_at: DateTime<Utc>,
}

impl ImportedMessage {
    /// The same message as one imported before: same speaker, text and time.
    pub(super) fn matches(&self, stored: &ImportedRow) -> bool {
        self.role == stored.role
            && self.content.as_str() == stored.content
            && self.created_at == stored.created_at
    }
}

/// A batch to import, checked as a whole: 1 to `MAX_MESSAGES` messages, each `client_id`
/// once, times not decreasing.
#[derive(Debug, Clone)]
pub struct Import {
    pub conversation_id: ConversationId,
    pub player_id: PlayerId,
    pub character_id: CharacterId,
    pub(super) messages: Vec<ImportedMessage>,
}

impl Import {
    pub fn new(
        conversation_id: ConversationId,
        player_id: PlayerId,
        character_id: CharacterId,
        messages: Vec<ImportedMessage>,
    ) -> Result<Self, ParseError> {
        check_count(messages.len())?;
        let mut seen = HashSet::new();
        for message in &messages {
            if !seen.insert(message.client_id.as_str()) {
                return Err(ParseError(format!(
                    "client_id {:?} appears more than once in messages",
                    message.client_id.as_str()
                )));
            }
        }
        for pair in messages.windows(2) {
            if pair[1].created_at < pair[0].created_at {
                return Err(ParseError(format!(
                    "messages must be in time order: {:?} ({}) is before {:?} ({})",
                    pair[1].client_id.as_str(),
                    pair[1].created_at.to_rfc3339(),
                    pair[0].client_id.as_str(),
                    pair[0].created_at.to_rfc3339()
                )));
            }
        }
        Ok(Self {
            conversation_id,
            player_id,
            character_id,
            messages,
        })
    }

    pub(super) fn client_ids(&self) -> Vec<&ClientMessageId> {
        self.messages.iter().map(|m| &m.client_id).collect()
    }
}

/// 1 to `MAX_MESSAGES` messages: checked before the messages themselves are read.
pub fn check_count(count: usize) -> Result<(), ParseError> {
    match count {
        0 => Err(ParseError("messages must not be empty".into())),
        n if n > MAX_MESSAGES => Err(ParseError(format!(
            "at most {MAX_MESSAGES} messages per request (got {n}); send the rest in another"
        ))),
        _ => Ok(()),
    }
}

/// The earliest time an imported message may carry.
fn earliest() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

/// An imported message's time, at the database's precision: from 1970 to a little past
/// now.
pub fn parse_time(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ParseError> {
    use chrono::SubsecRound;
    let time = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| {
            ParseError(format!(
                "created_at must be an RFC 3339 time such as 2026-11-24T10:00:00Z (got {raw:?})"
            ))
        })?
        .with_timezone(&Utc)
        .trunc_subsecs(6);
    if time < earliest() {
        return Err(ParseError(format!(
            "created_at must not be before 1970 (got {raw:?})"
        )));
    }
    let latest = now + chrono::Duration::from_std(FUTURE_SKEW).unwrap_or_default();
    if time > latest {
        return Err(ParseError(format!(
            "created_at must not be in the future (got {raw:?})"
        )));
    }
    Ok(time)
}
