//! A player's turn: the parsed input (`input`), its start in one transaction (`begin`),
//! the prompt (`prompt`), the reply from the LLM or a canned line (`reply`, `fallback`),
//! the write of the whole exchange in a second (`write`),
//! and what keeps turns apart: idempotency keys (`idempotency`) and one turn at a time
//! per conversation (`lease`), both waited for with backoff (`polling`). This file is the
//! pipeline that runs them in order.

mod begin;
pub mod exchange;
pub mod fallback;
pub mod idempotency;
pub mod input;
pub mod lease;
pub mod polling;
pub mod prompt;
pub mod reply;
mod write;

use write::Written;

use crate::{
    service::{
        ServiceError, ServiceResult, Services,
        characters::Character,
        memory::embeddings,
        paid_call::{self, TextSink},
    },
    store::{self, characters as character_store},
};
use exchange::TurnOutcome;
use idempotency::{Begin, ClaimedKey, IdempotencyKey, KeyHolds};
use input::Turn;
use std::{sync::Arc, time::Duration};
use tokio::sync::mpsc;
use tracing::Instrument;

/// What a streamed turn sends, in order, on its one channel: pieces of the reply, then
/// how the turn ended.
#[derive(Debug)]
pub enum TurnEvent {
    Delta(String),
    Finished(ServiceResult<TurnOutcome>),
}

/// How long a turn may hold its conversation (or its idempotency key) before others
/// presume its replica dead: the whole LLM budget of a turn plus room for the database.
pub(crate) fn hold_for(services: &Services) -> Duration {
    services.config.llm.deadline + Duration::from_secs(30)
}

fn turn_span(turn: &Turn) -> tracing::Span {
    tracing::info_span!(
        "turn",
        conversation_id = %turn.conversation_id,
        player_id = %turn.player_id
    )
}

/// Runs the turn on a task of its own, so that a game server hanging up mid-turn does
/// not cut it between the provider call and the write: it is stored whole either way.
/// `character` comes from `precheck`, which the caller runs first.
pub async fn take_turn(
    services: Arc<Services>,
    turn: Turn,
    character: Character,
    key: Option<IdempotencyKey>,
) -> ServiceResult<TurnOutcome> {
    let span = turn_span(&turn);
    let turns = services.turns.clone();
    let task = async move { run(&services, turn, character, key, None).await };
    turns
        .spawn(task.instrument(span))
        .await
        .map_err(|error| anyhow::anyhow!("the turn task failed: {error}"))?
}

/// The same turn, streamed: one task runs it and sends its deltas and then its end on
/// one channel. The task goes on when the receiver is dropped (the game hung up).
pub fn stream_turn(
    services: Arc<Services>,
    turn: Turn,
    character: Character,
    key: Option<IdempotencyKey>,
) -> mpsc::UnboundedReceiver<TurnEvent> {
    let (events, receiver) = mpsc::unbounded_channel();
    let span = turn_span(&turn);
    let deltas = events.clone();
    let turns = services.turns.clone();
    let task = async move {
        let forward = move |text: &str| {
            let _ = deltas.send(TurnEvent::Delta(text.to_owned()));
        };
        let finished = run(&services, turn, character, key, Some(&forward)).await;
        let _ = events.send(TurnEvent::Finished(finished));
    };
    turns.spawn(task.instrument(span));
    receiver
}

/// The checks that can refuse a turn before any work: an unknown character (404), a
/// conversation bound elsewhere (409). Run before the turn, so that a streamed turn
/// answers these refusals with their status codes rather than inside the stream.
pub async fn precheck(services: &Services, turn: &Turn) -> ServiceResult<Character> {
    let found =
        character_store::get_for_turn(&services.pool, &turn.character_id, &turn.conversation_id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "character {:?} not found",
                    turn.character_id.as_str()
                ))
            })?;
    // The lore the prompt draws on, at least as recent as the character's read: reloaded
    // only when it changed since this replica last read it.
    services
        .lore
        .at(&services.pool, found.lore_revision.unwrap_or_default())
        .await?;
    // Checked again under the conversation's lease (`begin`): it may be bound meanwhile.
    if let (Some(player_id), Some(character_id)) =
        (&found.bound_player_id, &found.bound_character_id)
        && !turn.may_use_bound_to(player_id, character_id)
    {
        return Err(ServiceError::ConversationBoundElsewhere(
            turn.conversation_id.as_str().to_owned(),
        ));
    }
    Ok(Character::try_from(found.character)?)
}

