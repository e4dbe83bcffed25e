//! Quota calls, budget reservations and spend counters: the shared state that keeps a
//! player's LLM use under limits across replicas.
//!
//! Every check-and-reserve runs in a transaction that first locks the player's row, so
//! concurrent turns of one player, on any replica, take their decisions one at a time.

use crate::domain::{PlayerId, PlayerKey, Usd};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{Acquire, MySql, MySqlConnection, MySqlPool, QueryBuilder};

/// A player's row, locked until the transaction ends, and what decisions under it need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedPlayer {
    /// The player's own monthly limit, if set.
    pub own_limit: Option<Usd>,
    /// The database's clock, which every window and expiry of the decision is measured by.
    pub now: DateTime<Utc>,
    /// The player's erasure count (`erasure::generation`), its row locked too, so an
    /// erasure waits for the transaction or the transaction sees the erasure.
    pub generation: u32,
}

/// Creates the player if needed and locks the row (and the erasure fence under `key`, if
/// any) until the transaction ends. An id erased before takes over what the erasure
/// carried (spend, limit, quota), once: two statements unless there is a carry.
pub async fn lock_player(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    key: &PlayerKey,
    now: DateTime<Utc>,
) -> sqlx::Result<LockedPlayer> {
    super::players::create(&mut *conn, player_id, now).await?;
    let (own_limit, now, generation, carried): (
        Option<Usd>,
        DateTime<Utc>,
        Option<u32>,
        Option<bool>,
    ) = sqlx::query_as(
        "SELECT p.monthly_limit_usd, UTC_TIMESTAMP(6), e.generation, e.carried
         FROM players p LEFT JOIN player_erasures e ON e.player_key = ?
         WHERE p.id = ? FOR UPDATE",
    )
    .bind(key)
    .bind(player_id)
    .fetch_one(&mut *conn)
    .await?;
    // No erasure row: never erased.
    let generation = generation.unwrap_or(0);
    if carried != Some(true) {
        return Ok(LockedPlayer {
            own_limit,
            now,
            generation,
        });
    }
    super::erasure::absorb_carried(&mut *conn, player_id, key).await?;
    let own_limit: Option<Usd> =
        sqlx::query_scalar("SELECT monthly_limit_usd FROM players WHERE id = ?")
            .bind(player_id)
            .fetch_one(conn)
            .await?;
    Ok(LockedPlayer {
        own_limit,
        now,
        generation,
    })
}

/// Forgets the calls that no longer count (older than an hour, by the database's
/// clock), of every player, `batch` at a time; how many. Run by housekeeping, off the
/// turn's path.
pub async fn prune_calls(pool: &MySqlPool, batch: u32) -> sqlx::Result<u64> {
    delete_in_batches(
        pool,
        "DELETE FROM quota_calls WHERE reserved_at <= UTC_TIMESTAMP(6) - INTERVAL 1 HOUR LIMIT ?",
        batch,
    )
    .await
}

pub async fn insert_call(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let result = sqlx::query("INSERT INTO quota_calls (player_id, reserved_at) VALUES (?, ?)")
        .bind(player_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(result.last_insert_id())
}

pub async fn month_spend<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
    player_id: &PlayerId,
    month: &str,
) -> sqlx::Result<Usd> {
    let spent: Option<Usd> = sqlx::query_scalar(
        "SELECT spent_usd FROM player_monthly_spend WHERE player_id = ? AND month = ?",
    )
    .bind(player_id)
    .bind(month)
    .fetch_optional(conn)
    .await?;
    Ok(spent.unwrap_or_default())
}

/// What a reservation decides on, in one statement: the player's spend in `month`, the
/// worst cases of their calls in flight at `now`, and their calls since `since`.
pub async fn player_window(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    month: &str,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> sqlx::Result<(Usd, Usd, i64)> {
    sqlx::query_as(
        "SELECT
             COALESCE((SELECT spent_usd FROM player_monthly_spend WHERE player_id = ? AND month = ?), 0),
             (SELECT COALESCE(SUM(amount_usd), 0) FROM budget_reservations
              WHERE player_id = ? AND expires_at > ?),
             (SELECT COUNT(*) FROM quota_calls WHERE player_id = ? AND reserved_at > ?)",
    )
    .bind(player_id)
    .bind(month)
    .bind(player_id)
    .bind(now)
    .bind(player_id)
    .bind(since)
    .fetch_one(conn)
    .await
}

/// Worst-case cost of the player's calls in flight.
pub async fn reserved<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
    player_id: &PlayerId,
    now: DateTime<Utc>,
) -> sqlx::Result<Usd> {
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount_usd), 0) FROM budget_reservations
         WHERE player_id = ? AND expires_at > ?",
    )
    .bind(player_id)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Worst-case cost of all calls in flight, for the global daily cap.
pub async fn reserved_globally(
    conn: &mut MySqlConnection,
    now: DateTime<Utc>,
) -> sqlx::Result<Usd> {
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount_usd), 0) FROM budget_reservations WHERE expires_at > ?",
    )
    .bind(now)
    .fetch_one(conn)
    .await
}

/// The day's spend: the sum of its shards (`add_day_spend`).
pub async fn day_spend(conn: &mut MySqlConnection, day: NaiveDate) -> sqlx::Result<Usd> {
    sqlx::query_scalar("SELECT COALESCE(SUM(spent_usd), 0) FROM daily_spend WHERE day = ?")
        .bind(day)
        .fetch_one(conn)
        .await
}

