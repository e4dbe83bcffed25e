//! The `players` and `affinities` tables.

use crate::domain::{CharacterId, PlayerId};
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor};

/// Players are created on first use. Exclusive lock on an existing row, as in
/// `conversations::create_and_lock`, so concurrent first turns do not deadlock. Callers
/// go through `spend::lock_player`, which also hands a re-used erased id what its erasure
/// carried.
pub(super) async fn create(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
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

pub async fn set_affinity(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    character_id: &CharacterId,
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

/// How the character now feels about the player, as the last extraction read it.
pub async fn set_mood(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    character_id: &CharacterId,
    mood: (&str, rust_decimal::Decimal, &str),
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let (label, intensity, reason) = mood;
    sqlx::query(
        "INSERT INTO affinities (player_id, character_id, affinity, updated_at, mood_label, mood_intensity, mood_reason)
         VALUES (?, ?, 0, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE mood_label = VALUES(mood_label),
             mood_intensity = VALUES(mood_intensity), mood_reason = VALUES(mood_reason)",
    )
    .bind(player_id)
    .bind(character_id)
    .bind(now)
    .bind(label)
    .bind(intensity)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Standing {
    pub affinity: i16,
    pub mood_label: Option<String>,
    pub mood_intensity: Option<rust_decimal::Decimal>,
}

/// The stored affinity and mood of the character towards the player.
pub async fn standing<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<Option<Standing>> {
    sqlx::query_as(
        "SELECT affinity, mood_label, mood_intensity FROM affinities
         WHERE player_id = ? AND character_id = ?",
    )
    .bind(player_id)
    .bind(character_id)
    .fetch_optional(conn)
    .await
}
