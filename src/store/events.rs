//! The `world_events` table: what happened in the game, as the game reported it, once per
//! client event id.

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventRow {
    pub id: u64,
    pub client_event_id: String,
    pub request_hash: String,
    pub text: String,
    pub importance: u8,
    pub player_id: Option<String>,
    /// JSON arrays of strings.
    pub witnesses: String,
    pub factions: String,
    pub known_by: String,
    pub created_at: DateTime<Utc>,
}

macro_rules! event_columns {
    () => {
        "SELECT id, client_event_id, request_hash, text, importance, player_id,
     witnesses, factions, known_by, created_at FROM world_events"
    };
}

/// Stores an event unless its client event id is taken; its id if stored. Under the
/// unique key, two replicas storing one event at once store it once.
pub async fn insert(conn: &mut MySqlConnection, row: &EventRow) -> sqlx::Result<Option<u64>> {
    let result = sqlx::query(
        "INSERT IGNORE INTO world_events (client_event_id, request_hash, text, importance,
             player_id, witnesses, factions, known_by, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&row.client_event_id)
    .bind(&row.request_hash)
    .bind(&row.text)
    .bind(row.importance)
    .bind(&row.player_id)
    .bind(&row.witnesses)
    .bind(&row.factions)
    .bind(&row.known_by)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    Ok((result.rows_affected() == 1).then(|| result.last_insert_id()))
}

pub async fn by_client_id<'c>(
    conn: impl MySqlExecutor<'c>,
    client_event_id: &str,
) -> sqlx::Result<Option<EventRow>> {
    sqlx::query_as(concat!(event_columns!(), " WHERE client_event_id = ?"))
        .bind(client_event_id)
        .fetch_optional(conn)
        .await
}

/// The newest events first (of one player, when given), at most `limit`, older than
/// `before_id` when given.
pub async fn newest<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: Option<&str>,
    before_id: Option<u64>,
    limit: u32,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(concat!(
        event_columns!(),
        " WHERE (? IS NULL OR player_id = ?) AND (? IS NULL OR id < ?)
         ORDER BY id DESC LIMIT ?"
    ))
    .bind(player_id)
    .bind(player_id)
    .bind(before_id)
    .bind(before_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