pub async fn insert_reservation(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    amount: Usd,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "INSERT INTO budget_reservations (player_id, amount_usd, created_at, expires_at)
         VALUES (?, ?, ?, ?)",
    )
    .bind(player_id)
    .bind(amount)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(result.last_insert_id())
}

/// Forgets the reservations that expired (their replica died mid-call), of every
/// player, `batch` at a time; how many. Run by housekeeping, off the turn's path.
pub async fn prune_reservations(pool: &MySqlPool, batch: u32) -> sqlx::Result<u64> {
    delete_in_batches(
        pool,
        "DELETE FROM budget_reservations WHERE expires_at <= UTC_TIMESTAMP(6) LIMIT ?",
        batch,
    )
    .await
}

/// Runs `delete` (a `DELETE … LIMIT ?`) until a batch comes back short, each batch in a
/// READ COMMITTED transaction of its own: it locks the rows it deletes and no gaps
/// between them, so the turns inserting beside them never wait for it.
async fn delete_in_batches(
    pool: &MySqlPool,
    delete: &'static str,
    batch: u32,
) -> sqlx::Result<u64> {
    let mut conn = pool.acquire().await?;
    let mut deleted = 0;
    loop {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *conn)
            .await?;
        let mut tx = conn.begin().await?;
        let rows = sqlx::query(delete)
            .bind(batch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        deleted += rows;
        if rows < u64::from(batch) {
            return Ok(deleted);
        }
    }
}

pub async fn delete_reservation<'c>(
    conn: impl sqlx::MySqlExecutor<'c>,
    id: u64,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM budget_reservations WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds settled spend to the player's month (the day is `add_day_spend`'s).
pub async fn add_month_spend(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    amount: Usd,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO player_monthly_spend (player_id, month, spent_usd, updated_at) VALUES (?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE spent_usd = spent_usd + VALUES(spent_usd), updated_at = VALUES(updated_at)",
    )
    .bind(player_id)
    .bind(month_of(now))
    .bind(amount)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Shards of the day's spend (`daily_spend.shard`).
const DAY_SHARDS: u8 = 16;

/// Adds settled spend to the global day, on a shard chosen at random: concurrent calls
/// of different players rarely wait for one another's row lock. The day is counted
/// whether or not `GLOBAL_DAILY_BUDGET_USD` is set, so a cap switched on mid-day (or on
/// only some replicas) sees the whole day. Best written last in its transaction: the row
/// stays locked until the commit.
pub async fn add_day_spend(
    conn: &mut MySqlConnection,
    amount: Usd,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO daily_spend (day, shard, spent_usd, updated_at) VALUES (?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE spent_usd = spent_usd + VALUES(spent_usd), updated_at = VALUES(updated_at)",
    )
    .bind(now.date_naive())
    .bind(rand::random_range(0..DAY_SHARDS))
    .bind(amount)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_monthly_limit(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    limit: Option<Usd>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE players SET monthly_limit_usd = ? WHERE id = ?")
        .bind(limit)
        .bind(player_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The database's clock and the player's own monthly limit (none for an unknown player),
/// in one statement.
pub async fn clock_and_limit(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
) -> sqlx::Result<(DateTime<Utc>, Option<Usd>)> {
    sqlx::query_as("SELECT UTC_TIMESTAMP(6), (SELECT monthly_limit_usd FROM players WHERE id = ?)")
        .bind(player_id)
        .fetch_one(conn)
        .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlayerSpend {
    pub player_id: String,
    pub spent_usd: Usd,
    pub monthly_limit_usd: Option<Usd>,
}

/// Where a page of `at_or_over` starts: after this (spend, player) in the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendPosition {
    pub spent_usd: Usd,
    pub player_id: String,
}

/// Players whose spend this month reached `threshold` × their limit (their own, else
/// `default_limit`), highest spend first (ties by player id, descending), at most `limit`
/// of them after `after`.
///
/// A backward walk of `player_monthly_spend_by_month (month, spent_usd)` (InnoDB appends
/// the primary key, so the order needs no sort), joining each row to its player: it stops
/// once a page is full, so the first pages read little more than the players shown; a
/// page that finds fewer than `limit` reads the rest of the month's rows.
pub async fn at_or_over(
    pool: &MySqlPool,
    month: &str,
    default_limit: Usd,
    threshold: Decimal,
    after: Option<&SpendPosition>,
    limit: u32,
) -> sqlx::Result<Vec<PlayerSpend>> {
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT s.player_id, s.spent_usd, p.monthly_limit_usd
         FROM player_monthly_spend s LEFT JOIN players p ON p.id = s.player_id
         WHERE s.month = ",
    );
    query
        .push_bind(month)
        .push(" AND s.spent_usd >= COALESCE(p.monthly_limit_usd, ")
        .push_bind(default_limit)
        .push(") * ")
        .push_bind(threshold);
    if let Some(after) = after {
        query
            .push(" AND (s.spent_usd < ")
            .push_bind(after.spent_usd)
            .push(" OR (s.spent_usd = ")
            .push_bind(after.spent_usd)
            .push(" AND s.player_id < ")
            .push_bind(after.player_id.clone())
            .push("))");
    }
    query
        .push(" ORDER BY s.spent_usd DESC, s.player_id DESC LIMIT ")
        .push_bind(limit);
    query.build_query_as().fetch_all(pool).await
}

/// The UTC calendar month a budget counts in, as `YYYY-MM`.
pub fn month_of(time: DateTime<Utc>) -> String {
    time.format("%Y-%m").to_string()
}
