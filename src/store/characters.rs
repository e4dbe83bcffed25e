//! The `characters` table.

use crate::domain::{CharacterId, ConversationId};
use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CharacterRow {
    pub id: String,
    pub name: String,
    pub persona: String,
    pub model: Option<String>,
    /// JSON text of the lines per tier.
    pub fallback_lines: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Creates or replaces a character; `created_at` survives a replace.
pub async fn upsert(pool: &MySqlPool, row: &CharacterRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO characters (id, name, persona, model, fallback_lines, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE name = VALUES(name), persona = VALUES(persona),
             model = VALUES(model), fallback_lines = VALUES(fallback_lines),
             updated_at = VALUES(updated_at)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.persona)
    .bind(&row.model)
    .bind(&row.fallback_lines)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
    id: &CharacterId,
) -> sqlx::Result<Option<CharacterRow>> {
    sqlx::query_as(
        "SELECT id, name, persona, model, fallback_lines, created_at, updated_at
         FROM characters WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A character and, if the conversation exists, whom it is bound to: what a turn checks
/// before it starts, in one statement.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CharacterForTurn {
    #[sqlx(flatten)]
    pub character: CharacterRow,
    pub bound_player_id: Option<String>,
    pub bound_character_id: Option<String>,
}

pub async fn get_for_turn(
    pool: &MySqlPool,
    id: &CharacterId,
    conversation_id: &ConversationId,
) -> sqlx::Result<Option<CharacterForTurn>> {
    sqlx::query_as(
        "SELECT ch.id, ch.name, ch.persona, ch.model, ch.fallback_lines, ch.created_at,
             ch.updated_at, co.player_id AS bound_player_id,
             co.character_id AS bound_character_id
         FROM characters ch LEFT JOIN conversations co ON co.id = ?
         WHERE ch.id = ?",
    )
    .bind(conversation_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &MySqlPool) -> sqlx::Result<Vec<CharacterRow>> {
    sqlx::query_as(
        "SELECT id, name, persona, model, fallback_lines, created_at, updated_at
         FROM characters ORDER BY id",
    )
    .fetch_all(pool)
    .await
}
