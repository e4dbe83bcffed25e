//! A player's turn: validate, build the prompt, call the LLM (or fall back), store the
//! exchange whole, answer.

use super::{
    Services,
    characters::Character,
    conversations::Message,
    fallback::FallbackReason,
    idempotency::{self, Begin, ClaimedKey, IdempotencyKey},
    jobs::{self, Progress},
    lease,
    reply::{self, DeltaSink, Reply, Situation},
    usage::CallCost,
};
use crate::{
    domain::{Affinity, CharacterId, ConversationId, MessageText, PlayerId},
    error::ApiError,
    store::{
        self, characters as character_store,
        conversations::{self, ConversationRow},
        idempotency as stored_keys,
        messages::{self, MessageRow},
        players,
    },
};
use anyhow::Context;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::{sync::Arc, time::Duration};
use tracing::Instrument;

/// Largest `context` object the game may send, in bytes of JSON.
pub const MAX_CONTEXT_BYTES: usize = 4096;

/// `POST /conversations/{id}/messages` body, as sent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TurnInput {
    #[schema(min_length = 1, max_length = 64)]
    pub player_id: String,
    #[schema(min_length = 1, max_length = 64)]
    pub character_id: String,
    /// What the player says, 1 to `MAX_MESSAGE_CHARS` characters.
    #[schema(min_length = 1)]
    pub content: String,
    /// How the character feels about the player, -100..=100; stored as the latest value.
    #[serde(default)]
    #[schema(minimum = -100, maximum = 100)]
    pub affinity: Option<i64>,
    /// Free-form facts from the game (location, time of day…) for this line only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// A turn whose input has been parsed.
#[derive(Debug, Clone)]
pub struct Turn {
    pub conversation_id: ConversationId,
    pub player_id: PlayerId,
    pub character_id: CharacterId,
    pub content: MessageText,
    pub affinity: Option<Affinity>,
    pub context: Option<Map<String, Value>>,
}

impl Turn {
    /// A conversation is bound to the player and character of its first turn.
    fn may_use(&self, conversation: &ConversationRow) -> bool {
        conversation.player_id == self.player_id.as_str()
            && conversation.character_id == self.character_id.as_str()
    }

    /// The request as parsed, in a fixed form: what an `Idempotency-Key` is bound to.
    fn canonical(&self) -> Vec<u8> {
        let value = json!({
            "player_id": self.player_id.as_str(),
            "character_id": self.character_id.as_str(),
            "content": self.content.as_str(),
            "affinity": self.affinity.map(Affinity::value),
            "context": self.context,
        });
        serde_json::to_vec(&value).unwrap_or_default()
    }

    pub fn parse(
        conversation_id: ConversationId,
        input: TurnInput,
        max_chars: usize,
    ) -> Result<Self, ApiError> {
        let context = input.context;
        if let Some(context) = &context {
            let size = serde_json::to_vec(context)
                .map(|bytes| bytes.len())
                .unwrap_or(usize::MAX);
            if size > MAX_CONTEXT_BYTES {
                return Err(ApiError::Validation(format!(
                    "context must be at most {MAX_CONTEXT_BYTES} bytes of JSON"
                )));
            }
        }
        Ok(Self {
            conversation_id,
            player_id: PlayerId::parse(&input.player_id)?,
            character_id: CharacterId::parse(&input.character_id)?,
            content: MessageText::parse(&input.content, max_chars)?,
            affinity: input.affinity.map(Affinity::parse).transpose()?,
            context,
        })
    }
}

/// The answer to a turn.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TurnResponse {
    pub conversation_id: String,
    pub player_message: Message,
    pub reply: Message,
    /// `llm` or `fallback`.
    pub source: String,
    pub fallback_reason: Option<FallbackReason>,
    pub usage: CallCost,
}

/// The conversation is someone else's; which player's it is stays private.
fn conflict(conversation_id: &ConversationId) -> ApiError {
    ApiError::Conflict {
        code: "conversation_conflict",
        message: format!(
            "conversation {:?} is bound to another player or character",
            conversation_id.as_str()
        ),
    }
}

/// How long a turn may hold its conversation (or its idempotency key) before others
/// presume its replica dead: the whole LLM budget of a turn plus room for the database.
fn hold_for(services: &Services) -> Duration {
    services.config.llm.deadline + Duration::from_secs(30)
}

