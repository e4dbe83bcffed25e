//! Facts for a prompt and for `GET /memory`: the candidates of a (player, character),
//! ranked by `retrieval`; for `GET /memory`, with the character's mood beside them.

use super::{
    extraction,
    mood::{self, Mood},
    retrieval,
};
use crate::{
    domain::{CharacterId, PlayerId},
    service::{ServiceResult, Services},
    store::facts::{self, FactRow},
};
use sqlx::MySqlPool;

/// Retrieval scores at most this many facts per prompt, however many a player has.
pub const RETRIEVAL_CANDIDATES: u32 = 500;

/// The facts for a prompt, best first, none that extraction would refuse today; marks
/// them used in one statement.
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
    let candidates = facts::candidates(pool, player_id, character_id, RETRIEVAL_CANDIDATES).await?;
    let chosen = choose(&candidates, current_message, limit);
    let ids: Vec<u64> = chosen.iter().map(|fact| fact.id).collect();
    facts::touch(pool, &ids, crate::clock::now()).await?;
    Ok(chosen.into_iter().map(|fact| fact.text.clone()).collect())
}

/// The facts for a prompt among `candidates` (`facts::candidates`, at most
/// `RETRIEVAL_CANDIDATES`), best first, none that extraction would refuse today. Marking
/// them used (`facts::touch`) is the caller's: a turn does it in the transaction that
/// stores it.
pub fn choose<'f>(
    candidates: &'f [FactRow],
    current_message: &str,
    limit: u32,
) -> Vec<&'f FactRow> {
    if limit == 0 {
        return Vec::new();
    }
    // Facts stored before extraction refused instruction-like ones may still hold one:
    // the same test keeps them out of the prompt. Run on the best first, only until the
    // prompt has its share.
    retrieval::rank(
        candidates,
        Some(current_message),
        crate::clock::now(),
        candidates.len(),
    )
    .into_iter()
    .filter(|(fact, _)| extraction::admissible(&fact.text))
    .take(limit as usize)
    .map(|(fact, _)| fact)
    .collect()
}

/// The facts of a (player, character), best first: by importance and recency, and
/// relevance to `query` when given.
pub async fn list(
    services: &Services,
    player_id: &PlayerId,
    character_id: &CharacterId,
    query: Option<&str>,
    limit: u32,
) -> ServiceResult<Vec<FactRow>> {
    let candidates = facts::candidates(
        &services.pool,
        player_id,
        character_id,
        RETRIEVAL_CANDIDATES,
    )
    .await?;
    let ranked = retrieval::rank(&candidates, query, crate::clock::now(), limit as usize);
    Ok(ranked.into_iter().map(|(fact, _)| fact.clone()).collect())
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
