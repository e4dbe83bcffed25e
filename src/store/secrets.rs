//! The `service_secrets` table: secrets the service makes for itself once and shares
//! between replicas through the database.

use sqlx::MySqlPool;

/// The secret called `name`, made by `make` and stored if there is none yet. Every replica
/// gets the same one: the first insert wins, the others read it.
pub async fn get_or_create(
    pool: &MySqlPool,
    name: &str,
    make: impl FnOnce() -> String,
) -> sqlx::Result<String> {
    sqlx::query("INSERT IGNORE INTO service_secrets (name, value) VALUES (?, ?)")
        .bind(name)
        .bind(make())
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT value FROM service_secrets WHERE name = ?")
        .bind(name)
        .fetch_one(pool)
        .await
}
