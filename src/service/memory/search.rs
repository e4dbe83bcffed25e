//! `GET /memory/search`: the facts and past messages of a (character, player) pair
//! ranked for a query, by meaning when embeddings are on (the query is embedded: one
//! paid call), by words otherwise or when that call does not work out. Facts score as
//! in a prompt (importance, recency, relevance); messages as facts of middling
//! importance, as recent as when they were said. Only what is relevant at all is found.

use super::{
    embeddings::{self, Embedding},
    retrieval::{self, Query},
    vectors::{PairVectors, cosine},
};
use crate::{
    domain::{CharacterId, PlayerId, Role},
    llm::Purpose,
    service::{ServiceResult, Services, money::ledger::CallFor},
    store::{conversations, facts, messages},
};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A search's query, prepared: its vector and the pair's vectors when it has one.
#[derive(Debug, Default)]
pub struct Prepared {
    vector: Option<Vec<f32>>,
    pair: Option<Arc<PairVectors>>,
}

impl Prepared {
    pub fn query<'a>(&'a self, text: &str) -> Query<'a> {
        match (&self.vector, &self.pair) {
            (Some(vector), Some(pair)) => Query::meaning(text, vector, pair),
            _ => Query::words(text),
        }
    }
}

/// Embeds `text` for the pair (billed to the player), unless embeddings are off or the
/// pair has nothing to search (a read never creates a player).
pub async fn prepare(
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
    text: &str,
) -> ServiceResult<Prepared> {
    let Some(embedding) = &services.embeddings else {
        return Ok(Prepared::default());
    };
    let pool = &services.pool;
    if !conversations::pair_has_history(pool, player_id, character_id).await? {
        return Ok(Prepared::default());
    }
    let generation = embeddings::generation(services, player_id).await?;
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
    let vector = match services.paid_embedding(&who, &texts, timeout, true).await {
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
            let mut conn = pool.acquire().await?;
            Some(
                embedding
                    .cache
                    .pair(
                        &mut *conn,
                        player_id,
                        character_id,
                        embedding.model(),
                        generation,
                    )
                    .await?,
            )
        }
        None => None,
    };
    Ok(Prepared { vector, pair })
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
}

/// Candidates a semantic search fetches per result it returns, so the final score
/// (which adds recency) still has a choice.
const MESSAGE_CANDIDATES_PER_RESULT: usize = 3;

pub async fn search(services: &Services, search: Search<'_>) -> ServiceResult<Vec<Hit>> {
    let pool = &services.pool;
    let prepared = prepare(services, search.player_id, search.character_id, search.text).await?;
    let query = prepared.query(search.text);
    let now = crate::clock::now();
    let mut hits = Vec::new();
    if search.facts {
        for fact in facts::of_pair(pool, search.player_id, search.character_id).await? {
            let (score, relevance) = retrieval::fact_score(&fact, &query, now);
            if relevance > 0.0 {
                hits.push(Hit {
                    kind: HitKind::Fact,
                    id: fact.id,
                    text: fact.text,
                    score,
                    created_at: fact.created_at,
                    conversation_id: fact.conversation_id,
                    seq: None,
                    role: None,
                    importance: Some(fact.importance),
                });
            }
        }
    }
    if search.messages {
        let found = match (&prepared.vector, &prepared.pair) {
            (Some(vector), Some(pair)) => {
                let mut similar: Vec<(u64, f64)> = pair
                    .messages()
                    .map(|(id, stored)| (id, cosine(vector, &stored.vector)))
                    .filter(|(_, similarity)| *similarity > 0.0)
                    .collect();
                similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
                similar.truncate(search.limit as usize * MESSAGE_CANDIDATES_PER_RESULT);
                let ids: Vec<u64> = similar.iter().map(|(id, _)| *id).collect();
                messages::by_ids(pool, &ids)
                    .await?
                    .into_iter()
                    .filter_map(|message| {
                        let (_, similarity) = similar.iter().find(|(id, _)| *id == message.id)?;
                        Some((message, similarity.clamp(0.0, 1.0)))
                    })
                    .collect::<Vec<_>>()
            }
            _ => messages::of_pair(pool, search.player_id, search.character_id)
                .await?
                .into_iter()
                .map(|message| {
                    let relevance = query.message(None, &message.content);
                    (message, relevance)
                })
                .filter(|(_, relevance)| *relevance > 0.0)
                .collect(),
        };
        hits.extend(found.into_iter().map(|(message, relevance)| Hit {
            kind: HitKind::Message,
            id: message.id,
            score: retrieval::message_score(relevance, message.created_at, now),
            text: message.content,
            created_at: message.created_at,
            conversation_id: Some(message.conversation_id.into_string()),
            seq: Some(message.seq),
            role: Some(message.role),
            importance: None,
        }));
    }
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.created_at.cmp(&a.created_at))
            .then(b.id.cmp(&a.id))
    });
    hits.truncate(search.limit as usize);
    Ok(hits)
}
