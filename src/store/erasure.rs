//! Right to be forgotten: everything stored about a player, in one transaction.

use crate::domain::PlayerId;
use sqlx::MySqlConnection;

/// Erases the player's conversations, messages, summaries, facts, affinity and mood,
/// pending jobs, keys, quota and budget rows. Usage rows stay for accounting, with their
/// player and conversation unlinked. False when the player was unknown.
pub async fn erase_player(conn: &mut MySqlConnection, player_id: &PlayerId) -> sqlx::Result<bool> {
    // Statements rather than foreign keys with ON DELETE CASCADE: the schema is meant to
    // shard by player, where cross-table cascades are not available.
    const BY_CONVERSATION: [&str; 3] = [
        "DELETE m FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.player_id = ?",
        "DELETE k FROM idempotency_keys k JOIN conversations c ON c.id = k.conversation_id WHERE c.player_id = ?",
        "DELETE l FROM conversation_leases l JOIN conversations c ON c.id = l.conversation_id WHERE c.player_id = ?",
    ];
    const BY_PLAYER: [&str; 9] = [
        "DELETE FROM conversations WHERE player_id = ?",
        "DELETE FROM memory_facts WHERE player_id = ?",
        "DELETE FROM affinities WHERE player_id = ?",
        "DELETE FROM jobs WHERE player_id = ?",
        "DELETE FROM quota_calls WHERE player_id = ?",
        "DELETE FROM budget_reservations WHERE player_id = ?",
        "DELETE FROM player_monthly_spend WHERE player_id = ?",
        "UPDATE usage_records SET player_id = NULL, conversation_id = NULL WHERE player_id = ?",
        "DELETE FROM players WHERE id = ?",
    ];
    let mut found = false;
    for statement in BY_CONVERSATION.into_iter().chain(BY_PLAYER) {
        let result = sqlx::query(statement)
            .bind(player_id)
            .execute(&mut *conn)
            .await?;
        found |= result.rows_affected() > 0;
    }
    Ok(found)
}
