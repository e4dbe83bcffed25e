//! The turn before its call, in one transaction on one connection: take the
//! conversation's lease, lock the player (its erasure count, limit and the database's
//! clock with it), read what the prompt needs (binding, summary, standing, the recent
//! window, fact candidates), build the prompt and reserve the first model's call (quota
//! slot and worst case). Committed before the provider is called: nothing is held
//! across it.

use super::{
    hold_for,
    input::Turn,
    lease::Lease,
    polling::Poller,
    reply::{self, FirstModel, Planned, Situation},
};
use crate::{
    domain::Affinity,
    service::{
        ServiceError, ServiceResult, Services,
        characters::Character,
        memory::{recall, summary},
        money::ledger::LockedPlayer,
        paid_call::{NotCalled, circuit::Admission},
        world::lore,
    },
    store::{
        LockConflict,
        conversations::{self, ConversationRow},
        messages,
        messages::MessageRow,
        players::{self, Standing},
    },
};
use anyhow::Context;
use rust_decimal::prelude::ToPrimitive;
use sqlx::MySqlConnection;

/// What a turn read and decided before its call; the lease is its until the turn is
/// stored (`write`) or released.
#[derive(Debug)]
pub struct Begun<'t> {
    pub lease: Lease,
    /// The player's erasure count when the turn began: an erasure since fences the write.
    pub generation: u32,
    /// The conversation as it was (`None`: its first turn).
    pub conversation: Option<ConversationRow>,
    /// The affinity and mood, and when the pair last spoke: the turn's `affinity_hint`
    /// comes from it (`memory::mood::hint_for_turn`).
    pub standing: Option<Standing>,
    /// The last messages, oldest first: back to the summary, and at least the window.
    pub recent: Vec<MessageRow>,
    /// How many of `recent` are the window the prompt carries in full.
    pub window: usize,
    /// The facts the prompt carries: marked used when the turn is stored.
    pub recalled: Vec<u64>,
    /// The vector of the player's line (embeddings on and the call worked): stored as
    /// the player message's own, so it is not embedded twice.
    pub line_vector: Option<Vec<f32>>,
    /// The call to make; `None` when no LLM is configured.
    pub planned: Option<Planned<'t>>,
}

impl Begun<'_> {
    pub fn situation(&self, turn: &Turn) -> Situation<'_> {
        let (since_summary, recent) = self
            .recent
            .split_at(self.recent.len().saturating_sub(self.window));
        let standing = self.standing.as_ref();
        let affinity = match turn.affinity {
            Some(affinity) => affinity,
            None => standing
                .and_then(|stored| Affinity::parse(i64::from(stored.affinity)).ok())
                .unwrap_or_default(),
        };
        let mood = standing.and_then(|stored| {
            let label = stored.mood_label.as_deref()?;
            let intensity = stored.mood_intensity.and_then(|i| i.to_f64())?;
            Some((label, intensity))
        });
        Situation {
            generation: self.generation,
            affinity,
            mood,
            summary: self
                .conversation
                .as_ref()
                .and_then(|c| c.summary.as_deref()),
            since_summary,
            recent,
        }
    }
}

/// Begins the turn, waiting (polling with backoff) up to `TURN_QUEUE_WAIT_MS` while
/// another turn holds the conversation; then 409 `conversation_busy`.
#[tracing::instrument(skip_all)]
pub async fn begin<'t>(
    services: &Services,
    turn: &'t Turn,
    character: &Character,
    line_vector: Option<Vec<f32>>,
) -> ServiceResult<Begun<'t>> {
    let mut poller = Poller::new(services.config.llm.turn_queue_wait);
    loop {
        match attempt(services, turn, character, line_vector.as_deref()).await {
            Ok(Some(mut begun)) => {
                begun.line_vector = line_vector;
                return Ok(begun);
            }
            // Another turn holds the conversation.
            Ok(None) => {}
            // Waiters inserting the same lease while its holder deletes it can deadlock
            // in InnoDB, as can first reservations of one player: nothing was written,
            // and for a turn that is just another "not yet".
            Err(error) if error.is_lock_conflict() => {}
            Err(error) => return Err(error),
        }
        if !poller.pause().await {
            return Err(ServiceError::ConversationBusy);
        }
    }
}

