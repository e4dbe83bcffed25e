//! The `players` and `affinities` tables.

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool};

/// Players are created on first use. Exclusive lock on an existing row, as in
/// `conversations::create_and_lock`, so concurrent first turns do not deadlock.
pub async fn ensure(
    conn: &mut MySqlConnection,
    player_id: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO players (id, created_at) VALUES (?, ?) ON DUPLICATE KEY UPDATE id = id",
    )
    .bind(player_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn affinity(
    pool: &MySqlPool,
    player_id: &str,
    character_id: &str,
) -> sqlx::Result<Option<i16>> {
    sqlx::query_scalar("SELECT affinity FROM affinities WHERE player_id = ? AND character_id = ?")
        .bind(player_id)
        .bind(character_id)
        .fetch_optional(pool)
        .await
}

pub async fn set_affinity(
    conn: &mut MySqlConnection,
    player_id: &str,
    character_id: &str,
    affinity: i32,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO affinities (player_id, character_id, affinity, updated_at) VALUES (?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE affinity = VALUES(affinity), updated_at = VALUES(updated_at)",
    )
    .bind(player_id)
    .bind(character_id)
    .bind(affinity)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
