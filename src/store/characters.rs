//! The `characters` table.

use crate::domain::CharacterId;
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

pub async fn list(pool: &MySqlPool) -> sqlx::Result<Vec<CharacterRow>> {
    sqlx::query_as(
        "SELECT id, name, persona, model, fallback_lines, created_at, updated_at
         FROM characters ORDER BY id",
    )
    .fetch_all(pool)
    .await
}
