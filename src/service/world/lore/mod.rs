//! Lore: world knowledge the studio writes, each entry scoped to the whole world, a
//! faction or one character, and gated by game flags that must all be set. A turn
//! carries the few entries its character may know that bear most on the line; an entry
//! whose flags are not all among the turn's is never in a prompt, so a spoiler cannot
//! leak.
//!
//! Every replica keeps a copy of all lore (`LoreCache`), tagged with the revision the
//! lore had when it was read. A turn reads the revision with its character, in the same
//! statement, and reloads the copy only when it moved: with no lore, or lore unchanged,
//! a turn costs no statement more.

use crate::{
    domain::{Faction, Flag, LoreId, ParseError, ScopeId, Tag, bounded_text, parse_names},
    service::{ServiceError, ServiceResult, Services, memory::retrieval},
    store::lore::{self as store, LoreRow},
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::MySqlPool;
use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

pub const MAX_LORE_CHARS: usize = 2000;
pub const MAX_TAGS: usize = 20;
/// Flags an entry may require, and flags a turn may send.
pub const MAX_REQUIRED_FLAGS: usize = 20;
pub const MAX_TURN_FLAGS: usize = 200;
/// Entries a prompt carries at most, and their characters at most together (about 600
/// tokens): the best one is clipped to fit, the others go whole or not at all.
pub const LORE_IN_PROMPT: usize = 3;
pub const LORE_PROMPT_CHARS: usize = 2400;

/// Who may know an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    World,
    Faction,
    Character,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::World => "world",
            Self::Faction => "faction",
            Self::Character => "character",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        match raw {
            "world" => Ok(Self::World),
            "faction" => Ok(Self::Faction),
            "character" => Ok(Self::Character),
            other => Err(ServiceError::Invalid(format!(
                "scope must be \"world\", \"faction\" or \"character\", not {other:?}"
            ))),
        }
    }
}

/// An entry as the studio sends it, before the checks.
#[derive(Debug, Clone)]
pub struct LoreDraft {
    pub text: String,
    pub scope: String,
    pub scope_id: Option<String>,
    pub tags: Vec<String>,
    pub requires_flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoreEntry {
    pub id: String,
    pub text: String,
    pub scope: Scope,
    /// The faction or character of the scope; `None` for the world.
    pub scope_id: Option<String>,
    pub tags: Vec<String>,
    pub requires_flags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The content words of the text and the tags, worked out once when the entry is
    /// read: a turn weighs every known entry against its line.
    pub terms: HashSet<String>,
}

impl LoreEntry {
    /// The scope takes in this character.
    pub fn in_scope(&self, character_id: &str, factions: &[Faction]) -> bool {
        match (self.scope, self.scope_id.as_deref()) {
            (Scope::World, _) => true,
            (Scope::Faction, Some(faction)) => factions.iter().any(|f| f.as_str() == faction),
            (Scope::Character, Some(id)) => id == character_id,
            _ => false,
        }
    }

    /// Every flag it requires is set.
    pub fn unlocked(&self, flags: &HashSet<&str>) -> bool {
        self.requires_flags
            .iter()
            .all(|flag| flags.contains(flag.as_str()))
    }

    /// Why a character knows it, for writers.
    pub fn reason(&self) -> String {
        let scope = match (self.scope, self.scope_id.as_deref()) {
            (Scope::World, _) => "world lore".to_owned(),
            (Scope::Faction, Some(faction)) => format!("lore of faction {faction:?}, a member"),
            (_, Some(id)) => format!("lore of character {id:?}"),
            (_, None) => "lore".to_owned(),
        };
        if self.requires_flags.is_empty() {
            scope
        } else {
            format!(
                "{scope}; its flags are set: {}",
                self.requires_flags.join(", ")
            )
        }
    }

    /// How specific it is to the character: its own lore first, then its faction's.
    fn specificity(&self) -> u8 {
        match self.scope {
            Scope::Character => 2,
            Scope::Faction => 1,
            Scope::World => 0,
        }
    }
}

fn json_list(field: &str, raw: &str, id: &str) -> anyhow::Result<Vec<String>> {
    serde_json::from_str(raw).with_context(|| format!("stored {field} of lore {id:?}"))
}

impl TryFrom<LoreRow> for LoreEntry {
    type Error = anyhow::Error;

