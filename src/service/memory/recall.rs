//! What a prompt carries of the pair's memory: the best facts of all the pair knows,
//! and the older messages of any of their conversations most relevant to the current
//! line, each with its neighbours (`lines`: by words, fused with meaning when
//! embeddings are on). Ranked by `retrieval`; read on the connection of the turn's
//! first transaction, so it is one consistent view. For `GET /memory`, the facts with
//! the character's mood beside them.

use super::{
    extraction, lexical,
    lexical::{analyzer::Analyzer, bm25::DocId},
    lines,
    mood::{self, Mood},
    retrieval::{self, Query},
    vectors::PairVectors,
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

/// Neighbours each recalled line brings into the prompt, each side: the question
/// before an answer, the answer after a question.
pub const CONTEXT_RADIUS: u32 = 1;

/// An older message must be at least this similar to the line to go into a prompt by
/// meaning: the prompt is no place for the least unrelated of unrelated lines.
pub const MIN_MESSAGE_SIMILARITY: f64 = 0.2;

/// What the prompt of a turn is to remember.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub player_id: &'a PlayerId,
    pub character_id: &'a CharacterId,
    /// The player's erasure count as the turn read it.
    pub generation: u32,
    /// The character's name: no evidence in their memory (`lexical::names`).
    pub character_name: &'a str,
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
            embeddings.space(),
            generation,
        )
        .await?;
    Ok(Some(pair))
}

/// The ids of the older lines a prompt recalls: the `limit` messages most relevant to
/// `line` outside the prompt's window, and the neighbours of each (not in the window
/// either), each once.
pub fn older_lines(
    index: &lexical::index::PairText,
    line: &str,
    meaning: Option<(&[f32], &PairVectors)>,
    window: Option<(&ConversationId, u32)>,
    limit: u32,
) -> Vec<u64> {
    let meaning = meaning.map(|(vector, pair)| lines::Meaning {
        vector,
        pair,
        min_similarity: MIN_MESSAGE_SIMILARITY,
    });
    let in_window = |index: &lexical::index::PairText, doc: &lexical::index::Doc| match window {
        Some((current, first)) => index.conversation(doc) == current && doc.seq >= first,
        None => false,
    };
    let mut chosen: Vec<DocId> = Vec::new();
    let mut anchors = 0;
    // A hit already brought in as another's neighbour takes no place of its own: the
    // next hit does (three times the limit is ranked, so most prompts fill theirs).
    for found in lines::rank(index, line, meaning, 3 * limit as usize, in_window) {
        if anchors == limit {
            break;
        }
        if chosen.contains(&found.doc) {
            continue;
        }
        anchors += 1;
        for doc in
            std::iter::once(found.doc).chain(lines::neighbours(index, found.doc, CONTEXT_RADIUS))
        {
            if !chosen.contains(&doc) && !in_window(index, index.doc(doc)) {
                chosen.push(doc);
            }
        }
    }
    chosen.into_iter().map(|doc| index.doc(doc).id).collect()
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
    let text = services
        .texts
        .pair(&mut *conn, ask.player_id, ask.character_id, ask.generation)
        .await?;
    let pair = pair_vectors(
        conn,
        services,
        ask.player_id,
        ask.character_id,
        ask.generation,
        ask.line_vector,
    )
    .await?;
    let meaning = match (&pair, ask.line_vector) {
        (Some(pair), Some(vector)) => Some((vector, &**pair)),
        _ => None,
    };
    let facts = match ask.facts {
        0 => Vec::new(),
        _ => facts::of_pair(&mut *conn, ask.player_id, ask.character_id).await?,
    };
    let line = lexical::names::unnamed(ask.line, ask.character_name);
    let (chosen, ids) = {
        let index = lexical::read(&text);
        let query = Query::of_pair(&line, &index, meaning);
        let chosen: Vec<FactRow> = choose(&facts, &query, ask.facts)
            .into_iter()
            .cloned()
            .collect();
        let ids = match ask.messages {
            0 => Vec::new(),
            limit => older_lines(&index, &line, meaning, ask.window, limit),
        };
        (chosen, ids)
    };
    let messages = messages::by_ids(&mut *conn, &ids).await?;
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
    retrieval::rank(
        candidates,
        query,
        retrieval::PROMPT,
        crate::clock::now(),
        candidates.len(),
    )
    .into_iter()
    .filter(|ranked| extraction::admissible(&ranked.fact.text))
    .take(limit as usize)
    .map(|ranked| ranked.fact)
    .collect()
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
    let english = Analyzer::english();
    let chosen = choose(&candidates, &Query::words(current_message, &english), limit);
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
    let now = crate::clock::now();
    let limit = limit as usize;
    let Some(text) = query else {
        let ranked = retrieval::rank(&facts, &Query::default(), retrieval::PROMPT, now, limit);
        return Ok(ranked
            .into_iter()
            .map(|ranked| ranked.fact.clone())
            .collect());
    };
    let (generation, index) = super::search::pair_text(services, player_id, character_id).await?;
    let text = super::search::query_text(services, character_id, text).await?;
    let prepared =
        super::search::prepare(services, player_id, character_id, generation, &text).await?;
    let index = lexical::read(&index);
    let query = Query::of_pair(&text, &index, prepared.meaning());
    Ok(
        retrieval::rank(&facts, &query, retrieval::PROMPT, now, limit)
            .into_iter()
            .map(|ranked| ranked.fact.clone())
            .collect(),
    )
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
}
