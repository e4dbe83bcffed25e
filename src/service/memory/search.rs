//! `GET /memory/search`: the facts and past messages of a (character, player) pair
//! ranked for a query: by words (BM25 over the pair's lexical index and facts), fused
//! with relevance by meaning when embeddings are on (the query is embedded: one paid
//! call) and the call works out. What was asked for decides; importance and recency
//! only break ties (`retrieval::SEARCH`). A message comes with its neighbours as
//! context, a fact with the lines it was learned from. Only what is relevant at all is
//! found.

use super::{
    embeddings::{self, Embedding},
    lexical::{self, bm25::DocId},
    lines,
    retrieval::{self, Query},
    vectors::PairVectors,
};
use crate::{
    domain::{CharacterId, ConversationId, PlayerId, Role},
    llm::{Purpose, embeddings::Side},
    service::{ServiceResult, Services, money::ledger::CallFor},
    store::{characters, facts, messages, messages::MessageRow},
};
use chrono::{DateTime, Utc};
use std::{collections::HashMap, sync::Arc};

/// Neighbours a found message brings, each side; source lines a fact brings at most.
pub const CONTEXT_RADIUS: u32 = 1;
pub const FACT_SOURCES: usize = 2;

/// A search's query, prepared: its vector and the pair's vectors when it has one.
#[derive(Debug, Default)]
pub struct Prepared {
    vector: Option<Vec<f32>>,
    pair: Option<Arc<PairVectors>>,
}

impl Prepared {
    pub fn meaning(&self) -> Option<(&[f32], &PairVectors)> {
        Some((self.vector.as_deref()?, self.pair.as_deref()?))
    }

    /// As messages are compared with it: anything not opposite counts (a search shows
    /// the best it has; its caller sees the scores).
    fn lines(&self) -> Option<lines::Meaning<'_>> {
        self.meaning().map(|(vector, pair)| lines::Meaning {
            vector,
            pair,
            min_similarity: f64::MIN_POSITIVE,
        })
    }
}

/// Embeds `text` for the pair (billed to the player), unless embeddings are off or the
/// pair has nothing to search (a read never creates a player).
pub async fn prepare(
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
    generation: u32,
    text: &str,
) -> ServiceResult<Prepared> {
    let Some(embedding) = &services.embeddings else {
        return Ok(Prepared::default());
    };
    let who = CallFor {
        player_id,
        generation,
        conversation_id: None,
        character_id: Some(character_id),
        purpose: Purpose::Embedding,
    };
    let timeout = services
        .config
        .embedding
        .as_ref()
        .map_or(services.config.llm.timeout, |config| config.turn_timeout);
    let texts = [text.to_owned()];
    let vector = match services
        .paid_embedding(&who, &texts, Side::Query, timeout)
        .await
    {
        Ok(Embedding::Vectors(vectors)) => vectors.into_iter().next(),
        Ok(_) => None,
        // An erasure racing the search, a spooled usage row: the search goes on by words.
        Err(error) => {
            tracing::warn!(%error, "no embedding for the search; relevance by words");
            None
        }
    };
    let pair = match &vector {
        Some(_) => {
            let mut conn = services.pool.acquire().await?;
            Some(
                embedding
                    .cache
                    .pair(
                        &mut *conn,
                        player_id,
                        character_id,
                        embedding.space(),
                        generation,
                    )
                    .await?,
            )
        }
        None => None,
    };
    Ok(Prepared { vector, pair })
}

/// The pair's erasure generation and lexical index, as the search reads them.
pub async fn pair_text(
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> ServiceResult<(u32, lexical::SharedText)> {
    let generation = embeddings::generation(services, player_id).await?;
    let mut conn = services.pool.acquire().await?;
    let text = services
        .texts
        .pair(&mut conn, player_id, character_id, generation)
        .await?;
    Ok((generation, text))
}

/// `text` as the pair's memory is searched for it: without the character's name
/// (`lexical::names`), for words and meaning alike.
pub async fn query_text(
    services: &Services,
    character_id: &CharacterId,
    text: &str,
) -> ServiceResult<String> {
    Ok(match characters::get(&services.pool, character_id).await? {
        Some(character) => lexical::names::unnamed(text, &character.name),
        None => text.to_owned(),
    })
}

/// What to search.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    pub player_id: &'a PlayerId,
    pub character_id: &'a CharacterId,
    pub text: &'a str,
    pub limit: u32,
    pub facts: bool,
    pub messages: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    Fact,
    Message,
}

/// A past message as a hit shows it beside itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub id: u64,
    pub conversation_id: String,
    pub seq: u32,
    pub role: Role,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

impl From<&MessageRow> for Line {
    fn from(message: &MessageRow) -> Self {
        Self {
            id: message.id,
            conversation_id: message.conversation_id.as_str().to_owned(),
            seq: message.seq,
            role: message.role,
            text: message.content.clone(),
            created_at: message.created_at,
        }
    }
}

/// One result, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub kind: HitKind,
    pub id: u64,
    pub text: String,
    pub score: f64,
    pub created_at: DateTime<Utc>,
    pub conversation_id: Option<String>,
    /// Messages only.
    pub seq: Option<u32>,
    pub role: Option<Role>,
    /// Facts only.
    pub importance: Option<u8>,
    /// A message's neighbours, a fact's source lines; in order.
    pub context: Vec<Line>,
}

