//! The `characters` table.

use crate::domain::{CharacterId, ConversationId, Faction};
use chrono::{DateTime, Utc};
use sqlx::{MySqlPool, QueryBuilder};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CharacterRow {
    pub id: String,
    pub name: String,
    pub persona: String,
    pub model: Option<String>,
    /// JSON text of the lines per tier.
    pub fallback_lines: Option<String>,
    /// JSON array of the factions it belongs to (NULL: none).
    pub factions: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Creates or replaces a character and its faction memberships; `created_at` survives a
/// replace.
pub async fn upsert(
    pool: &MySqlPool,
    row: &CharacterRow,
    factions: &[Faction],
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO characters (id, name, persona, model, fallback_lines, factions, created_at,
             updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE name = VALUES(name), persona = VALUES(persona),
             model = VALUES(model), fallback_lines = VALUES(fallback_lines),
             factions = VALUES(factions), updated_at = VALUES(updated_at)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.persona)
    .bind(&row.model)
    .bind(&row.fallback_lines)
    .bind(&row.factions)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM character_factions WHERE character_id = ?")
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    if !factions.is_empty() {
        let mut insert =
            QueryBuilder::new("INSERT INTO character_factions (faction, character_id) ");
        insert.push_values(factions, |mut values, faction| {
            values.push_bind(faction.as_str()).push_bind(&row.id);
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// The characters of any of `factions`, by id.
pub async fn members_of<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
    factions: &[&str],
) -> sqlx::Result<Vec<String>> {
    if factions.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::new(
        "SELECT DISTINCT character_id FROM character_factions WHERE faction IN (",
    );
    let mut separated = query.separated(", ");
    for faction in factions {
        separated.push_bind(*faction);
    }
    query.push(") ORDER BY character_id");
    query.build_query_scalar().fetch_all(conn).await
}

/// The other members of the character's factions, by id.
pub async fn fellows<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
    character_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT other.character_id
         FROM character_factions own
         JOIN character_factions other ON other.faction = own.faction
         WHERE own.character_id = ? AND other.character_id <> own.character_id
         ORDER BY other.character_id",
    )
    .bind(character_id)
    .fetch_all(conn)
    .await
}

/// Which of `ids` are characters.
pub async fn existing<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
    ids: &[CharacterId],
) -> sqlx::Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::new("SELECT id FROM characters WHERE id IN (");
    let mut separated = query.separated(", ");
    for id in ids {
        separated.push_bind(id.as_str());
    }
    query.push(")");
    query.build_query_scalar().fetch_all(conn).await
}

pub async fn get<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
    id: &CharacterId,
) -> sqlx::Result<Option<CharacterRow>> {
    sqlx::query_as(
        "SELECT id, name, persona, model, fallback_lines, factions, created_at, updated_at
         FROM characters WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A character and, if the conversation exists, whom it is bound to, with the lore's
/// revision: what a turn checks before it starts, in one statement.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CharacterForTurn {
    #[sqlx(flatten)]
    pub character: CharacterRow,
    pub bound_player_id: Option<String>,
    pub bound_character_id: Option<String>,
    /// Bumped by every change to the lore (`store::lore`); 0 while there never was any.
    pub lore_revision: Option<u64>,
}

pub async fn get_for_turn(
    pool: &MySqlPool,
    id: &CharacterId,
    conversation_id: &ConversationId,
) -> sqlx::Result<Option<CharacterForTurn>> {
    sqlx::query_as(
        "SELECT ch.id, ch.name, ch.persona, ch.model, ch.fallback_lines, ch.factions,
             ch.created_at, ch.updated_at, co.player_id AS bound_player_id,
             co.character_id AS bound_character_id,
             (SELECT revision FROM lore_revision WHERE id = 1) AS lore_revision
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
        "SELECT id, name, persona, model, fallback_lines, factions, created_at, updated_at
         FROM characters ORDER BY id",
    )
    .fetch_all(pool)
    .await
}
