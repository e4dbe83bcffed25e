//! The write of a turn: the player's line, the reply, the background work they make due,
//! the affinity and the idempotent answer, in one transaction: all or nothing.

use super::{
    exchange::{Exchange, TurnUsage},
    idempotency::ClaimedKey,
    input::Turn,
    reply::Reply,
};
use crate::{
    domain::{FallbackReason, Role},
    service::{
        ServiceError, ServiceResult, Services,
        conversations::Message,
        memory::jobs::{self, Progress},
    },
    store::{
        conversations, erasure, idempotency as stored_keys,
        messages::{self, MessageRow},
        players,
    },
};
use anyhow::Context;

/// What the write did.
#[derive(Debug)]
pub enum Written {
    Stored(Exchange),
    /// The `Idempotency-Key` was taken over by another request meanwhile: nothing was
    /// stored, and that request's answer is the one to give.
    ClaimLost,
}

pub async fn store_turn(
    services: &Services,
    turn: &Turn,
    generation: u32,
    reply: &Reply,
    claimed: Option<&ClaimedKey>,
) -> ServiceResult<Written> {
    let now = crate::clock::now();
    let mut tx = services
        .pool
        .begin()
        .await
        .context("starting the turn transaction")?;
    let key = services.keys.key(&turn.player_id);
    // Erased since the turn began: storing it would bring the player back.
    if erasure::generation_locked(&mut tx, &key).await? != generation {
        return Err(ServiceError::PlayerErased(
            turn.player_id.as_str().to_owned(),
        ));
    }
    players::ensure(&mut tx, &turn.player_id, &key, now).await?;
    let conversation = conversations::create_and_lock(
        &mut tx,
        &turn.conversation_id,
        &turn.player_id,
        &turn.character_id,
        now,
    )
    .await?;
    // Another request may have bound the conversation since we first looked.
    if !turn.may_use(&conversation) {
        return Err(ServiceError::ConversationBoundElsewhere(
            turn.conversation_id.as_str().to_owned(),
        ));
    }
    let player_message = messages::insert(
        &mut tx,
        MessageRow {
            id: 0,
            conversation_id: conversation.id.clone(),
            seq: conversation.last_seq + 1,
            role: Role::Player,
            content: turn.content.as_str().to_owned(),
            source: None,
            fallback_reason: None,
            truncated: false,
            created_at: now,
        },
    )
    .await?;
    let reply_message = messages::insert(
        &mut tx,
        MessageRow {
            id: 0,
            conversation_id: conversation.id.clone(),
            seq: conversation.last_seq + 2,
            role: Role::Character,
            content: reply.content.clone(),
            source: Some(FallbackReason::source_of(reply.fallback_reason)),
            fallback_reason: reply.fallback_reason,
            truncated: reply.truncated,
            created_at: crate::clock::now(),
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
    if services.llm.is_configured() {
        jobs::schedule_due(
            &mut tx,
            &jobs::Policy::of(&services.config),
            jobs::Owner {
                conversation_id: &conversation.id,
                player_id: &turn.player_id,
                character_id: &turn.character_id,
            },
            Progress {
                last_seq: reply_message.seq,
                summary_seq: conversation.summary_seq,
                extracted_seq: conversation.extracted_seq,
            },
        )
        .await?;
    }
    if let Some(affinity) = turn.affinity {
        players::set_affinity(
            &mut tx,
            &turn.player_id,
            &turn.character_id,
            affinity.value(),
            now,
        )
        .await?;
    }
    let exchange = Exchange {
        conversation_id: conversation.id,
        player_message: Message::from(player_message),
        reply: Message::from(reply_message),
        fallback_reason: reply.fallback_reason,
        usage: TurnUsage::new(reply.spent, reply.llm_time),
    };
    if let Some(claimed) = claimed {
        let stored = serde_json::to_string(&exchange).context("encoding the idempotent answer")?;
        let still_ours = stored_keys::complete(
            &mut tx,
            &claimed.conversation_id,
            claimed.key.as_str(),
            &claimed.token,
            &stored,
        )
        .await?;
        if !still_ours {
            // Dropping the transaction rolls the whole turn back.
            return Ok(Written::ClaimLost);
        }
    }
    tx.commit().await.context("committing the turn")?;
    Ok(Written::Stored(exchange))
}
