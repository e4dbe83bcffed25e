//! The `memory_facts` table: what a character remembers about a player, with where it
//! came from (`source` and provenance) and when it is to spread as gossip.

use crate::domain::{CharacterId, ConversationId, MemorySource, PlayerId};
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor, MySqlPool, QueryBuilder};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FactRow {
    pub id: u64,
    pub player_id: String,
    pub character_id: String,
    pub text: String,
    /// SHA-256 of the normalized text: a vector is current while it is of this hash.
    pub text_hash: String,
    pub importance: u8,
    /// Where it was learned: a turn's exchange, imported history, a game event, gossip.
    pub source: MemorySource,
    /// Hearsay: the character it was heard from, and that character's name (if it
    /// still exists).
    pub heard_from: Option<String>,
    pub heard_from_name: Option<String>,
    /// The game event it comes from, directly or through gossip.
    pub event_id: Option<u64>,
    /// Hearsay: the memory it was derived from.
    pub derived_from: Option<u64>,
    /// Tellings away from a first-hand memory.
    pub hops: u8,
    pub conversation_id: Option<String>,
    pub from_seq: Option<u32>,
    pub to_seq: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The player id under which a character keeps memories of no player in particular (a
/// game event with no player involved): no player id is empty, and every player's turns
/// with the character see them.
pub const NO_PLAYER: &str = "";

/// The columns of a `FactRow`, of `memory_facts f` joined with the teller `h`.
macro_rules! fact_columns {
    () => {
        "f.id, f.player_id, f.character_id, f.text, f.text_hash, f.importance, f.source,
         f.heard_from, h.name AS heard_from_name, f.event_id, f.derived_from, f.hops,
         f.conversation_id, f.from_seq, f.to_seq, f.created_at, f.updated_at, f.last_used_at
         FROM memory_facts f LEFT JOIN characters h ON h.id = f.heard_from"
    };
}

#[derive(Debug, Clone)]
pub struct NewFact<'a> {
    pub player_id: &'a str,
    pub character_id: &'a str,
    pub text: &'a str,
    pub text_hash: &'a str,
    pub importance: u8,
    pub source: MemorySource,
    pub provenance: Provenance<'a>,
    /// Where in which conversation it was learned (learned in a conversation).
    pub learned_in: Option<(&'a ConversationId, u32, u32)>,
    /// How long after it is stored it spreads as gossip (`None`: never), by the
    /// database's clock, which every replica shares.
    pub spread_after: Option<std::time::Duration>,
}

/// Where a memory that was not learned in a conversation comes from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Provenance<'a> {
    pub heard_from: Option<&'a str>,
    pub event_id: Option<u64>,
    pub derived_from: Option<u64>,
    pub hops: u8,
}

/// The pair's `limit` most important and freshest facts (what extraction shows the
/// model of what is already known).
pub async fn candidates<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
    limit: u32,
) -> sqlx::Result<Vec<FactRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        fact_columns!(),
        " WHERE f.player_id = ? AND f.character_id = ?
         ORDER BY f.importance DESC, f.updated_at DESC LIMIT ?"
    ))
    .bind(player_id)
    .bind(character_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// What the pair's facts are now, in brief: how many, the newest id and the latest
/// change. Equal versions mean no fact was added, rewritten or deleted in between.
pub type PairVersion = (i64, Option<u64>, Option<DateTime<Utc>>);

macro_rules! version_sql {
    () => {
        "SELECT COUNT(*), MAX(id), MAX(updated_at) FROM memory_facts
         WHERE player_id = ? AND character_id = ?"
    };
}

pub async fn version<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<PairVersion> {
    sqlx::query_as(version_sql!())
        .bind(player_id)
        .bind(character_id)
        .fetch_one(conn)
        .await
}

/// As `version`, locking the pair's facts (and the gaps between them) until the
/// transaction ends: writers of one pair's facts go one at a time.
pub async fn version_locked(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<PairVersion> {
    sqlx::query_as(concat!(version_sql!(), " FOR UPDATE"))
        .bind(player_id)
        .bind(character_id)
        .fetch_one(conn)
        .await
}

/// Every fact of the pair, and the character's memories of no player in particular
/// (`NO_PLAYER`), most important and freshest first: retrieval scores them all, so a
/// relevant fact of low importance is never out of reach.
pub async fn of_pair<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<Vec<FactRow>> {
    known_to(conn, player_id.as_str(), character_id).await
}

/// As `of_pair`, for a player id as stored (`NO_PLAYER`: only the memories of no player
/// in particular).
pub async fn known_to<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &str,
    character_id: &CharacterId,
) -> sqlx::Result<Vec<FactRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        fact_columns!(),
        " WHERE f.player_id IN (?, ?) AND f.character_id = ?
         ORDER BY f.importance DESC, f.updated_at DESC"
    ))
    .bind(player_id)
    .bind(NO_PLAYER)
    .bind(character_id)
    .fetch_all(conn)
    .await
}

