//! What a turn sends and answers on the wire: a stored message as the API shows it, the
//! turn's body, what it cost and the answer; and the checks both turn routes (plain and
//! streamed) make before the reply is made.

use super::{
    AppState,
    error::ApiError,
    wire::{self, GameId},
};
use crate::{
    domain::{Affinity, CharacterId, ConversationId, FallbackReason, MessageText, PlayerId},
    service::{
        characters::Character,
        conversations,
        turn::{
            self,
            exchange::{Exchange, TurnUsage},
            idempotency::IdempotencyKey,
            input::Turn,
        },
    },
};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, SchemaType, Type};

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A stored message, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: u64,
    /// 1, 2, 3… per conversation, gapless.
    pub seq: u32,
    /// `player` or `character`.
    #[schema(value_type = String)]
    pub role: crate::domain::Role,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// For character messages: `llm`, `fallback`, or `import` (imported history).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub source: Option<crate::domain::Source>,
    /// Present (and true) on a reply cut short: the turn's deadline came mid-stream, or
    /// the reply reached its size cap. The text is what was said, billed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub truncated: bool,
}

impl From<conversations::Message> for Message {
    fn from(message: conversations::Message) -> Self {
        Self {
            id: message.id,
            seq: message.seq,
            role: message.role,
            content: message.content,
            created_at: message.created_at,
            source: message.source,
            truncated: message.truncated,
        }
    }
}

/// `POST /conversations/{id}/messages` body, as sent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TurnInput {
    #[schema(value_type = GameId)]
    pub player_id: String,
    #[schema(value_type = GameId)]
    pub character_id: String,
    #[schema(schema_with = content_schema)]
    pub content: String,
    /// How the character feels about the player, -100..=100; stored as the latest value.
    #[serde(default, deserialize_with = "wire::integer::option_i64")]
    #[schema(minimum = -100, maximum = 100)]
    pub affinity: Option<i64>,
    #[serde(default)]
    #[schema(schema_with = context_schema)]
    pub context: Option<Map<String, Value>>,
    /// The game flags set now (at most 200, each as ids are): lore that requires flags is
    /// known in this turn only when all of them are here.
    #[serde(default)]
    #[schema(schema_with = flags_schema)]
    pub flags: Vec<String>,
}

fn flags_schema() -> utoipa::openapi::Array {
    wire::id_list(crate::service::world::lore::MAX_TURN_FLAGS, "A game flag.")
}

/// `MAX_MESSAGE_CHARS` is the operator's to set; the document, written when the code is
/// built, states its default.
const DOCUMENTED_MAX_MESSAGE_CHARS: usize = 2000;

fn content_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "What the player says: 1 to `MAX_MESSAGE_CHARS` (default 2000) characters as sent, not blank, no control characters but tab and line breaks. Surrounding whitespace is dropped.",
        ))
        .min_length(Some(1))
        .max_length(Some(DOCUMENTED_MAX_MESSAGE_CHARS))
        .pattern(Some(wire::MESSAGE_PATTERN))
        .build()
}

fn context_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some(
            "Free-form facts from the game (location, time of day…) for this line only; at most 4096 bytes of JSON.",
        ))
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .examples([serde_json::json!({"location": "tavern", "time_of_day": "night"})])
        .build()
}

/// What a call cost, as the turn reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallCost {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    #[schema(value_type = f64)]
    pub cost_usd: crate::domain::Usd,
    /// The reply's LLM time, in milliseconds: from the turn's first LLM call (its quota and
    /// budget reservation included) to the end of the reply, retries, the waits between
    /// them and `LLM_FALLBACK_MODEL` included; for a streamed turn, until the last piece.
    /// Not the whole request: waiting behind earlier turns of the conversation, reading
    /// the history and storing the exchange are not counted. 0 when no call was made (a
    /// canned line for `llm_not_configured`, `rate_limited`, `budget_exceeded`,
    /// `circuit_open`). A replayed answer carries the first turn's figure.
    pub latency_ms: u32,
}

impl From<TurnUsage> for CallCost {
    fn from(usage: TurnUsage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost_usd: usage.cost_usd,
            latency_ms: usage.latency_ms,
        }
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
    /// A suggestion the game may ignore: how the character's mood (see `GET /memory`)
    /// would move its affinity towards the player, -10..10 (valence of the mood × its
    /// intensity × 10). Given only on the first turn of the (character, player) pair after
    /// the mood changed, else null, so a game that applies it applies each change once.
    #[schema(minimum = -10, maximum = 10)]
    pub affinity_hint: Option<i8>,
}

impl From<Exchange> for TurnResponse {
    fn from(exchange: Exchange) -> Self {
        Self {
            source: exchange.source().as_str().to_owned(),
            conversation_id: exchange.conversation_id.into_string(),
            player_message: exchange.player_message.into(),
            reply: exchange.reply.into(),
            fallback_reason: exchange.fallback_reason,
            usage: exchange.usage.into(),
            affinity_hint: exchange.affinity_hint,
        }
    }
}

fn parse_turn(conversation_id: &str, input: TurnInput, max_chars: usize) -> Result<Turn, ApiError> {
    Ok(Turn::new(
        ConversationId::parse(conversation_id)?,
        PlayerId::parse(&input.player_id)?,
        CharacterId::parse(&input.character_id)?,
        MessageText::parse(&input.content, max_chars)?,
        input.affinity.map(Affinity::parse).transpose()?,
        input.context,
        input.flags,
    )?)
}

/// A turn as the game asked for it, checked up to the point where the reply is made:
/// what both the plain and the streamed route do before they differ.
pub(super) struct PreparedTurn {
    pub turn: Turn,
    pub character: Character,
    pub key: Option<IdempotencyKey>,
}

/// Parses the path, the `Idempotency-Key` and the body, and refuses what can be refused
/// before the reply is made (bad input, unknown character, conversation bound elsewhere).
pub(super) async fn prepare_turn(
    state: &AppState,
    conversation_id: &str,
    headers: &HeaderMap,
    input: TurnInput,
) -> Result<PreparedTurn, ApiError> {
    let turn = parse_turn(conversation_id, input, state.config.max_message_chars)?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(IdempotencyKey::parse(value.to_str().map_err(|_| {
            ApiError::Validation("Idempotency-Key must be printable ASCII".into())
        })?)?),
    };
    let character = turn::precheck(state, &turn).await?;
    Ok(PreparedTurn {
        turn,
        character,
        key,
    })
}