    fn try_from(row: LoreRow) -> anyhow::Result<Self> {
        let tags = json_list("tags", &row.tags, &row.id)?;
        Ok(Self {
            terms: retrieval::terms(&format!("{} {}", row.text, tags.join(" "))),
            tags,
            requires_flags: json_list("requires_flags", &row.requires_flags, &row.id)?,
            scope: Scope::parse(&row.scope)
                .map_err(|error| anyhow::anyhow!("stored scope of lore {:?}: {error}", row.id))?,
            id: row.id,
            text: row.text,
            scope_id: row.scope_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The flags a turn (or a knowledge query) sends.
pub fn parse_flags(raw: &[String]) -> Result<Vec<String>, ParseError> {
    let flags = parse_names("flags", raw, MAX_TURN_FLAGS, Flag::parse)?;
    Ok(flags.into_iter().map(Flag::into_string).collect())
}

fn validate(id: &LoreId, draft: LoreDraft, now: DateTime<Utc>) -> ServiceResult<LoreRow> {
    let text = bounded_text("text", &draft.text, MAX_LORE_CHARS)?;
    let scope = Scope::parse(&draft.scope)?;
    let scope_id = match (scope, draft.scope_id) {
        (Scope::World, None) => None,
        (Scope::World, Some(_)) => {
            return Err(ServiceError::Invalid(
                "scope_id must be null for scope \"world\"".into(),
            ));
        }
        (Scope::Faction | Scope::Character, Some(raw)) => Some(ScopeId::parse(&raw)?.into_string()),
        (_, None) => {
            return Err(ServiceError::Invalid(format!(
                "scope_id is required for scope {:?}",
                scope.as_str()
            )));
        }
    };
    let tags: Vec<String> = parse_names("tags", &draft.tags, MAX_TAGS, Tag::parse)?
        .into_iter()
        .map(Tag::into_string)
        .collect();
    let flags: Vec<String> = parse_names(
        "requires_flags",
        &draft.requires_flags,
        MAX_REQUIRED_FLAGS,
        Flag::parse,
    )?
    .into_iter()
    .map(Flag::into_string)
    .collect();
    Ok(LoreRow {
        id: id.as_str().to_owned(),
        text,
        scope: scope.as_str().to_owned(),
        scope_id,
        tags: serde_json::to_string(&tags).context("encoding tags")?,
        requires_flags: serde_json::to_string(&flags).context("encoding flags")?,
        created_at: now,
        updated_at: now,
    })
}

/// Creates or replaces an entry.
pub async fn put(services: &Services, id: LoreId, draft: LoreDraft) -> ServiceResult<LoreEntry> {
    let row = validate(&id, draft, crate::clock::now())?;
    store::upsert(&services.pool, &row).await?;
    get(services, &id).await
}

pub async fn get(services: &Services, id: &LoreId) -> ServiceResult<LoreEntry> {
    let row = store::get(&services.pool, id.as_str())
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("lore {:?} not found", id.as_str())))?;
    Ok(LoreEntry::try_from(row)?)
}

pub async fn delete(services: &Services, id: &LoreId) -> ServiceResult<()> {
    if store::delete(&services.pool, id.as_str()).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!(
            "lore {:?} not found",
            id.as_str()
        )))
    }
}

/// Rows as entries, in their order.
fn entries(rows: Vec<LoreRow>) -> anyhow::Result<Vec<LoreEntry>> {
    rows.into_iter().map(LoreEntry::try_from).collect()
}

/// The entries of a scope (and scope id), carrying every one of `tags`, by id.
pub async fn list(
    services: &Services,
    scope: Option<Scope>,
    scope_id: Option<&str>,
    tags: &[String],
) -> ServiceResult<Vec<LoreEntry>> {
    let rows = store::of_scope(&services.pool, scope.map(Scope::as_str), scope_id).await?;
    Ok(entries(rows)?
        .into_iter()
        .filter(|entry| tags.iter().all(|tag| entry.tags.contains(tag)))
        .collect())
}

