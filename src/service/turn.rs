//! A player's turn: validate, build the prompt, call the LLM (or fall back), store the
//! exchange whole, answer.

use super::{
    Services,
    characters::Character,
    context::{self, PastMessage, PromptInput},
    conversations::Message,
    fallback::{self, FallbackReason},
    usage::{CallContext, CallCost},
};
use crate::{
    domain::{Affinity, CharacterId, ConversationId, MessageText, PlayerId},
    error::ApiError,
    llm::{ChatRequest, Purpose},
    store::{
        characters as character_store, conversations,
        messages::{self, MessageRow},
        players,
    },
};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest `context` object the game may send, in bytes of JSON.
pub const MAX_CONTEXT_BYTES: usize = 4096;

/// `POST /conversations/{id}/messages` body, as sent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TurnInput {
    pub player_id: String,
    pub character_id: String,
    /// What the player says, 1 to `MAX_MESSAGE_CHARS` characters.
    pub content: String,
    /// How the character feels about the player, -100..=100; stored as the latest value.
    #[serde(default)]
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

/// The character's line before it is stored.
struct Reply {
    content: String,
    fallback_reason: Option<FallbackReason>,
    cost: CallCost,
}

fn conflict(conversation_id: &ConversationId, player_id: &str, character_id: &str) -> ApiError {
    ApiError::Conflict {
        code: "conversation_conflict",
        message: format!(
            "conversation {:?} belongs to player {player_id:?} and character {character_id:?}",
            conversation_id.as_str()
        ),
    }
}

#[tracing::instrument(skip_all, fields(conversation_id = %turn.conversation_id, player_id = %turn.player_id))]
pub async fn take_turn(services: &Services, turn: Turn) -> Result<TurnResponse, ApiError> {
    let pool = &services.pool;
    let character_row = character_store::get(pool, turn.character_id.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "character {:?} not found",
                turn.character_id.as_str()
            ))
        })?;
    let character = Character::try_from(character_row)?;

    let existing = conversations::get(pool, turn.conversation_id.as_str()).await?;
    if let Some(conversation) = &existing
        && (conversation.player_id != turn.player_id.as_str()
            || conversation.character_id != turn.character_id.as_str())
    {
        return Err(conflict(
            &turn.conversation_id,
            &conversation.player_id,
            &conversation.character_id,
        ));
    }

    let affinity = match turn.affinity {
        Some(affinity) => affinity,
        None => players::affinity(pool, turn.player_id.as_str(), turn.character_id.as_str())
            .await?
            .and_then(|stored| Affinity::parse(i64::from(stored)).ok())
            .unwrap_or_default(),
    };
    let window = services.config.context_recent_messages;
    let recent = match &existing {
        Some(_) => messages::recent(pool, turn.conversation_id.as_str(), window).await?,
        None => Vec::new(),
    };

    let reply = if services.llm.is_configured() {
        converse(services, &turn, &character, affinity, &recent).await?
    } else {
        None
    }
    .unwrap_or_else(|| {
        let reason = if services.llm.is_configured() {
            FallbackReason::LlmError
        } else {
            FallbackReason::LlmNotConfigured
        };
        let previous = recent
            .iter()
            .rev()
            .find(|message| message.source.as_deref() == Some("fallback"))
            .map(|message| message.content.as_str());
        Reply {
            content: fallback::choose_line(
                character.fallback_lines.as_ref(),
                affinity.tier(),
                previous,
            ),
            fallback_reason: Some(reason),
            cost: CallCost::default(),
        }
    });

    store_turn(services, &turn, reply).await
}

/// Asks the LLM for the character's line; `None` when the call failed (already logged
/// and, when it reached the provider, recorded).
async fn converse(
    services: &Services,
    turn: &Turn,
    character: &Character,
    affinity: Affinity,
    recent: &[MessageRow],
) -> Result<Option<Reply>, ApiError> {
    let past: Vec<PastMessage<'_>> = recent
        .iter()
        .map(|message| PastMessage {
            from_player: message.role == "player",
            content: &message.content,
        })
        .collect();
    let prompt = context::build_prompt(&PromptInput {
        character_name: &character.name,
        persona: &character.persona,
        affinity,
        game_context: turn.context.as_ref(),
        recent: &past,
        current: turn.content.as_str(),
    });
    let model = character
        .model
        .clone()
        .unwrap_or_else(|| services.config.llm.model.clone());
    let request = ChatRequest {
        model,
        messages: prompt,
        max_tokens: services.config.llm.max_tokens,
        user: turn.player_id.as_str().to_owned(),
        purpose: Purpose::Conversation,
    };
    let result = services.llm.chat(&request).await;
    let cost = services
        .usage
        .record(
            &services.pool,
            &CallContext {
                player_id: turn.player_id.as_str(),
                conversation_id: Some(turn.conversation_id.as_str()),
                character_id: Some(turn.character_id.as_str()),
                purpose: Purpose::Conversation,
                model: &request.model,
            },
            &result,
        )
        .await?;
    match result {
        Ok(completion) => Ok(Some(Reply {
            content: completion.content,
            fallback_reason: None,
            cost,
        })),
        Err(error) => {
            tracing::warn!(error = %error, "LLM call failed; answering with a fallback line");
            Ok(None)
        }
    }
}

/// Stores the player's line and the reply in one transaction: both or neither.
async fn store_turn(
    services: &Services,
    turn: &Turn,
    reply: Reply,
) -> Result<TurnResponse, ApiError> {
    let now = crate::store::now();
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
    if conversation.player_id != turn.player_id.as_str()
        || conversation.character_id != turn.character_id.as_str()
    {
        return Err(conflict(
            &turn.conversation_id,
            &conversation.player_id,
            &conversation.character_id,
        ));
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
            content: reply.content,
            source: Some(source.into()),
            fallback_reason: reply
                .fallback_reason
                .map(|reason| reason.as_str().to_owned()),
            created_at: crate::store::now(),
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
    tx.commit().await.context("committing the turn")?;

    Ok(TurnResponse {
        conversation_id: conversation.id,
        player_message: player_message.into(),
        reply: reply_message.into(),
        source: source.into(),
        fallback_reason: reply.fallback_reason,
        usage: reply.cost,
    })
}
