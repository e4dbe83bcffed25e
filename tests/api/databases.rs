//! Dropping a database that a server may still hold sessions on: shared by the test
//! harness and the benchmark.

use sqlx::{MySql, MySqlPool, migrate::MigrateDatabase};

/// Kills the sessions still using the database at `url` (`mysql://…/name`), then drops
/// it. Killing first matters: an open transaction's metadata lock would make `DROP
/// DATABASE` wait for ever.
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("{url} names no database"))?;
    let pool = MySqlPool::connect(server).await?;
    // CAST: the column is signed on MariaDB and unsigned on MySQL.
    let sessions: Vec<i64> = sqlx::query_scalar(
        "SELECT CAST(id AS SIGNED) FROM information_schema.processlist
         WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .bind(name)
    .fetch_all(&pool)
    .await?;
    for session in sessions {
        // The session may already be gone.
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("KILL {session}")))
            .execute(&pool)
            .await;
    }
    pool.close().await;
    MySql::drop_database(url).await?;
    Ok(())
}
