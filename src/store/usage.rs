//! The `usage_records` table: one row per LLM call, and the sums dashboards read.

use crate::domain::{CharacterId, ConversationId, PlayerId, PlayerKey, Usd};
use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

#[derive(Debug, Clone, PartialEq)]
pub struct NewUsageRecord {
    pub player_id: PlayerId,
    /// The player under the erasure hash, and their erasure count when the call began.
    pub player_key: PlayerKey,
    pub generation: u32,
    pub conversation_id: Option<ConversationId>,
    pub character_id: Option<CharacterId>,
    pub purpose: &'static str,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub tokens_estimated: bool,
    pub cost_usd: Usd,
    /// Charged at an assumed price: the model has none of its own.
    pub price_assumed: bool,
    pub latency_ms: u32,
    pub outcome: &'static str,
    pub http_status: Option<u16>,
    pub created_at: DateTime<Utc>,
}

/// Inserts the row; unless `linked`, without its player and conversation (the player was
/// erased meanwhile).
pub async fn insert(
    conn: &mut MySqlConnection,
    record: &NewUsageRecord,
    linked: bool,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "INSERT INTO usage_records (player_id, conversation_id, character_id, purpose, model,
             prompt_tokens, completion_tokens, total_tokens, tokens_estimated, cost_usd,
             price_assumed, latency_ms, outcome, http_status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(linked.then_some(&record.player_id))
    .bind(record.conversation_id.as_ref().filter(|_| linked))
    .bind(&record.character_id)
    .bind(record.purpose)
    .bind(&record.model)
    .bind(record.prompt_tokens)
    .bind(record.completion_tokens)
    .bind(
        record
            .prompt_tokens
            .saturating_add(record.completion_tokens),
    )
    .bind(record.tokens_estimated)
    .bind(record.cost_usd)
    .bind(record.price_assumed)
    .bind(record.latency_ms)
    .bind(record.outcome)
    .bind(record.http_status)
    .bind(record.created_at)
    .execute(conn)
    .await?;
    Ok(result.last_insert_id())
}

/// Which rows a report covers: `from` inclusive, `to` exclusive.
///
/// Reports are plain SQL aggregates over indexes, no roll-up table: with a player,
/// conversation or character, MySQL reads that key's rows of the range through
/// `usage_by_player` / `usage_by_conversation` / `usage_by_character`
/// (key, created_at); without one, every row of the range through `usage_by_time`.
/// The cost is linear in the rows matched, and writes pay for no extra table.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub player_id: Option<PlayerId>,
    pub conversation_id: Option<ConversationId>,
    pub character_id: Option<CharacterId>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The column a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Purpose,
    Model,
    Day,
    Player,
    Character,
}

impl GroupBy {
    /// Static SQL per variant: the only text ever pushed into the query unbound.
    fn key_expression(self) -> &'static str {
        match self {
            Self::Purpose => "purpose",
            Self::Model => "model",
            Self::Day => "DATE_FORMAT(created_at, '%Y-%m-%d')",
            Self::Player => "COALESCE(player_id, '')",
            Self::Character => "COALESCE(character_id, '')",
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UsageSums {
    pub key: String,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_usd: Usd,
}

const SUMS: &str = "COUNT(*) AS calls,
     CAST(COALESCE(SUM(prompt_tokens), 0) AS SIGNED) AS prompt_tokens,
     CAST(COALESCE(SUM(completion_tokens), 0) AS SIGNED) AS completion_tokens,
     CAST(COALESCE(SUM(total_tokens), 0) AS SIGNED) AS total_tokens,
     COALESCE(SUM(cost_usd), 0) AS cost_usd
     FROM usage_records WHERE created_at >= ";

fn push_filter(query: &mut QueryBuilder<MySql>, filter: &UsageFilter) {
    query.push_bind(filter.from);
    query.push(" AND created_at < ").push_bind(filter.to);
    if let Some(player_id) = &filter.player_id {
        query.push(" AND player_id = ").push_bind(player_id.clone());
    }
    if let Some(conversation_id) = &filter.conversation_id {
        query
            .push(" AND conversation_id = ")
            .push_bind(conversation_id.clone());
    }
    if let Some(character_id) = &filter.character_id {
        query
            .push(" AND character_id = ")
            .push_bind(character_id.clone());
    }
}

/// Totals over the filter (with an empty key).
pub async fn totals(pool: &MySqlPool, filter: &UsageFilter) -> sqlx::Result<UsageSums> {
    let mut query = QueryBuilder::new("SELECT '' AS `key`, ");
    query.push(SUMS);
    push_filter(&mut query, filter);
    query.build_query_as().fetch_one(pool).await
}

/// Sums per group, ordered by key.
pub async fn breakdown(
    pool: &MySqlPool,
    filter: &UsageFilter,
    group_by: GroupBy,
) -> sqlx::Result<Vec<UsageSums>> {
    let mut query = QueryBuilder::new("SELECT ");
    query
        .push(group_by.key_expression())
        .push(" AS `key`, ")
        .push(SUMS);
    push_filter(&mut query, filter);
    query.push(" GROUP BY `key` ORDER BY `key`");
    query.build_query_as().fetch_all(pool).await
}
