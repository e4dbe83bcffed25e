//! What a prompt carries of the pair's memory: the best facts of all the pair knows,
//! and (with embeddings on) the older messages of any of their conversations most
//! relevant to the current line. Ranked by `retrieval`; read on the connection of the
//! turn's first transaction, so it is one consistent view. For `GET /memory`, the facts
//! with the character's mood beside them.

use super::{
    extraction,
    mood::{self, Mood},
    retrieval::{self, Query},
    vectors::{PairVectors, cosine},
};
use crate::{
    domain::{CharacterId, ConversationId, MemorySource, PlayerId},
    service::{ServiceResult, Services},
    store::{
        facts::{self, FactRow},
        messages::{self, MessageRow},
    },
};
use sqlx::{MySqlConnection, MySqlPool};
use std::sync::Arc;

/// `GET /memory` lists at most this many facts.
pub const MAX_LISTED: u32 = 500;

/// An older message must be at least this similar to the line to go into a prompt: the
/// prompt is no place for the least unrelated of unrelated lines.
pub const MIN_MESSAGE_SIMILARITY: f64 = 0.2;

/// What the prompt of a turn is to remember.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub player_id: &'a PlayerId,
    pub character_id: &'a CharacterId,
    /// The player's erasure count as the turn read it.
    pub generation: u32,
    /// What the player just said, and its vector when it could be embedded.
    pub line: &'a str,
    pub line_vector: Option<&'a [f32]>,
    /// The conversation and the first `seq` of the window the prompt carries in full:
    /// those messages are not recalled twice.
    pub window: Option<(&'a ConversationId, u32)>,
    pub facts: u32,
    pub messages: u32,
}

/// The memory a prompt carries.
#[derive(Debug, Clone, Default)]
pub struct Recalled {
    /// Best first.
    pub facts: Vec<FactRow>,
    /// Oldest first.
    pub messages: Vec<MessageRow>,
    /// The lore the character may know that bears most on the line, best first.
    pub lore: Vec<String>,
}

/// The pair's vectors, when embeddings are on and the query has a vector of their model.
pub async fn pair_vectors(
    conn: &mut MySqlConnection,
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
    generation: u32,
    query_vector: Option<&[f32]>,
) -> sqlx::Result<Option<Arc<PairVectors>>> {
    let (Some(embeddings), Some(_)) = (&services.embeddings, query_vector) else {
        return Ok(None);
    };
    let pair = embeddings
        .cache
        .pair(
            conn,
            player_id,
            character_id,
            embeddings.model(),
            generation,
        )
        .await?;
    Ok(Some(pair))
}

/// The memory for a turn's prompt, on the turn's connection.
pub async fn for_prompt(
    conn: &mut MySqlConnection,
    services: &Services,
    ask: Ask<'_>,
) -> sqlx::Result<Recalled> {
    if ask.facts == 0 && ask.messages == 0 {
        return Ok(Recalled::default());
    }
    let pair = pair_vectors(
        conn,
        services,
        ask.player_id,
        ask.character_id,
        ask.generation,
        ask.line_vector,
    )
    .await?;
    let query = match (&pair, ask.line_vector) {
        (Some(pair), Some(vector)) => Query::meaning(ask.line, vector, pair),
        _ => Query::words(ask.line),
    };
    let facts = match ask.facts {
        0 => Vec::new(),
        _ => facts::of_pair(&mut *conn, ask.player_id, ask.character_id).await?,
    };
    let chosen = choose(&facts, &query, ask.facts)
        .into_iter()
        .cloned()
        .collect();
    let messages = match (&pair, ask.line_vector) {
        (Some(pair), Some(vector)) if ask.messages > 0 => {
            let ids = relevant_messages(pair, vector, ask.window, ask.messages);
            messages::by_ids(&mut *conn, &ids).await?
        }
        _ => Vec::new(),
    };
    Ok(Recalled {
        facts: chosen,
        messages,
        lore: Vec::new(),
    })
}

