//! SQL over the MySQL pool: one module per table group, bound parameters only.

pub mod characters;
pub mod conversations;
pub mod idempotency;
pub mod leases;
pub mod messages;
pub mod players;
pub mod spend;
pub mod usage;

use crate::config::Secret;
use anyhow::Context;
use sqlx::{
    MySql, MySqlPool,
    migrate::MigrateDatabase,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
};
use std::{str::FromStr, time::Duration};

/// How long start-up keeps trying to reach the database before giving up.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// Creates the database if missing, opens the pool and applies the embedded migrations.
/// An unreachable server is retried for `patience`, one log line per attempt.
pub async fn connect_and_migrate(url: &Secret, patience: Duration) -> anyhow::Result<MySqlPool> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match try_connect(url.expose()).await {
            Ok(pool) => return Ok(pool),
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(
                    attempt,
                    error = format!("{error:#}"),
                    "database not reachable yet, retrying"
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(error) => {
                return Err(error.context(format!(
                    "database still unreachable after {attempt} attempts over {patience:?}"
                )));
            }
        }
    }
}

async fn try_connect(url: &str) -> anyhow::Result<MySqlPool> {
    if !MySql::database_exists(url)
        .await
        .context("checking that the database exists")?
    {
        tracing::info!("database missing, creating it");
        MySql::create_database(url)
            .await
            .context("creating the database")?;
    }
    let options = MySqlConnectOptions::from_str(url).context("parsing DATABASE_URL")?;
    let pool = MySqlPoolOptions::new()
        .max_connections(32)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("opening the connection pool")?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .context("applying migrations")?;
    Ok(pool)
}

/// `/readyz`: can we run a query right now?
pub async fn ping(pool: &MySqlPool) -> bool {
    let query = sqlx::query("SELECT 1").execute(pool);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), query).await,
        Ok(Ok(_))
    )
}

/// Now, at the precision the database keeps (microseconds), so that what a write
/// answers is exactly what a later read returns.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
