//! Facts for a prompt and for `GET /memory`: the candidates of a (player, character),
//! ranked by `retrieval`.

use super::{extraction, retrieval};
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
    let now = crate::clock::now();
    // Facts stored before extraction refused instruction-like ones may still hold one:
    // the same test keeps them out of the prompt. Run on the best first, only until the
    // prompt has its share.
    let chosen: Vec<_> = retrieval::rank(&candidates, Some(current_message), now, candidates.len())
        .into_iter()
        .filter(|(fact, _)| extraction::admissible(&fact.text))
        .take(limit as usize)
        .collect();
    let ids: Vec<u64> = chosen.iter().map(|(fact, _)| fact.id).collect();
    facts::touch(pool, &ids, now).await?;
    Ok(chosen
        .into_iter()
        .map(|(fact, _)| fact.text.clone())
        .collect())
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