/// A memory as a prompt words it: hearsay as hearsay ("Bram said that …"), a game event
/// as something that happened, the rest as remembered.
pub fn worded(fact: &FactRow) -> String {
    match fact.source {
        MemorySource::Gossip => {
            let teller = fact
                .heard_from_name
                .as_deref()
                .or(fact.heard_from.as_deref())
                .unwrap_or("Someone");
            format!("{teller} said that {}", lowercase_start(&fact.text))
        }
        MemorySource::Event => format!("You know this happened: {}", fact.text),
        MemorySource::Conversation | MemorySource::Import => fact.text.clone(),
    }
}

/// "The player…" → "the player…", for a sentence that goes on after "said that": only a
/// first word that is never a name loses its capital, so "Mara owes…" and "I saw…" keep
/// theirs.
fn lowercase_start(text: &str) -> String {
    const COMMON: [&str; 22] = [
        "The", "A", "An", "This", "That", "These", "Those", "Someone", "Somebody", "Everyone",
        "It", "There", "He", "She", "They", "We", "You", "My", "His", "Her", "Their", "Our",
    ];
    let first = text.split(' ').next().unwrap_or_default();
    if COMMON.contains(&first) {
        first.to_lowercase() + &text[first.len()..]
    } else {
        text.to_owned()
    }
}

/// The facts for a prompt among `candidates`, best first, none that extraction would
/// refuse today. Marking them used (`facts::touch`) is the caller's: a turn does it in
/// the transaction that stores it.
pub fn choose<'f>(candidates: &'f [FactRow], query: &Query<'_>, limit: u32) -> Vec<&'f FactRow> {
    if limit == 0 {
        return Vec::new();
    }
    // Facts stored before extraction refused instruction-like ones may still hold one:
    // the same test keeps them out of the prompt. Run on the best first, only until the
    // prompt has its share.
    retrieval::rank(candidates, query, crate::clock::now(), candidates.len())
        .into_iter()
        .filter(|(fact, _)| extraction::admissible(&fact.text))
        .take(limit as usize)
        .map(|(fact, _)| fact)
        .collect()
}

/// The ids of the `limit` messages of the pair most similar to `line` (at least
/// `MIN_MESSAGE_SIMILARITY`), leaving out those of the window the prompt already holds.
pub fn relevant_messages(
    pair: &PairVectors,
    line: &[f32],
    window: Option<(&ConversationId, u32)>,
    limit: u32,
) -> Vec<u64> {
    let in_window = |conversation: Option<&str>, seq: Option<u32>| match (window, conversation, seq)
    {
        (Some((current, first)), Some(conversation), Some(seq)) => {
            conversation == current.as_str() && seq >= first
        }
        _ => false,
    };
    let mut scored: Vec<(u64, f64)> = pair
        .messages()
        .filter(|(_, stored)| !in_window(stored.conversation_id.as_deref(), stored.seq))
        .map(|(id, stored)| (id, cosine(line, &stored.vector)))
        .filter(|(_, similarity)| *similarity >= MIN_MESSAGE_SIMILARITY)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    scored.truncate(limit as usize);
    scored.into_iter().map(|(id, _)| id).collect()
}

/// The facts for a prompt by words alone, marked used (the memory benchmark's view of
/// retrieval without a turn around it).
pub async fn recall(
    pool: &MySqlPool,
    player_id: &PlayerId,
    character_id: &CharacterId,
    current_message: &str,
    limit: u32,
) -> sqlx::Result<Vec<String>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let candidates = facts::of_pair(pool, player_id, character_id).await?;
    let chosen = choose(&candidates, &Query::words(current_message), limit);
    let ids: Vec<u64> = chosen.iter().map(|fact| fact.id).collect();
    facts::touch(pool, &ids, crate::clock::now()).await?;
    Ok(chosen.into_iter().map(|fact| fact.text.clone()).collect())
}

/// The facts of a (player, character), best first: by importance and recency, and
/// relevance to `query` when given (by meaning when embeddings are on: see `search`).
pub async fn list(
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
    query: Option<&str>,
    limit: u32,
) -> ServiceResult<Vec<FactRow>> {
    let facts = facts::of_pair(&services.pool, player_id, character_id).await?;
    let ranked = match query {
        Some(text) => {
            let prepared = super::search::prepare(services, player_id, character_id, text).await?;
            retrieval::rank(
                &facts,
                &prepared.query(text),
                crate::clock::now(),
                limit as usize,
            )
            .into_iter()
            .map(|(fact, _)| fact.clone())
            .collect()
        }
        None => retrieval::rank(
            &facts,
            &Query::default(),
            crate::clock::now(),
            limit as usize,
        )
        .into_iter()
        .map(|(fact, _)| fact.clone())
        .collect(),
    };
    Ok(ranked)
}

