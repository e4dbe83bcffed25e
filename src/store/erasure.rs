//! Right to be forgotten: everything stored about a player, in one transaction, and the
//! fence that keeps it erased (`player_erasures`, keyed by a hash of the id).

use crate::domain::{PlayerId, PlayerKey, Usd};
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor};

/// How many times the player behind `key` was erased (0: never). A turn, call or job
/// reads it when it begins and checks it, locked, before it writes.
pub async fn generation<'c>(conn: impl MySqlExecutor<'c>, key: &PlayerKey) -> sqlx::Result<u32> {
    let generation: Option<u32> =
        sqlx::query_scalar("SELECT generation FROM player_erasures WHERE player_key = ?")
            .bind(key)
            .fetch_optional(conn)
            .await?;
    Ok(generation.unwrap_or(0))
}

/// As `generation`, holding a shared lock until the transaction ends, so an erasure
/// (which takes the row exclusively) waits for the write or the write sees the erasure.
pub async fn generation_locked(conn: &mut MySqlConnection, key: &PlayerKey) -> sqlx::Result<u32> {
    let generation: Option<u32> = sqlx::query_scalar(
        "SELECT generation FROM player_erasures WHERE player_key = ? LOCK IN SHARE MODE",
    )
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(generation.unwrap_or(0))
}

/// Erases the player's conversations, messages, summaries, facts (gossip and memories of
/// events included) and their vectors, the game events about them, affinity and mood,
/// pending jobs, keys and leases; usage rows stay for accounting, with their player and
/// conversation unlinked. This month's spend, the player's own limit, their quota calls
/// and reservations in flight carry over under `key`. False when the player was unknown
/// (and nothing changed).
pub async fn erase_player(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    key: &PlayerKey,
    month: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let player: Option<(Option<Usd>,)> =
        sqlx::query_as("SELECT monthly_limit_usd FROM players WHERE id = ? FOR UPDATE")
            .bind(player_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((own_limit,)) = player else {
        return Ok(false);
    };
    let spent: Option<Usd> = sqlx::query_scalar(
        "SELECT spent_usd FROM player_monthly_spend WHERE player_id = ? AND month = ?",
    )
    .bind(player_id)
    .bind(month)
    .fetch_optional(&mut *conn)
    .await?;
    // First the fence: from here on, whatever began before sees the new generation.
    sqlx::query(
        "INSERT INTO player_erasures
             (player_key, generation, carried, month, spent_usd, monthly_limit_usd, erased_at)
         VALUES (?, 1, TRUE, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE generation = generation + 1, carried = TRUE,
             month = VALUES(month), spent_usd = VALUES(spent_usd),
             monthly_limit_usd = VALUES(monthly_limit_usd), erased_at = VALUES(erased_at)",
    )
    .bind(key)
    .bind(month)
    .bind(spent.unwrap_or_default())
    .bind(own_limit)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // Statements rather than foreign keys with ON DELETE CASCADE: the schema is meant to
    // shard by player, where cross-table cascades are not available.
    const REKEYED: [&str; 2] = [
        "UPDATE quota_calls SET player_id = ? WHERE player_id = ?",
        "UPDATE budget_reservations SET player_id = ? WHERE player_id = ?",
    ];
    for statement in REKEYED {
        sqlx::query(statement)
            .bind(key)
            .bind(player_id)
            .execute(&mut *conn)
            .await?;
    }
    const BY_CONVERSATION: [&str; 3] = [
        "DELETE m FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.player_id = ?",
        "DELETE k FROM idempotency_keys k JOIN conversations c ON c.id = k.conversation_id WHERE c.player_id = ?",
        "DELETE l FROM conversation_leases l JOIN conversations c ON c.id = l.conversation_id WHERE c.player_id = ?",
    ];
    const BY_PLAYER: [&str; 9] = [
        "DELETE FROM conversations WHERE player_id = ?",
        // Their memories everywhere: first hand, from events and heard as gossip.
        "DELETE FROM memory_facts WHERE player_id = ?",
        "DELETE FROM world_events WHERE player_id = ?",
        "DELETE FROM memory_vectors WHERE player_id = ?",
        "DELETE FROM affinities WHERE player_id = ?",
        "DELETE FROM jobs WHERE player_id = ?",
        "DELETE FROM player_monthly_spend WHERE player_id = ?",
        "UPDATE usage_records SET player_id = NULL, conversation_id = NULL WHERE player_id = ?",
        "DELETE FROM players WHERE id = ?",
    ];
    for statement in BY_CONVERSATION.into_iter().chain(BY_PLAYER) {
        sqlx::query(statement)
            .bind(player_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}

/// A player created for an id that was erased takes over what the erasure carried: this
/// month's spend (if it is still that month), the limit, quota calls and reservations.
/// Run where the player row is created, inside that transaction.
pub async fn absorb_carried(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    key: &PlayerKey,
) -> sqlx::Result<()> {
    // Months by the database's clock, like every spend counter.
    let carried: Option<(Option<String>, Usd, Option<Usd>)> = sqlx::query_as(
        "SELECT IF(month = DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m'), month, NULL),
             spent_usd, monthly_limit_usd
         FROM player_erasures WHERE player_key = ? AND carried FOR UPDATE",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((this_month, spent, limit)) = carried else {
        return Ok(());
    };
    if let Some(month) = this_month.filter(|_| !spent.is_zero()) {
        sqlx::query(
            "INSERT INTO player_monthly_spend (player_id, month, spent_usd, updated_at)
             VALUES (?, ?, ?, UTC_TIMESTAMP(6))
             ON DUPLICATE KEY UPDATE spent_usd = spent_usd + VALUES(spent_usd), updated_at = VALUES(updated_at)",
        )
        .bind(player_id)
        .bind(month)
        .bind(spent)
        .execute(&mut *conn)
        .await?;
    }
    // A limit set since (a call settled late re-opens the carry) is kept.
    sqlx::query(
        "UPDATE players SET monthly_limit_usd = COALESCE(?, monthly_limit_usd) WHERE id = ?",
    )
    .bind(limit)
    .bind(player_id)
    .execute(&mut *conn)
    .await?;
    for statement in [
        "UPDATE quota_calls SET player_id = ? WHERE player_id = ?",
        "UPDATE budget_reservations SET player_id = ? WHERE player_id = ?",
    ] {
        sqlx::query(statement)
            .bind(player_id)
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "UPDATE player_erasures SET carried = FALSE, month = NULL, spent_usd = 0,
             monthly_limit_usd = NULL
         WHERE player_key = ?",
    )
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Spend of a call that reached the provider after its player was erased: it counts
/// against the carried-over month, linked to no id.
pub async fn carry_spend(
    conn: &mut MySqlConnection,
    key: &PlayerKey,
    month: &str,
    amount: Usd,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE player_erasures
         SET spent_usd = IF(month = ?, spent_usd + ?, ?), month = ?, carried = TRUE
         WHERE player_key = ?",
    )
    .bind(month)
    .bind(amount)
    .bind(amount)
    .bind(month)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}
