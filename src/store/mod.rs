//! SQL over the MySQL pool: one module per table group, bound parameters only.

pub mod characters;
pub mod conversations;
pub mod erasure;
pub mod events;
pub mod facts;
pub mod idempotency;
pub mod jobs;
pub mod leases;
pub mod lore;
pub mod messages;
pub mod players;
pub mod secrets;
pub mod spend;
pub mod usage;
pub mod vectors;

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

/// Connections of the pool that requests and background work share.
pub const POOL_SIZE: u32 = 32;

/// How long a request waits for a connection (or for a new one to be made) before its
/// answer is 503: during an outage a turn must say so within 2 s, not hang.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long `/readyz` waits for the database before saying it is not ready.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(1);

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
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .context("opening the connection pool")?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .context("applying migrations")?;
    Ok(pool)
}

/// A pool of one connection for `/readyz`, apart from the one turns use: a probe must
/// neither wait behind a busy pool (and call a loaded replica dead) nor take a
/// connection a turn needs. Lazy: nothing connects until the first probe.
pub fn readiness_pool(url: &Secret) -> anyhow::Result<MySqlPool> {
    let options = MySqlConnectOptions::from_str(url.expose()).context("parsing DATABASE_URL")?;
    Ok(MySqlPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(READINESS_TIMEOUT)
        .idle_timeout(Duration::from_secs(60))
        .connect_lazy_with(options))
}

/// `/readyz`: can we run a query right now? Give it `readiness_pool`.
pub async fn ping(pool: &MySqlPool) -> bool {
    let query = sqlx::query("SELECT 1").execute(pool);
    matches!(
        tokio::time::timeout(READINESS_TIMEOUT, query).await,
        Ok(Ok(_))
    )
}

/// A duration as the microseconds of an SQL `INTERVAL … MICROSECOND`: expiries are
/// computed by the database (`UTC_TIMESTAMP(6) + INTERVAL ?`), so that replicas whose
/// clocks disagree still agree on who holds what.
pub fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The database's clock, the one every expiry and window is measured by.
pub async fn database_now<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
) -> sqlx::Result<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar("SELECT UTC_TIMESTAMP(6)")
        .fetch_one(conn)
        .await
}

/// InnoDB picked this transaction as a deadlock victim (1213) or gave up waiting for a
/// lock (1205): nothing was written, and running it again is the documented remedy.
pub fn is_lock_conflict(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => database
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|mysql| matches!(mysql.number(), 1213 | 1205)),
        _ => false,
    }
}

/// Errors that may carry a lock conflict from below.
pub trait LockConflict {
    fn is_lock_conflict(&self) -> bool;
}

impl LockConflict for sqlx::Error {
    fn is_lock_conflict(&self) -> bool {
        is_lock_conflict(self)
    }
}

impl LockConflict for anyhow::Error {
    fn is_lock_conflict(&self) -> bool {
        self.chain().any(|cause| {
            cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(is_lock_conflict)
        })
    }
}

/// How many times a transaction that lost a lock conflict is run again. Sixty-four first
/// reservations at once (new players, new quota rows) lost more than four in a row in
/// the load benchmark; eight leaves that to chance no more.
const LOCK_CONFLICT_RETRIES: u32 = 8;

/// Runs a transaction again (up to a few times, after a short random pause) when InnoDB
/// aborted it for a deadlock or a lock wait timeout.
pub async fn retry_lock_conflicts<T, E, F, Fut>(mut transaction: F) -> Result<T, E>
where
    E: LockConflict,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut retries = 0;
    loop {
        match transaction().await {
            Err(error) if retries < LOCK_CONFLICT_RETRIES && error.is_lock_conflict() => {
                retries += 1;
                let pause = Duration::from_millis(rand::random_range(5..50) * u64::from(retries));
                tracing::info!(
                    retries,
                    ?pause,
                    "transaction lost a lock conflict; running it again"
                );
                tokio::time::sleep(pause).await;
            }
            result => return result,
        }
    }
}
