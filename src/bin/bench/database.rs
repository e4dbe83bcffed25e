//! The bench's own use of MariaDB: the fresh database and its removal, facts inserted
//! straight into `memory_facts`, the queue's depth, and the server's global status
//! counters (statements and transactions).

use anyhow::Context;
use chrono::{Duration as ChronoDuration, Utc};
use sha2::{Digest, Sha256};
use sqlx::{Connection, MySql, MySqlConnection, MySqlPool, QueryBuilder, migrate::MigrateDatabase};
use std::{collections::BTreeMap, time::Duration};
use tokio::time::Instant;

/// A database `npc_bench_<uuid>` on the server, dropped by `drop`.
pub struct BenchDatabase {
    /// `mysql://…/` of the server, without a database.
    pub server: String,
    pub name: String,
}

impl BenchDatabase {
    pub async fn create(server: &str) -> anyhow::Result<Self> {
        let database = Self {
            server: server.trim_end_matches('/').to_owned(),
            name: format!("npc_bench_{}", uuid::Uuid::new_v4().simple()),
        };
        MySql::create_database(&database.url())
            .await
            .with_context(|| format!("creating the database {}", database.name))?;
        Ok(database)
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Kills the sessions still on the database (an open transaction's metadata lock
    /// would make `DROP DATABASE` wait), then drops it.
    pub async fn drop(self) -> anyhow::Result<()> {
        let mut admin = MySqlConnection::connect(&self.server).await?;
        // CAST: the column is signed on MariaDB and unsigned on MySQL.
        let sessions: Vec<i64> = sqlx::query_scalar(
            "SELECT CAST(id AS SIGNED) FROM information_schema.processlist
             WHERE db = ? AND id <> CONNECTION_ID()",
        )
        .bind(&self.name)
        .fetch_all(&mut admin)
        .await?;
        for session in sessions {
            // The session may be gone already.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("KILL {session}")))
                .execute(&mut admin)
                .await;
        }
        admin.close().await?;
        MySql::drop_database(&self.url())
            .await
            .with_context(|| format!("dropping the database {}", self.name))
    }
}

pub async fn server_version(server: &str) -> anyhow::Result<String> {
    let mut connection = MySqlConnection::connect(server).await?;
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    Ok(version)
}

/// The process id of the MariaDB server, when it runs on this machine (its pid file is
/// readable here).
pub async fn server_pid(server: &str) -> Option<u32> {
    let mut connection = MySqlConnection::connect(server).await.ok()?;
    let pid_file: Option<String> = sqlx::query_scalar("SELECT @@pid_file")
        .fetch_one(&mut connection)
        .await
        .ok()?;
    let _ = connection.close().await;
    std::fs::read_to_string(pid_file?).ok()?.trim().parse().ok()
}

const WORDS: &[&str] = &[
    "cat", "mill", "road", "bridge", "sister", "capital", "wool", "guild", "brewer", "debt",
    "market", "tobin", "bandits", "river", "sword", "horse", "bread", "tax", "roof", "letter",
    "ring", "forest", "wolf", "boat", "song", "lantern", "key", "map", "cellar", "ale",
];

fn fact_text(i: usize) -> String {
    let w = |k: usize| WORDS[(i * 7 + k * 13) % WORDS.len()];
    format!(
        "Player {} the {} by the {} after the {} (note {i})",
        ["lost", "found", "mentioned", "fears", "likes"][i % 5],
        w(1),
        w(2),
        w(3)
    )
}

/// `count` facts of `player` known to `character`, importance 1–10, ages spread over 60
/// days, a third used before: as `benches/memory.rs` inserts them.
pub async fn insert_facts(
    pool: &MySqlPool,
    player: &str,
    character: &str,
    count: usize,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let indexes: Vec<usize> = (0..count).collect();
    for chunk in indexes.chunks(500) {
        let mut query = QueryBuilder::<MySql>::new(
            "INSERT INTO memory_facts (player_id, character_id, text, text_hash, importance, \
             conversation_id, from_seq, to_seq, created_at, updated_at, last_used_at) ",
        );
        query.push_values(chunk, |mut row, &i| {
            let text = fact_text(i);
            let hash = hex::encode(Sha256::digest(text.as_bytes()));
            let minutes = i64::try_from(i).unwrap_or(0) * 37 % (60 * 24 * 60);
            let updated = now - ChronoDuration::minutes(minutes);
            let used = (i % 3 == 0).then(|| updated + ChronoDuration::minutes(5));
            row.push_bind(player.to_owned())
                .push_bind(character.to_owned())
                .push_bind(text)
                .push_bind(hash)
                .push_bind(u8::try_from(i % 10 + 1).unwrap_or(1))
                .push_bind("bench-facts")
                .push_bind(1u32)
                .push_bind(2u32)
                .push_bind(updated)
                .push_bind(updated)
                .push_bind(used);
        });
        query
            .build()
            .execute(pool)
            .await
            .context("inserting facts")?;
    }
    Ok(())
}

/// Waits until `conversation` has no background job left; false when it still has some
/// after `patience`.
pub async fn drain_jobs(
    pool: &MySqlPool,
    conversation: &str,
    patience: Duration,
) -> anyhow::Result<bool> {
    let give_up = Instant::now() + patience;
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE conversation_id = ?")
                .bind(conversation)
                .fetch_one(pool)
                .await?;
        if pending == 0 {
            return Ok(true);
        }
        if Instant::now() >= give_up {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Messages stored in conversations whose id starts with `prefix`.
pub async fn messages_stored(pool: &MySqlPool, prefix: &str) -> anyhow::Result<u64> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id LIKE ?")
            .bind(format!("{prefix}%"))
            .fetch_one(pool)
            .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The server-wide counters read before and after a run of turns.
pub const COUNTERS: &[&str] = &[
    "Questions",
    "Com_select",
    "Com_insert",
    "Com_update",
    "Com_delete",
    "Com_insert_select",
    "Com_replace",
    "Com_begin",
    "Com_commit",
    "Com_rollback",
    "Com_savepoint",
    "Com_stmt_execute",
    "Com_stmt_prepare",
    "Com_stmt_close",
    "Com_admin_commands",
    "Com_set_option",
    "Handler_commit",
    "Handler_rollback",
    "Innodb_log_writes",
    TRX_ID_COUNTER,
];

/// InnoDB's transaction id counter (from `SHOW ENGINE INNODB STATUS`): it moves for
/// transactions that write, not for reads.
pub const TRX_ID_COUNTER: &str = "Trx id counter";

pub type Counters = BTreeMap<String, i64>;

/// `SHOW GLOBAL STATUS` over a connection of its own.
pub struct StatusReader {
    connection: MySqlConnection,
}

impl StatusReader {
    pub async fn connect(server: &str) -> anyhow::Result<Self> {
        Ok(Self {
            connection: MySqlConnection::connect(server).await?,
        })
    }

    pub async fn read(&mut self) -> anyhow::Result<Counters> {
        // Fixed statements, not prepared ones: they add exactly two to `Questions`, which
        // the caller measures (reading twice in a row) and takes away.
        let rows: Vec<(String, String)> = sqlx::raw_sql(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_select', \
             'Com_insert', 'Com_update', 'Com_delete', 'Com_insert_select', 'Com_replace', \
             'Com_begin', 'Com_commit', 'Com_rollback', 'Com_savepoint', 'Com_stmt_execute', \
             'Com_stmt_prepare', 'Com_stmt_close', 'Com_admin_commands', 'Com_set_option', \
             'Handler_commit', 'Handler_rollback', 'Innodb_log_writes')",
        )
        .fetch_all(&mut self.connection)
        .await
        .context("reading the global status")?
        .into_iter()
        .map(|row| {
            use sqlx::Row;
            Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?))
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let mut counters: Counters = rows
            .into_iter()
            .map(|(name, value)| (name, value.parse().unwrap_or(0)))
            .collect();
        let innodb = sqlx::raw_sql("SHOW ENGINE INNODB STATUS")
            .fetch_one(&mut self.connection)
            .await
            .context("reading the InnoDB status")?;
        let text: String = {
            use sqlx::Row;
            innodb.try_get(2)?
        };
        let trx_ids = text
            .lines()
            .find_map(|line| line.strip_prefix(TRX_ID_COUNTER))
            .and_then(|rest| rest.trim().parse().ok())
            .context("no transaction id counter in SHOW ENGINE INNODB STATUS")?;
        counters.insert(TRX_ID_COUNTER.to_owned(), trx_ids);
        Ok(counters)
    }

    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.connection.close().await?)
    }
}

/// `after - before`, counter by counter.
pub fn delta(before: &Counters, after: &Counters) -> Counters {
    after
        .iter()
        .map(|(name, value)| (name.clone(), value - before.get(name).copied().unwrap_or(0)))
        .collect()
}
