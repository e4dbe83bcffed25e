//! History import: a studio's past conversations appended after the existing messages,
//! idempotent by the studio's id per message, in one transaction under the
//! conversation's lease (serialized with turns), with no LLM call; the summaries and
//! facts they make due are scheduled as background work.

use crate::{
    domain::{Role, Source},
    service::{
        ServiceError, ServiceResult, Services,
        jobs::{self, Arrival, Progress},
        turn::{lease::Lease, polling::Poller},
    },
    store::{
        LockConflict, characters as character_store,
        conversations::{self, ConversationRow},
        erasure,
        messages::{self, ImportedRow, NewImported},
    },
};
use anyhow::Context;
use std::collections::HashMap;

mod batch;
pub use batch::{FUTURE_SKEW, Import, ImportedMessage, MAX_MESSAGES, check_count, parse_time};

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub imported: u32,
    /// Messages whose `client_id` was imported before.
    pub skipped: u32,
    /// The conversation's last seq after the import.
    pub last_seq: u32,
}

/// Imports the batch. De-duplication by `client_id` comes first, so a batch sent again
/// answers with everything skipped whatever else changed since; then the checks a first
/// turn makes (the character, the binding), then the wait for the conversation, then the
/// one transaction that stores all of it or nothing.
#[tracing::instrument(skip_all, fields(conversation_id = %import.conversation_id, player_id = %import.player_id))]
pub async fn import(services: &Services, import: Import) -> ServiceResult<Imported> {
    let pool = &services.pool;
    let known = messages::imported(pool, &import.conversation_id, &import.client_ids()).await?;
    let fresh = fresh_messages(&import, &known)?;
    if fresh.is_empty() {
        let last_seq = conversations::get(pool, &import.conversation_id)
            .await?
            .map_or(0, |conversation| conversation.last_seq);
        return Ok(Imported {
            imported: 0,
            skipped: count(import.messages.len()),
            last_seq,
        });
    }
    precheck(services, &import).await?;
    // An erasure of the player from here on fences the import.
    let key = services.keys.key(&import.player_id);
    let generation = erasure::generation(pool, &key).await?;
    let mut poller = Poller::new(services.config.llm.turn_queue_wait);
    loop {
        match attempt(services, &import, generation).await {
            Ok(Some(imported)) => {
                tracing::info!(
                    imported = imported.imported,
                    skipped = imported.skipped,
                    last_seq = imported.last_seq,
                    "history imported"
                );
                return Ok(imported);
            }
            // A turn (or another import) holds the conversation.
            Ok(None) => {}
            // As for a turn's start: nothing was written, try again.
            Err(error) if error.is_lock_conflict() => {}
            Err(error) => return Err(error),
        }
        if !poller.pause().await {
            return Err(ServiceError::ConversationBusy);
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The messages not imported before, in the batch's order; 409 `import_conflict` when a
/// `client_id` was imported with another speaker, text or time.
fn fresh_messages<'i>(
    import: &'i Import,
    known: &[ImportedRow],
) -> ServiceResult<Vec<&'i ImportedMessage>> {
    let known: HashMap<&str, &ImportedRow> = known
        .iter()
        .map(|row| (row.client_id.as_str(), row))
        .collect();
    let mut fresh = Vec::new();
    for message in &import.messages {
        match known.get(message.client_id.as_str()) {
            None => fresh.push(message),
            Some(stored) if message.matches(stored) => {}
            Some(_) => {
                return Err(ServiceError::ImportConflict(
                    message.client_id.as_str().to_owned(),
                ));
            }
        }
    }
    Ok(fresh)
}

/// As a first turn: an unknown character is 404, a conversation bound to another player
/// or character 409. Checked again under the lease.
async fn precheck(services: &Services, import: &Import) -> ServiceResult<()> {
    let found = character_store::get_for_turn(
        &services.pool,
        &import.character_id,
        &import.conversation_id,
    )
    .await?
    .ok_or_else(|| {
        ServiceError::NotFound(format!(
            "character {:?} not found",
            import.character_id.as_str()
        ))
    })?;
    if let (Some(player_id), Some(character_id)) =
        (&found.bound_player_id, &found.bound_character_id)
        && !bound_to(import, player_id, character_id)
    {
        return Err(bound_elsewhere(import));
    }
    Ok(())
}

fn bound_to(import: &Import, player_id: &str, character_id: &str) -> bool {
    player_id == import.player_id.as_str() && character_id == import.character_id.as_str()
}

fn bound_elsewhere(import: &Import) -> ServiceError {
    ServiceError::ConversationBoundElsewhere(import.conversation_id.as_str().to_owned())
}

/// One try, in one transaction: take the conversation's lease (`None` when a turn holds
/// it), lock the player (and check the erasure fence), bind or lock the conversation,
/// de-duplicate again (another import may have run meanwhile), check the times against
/// the last message, append, schedule the background work, give the lease back. Any
/// early return drops the transaction, rolling all of it back.
async fn attempt(
    services: &Services,
    import: &Import,
    generation: u32,
) -> ServiceResult<Option<Imported>> {
    let mut tx = services.pool.begin().await.context("starting an import")?;
    let Some(lease) = Lease::try_take(
        &mut tx,
        &import.conversation_id,
        crate::service::turn::hold_for(services),
    )
    .await?
    else {
        return Ok(None);
    };
    let locked = services
        .ledger
        .lock_player(&mut tx, &import.player_id)
        .await?;
    if locked.generation != generation {
        return Err(ServiceError::PlayerErased(
            import.player_id.as_str().to_owned(),
        ));
    }
    let known = messages::imported(&mut *tx, &import.conversation_id, &import.client_ids()).await?;
    let fresh = fresh_messages(import, &known)?;
    let skipped = count(import.messages.len() - fresh.len());
    let Some(first) = fresh.first() else {
        // Everything arrived meanwhile: nothing to write.
        let last_seq = conversations::get(&mut *tx, &import.conversation_id)
            .await?
            .map_or(0, |conversation| conversation.last_seq);
        lease.release_in(&mut tx).await?;
        tx.commit().await.context("committing an empty import")?;
        return Ok(Some(Imported {
            imported: 0,
            skipped,
            last_seq,
        }));
    };
    // Bound like a first turn; a new conversation begins with its first message.
    let conversation = conversations::create_and_lock(
        &mut tx,
        &import.conversation_id,
        &import.player_id,
        &import.character_id,
        first.created_at,
    )
    .await?;
    if !bound_to(
        import,
        conversation.player_id.as_str(),
        conversation.character_id.as_str(),
    ) {
        return Err(bound_elsewhere(import));
    }
    check_after_last(&mut tx, &conversation, first).await?;
    let rows: Vec<NewImported<'_>> = fresh
        .iter()
        .zip(conversation.last_seq + 1..)
        .map(|(message, seq)| NewImported {
            seq,
            client_id: &message.client_id,
            role: message.role,
            content: message.content.as_str(),
            source: (message.role == Role::Character).then_some(Source::Import),
            created_at: message.created_at,
        })
        .collect();
    messages::insert_imported(&mut tx, &conversation.id, &rows)
        .await
        .context("inserting imported messages")?;
    let last_seq = conversation.last_seq + count(rows.len());
    let updated_at = fresh.last().map_or(first.created_at, |m| m.created_at);
    if !conversations::record_import(
        &mut tx,
        &conversation.id,
        conversation.last_seq,
        last_seq,
        updated_at,
    )
    .await?
    {
        return Err(anyhow::anyhow!("the conversation moved on under its lease").into());
    }
    if services.llm.is_configured() {
        jobs::schedule_for_new_messages(
            &mut tx,
            &jobs::Policy::of(&services.config),
            jobs::Owner {
                conversation_id: &conversation.id,
                player_id: &import.player_id,
                character_id: &import.character_id,
            },
            Progress {
                last_seq,
                summary_seq: conversation.summary_seq,
                extracted_seq: conversation.extracted_seq,
            },
            Arrival::Import,
        )
        .await?;
    }
    lease.release_in(&mut tx).await?;
    tx.commit().await.context("committing an import")?;
    Ok(Some(Imported {
        imported: count(rows.len()),
        skipped,
        last_seq,
    }))
}

/// Imported history goes after what the conversation already holds, in time too.
async fn check_after_last(
    conn: &mut sqlx::MySqlConnection,
    conversation: &ConversationRow,
    first: &ImportedMessage,
) -> ServiceResult<()> {
    if conversation.last_seq == 0 {
        return Ok(());
    }
    let last = messages::created_at(&mut *conn, &conversation.id, conversation.last_seq)
        .await?
        .unwrap_or(conversation.updated_at);
    if first.created_at < last {
        return Err(ServiceError::ImportOutOfOrder(format!(
            "created_at of {:?} ({}) is before the conversation's last message ({})",
            first.client_id.as_str(),
            first.created_at.to_rfc3339(),
            last.to_rfc3339()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