/// All lore as it is now, read afresh (not this replica's copy), by id.
pub async fn current(services: &Services) -> ServiceResult<Vec<LoreEntry>> {
    let (_, rows) = store::all(&services.pool).await?;
    Ok(entries(rows)?)
}

/// All lore as of one revision.
#[derive(Debug, Default)]
pub struct LoreSnapshot {
    pub revision: u64,
    pub entries: Vec<LoreEntry>,
}

/// A replica's copy of all lore.
#[derive(Debug, Default)]
pub struct LoreCache {
    held: RwLock<Arc<LoreSnapshot>>,
}

impl LoreCache {
    /// The copy held now.
    pub fn held(&self) -> Arc<LoreSnapshot> {
        self.held
            .read()
            .map(|held| held.clone())
            .unwrap_or_default()
    }

    /// The lore as of `revision` (what a turn read with its character) or later: the copy
    /// held when it is that recent, else all of it read again (one statement). Revision 0
    /// is no lore ever written.
    pub async fn at(&self, pool: &MySqlPool, revision: u64) -> ServiceResult<Arc<LoreSnapshot>> {
        let held = self.held();
        if held.revision >= revision {
            return Ok(held);
        }
        // A database error stays one (503 when the database is away), not a 500.
        let (read_at, rows) = store::all(pool).await?;
        let snapshot = Arc::new(LoreSnapshot {
            // No entry: the revision read with the character is recent enough.
            revision: read_at.unwrap_or(revision),
            entries: entries(rows).context("reading the lore")?,
        });
        if let Ok(mut held) = self.held.write()
            && held.revision < snapshot.revision
        {
            *held = snapshot.clone();
        }
        Ok(snapshot)
    }
}

/// Who is asking, and with which flags set.
#[derive(Debug, Clone, Copy)]
pub struct Knower<'a> {
    pub character_id: &'a str,
    pub factions: &'a [Faction],
    pub flags: &'a [String],
}

/// The entries `knower` may know, best first against `line` (by shared words with the
/// text and tags; then the character's own lore, its faction's, the world's; then the
/// newest).
pub fn known<'e>(entries: &'e [LoreEntry], knower: Knower<'_>, line: &str) -> Vec<&'e LoreEntry> {
    let flags: HashSet<&str> = knower.flags.iter().map(String::as_str).collect();
    let words = retrieval::terms(line);
    let mut known: Vec<(&LoreEntry, f64)> = entries
        .iter()
        .filter(|entry| entry.in_scope(knower.character_id, knower.factions))
        .filter(|entry| entry.unlocked(&flags))
        .map(|entry| (entry, retrieval::share(&words, &entry.terms)))
        .collect();
    known.sort_by(|(a, a_score), (b, b_score)| {
        b_score
            .total_cmp(a_score)
            .then(b.specificity().cmp(&a.specificity()))
            .then(b.updated_at.cmp(&a.updated_at))
            .then(a.id.cmp(&b.id))
    });
    known.into_iter().map(|(entry, _)| entry).collect()
}

/// What a prompt carries of the lore: the best `LORE_IN_PROMPT` known entries within
/// `LORE_PROMPT_CHARS` (the first clipped to fit).
pub fn for_prompt(entries: &[LoreEntry], knower: Knower<'_>, line: &str) -> Vec<String> {
    let mut left = LORE_PROMPT_CHARS;
    let mut chosen = Vec::new();
    for entry in known(entries, knower, line)
        .into_iter()
        .take(LORE_IN_PROMPT)
    {
        let length = entry.text.chars().count();
        if chosen.is_empty() && length > left {
            chosen.push(entry.text.chars().take(left).collect::<String>() + "…");
            break;
        }
        if length > left {
            break;
        }
        left -= length;
        chosen.push(entry.text.clone());
    }
    chosen
}

#[cfg(test)]
mod tests;