/// One fact.
pub async fn get<'c>(conn: impl MySqlExecutor<'c>, id: u64) -> sqlx::Result<Option<FactRow>> {
    sqlx::query_as(concat!("SELECT ", fact_columns!(), " WHERE f.id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The ids (and players) of memories due to spread as gossip now, by the database's
/// clock, soonest first.
pub async fn due_to_spread<'c>(
    conn: impl MySqlExecutor<'c>,
    limit: u32,
) -> sqlx::Result<Vec<(u64, String)>> {
    sqlx::query_as(
        "SELECT id, player_id FROM memory_facts WHERE spread_at <= UTC_TIMESTAMP(6)
         ORDER BY spread_at LIMIT ?",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Locks a memory due to spread until the transaction ends; false when it is gone, or
/// spread by another replica meanwhile.
pub async fn lock_due(conn: &mut MySqlConnection, id: u64) -> sqlx::Result<bool> {
    let found: Option<u64> = sqlx::query_scalar(
        "SELECT id FROM memory_facts WHERE id = ? AND spread_at <= UTC_TIMESTAMP(6) FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// The memory has spread: it does not again.
pub async fn spread_done(conn: &mut MySqlConnection, id: u64) -> sqlx::Result<()> {
    sqlx::query("UPDATE memory_facts SET spread_at = NULL WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a fact unless the same (normalized) text is already known; true if stored.
pub async fn insert(
    conn: &mut MySqlConnection,
    fact: &NewFact<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let spread_micros = fact
        .spread_after
        .map(|after| i64::try_from(after.as_micros()).unwrap_or(i64::MAX));
    let result = sqlx::query(
        "INSERT IGNORE INTO memory_facts (player_id, character_id, text, text_hash, importance,
             source, heard_from, event_id, derived_from, hops, spread_at, conversation_id,
             from_seq, to_seq, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
             IF(? IS NULL, NULL, TIMESTAMPADD(MICROSECOND, ?, UTC_TIMESTAMP(6))),
             ?, ?, ?, ?, ?)",
    )
    .bind(fact.player_id)
    .bind(fact.character_id)
    .bind(fact.text)
    .bind(fact.text_hash)
    .bind(fact.importance)
    .bind(fact.source)
    .bind(fact.provenance.heard_from)
    .bind(fact.provenance.event_id)
    .bind(fact.provenance.derived_from)
    .bind(fact.provenance.hops)
    .bind(spread_micros)
    .bind(spread_micros)
    .bind(fact.learned_in.map(|(conversation, _, _)| conversation))
    .bind(fact.learned_in.map(|(_, from, _)| from))
    .bind(fact.learned_in.map(|(_, _, to)| to))
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Rewrites a fact of this player and character; an update that would duplicate another
/// fact is skipped (`UPDATE IGNORE`). True if a row changed.
pub async fn update(
    conn: &mut MySqlConnection,
    id: u64,
    fact: &NewFact<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE IGNORE memory_facts SET text = ?, text_hash = ?, importance = ?, source = ?,
             conversation_id = ?, from_seq = ?, to_seq = ?, updated_at = ?
         WHERE id = ? AND player_id = ? AND character_id = ?",
    )
    .bind(fact.text)
    .bind(fact.text_hash)
    .bind(fact.importance)
    .bind(fact.source)
    .bind(fact.learned_in.map(|(conversation, _, _)| conversation))
    .bind(fact.learned_in.map(|(_, from, _)| from))
    .bind(fact.learned_in.map(|(_, _, to)| to))
    .bind(now)
    .bind(id)
    .bind(fact.player_id)
    .bind(fact.character_id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Deletes a fact (and its vector) only if it belongs to this player and character.
pub async fn delete_owned(
    conn: &mut MySqlConnection,
    id: u64,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<bool> {
    let result =
        sqlx::query("DELETE FROM memory_facts WHERE id = ? AND player_id = ? AND character_id = ?")
            .bind(id)
            .bind(player_id)
            .bind(character_id)
            .execute(&mut *conn)
            .await?;
    let deleted = result.rows_affected() == 1;
    if deleted {
        super::vectors::delete_fact(&mut *conn, id).await?;
        delete_hearsay(conn, id).await?;
    }
    Ok(deleted)
}

/// Deletes a fact, its vector and the hearsay derived from it.
pub async fn delete(pool: &MySqlPool, id: u64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let result = sqlx::query("DELETE FROM memory_facts WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let deleted = result.rows_affected() == 1;
    if deleted {
        super::vectors::delete_fact(&mut *tx, id).await?;
        delete_hearsay(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}

/// Deletes what was heard of memory `id`, what was heard of that, and so on (and their
/// vectors): a memory forgotten is not left behind as gossip. One round per telling.
async fn delete_hearsay(conn: &mut MySqlConnection, id: u64) -> sqlx::Result<()> {
    let mut told = vec![id];
    while !told.is_empty() {
        let mut query = QueryBuilder::new("SELECT id FROM memory_facts WHERE derived_from IN (");
        let mut separated = query.separated(", ");
        for id in &told {
            separated.push_bind(*id);
        }
        query.push(")");
        let heard: Vec<u64> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        for id in &heard {
            sqlx::query("DELETE FROM memory_facts WHERE id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            super::vectors::delete_fact(&mut *conn, *id).await?;
        }
        told = heard;
    }
    Ok(())
}

/// Marks facts as used in a prompt, in one statement however many there are.
pub async fn touch<'c>(
    conn: impl MySqlExecutor<'c>,
    ids: &[u64],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::new("UPDATE memory_facts SET last_used_at = ");
    query.push_bind(now).push(" WHERE id IN (");
    let mut separated = query.separated(", ");
    for id in ids {
        separated.push_bind(*id);
    }
    query.push(")");
    query.build().execute(conn).await?;
    Ok(())
}
