//! The write of a turn: the player's line, the reply, what the reply cost (its usage row,
//! the spend counters, the settled reservation), the background work they make due, the
//! affinity, the recalled facts marked used, the idempotent answer and the conversation's
//! lease given back, in one transaction: all or nothing.

use super::{
    begin::Begun,
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
        jobs::{self, Progress},
        memory::mood,
    },
    store::{
        conversations::{self, ConversationRow},
        erasure, facts, idempotency as stored_keys,
        messages::{self, MessageRow},
        players,
        vectors::{self, ItemKind, NewVector},
    },
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

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
    begun: &Begun<'_>,
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
    // Erased since the turn began: storing it would bring the player back. (The player's
    // row was made when the turn began; only an erasure removes it.)
    if erasure::generation_locked(&mut tx, &key).await? != begun.generation {
        return Err(ServiceError::PlayerErased(
            turn.player_id.as_str().to_owned(),
        ));
    }
    // The reply is the conversation's latest message: its time is the conversation's
    // `updated_at`.
    let replied_at = crate::clock::now();
    let conversation =
        claim_next_seqs(&mut tx, turn, begun.conversation.as_ref(), now, replied_at).await?;
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
    // The line was embedded for the prompt: that vector is the message's own, unless
    // the model embeds queries and documents apart (the embed job makes its document
    // vector then).
    if let (Some(vector), Some(embeddings)) = (&begun.line_vector, &services.embeddings)
        && embeddings.query_serves_as_document()
    {
        let line = NewVector {
            kind: ItemKind::Message,
            item_id: player_message.id,
            conversation_id: Some(&conversation.id),
            seq: Some(player_message.seq),
            text_hash: None,
            vector,
        };
        vectors::replace(
            &mut tx,
            &turn.player_id,
            &turn.character_id,
            embeddings.space(),
            &[line],
            now,
        )
        .await?;
    }
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
            created_at: replied_at,
        },
    )
    .await?;
    if services.llm.is_configured() {
        jobs::schedule_for_new_messages(
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
            jobs::Arrival::Turn,
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
    facts::touch(&mut *tx, &begun.recalled, now).await?;
    let exchange = Exchange {
        conversation_id: conversation.id,
        player_message: Message::from(player_message),
        reply: Message::from(reply_message),
        fallback_reason: reply.fallback_reason,
        usage: TurnUsage::new(reply.spent, reply.llm_time),
        affinity_hint: mood::hint_for_turn(begun.standing.as_ref()),
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
    begun.lease.release_in(&mut tx).await?;
    // Last: the spend counters it adds to stay locked until the commit.
    if let Some(pending) = &reply.pending {
        services.ledger.write_pending(&mut tx, pending).await?;
    }
    tx.commit().await.context("committing the turn")?;
    Ok(Written::Stored(exchange))
}

/// The conversation with `last_seq` already moved on by the turn's two messages (which
/// take `last_seq + 1` and `+ 2` as it was). Under the lease nothing else moves it, so
/// the row read when the turn began is current: one guarded update. Otherwise (the
/// turn's first message, or a lease that expired under a turn slower than it) the row is
/// made (at `created_at`, the player's line's time) or locked and read again.
/// `updated_at`: the reply's time.
async fn claim_next_seqs(
    tx: &mut MySqlConnection,
    turn: &Turn,
    read: Option<&ConversationRow>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
) -> ServiceResult<ConversationRow> {
    if let Some(read) = read
        && conversations::advance_last_seq(
            tx,
            &read.id,
            read.last_seq,
            read.last_seq + 2,
            updated_at,
        )
        .await?
    {
        return Ok(read.clone());
    }
    let conversation = conversations::create_and_lock(
        tx,
        &turn.conversation_id,
        &turn.player_id,
        &turn.character_id,
        created_at,
    )
    .await?;
    // Another request may have bound the conversation since we first looked.
    if !turn.may_use(&conversation) {
        return Err(ServiceError::ConversationBoundElsewhere(
            turn.conversation_id.as_str().to_owned(),
        ));
    }
    conversations::set_last_seq(tx, &conversation.id, conversation.last_seq + 2, updated_at)
        .await?;
    Ok(conversation)
}