async fn run(
    services: &Services,
    turn: Turn,
    character: Character,
    key: Option<IdempotencyKey>,
    deltas: Option<&TextSink>,
) -> ServiceResult<TurnOutcome> {
    let pool = &services.pool;
    let Some(key) = key else {
        return match serialized(services, &turn, &character, None, deltas).await? {
            Written::Stored(exchange) => Ok(TurnOutcome::Fresh(Box::new(exchange))),
            Written::ClaimLost => Err(anyhow::anyhow!("a turn without a key lost a claim").into()),
        };
    };
    let hash = idempotency::request_hash(&turn.canonical());
    let holds = key_holds(services);
    let claimed =
        match idempotency::begin(pool, &turn.conversation_id, key.clone(), &hash, holds).await? {
            Begin::Replay(exchange) => return Ok(TurnOutcome::Replayed(exchange)),
            Begin::Process(claimed) => claimed,
        };
    match serialized(services, &turn, &character, Some(&claimed), deltas).await {
        Ok(Written::Stored(exchange)) => Ok(TurnOutcome::Fresh(Box::new(exchange))),
        // Another request holds the key now: its answer is the one this key gives.
        Ok(Written::ClaimLost) => {
            tracing::warn!(
                "the idempotency key was taken over mid-turn; answering with its holder's"
            );
            match idempotency::begin(pool, &turn.conversation_id, key, &hash, holds).await? {
                Begin::Replay(exchange) => Ok(TurnOutcome::Replayed(exchange)),
                // The holder died too: nothing of this turn was stored, so the game's
                // retry starts afresh.
                Begin::Process(claimed) => {
                    idempotency::abandon(pool, &claimed).await;
                    Err(ServiceError::IdempotencyInProgress)
                }
            }
        }
        Err(error) => {
            idempotency::abandon(pool, &claimed).await;
            Err(error)
        }
    }
}

/// A key is held from the claim through the wait for the conversation and the turn.
fn key_holds(services: &Services) -> KeyHolds {
    let config = &services.config;
    KeyHolds {
        hold: config.llm.turn_queue_wait + hold_for(services),
        retention: config.idempotency_retention,
        wait: config.llm.turn_queue_wait + hold_for(services),
    }
}

/// The turn proper, one at a time per conversation: begun in one transaction, the call
/// made with no connection held, stored in a second.
async fn serialized(
    services: &Services,
    turn: &Turn,
    character: &Character,
    claimed: Option<&ClaimedKey>,
    deltas: Option<&TextSink>,
) -> ServiceResult<Written> {
    let pool = &services.pool;
    let started = std::time::Instant::now();
    // Before the conversation is taken: no lease or connection is held over the call.
    let line_vector = embeddings::line_vector(
        services,
        &turn.player_id,
        &turn.character_id,
        &turn.conversation_id,
        turn.content.as_str(),
    )
    .await;
    let mut begun = begin::begin(services, turn, character, line_vector).await?;
    let begun_at = started.elapsed();
    let planned = begun.planned.take();
    let composed =
        reply::compose(services, character, begun.situation(turn), planned, deltas).await;
    let replied_at = started.elapsed();
    let mut reply = match composed {
        Ok(reply) => reply,
        Err(error) => {
            begun.lease.release(pool).await;
            return Err(error);
        }
    };
    // The reply is paid for: a lost lock conflict must not lose it.
    let written =
        store::retry_lock_conflicts(|| write::store_turn(services, turn, &begun, &reply, claimed))
            .await;
    let Ok(Written::Stored(stored)) = &written else {
        // Nothing of the turn was stored, but what its answer cost must be.
        let settled = match reply.pending.take() {
            Some(pending) => services.ledger.settle_pending(*pending).await.map(|_| ()),
            None => Ok(()),
        };
        begun.lease.release(pool).await;
        // Spooled usage says why first: the database would not take what was paid.
        settled.map_err(paid_call::unrecorded)?;
        return written;
    };
    crate::metrics::turn(stored.source().as_str());
    // One line per turn; ids and figures only, never what was said. The phases say where
    // a slow turn waited: its start (the conversation's lease, the first transaction), its
    // reply (the provider), its write (the second transaction).
    let micros = |phase: std::time::Duration| u64::try_from(phase.as_micros()).unwrap_or(u64::MAX);
    let stored_at = started.elapsed();
    tracing::info!(
        character_id = %turn.character_id,
        source = %stored.source(),
        fallback_reason = reply.fallback_reason.map(|reason| reason.as_str()),
        attempts = reply.attempts,
        prompt_tokens = reply.spent.prompt_tokens,
        completion_tokens = reply.spent.completion_tokens,
        cost_usd = %reply.spent.cost_usd,
        latency_ms = stored_at.as_millis() as u64,
        begin_us = micros(begun_at),
        reply_us = micros(replied_at - begun_at),
        store_us = micros(stored_at - replied_at),
        "turn"
    );
    written
}
