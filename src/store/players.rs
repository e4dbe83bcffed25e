//! The `players` and `affinities` tables.

use crate::domain::{CharacterId, PlayerId};
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor};

/// Players are created on first use. Exclusive lock on an existing row, as in
/// `conversations::create_and_lock`, so concurrent first turns do not deadlock. Callers
/// go through `spend::lock_player`, which also hands a re-used erased id what its erasure
/// carried.
/// Locks an existing player until the transaction ends, as an erasure does first; false
/// when there is none (never seen, or erased).
pub async fn lock_existing(conn: &mut MySqlConnection, player_id: &str) -> sqlx::Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM players WHERE id = ? FOR UPDATE")
            .bind(player_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

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
/// `mood_updated_at` moves only when the label or the intensity changes (a new reason
/// alone is the same mood): it says since when the character has felt this way, and a
/// turn gives the mood's affinity hint once per change.
pub async fn set_mood(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    character_id: &CharacterId,
    mood: (&str, rust_decimal::Decimal, &str),
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let (label, intensity, reason) = mood;
    // Assignments run left to right and see the columns already assigned: the time is
    // decided first, against the mood as it was.
    sqlx::query(
        "INSERT INTO affinities
             (player_id, character_id, affinity, updated_at, mood_label, mood_intensity,
              mood_reason, mood_updated_at)
         VALUES (?, ?, 0, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE
             mood_updated_at = IF(mood_label <=> VALUES(mood_label)
                     AND mood_intensity <=> VALUES(mood_intensity),
                 mood_updated_at, VALUES(mood_updated_at)),
             mood_label = VALUES(mood_label),
             mood_intensity = VALUES(mood_intensity), mood_reason = VALUES(mood_reason)",
    )
    .bind(player_id)
    .bind(character_id)
    .bind(now)
    .bind(label)
    .bind(intensity)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Standing {
    pub affinity: i16,
    pub mood_label: Option<String>,
    pub mood_intensity: Option<rust_decimal::Decimal>,
    /// When the mood last changed (NULL: no mood, or one stored before this was kept).
    pub mood_updated_at: Option<DateTime<Utc>>,
    /// The latest `updated_at` of the pair's conversations, i.e. their last stored turn
    /// (NULL: no conversation, or no mood to compare it with).
    pub last_turn_at: Option<DateTime<Utc>>,
}

/// The stored affinity and mood of the character towards the player, and when the pair
/// last spoke (in any of their conversations), in one statement: the turn reads it in
/// its first transaction.
pub async fn standing<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<Option<Standing>> {
    sqlx::query_as(
        "SELECT a.affinity, a.mood_label, a.mood_intensity, a.mood_updated_at,
             CASE WHEN a.mood_updated_at IS NULL THEN NULL ELSE
                 (SELECT MAX(c.updated_at) FROM conversations c
                  WHERE c.player_id = a.player_id AND c.character_id = a.character_id)
             END AS last_turn_at
         FROM affinities a
         WHERE a.player_id = ? AND a.character_id = ?",
    )
    .bind(player_id)
    .bind(character_id)
    .fetch_optional(conn)
    .await
}

/// The mood as `GET /memory` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MoodRow {
    pub mood_label: String,
    pub mood_intensity: rust_decimal::Decimal,
    pub mood_reason: Option<String>,
    pub mood_updated_at: Option<DateTime<Utc>>,
}

/// The character's mood towards the player; `None` until an extraction read one.
pub async fn mood<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
) -> sqlx::Result<Option<MoodRow>> {
    sqlx::query_as(
        "SELECT mood_label, mood_intensity, mood_reason, mood_updated_at FROM affinities
         WHERE player_id = ? AND character_id = ?
             AND mood_label IS NOT NULL AND mood_intensity IS NOT NULL",
    )
    .bind(player_id)
    .bind(character_id)
    .fetch_optional(conn)
    .await
}