/// What the index chose, before the texts are read.
struct Chosen {
    kind: HitKind,
    /// The fact's index in the facts read, or the message's document.
    at: usize,
    score: f64,
    context: Vec<DocId>,
}

pub async fn search(services: &Services, search: Search<'_>) -> ServiceResult<Vec<Hit>> {
    let (generation, text) = pair_text(services, search.player_id, search.character_id).await?;
    if lexical::read(&text).is_empty() {
        // No history: nothing to find, and no embedding paid for.
        return Ok(Vec::new());
    }
    let query_text = query_text(services, search.character_id, search.text).await?;
    let prepared = prepare(
        services,
        search.player_id,
        search.character_id,
        generation,
        &query_text,
    )
    .await?;
    let facts = match search.facts {
        true => facts::of_pair(&services.pool, search.player_id, search.character_id).await?,
        false => Vec::new(),
    };
    let now = crate::clock::now();
    let limit = search.limit as usize;
    // Ranked under the index's lock, no await inside; the texts are read after.
    let (chosen, ids) = {
        let index = lexical::read(&text);
        let query = Query::of_pair(&query_text, &index, prepared.meaning());
        let mut chosen: Vec<Chosen> = Vec::new();
        if search.facts {
            let ranked = retrieval::rank(&facts, &query, retrieval::SEARCH, now, limit);
            let position: HashMap<u64, usize> = facts
                .iter()
                .enumerate()
                .map(|(at, fact)| (fact.id, at))
                .collect();
            chosen.extend(ranked.into_iter().filter(|r| r.relevance > 0.0).map(|r| {
                let learned_in = match (&r.fact.conversation_id, r.fact.from_seq, r.fact.to_seq) {
                    (Some(conversation), Some(from), Some(to)) => {
                        ConversationId::parse(conversation)
                            .ok()
                            .map(|c| (c, from, to))
                    }
                    _ => None,
                };
                Chosen {
                    kind: HitKind::Fact,
                    at: position[&r.fact.id],
                    score: r.score,
                    context: learned_in.map_or_else(Vec::new, |(conversation, from, to)| {
                        lines::sources(
                            &index,
                            &r.fact.text,
                            (&conversation, from, to),
                            FACT_SOURCES,
                        )
                    }),
                }
            }));
        }
        if search.messages {
            let found = lines::rank(&index, &query_text, prepared.lines(), limit, |_, _| false);
            chosen.extend(found.into_iter().map(|found| {
                let said_at = index.doc(found.doc).created_at;
                Chosen {
                    kind: HitKind::Message,
                    at: found.doc as usize,
                    score: retrieval::message_score(
                        retrieval::SEARCH,
                        found.relevance,
                        said_at,
                        now,
                    ),
                    context: lines::neighbours(&index, found.doc, CONTEXT_RADIUS),
                }
            }));
        }
        chosen.sort_by(|a, b| b.score.total_cmp(&a.score));
        chosen.truncate(limit);
        let doc_id = |doc: usize| index.doc(doc as DocId).id;
        let ids: Vec<u64> = chosen
            .iter()
            .flat_map(|chosen| {
                let own = (chosen.kind == HitKind::Message).then(|| doc_id(chosen.at));
                own.into_iter()
                    .chain(chosen.context.iter().map(|doc| doc_id(*doc as usize)))
            })
            .collect();
        let chosen: Vec<(Chosen, Option<u64>, Vec<u64>)> = chosen
            .into_iter()
            .map(|chosen| {
                let own = (chosen.kind == HitKind::Message).then(|| doc_id(chosen.at));
                let context = chosen
                    .context
                    .iter()
                    .map(|doc| doc_id(*doc as usize))
                    .collect();
                (chosen, own, context)
            })
            .collect();
        (chosen, ids)
    };
    let read: HashMap<u64, MessageRow> = messages::by_ids(&services.pool, &ids)
        .await?
        .into_iter()
        .map(|message| (message.id, message))
        .collect();
    let lines_of = |ids: &[u64]| -> Vec<Line> {
        ids.iter()
            .filter_map(|id| read.get(id))
            .map(Line::from)
            .collect()
    };
    Ok(chosen
        .into_iter()
        .filter_map(|(chosen, own, context)| match chosen.kind {
            HitKind::Fact => {
                let fact = &facts[chosen.at];
                Some(Hit {
                    kind: HitKind::Fact,
                    id: fact.id,
                    text: fact.text.clone(),
                    score: chosen.score,
                    created_at: fact.created_at,
                    conversation_id: fact.conversation_id.clone(),
                    seq: None,
                    role: None,
                    importance: Some(fact.importance),
                    context: lines_of(&context),
                })
            }
            HitKind::Message => {
                // Indexed, so stored: only an erasure since could take it away.
                let message = read.get(&own?)?;
                Some(Hit {
                    kind: HitKind::Message,
                    id: message.id,
                    text: message.content.clone(),
                    score: chosen.score,
                    created_at: message.created_at,
                    conversation_id: Some(message.conversation_id.as_str().to_owned()),
                    seq: Some(message.seq),
                    role: Some(message.role),
                    importance: None,
                    context: lines_of(&context),
                })
            }
        })
        .collect())
}
