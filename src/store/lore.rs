//! The `lore` table, and the revision every change to it bumps.

use chrono::{DateTime, Utc};
use sqlx::{MySqlExecutor, MySqlPool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LoreRow {
    pub id: String,
    pub text: String,
    /// `world`, `faction` or `character`.
    pub scope: String,
    pub scope_id: Option<String>,
    /// JSON arrays of strings.
    pub tags: String,
    pub requires_flags: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! lore_columns {
    () => {
        "SELECT id, text, scope, scope_id, tags, requires_flags, created_at, updated_at FROM lore"
    };
}

/// Moves the revision on, in the transaction of the change: a replica that read the old
/// one reloads.
async fn bump(conn: &mut sqlx::MySqlConnection) -> sqlx::Result<()> {
    sqlx::query("UPDATE lore_revision SET revision = revision + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

/// Creates or replaces an entry; `created_at` survives a replace.
pub async fn upsert(pool: &MySqlPool, row: &LoreRow) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO lore (id, text, scope, scope_id, tags, requires_flags, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE text = VALUES(text), scope = VALUES(scope),
             scope_id = VALUES(scope_id), tags = VALUES(tags),
             requires_flags = VALUES(requires_flags), updated_at = VALUES(updated_at)",
    )
    .bind(&row.id)
    .bind(&row.text)
    .bind(&row.scope)
    .bind(&row.scope_id)
    .bind(&row.tags)
    .bind(&row.requires_flags)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(&mut *tx)
    .await?;
    bump(&mut tx).await?;
    tx.commit().await
}

/// Deletes an entry; true if there was one.
pub async fn delete(pool: &MySqlPool, id: &str) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM lore WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if deleted {
        bump(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}

pub async fn get<'c>(conn: impl MySqlExecutor<'c>, id: &str) -> sqlx::Result<Option<LoreRow>> {
    sqlx::query_as(concat!(lore_columns!(), " WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Every entry, by id, with the revision they are of (read in one statement, so the two
/// agree); `None` for the revision when there is no entry.
pub async fn all<'c>(conn: impl MySqlExecutor<'c>) -> sqlx::Result<(Option<u64>, Vec<LoreRow>)> {
    #[derive(sqlx::FromRow)]
    struct WithRevision {
        #[sqlx(flatten)]
        row: LoreRow,
        revision: u64,
    }
    let found: Vec<WithRevision> = sqlx::query_as(
        "SELECT l.id, l.text, l.scope, l.scope_id, l.tags, l.requires_flags, l.created_at,
             l.updated_at, r.revision
         FROM lore_revision r JOIN lore l WHERE r.id = 1 ORDER BY l.id",
    )
    .fetch_all(conn)
    .await?;
    let revision = found.first().map(|with| with.revision);
    Ok((revision, found.into_iter().map(|with| with.row).collect()))
}

/// The entries of a scope (and scope id, when given), by id.
pub async fn of_scope<'c>(
    conn: impl MySqlExecutor<'c>,
    scope: Option<&str>,
    scope_id: Option<&str>,
) -> sqlx::Result<Vec<LoreRow>> {
    sqlx::query_as(concat!(
        lore_columns!(),
        " WHERE (? IS NULL OR scope = ?) AND (? IS NULL OR scope_id = ?) ORDER BY id"
    ))
    .bind(scope)
    .bind(scope)
    .bind(scope_id)
    .bind(scope_id)
    .fetch_all(conn)
    .await
}
