//! What a character would know in a turn now, with why: for writers debugging a
//! character (`GET /characters/{id}/knowledge`).

use super::lore::{self, Knower, LoreEntry};
use crate::{
    domain::{CharacterId, MemorySource, PlayerId},
    service::{
        ServiceResult, Services, characters,
        memory::retrieval::{self, Query},
    },
    store::facts::{self, FactRow},
};

/// Everything the character may know now, best first.
#[derive(Debug, Clone)]
pub struct Knowledge {
    pub lore: Vec<(LoreEntry, String)>,
    pub memories: Vec<(FactRow, String)>,
}

/// Why the character holds a memory.
pub fn reason(memory: &FactRow) -> String {
    let about = if memory.player_id == facts::NO_PLAYER {
        "about no player in particular"
    } else {
        "about this player"
    };
    let how = match memory.source {
        MemorySource::Conversation => match &memory.conversation_id {
            Some(conversation) => format!("learned in conversation {conversation:?}"),
            None => "learned in a conversation".to_owned(),
        },
        MemorySource::Import => match &memory.conversation_id {
            Some(conversation) => format!("from imported history of conversation {conversation:?}"),
            None => "from imported history".to_owned(),
        },
        MemorySource::Event => match memory.event_id {
            Some(event) => format!("knew of game event {event} at once"),
            None => "knew of a game event at once".to_owned(),
        },
        MemorySource::Gossip => {
            let teller = memory.heard_from.as_deref().unwrap_or("another character");
            let mut how = format!(
                "heard from {teller:?} (a fellow member of a faction), {} telling(s) from first hand",
                memory.hops
            );
            if let Some(event) = memory.event_id {
                how.push_str(&format!(", of game event {event}"));
            }
            how
        }
    };
    format!("{how}; {about}; importance {}", memory.importance)
}

/// The character's knowledge for a turn of `player_id` (or of no player in particular)
/// with `flags` set. 404 for an unknown character.
pub async fn of(
    services: &Services,
    character_id: &CharacterId,
    player_id: Option<&PlayerId>,
    flags: &[String],
) -> ServiceResult<Knowledge> {
    let character = characters::get(services, character_id).await?;
    let entries = lore::current(services).await?;
    let knower = Knower {
        character_id: character_id.as_str(),
        factions: &character.factions,
        flags,
    };
    let lore = lore::known(&entries, knower, "")
        .into_iter()
        .map(|entry| (entry.clone(), entry.reason()))
        .collect();
    let memories = facts::known_to(
        &services.pool,
        player_id.map_or(facts::NO_PLAYER, PlayerId::as_str),
        character_id,
    )
    .await?;
    let memories = retrieval::rank(
        &memories,
        &Query::default(),
        retrieval::PROMPT,
        crate::clock::now(),
        memories.len(),
    )
    .into_iter()
    .map(|ranked| (ranked.fact.clone(), reason(ranked.fact)))
    .collect();
    Ok(Knowledge { lore, memories })
}
