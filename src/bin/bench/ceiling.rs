//! The database-only ceiling: the least a turn must ask of MariaDB, as a loop over sqlx
//! with no HTTP, no LLM and no service. One transaction: read the window of 10 messages,
//! count the player's calls of the last hour, insert both messages (one multi-row
//! statement) and a usage row, commit. On tables of its own (`bench_ceiling_*`, made
//! `LIKE` the service's `messages` and `usage_records`, so with the same columns and
//! indexes), over a pool of the service's size.

use crate::load::{Outcome, Samples, Until, closed_loop};
use anyhow::Context;
use sqlx::{MySqlPool, mysql::MySqlPoolOptions};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Instant,
};

/// Conversations the workers share out (each worker keeps to its own).
pub const CONVERSATIONS: usize = 256;

pub struct Ceiling {
    pool: MySqlPool,
    /// The last `seq` of each conversation; a worker is the only writer of its own.
    last_seq: Arc<Vec<AtomicU32>>,
}

impl Ceiling {
    pub async fn prepare(database_url: &str) -> anyhow::Result<Self> {
        let pool = MySqlPoolOptions::new()
            .max_connections(npc_dialogue::store::POOL_SIZE)
            .connect(database_url)
            .await
            .context("connecting the ceiling's pool")?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS bench_ceiling_messages LIKE messages",
            "CREATE TABLE IF NOT EXISTS bench_ceiling_usage LIKE usage_records",
        ] {
            sqlx::raw_sql(statement).execute(&pool).await?;
        }
        // Prepared again later in the same run, the conversations go on where they were.
        let last_seq: Vec<AtomicU32> = (0..CONVERSATIONS).map(|_| AtomicU32::new(0)).collect();
        let stored: Vec<(String, u32)> = sqlx::query_as(
            "SELECT conversation_id, MAX(seq) FROM bench_ceiling_messages GROUP BY conversation_id",
        )
        .fetch_all(&pool)
        .await?;
        for (conversation, seq) in stored {
            let index = conversation
                .strip_prefix("ceiling-")
                .and_then(|index| index.parse::<usize>().ok());
            if let Some(slot) = index.and_then(|index| last_seq.get(index)) {
                slot.store(seq, Ordering::Relaxed);
            }
        }
        Ok(Self {
            pool,
            last_seq: Arc::new(last_seq),
        })
    }

    /// Minimal turns at `concurrency`.
    pub async fn run(&self, concurrency: usize, until: Until) -> Samples {
        let pool = self.pool.clone();
        let last_seq = self.last_seq.clone();
        let per_worker = (CONVERSATIONS / concurrency).max(1) as u64;
        closed_loop(concurrency, until, move |worker, k| {
            let pool = pool.clone();
            let last_seq = last_seq.clone();
            async move {
                let index = (worker + concurrency * (k % per_worker) as usize) % CONVERSATIONS;
                let seq = last_seq[index].fetch_add(2, Ordering::Relaxed);
                let started = Instant::now();
                match minimal_turn(&pool, index, seq).await {
                    Ok(()) => Outcome::Ok(started.elapsed()),
                    Err(error) => Outcome::Failed(format!("{error:#}")),
                }
            }
        })
        .await
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

async fn minimal_turn(pool: &MySqlPool, index: usize, last_seq: u32) -> anyhow::Result<()> {
    let conversation = format!("ceiling-{index}");
    let player = format!("p-ceiling-{index}");
    let mut transaction = pool.begin().await?;
    let window: Vec<(u64, u32, String, String)> = sqlx::query_as(
        "SELECT id, seq, role, content FROM bench_ceiling_messages
         WHERE conversation_id = ? ORDER BY seq DESC LIMIT 10",
    )
    .bind(&conversation)
    .fetch_all(&mut *transaction)
    .await?;
    let calls: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bench_ceiling_usage
         WHERE player_id = ? AND created_at > UTC_TIMESTAMP(6) - INTERVAL 1 HOUR",
    )
    .bind(&player)
    .fetch_one(&mut *transaction)
    .await?;
    std::hint::black_box((window, calls));
    sqlx::query(
        "INSERT INTO bench_ceiling_messages
             (conversation_id, seq, role, content, source, created_at)
         VALUES (?, ?, 'player', ?, NULL, UTC_TIMESTAMP(6)),
                (?, ?, 'character', ?, 'llm', UTC_TIMESTAMP(6))",
    )
    .bind(&conversation)
    .bind(last_seq + 1)
    .bind("Any rooms free tonight, and is Tobin back from the market yet?")
    .bind(&conversation)
    .bind(last_seq + 2)
    .bind(crate::mock::REPLY)
    .execute(&mut *transaction)
    .await?;
    sqlx::query(
        "INSERT INTO bench_ceiling_usage
             (player_id, conversation_id, character_id, purpose, model, prompt_tokens,
              completion_tokens, total_tokens, cost_usd, latency_ms, outcome, created_at)
         VALUES (?, ?, 'mara', 'conversation', 'gpt-4o-mini', 412, 18, 430, 0.000073, 1,
                 'success', UTC_TIMESTAMP(6))",
    )
    .bind(&player)
    .bind(&conversation)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(())
}
