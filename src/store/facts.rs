//! The `memory_facts` table: what a character remembers about a player.

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
    /// Where it was learned: from a turn's exchange or from imported history.
    pub source: MemorySource,
    pub conversation_id: Option<String>,
    pub from_seq: Option<u32>,
    pub to_seq: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewFact<'a> {
    pub player_id: &'a PlayerId,
    pub character_id: &'a CharacterId,
    pub text: &'a str,
    pub text_hash: &'a str,
    pub importance: u8,
    pub source: MemorySource,
    pub conversation_id: &'a ConversationId,
    pub from_seq: u32,
    pub to_seq: u32,
}

/// The pair's `limit` most important and freshest facts (what extraction shows the
/// model of what is already known).
pub async fn candidates<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
    limit: u32,
) -> sqlx::Result<Vec<FactRow>> {
    sqlx::query_as(
        "SELECT id, player_id, character_id, text, text_hash, importance, source, conversation_id,
             from_seq, to_seq, created_at, updated_at, last_used_at
         FROM memory_facts WHERE player_id = ? AND character_id = ?
         ORDER BY importance DESC, updated_at DESC LIMIT ?",
    )
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

/// Every fact of the pair, most important and freshest first: retrieval scores them
/// all, so a relevant fact of low importance is never out of reach.
pub async fn of_pair<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<Vec<FactRow>> {
    sqlx::query_as(
        "SELECT id, player_id, character_id, text, text_hash, importance, source, conversation_id,
             from_seq, to_seq, created_at, updated_at, last_used_at
         FROM memory_facts WHERE player_id = ? AND character_id = ?
         ORDER BY importance DESC, updated_at DESC",
    )
    .bind(player_id)
    .bind(character_id)
    .fetch_all(conn)
    .await
}

/// Stores a fact unless the same (normalized) text is already known; true if stored.
pub async fn insert(
    conn: &mut MySqlConnection,
    fact: &NewFact<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT IGNORE INTO memory_facts (player_id, character_id, text, text_hash, importance,
             source, conversation_id, from_seq, to_seq, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(fact.player_id)
    .bind(fact.character_id)
    .bind(fact.text)
    .bind(fact.text_hash)
    .bind(fact.importance)
    .bind(fact.source)
    .bind(fact.conversation_id)
    .bind(fact.from_seq)
    .bind(fact.to_seq)
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
    .bind(fact.conversation_id)
    .bind(fact.from_seq)
    .bind(fact.to_seq)
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
        super::vectors::delete_fact(conn, id).await?;
    }
    Ok(deleted)
}

/// Deletes a fact and its vector.
pub async fn delete(pool: &MySqlPool, id: u64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let result = sqlx::query("DELETE FROM memory_facts WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    super::vectors::delete_fact(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(result.rows_affected() == 1)
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