/// One try; `None` when the lease is held. Dropping the transaction on any early return
/// rolls back all of it, the lease included.
async fn attempt<'t>(
    services: &Services,
    turn: &'t Turn,
    character: &Character,
    line_vector: Option<&[f32]>,
) -> ServiceResult<Option<Begun<'t>>> {
    let config = &services.config;
    let mut tx = services.pool.begin().await.context("starting a turn")?;
    let Some(lease) = Lease::try_take(&mut tx, &turn.conversation_id, hold_for(services)).await?
    else {
        return Ok(None);
    };
    let locked = services
        .ledger
        .lock_player(&mut tx, &turn.player_id)
        .await?;
    // Under the lease the history is final: read it only now.
    let conversation = conversations::get(&mut *tx, &turn.conversation_id).await?;
    if conversation.as_ref().is_some_and(|c| !turn.may_use(c)) {
        return Err(ServiceError::ConversationBoundElsewhere(
            turn.conversation_id.as_str().to_owned(),
        ));
    }
    let standing = players::standing(&mut *tx, &turn.player_id, &turn.character_id).await?;
    let recent = match &conversation {
        Some(conversation) => {
            let carried = summary::window_len(
                config.context_recent_messages,
                config.summary_batch,
                conversation.last_seq,
                conversation.summary_seq,
            );
            messages::recent(&mut *tx, &turn.conversation_id, carried).await?
        }
        None => Vec::new(),
    };
    let mut begun = Begun {
        lease,
        generation: locked.generation,
        conversation,
        standing,
        recent,
        window: config.context_recent_messages as usize,
        recalled: Vec::new(),
        line_vector: None,
        planned: None,
    };
    if services.llm.is_configured() {
        let (planned, admission) = plan(
            services,
            &mut tx,
            (turn, character),
            &locked,
            line_vector,
            &mut begun,
        )
        .await?;
        if let Err(error) = tx.commit().await {
            // The reservation went with the transaction: the call its circuit admitted
            // will not be made.
            if matches!(planned.first, FirstModel::Reserved(_)) {
                services.circuits.not_called(&planned.models[0], admission);
            }
            return Err(anyhow::Error::new(error)
                .context("committing the turn's start")
                .into());
        }
        begun.planned = Some(planned);
    } else {
        tx.commit().await.context("committing the turn's start")?;
    }
    Ok(Some(begun))
}

/// The prompt and the first model's reservation, inside the turn's first transaction;
/// with what the circuit said of that model.
async fn plan<'t>(
    services: &Services,
    tx: &mut MySqlConnection,
    (turn, character): (&'t Turn, &Character),
    locked: &LockedPlayer,
    line_vector: Option<&[f32]>,
    begun: &mut Begun<'t>,
) -> ServiceResult<(Planned<'t>, Admission)> {
    let config = &services.config;
    let ask = recall::Ask {
        player_id: &turn.player_id,
        character_id: &turn.character_id,
        generation: locked.generation,
        character_name: &character.name,
        line: turn.content.as_str(),
        line_vector,
        window: begun
            .recent
            .first()
            .map(|first| (&turn.conversation_id, first.seq)),
        facts: config.memory_facts_in_prompt,
        messages: config.memory_messages_in_prompt,
    };
    let mut recalled = recall::for_prompt(tx, services, ask).await?;
    // The lore as `precheck` brought it up to date with the character's read.
    let knower = lore::Knower {
        character_id: turn.character_id.as_str(),
        factions: &character.factions,
        flags: &turn.flags,
    };
    recalled.lore = lore::for_prompt(&services.lore.held().entries, knower, turn.content.as_str());
    let call = reply::plan_call(services, turn, character, begun.situation(turn), &recalled);
    begun.recalled = recalled.facts.iter().map(|fact| fact.id).collect();

    let month = services
        .ledger
        .locked_month(tx, &turn.player_id, locked)
        .await?;
    let models = reply::models(services, character, month.status.warning());
    let model = models[0].as_str();
    let admission = services.circuits.admit(model);
    let first = if admission == Admission::Refused {
        FirstModel::NotCalled(NotCalled::CircuitOpen)
    } else {
        let decided = services
            .ledger
            .reserve_locked(
                tx,
                &turn.player_id,
                locked,
                &month,
                call.take_quota,
                call.worst_case(&services.ledger, model),
            )
            .await;
        match decided {
            Ok(Ok(id)) => FirstModel::Reserved(services.ledger.held(id)),
            Ok(Err(refusal)) => {
                services.circuits.not_called(model, admission);
                FirstModel::NotCalled(NotCalled::Refused(refusal))
            }
            Err(error) => {
                services.circuits.not_called(model, admission);
                return Err(error.into());
            }
        }
    };
    let planned = Planned {
        call,
        models,
        first,
    };
    Ok((planned, admission))
}