/// A turn's answer: new, or the stored JSON of an earlier request with the same
/// `Idempotency-Key`, returned byte for byte.
#[derive(Debug, Clone)]
pub enum TurnOutcome {
    Fresh(Box<TurnResponse>),
    Replayed(String),
}

/// Runs the turn on a task of its own, so that a game server hanging up mid-turn does
/// not cut it between the provider call and the write: it is stored whole either way.
/// `character` comes from `precheck`, which the caller runs first.
pub async fn take_turn(
    services: Arc<Services>,
    turn: Turn,
    character: Character,
    key: Option<IdempotencyKey>,
    deltas: Option<DeltaSink>,
) -> Result<TurnOutcome, ApiError> {
    let span = tracing::info_span!(
        "turn",
        conversation_id = %turn.conversation_id,
        player_id = %turn.player_id
    );
    let task = async move { run(&services, turn, character, key, deltas.as_ref()).await };
    tokio::spawn(task.instrument(span))
        .await
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("the turn task failed: {error}")))?
}

/// The checks that can refuse a turn before any work: an unknown character (404), a
/// conversation bound elsewhere (409). Run before `take_turn`, so that a streamed turn
/// answers these refusals with their status codes rather than inside the stream.
pub async fn precheck(services: &Services, turn: &Turn) -> Result<Character, ApiError> {
    let character_row = character_store::get(&services.pool, turn.character_id.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "character {:?} not found",
                turn.character_id.as_str()
            ))
        })?;
    check_binding(services, turn).await?;
    Ok(Character::try_from(character_row)?)
}

async fn run(
    services: &Services,
    turn: Turn,
    character: Character,
    key: Option<IdempotencyKey>,
    deltas: Option<&DeltaSink>,
) -> Result<TurnOutcome, ApiError> {
    let pool = &services.pool;

    let claimed = match key {
        None => None,
        Some(key) => {
            let hash = idempotency::request_hash(&turn.canonical());
            let wait = services.config.llm.turn_queue_wait + hold_for(services);
            match idempotency::begin(
                pool,
                turn.conversation_id.as_str(),
                key,
                &hash,
                hold_for(services),
                wait,
            )
            .await?
            {
                Begin::Replay(response) => return Ok(TurnOutcome::Replayed(response)),
                Begin::Process(claimed) => Some(claimed),
            }
        }
    };
    let result = serialized(services, &turn, &character, claimed.as_ref(), deltas).await;
    if result.is_err()
        && let Some(claimed) = &claimed
    {
        idempotency::abandon(pool, claimed).await;
    }
    result.map(|response| TurnOutcome::Fresh(Box::new(response)))
}

/// The conversation, if it exists; 409 when it is bound to another player or character.
async fn check_binding(
    services: &Services,
    turn: &Turn,
) -> Result<Option<ConversationRow>, ApiError> {
    let existing = conversations::get(&services.pool, turn.conversation_id.as_str()).await?;
    match existing {
        Some(conversation) if !turn.may_use(&conversation) => Err(conflict(&turn.conversation_id)),
        existing => Ok(existing),
    }
}

