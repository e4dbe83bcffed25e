//! Game events: the game says something happened (`POST /events`). Its witnesses, and
//! the members of the factions it names, remember it at once: a memory about the player
//! involved (source `event`, provenance: the event), or, with no player involved, a
//! memory every player's turns with that character see. From there it may spread as
//! gossip. An event is recorded once per `client_event_id`: the same request again
//! changes nothing, another request under the same id is a conflict.

use super::gossip;
use crate::{
    domain::{
        CharacterId, ClientEventId, Faction, MemorySource, PlayerId, bounded_text, parse_names,
    },
    service::{ServiceError, ServiceResult, Services, memory::facts::text_hash},
    store::{
        self, characters,
        events::{self, EventRow},
        facts::{self, NO_PLAYER, NewFact, Provenance},
    },
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// An event's text becomes a memory, and memories hold at most this many characters.
pub const MAX_EVENT_CHARS: usize = 500;
pub const MAX_WITNESSES: usize = 100;
pub const MAX_EVENT_FACTIONS: usize = 20;

/// An event as the game sends it, before the checks.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub client_event_id: String,
    pub text: String,
    pub importance: i64,
    pub player_id: Option<String>,
    pub witnesses: Vec<String>,
    pub factions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: u64,
    pub client_event_id: String,
    pub text: String,
    pub importance: u8,
    pub player_id: Option<String>,
    pub witnesses: Vec<String>,
    pub factions: Vec<String>,
    /// Every character that learned it at once: the witnesses and the factions' members.
    pub known_by: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// What recording an event did.
#[derive(Debug, Clone)]
pub enum Recorded {
    New(Event),
    /// The same request was recorded before: nothing changed.
    Again(Event),
}

impl TryFrom<EventRow> for Event {
    type Error = anyhow::Error;

    fn try_from(row: EventRow) -> anyhow::Result<Self> {
        let list = |field: &str, raw: &str| -> anyhow::Result<Vec<String>> {
            serde_json::from_str(raw).with_context(|| format!("stored {field} of event {}", row.id))
        };
        Ok(Self {
            witnesses: list("witnesses", &row.witnesses)?,
            factions: list("factions", &row.factions)?,
            known_by: list("known_by", &row.known_by)?,
            id: row.id,
            client_event_id: row.client_event_id,
            text: row.text,
            importance: row.importance,
            player_id: row.player_id,
            created_at: row.created_at,
        })
    }
}

/// An event, checked.
#[derive(Debug, Clone)]
struct Parsed {
    client_event_id: ClientEventId,
    text: String,
    importance: u8,
    player_id: Option<PlayerId>,
    witnesses: Vec<CharacterId>,
    factions: Vec<Faction>,
}

impl Parsed {
    /// The request in a fixed form: what a client event id is bound to.
    fn hash(&self) -> String {
        let mut witnesses: Vec<&str> = self.witnesses.iter().map(CharacterId::as_str).collect();
        let mut factions: Vec<&str> = self.factions.iter().map(Faction::as_str).collect();
        witnesses.sort_unstable();
        factions.sort_unstable();
        let canonical = serde_json::json!({
            "text": self.text,
            "importance": self.importance,
            "player_id": self.player_id.as_ref().map(PlayerId::as_str),
            "witnesses": witnesses,
            "factions": factions,
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

fn parse(draft: EventDraft) -> ServiceResult<Parsed> {
    let client_event_id = ClientEventId::parse(&draft.client_event_id)?;
    let text = bounded_text("text", &draft.text, MAX_EVENT_CHARS)?;
    if !(1..=10).contains(&draft.importance) {
        return Err(ServiceError::Invalid(
            "importance must be from 1 to 10".into(),
        ));
    }
    let witnesses = parse_names(
        "witnesses",
        &draft.witnesses,
        MAX_WITNESSES,
        CharacterId::parse,
    )?;
    let factions = parse_names(
        "factions",
        &draft.factions,
        MAX_EVENT_FACTIONS,
        Faction::parse,
    )?;
    Ok(Parsed {
        client_event_id,
        text,
        importance: draft.importance as u8,
        player_id: draft
            .player_id
            .as_deref()
            .map(PlayerId::parse)
            .transpose()?,
        witnesses,
        factions,
    })
}

/// Records an event and what its witnesses and factions now remember, in one
/// transaction; the same request again answers the event as it was recorded.
pub async fn record(services: &Services, draft: EventDraft) -> ServiceResult<Recorded> {
    let parsed = parse(draft)?;
    let hash = parsed.hash();
    store::retry_lock_conflicts(|| try_record(services, &parsed, &hash)).await
}

/// The event recorded under this id before, if any: the same request again, or a
/// conflict.
fn earlier(found: EventRow, hash: &str) -> ServiceResult<Recorded> {
    if found.request_hash != hash {
        return Err(ServiceError::EventConflict(found.client_event_id));
    }
    Ok(Recorded::Again(Event::try_from(found)?))
}

async fn try_record(services: &Services, parsed: &Parsed, hash: &str) -> ServiceResult<Recorded> {
    let id = parsed.client_event_id.as_str();
    // Before any other check, as a re-sent import: the same event again is answered as
    // it was, whatever changed since.
    if let Some(found) = events::by_client_id(&services.pool, id).await? {
        return earlier(found, hash);
    }
    let mut tx = services.pool.begin().await?;
    let existing = characters::existing(&mut *tx, &parsed.witnesses).await?;
    if let Some(unknown) = parsed
        .witnesses
        .iter()
        .find(|witness| !existing.iter().any(|id| id == witness.as_str()))
    {
        return Err(ServiceError::NotFound(format!(
            "character {:?} not found",
            unknown.as_str()
        )));
    }
    let factions: Vec<&str> = parsed.factions.iter().map(Faction::as_str).collect();
    let mut known_by: Vec<String> = characters::members_of(&mut *tx, &factions).await?;
    known_by.extend(existing);
    known_by.sort_unstable();
    known_by.dedup();
    let now = crate::clock::now();
    // The player involved exists from now on and is locked: an erasure waits for the
    // event or the event waits for the erasure, and erasing the player erases it.
    if let Some(player_id) = &parsed.player_id {
        services.ledger.lock_player(&mut tx, player_id).await?;
    }
    let list = |names: Vec<&str>| serde_json::to_string(&names).context("encoding a list");
    let row = EventRow {
        id: 0,
        client_event_id: id.to_owned(),
        request_hash: hash.to_owned(),
        text: parsed.text.clone(),
        importance: parsed.importance,
        player_id: parsed.player_id.as_ref().map(|p| p.as_str().to_owned()),
        witnesses: list(parsed.witnesses.iter().map(CharacterId::as_str).collect())?,
        factions: list(factions.clone())?,
        known_by: list(known_by.iter().map(String::as_str).collect())?,
        created_at: now,
    };
    let Some(event_id) = events::insert(&mut tx, &row).await? else {
        // Another request recorded it first.
        drop(tx);
        let found = events::by_client_id(&services.pool, id)
            .await?
            .context("an event id taken and not found")?;
        return earlier(found, hash);
    };
    let player_id = parsed
        .player_id
        .as_ref()
        .map_or(NO_PLAYER, PlayerId::as_str);
    let text_hash = text_hash(&parsed.text);
    for knower in &known_by {
        let memory = NewFact {
            player_id,
            character_id: knower,
            text: &parsed.text,
            text_hash: &text_hash,
            importance: parsed.importance,
            source: MemorySource::Event,
            provenance: Provenance {
                event_id: Some(event_id),
                ..Provenance::default()
            },
            learned_in: None,
            spread_after: gossip::spread_after(&services.config.gossip, parsed.importance, 0),
        };
        facts::insert(&mut tx, &memory, now).await?;
    }
    tx.commit().await?;
    tracing::info!(event_id, known_by = known_by.len(), "game event recorded");
    Ok(Recorded::New(Event {
        id: event_id,
        ..Event::try_from(row)?
    }))
}

/// The newest events first (of one player, when given).
pub async fn list(
    services: &Services,
    player_id: Option<&PlayerId>,
    before_id: Option<u64>,
    limit: u32,
) -> ServiceResult<Vec<Event>> {
    let rows = events::newest(
        &services.pool,
        player_id.map(PlayerId::as_str),
        before_id,
        limit,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(Event::try_from)
        .collect::<anyhow::Result<_>>()?)
}