/// What a character remembers about a player, as `GET /memory` shows it.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// Best first (`list`).
    pub facts: Vec<FactRow>,
    /// How the character feels about the player; `None` until an extraction read it.
    pub mood: Option<Mood>,
}

/// The facts of a (player, character), best first (`list`), and the character's mood.
pub async fn remembered(
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
    query: Option<&str>,
    limit: u32,
) -> ServiceResult<Remembered> {
    let (facts, mood) = tokio::try_join!(
        list(services, player_id, character_id, query, limit),
        mood::current(services, player_id, character_id),
    )?;
    Ok(Remembered { facts, mood })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::vectors::{ItemKind, VectorRow};

    fn pair_of(messages: &[(u64, &str, u32, [f32; 2])]) -> PairVectors {
        let mut pair = PairVectors::default();
        pair.apply(
            messages
                .iter()
                .enumerate()
                .map(|(rev, (id, conversation, seq, vector))| VectorRow {
                    rev: rev as u64 + 1,
                    kind: ItemKind::Message,
                    item_id: *id,
                    conversation_id: Some((*conversation).to_owned()),
                    seq: Some(*seq),
                    text_hash: None,
                    vector: vector.to_vec(),
                })
                .collect(),
        );
        pair
    }

    fn memory(source: MemorySource, text: &str, teller: Option<(&str, Option<&str>)>) -> FactRow {
        let now = crate::clock::now();
        FactRow {
            id: 1,
            player_id: "p-1".into(),
            character_id: "mara".into(),
            text: text.into(),
            text_hash: String::new(),
            importance: 7,
            source,
            heard_from: teller.map(|(id, _)| id.to_owned()),
            heard_from_name: teller.and_then(|(_, name)| name.map(str::to_owned)),
            event_id: None,
            derived_from: None,
            hops: u8::from(teller.is_some()),
            conversation_id: None,
            from_seq: None,
            to_seq: None,
            created_at: now,
            updated_at: now,
            last_used_at: None,
        }
    }

    #[test]
    fn hearsay_is_worded_as_hearsay_and_events_as_what_happened() {
        let told = memory(
            MemorySource::Gossip,
            "The player burned the mill",
            Some(("bram", Some("Bram"))),
        );
        assert_eq!(worded(&told), "Bram said that the player burned the mill");
        let unnamed = memory(MemorySource::Gossip, "I saw it", Some(("bram", None)));
        assert_eq!(worded(&unnamed), "bram said that I saw it");
        let seen = memory(MemorySource::Event, "The mill burned", None);
        assert_eq!(worded(&seen), "You know this happened: The mill burned");
        let said = memory(MemorySource::Conversation, "Has a cat", None);
        assert_eq!(worded(&said), "Has a cat");
        assert_eq!(lowercase_start("NPCs talk"), "NPCs talk");
        assert_eq!(lowercase_start("Mara owes money"), "Mara owes money");
        assert_eq!(lowercase_start("A fire broke out"), "a fire broke out");
        assert_eq!(lowercase_start("Theodore left"), "Theodore left");
    }

    #[test]
    fn relevant_messages_leave_out_the_window_and_the_unrelated() {
        let pair = pair_of(&[
            (1, "c-1", 1, [1.0, 0.0]),
            (2, "c-1", 2, [0.0, 1.0]),
            (3, "c-2", 9, [0.9, 0.435_889_9]),
            (4, "c-1", 30, [1.0, 0.0]),
        ]);
        let current = ConversationId::parse("c-1").unwrap();
        let ids = relevant_messages(&pair, &[1.0, 0.0], Some((&current, 21)), 3);
        // 4 is in the window, 2 is unrelated; 1 beats 3.
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(relevant_messages(&pair, &[1.0, 0.0], None, 1), vec![4]);
    }
}