/// The turn proper, one at a time per conversation.
async fn serialized(
    services: &Services,
    turn: &Turn,
    character: &Character,
    claimed: Option<&ClaimedKey>,
    deltas: Option<&DeltaSink>,
) -> Result<TurnResponse, ApiError> {
    let pool = &services.pool;
    let started = std::time::Instant::now();
    let lease = lease::acquire(
        pool,
        turn.conversation_id.as_str(),
        hold_for(services),
        services.config.llm.turn_queue_wait,
    )
    .await?;
    let result = async {
        // Under the lease the history is final: read it only now.
        let conversation = check_binding(services, turn).await?;
        let standing =
            players::standing(pool, turn.player_id.as_str(), turn.character_id.as_str()).await?;
        let affinity = match turn.affinity {
            Some(affinity) => affinity,
            None => standing
                .as_ref()
                .and_then(|stored| Affinity::parse(i64::from(stored.affinity)).ok())
                .unwrap_or_default(),
        };
        let mood = standing.as_ref().and_then(|stored| {
            let label = stored.mood_label.as_deref()?;
            let intensity = stored.mood_intensity.and_then(|i| i.to_f64())?;
            Some((label, intensity))
        });
        let recent = match &conversation {
            Some(_) => {
                let window = services.config.context_recent_messages;
                messages::recent(pool, turn.conversation_id.as_str(), window).await?
            }
            None => Vec::new(),
        };
        let situation = Situation {
            affinity,
            mood,
            summary: conversation.as_ref().and_then(|c| c.summary.as_deref()),
            recent: &recent,
        };
        let reply = reply::compose(services, turn, character, situation, deltas).await?;
        // The reply is paid for: a lost lock conflict must not lose it.
        let stored =
            store::retry_lock_conflicts(|| store_turn(services, turn, &reply, claimed)).await?;
        crate::metrics::turn(&stored.source);
        // One line per turn; ids and figures only, never what was said.
        tracing::info!(
            character_id = %turn.character_id,
            source = %stored.source,
            fallback_reason = reply.fallback_reason.map(FallbackReason::as_str),
            attempts = reply.attempts,
            prompt_tokens = reply.cost.prompt_tokens,
            completion_tokens = reply.cost.completion_tokens,
            cost_usd = %reply.cost.cost_usd,
            latency_ms = started.elapsed().as_millis() as u64,
            "turn"
        );
        Ok(stored)
    }
    .await;
    lease.release(pool).await;
    result
}

/// Stores the player's line, the reply and the idempotent response in one transaction:
/// all or nothing.
async fn store_turn(
    services: &Services,
    turn: &Turn,
    reply: &Reply,
    claimed: Option<&ClaimedKey>,
) -> Result<TurnResponse, ApiError> {
    let now = store::now();
    let mut tx = services
        .pool
        .begin()
        .await
        .context("starting the turn transaction")?;
    players::ensure(&mut tx, turn.player_id.as_str(), now).await?;
    let conversation = conversations::create_and_lock(
        &mut tx,
        turn.conversation_id.as_str(),
        turn.player_id.as_str(),
        turn.character_id.as_str(),
        now,
    )
    .await?;
    // Another request may have bound the conversation since we first looked.
    if !turn.may_use(&conversation) {
        return Err(conflict(&turn.conversation_id));
    }
    let player_message = messages::insert(
        &mut tx,
        MessageRow {
            id: 0,
            conversation_id: conversation.id.clone(),
            seq: conversation.last_seq + 1,
            role: "player".into(),
            content: turn.content.as_str().to_owned(),
            source: None,
            fallback_reason: None,
            created_at: now,
        },
    )
    .await?;
    let source = if reply.fallback_reason.is_some() {
        "fallback"
    } else {
        "llm"
    };
    let reply_message = messages::insert(
        &mut tx,
        MessageRow {
            id: 0,
            conversation_id: conversation.id.clone(),
            seq: conversation.last_seq + 2,
            role: "character".into(),
            content: reply.content.clone(),
            source: Some(source.into()),
            fallback_reason: reply
                .fallback_reason
                .map(|reason| reason.as_str().to_owned()),
            created_at: store::now(),
        },
    )
    .await?;
    conversations::set_last_seq(
        &mut tx,
        &conversation.id,
        reply_message.seq,
        reply_message.created_at,
    )
    .await?;
    jobs::schedule_due(
        &mut tx,
        services,
        (
            &conversation.id,
            turn.player_id.as_str(),
            turn.character_id.as_str(),
        ),
        Progress {
            last_seq: reply_message.seq,
            summary_seq: conversation.summary_seq,
            extracted_seq: conversation.extracted_seq,
        },
    )
    .await?;
    if let Some(affinity) = turn.affinity {
        players::set_affinity(
            &mut tx,
            turn.player_id.as_str(),
            turn.character_id.as_str(),
            affinity.value(),
            now,
        )
        .await?;
    }
    let response = TurnResponse {
        conversation_id: conversation.id,
        player_message: player_message.into(),
        reply: reply_message.into(),
        source: source.into(),
        fallback_reason: reply.fallback_reason,
        usage: reply.cost,
    };
    if let Some(claimed) = claimed {
        let stored =
            serde_json::to_string(&response).context("encoding the idempotent response")?;
        stored_keys::complete(
            &mut tx,
            &claimed.conversation_id,
            claimed.key.as_str(),
            &claimed.token,
            &stored,
        )
        .await?;
    }
    tx.commit().await.context("committing the turn")?;
    Ok(response)
}
