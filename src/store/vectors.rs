//! The `memory_vectors` table: one embedding per fact and per message, as little-endian
//! float32 bytes with the model and dimension that made it; and `embedding_sweeps`, how
//! far each model has looked through history for messages without one.

use crate::domain::{CharacterId, ConversationId, PlayerId};
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor, MySqlPool, QueryBuilder};

/// What a vector is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Fact,
    Message,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fact => "fact",
            Self::Message => "message",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "fact" => Some(Self::Fact),
            "message" => Some(Self::Message),
            _ => None,
        }
    }
}

/// `vector` as stored: float32, little-endian.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The stored bytes back as a vector of `dimensions`; `None` when they do not fit.
pub fn decode(bytes: &[u8], dimensions: usize) -> Option<Vec<f32>> {
    if bytes.len() != dimensions * 4 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect(),
    )
}

/// A stored vector of a pair, as the cache holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorRow {
    pub rev: u64,
    pub kind: ItemKind,
    pub item_id: u64,
    pub conversation_id: Option<String>,
    pub seq: Option<u32>,
    pub text_hash: Option<String>,
    pub vector: Vec<f32>,
}

/// A vector to store.
#[derive(Debug, Clone)]
pub struct NewVector<'a> {
    pub kind: ItemKind,
    pub item_id: u64,
    pub conversation_id: Option<&'a ConversationId>,
    pub seq: Option<u32>,
    pub text_hash: Option<&'a str>,
    pub vector: &'a [f32],
}

type Raw = (
    u64,
    String,
    u64,
    Option<String>,
    Option<u32>,
    Option<String>,
    u16,
    Vec<u8>,
);

/// The pair's vectors of `model` written after `after_rev`, oldest first: all of them
/// for a cache that holds none, usually nothing for one that is up to date.
pub async fn since<'c>(
    conn: impl MySqlExecutor<'c>,
    player_id: &PlayerId,
    character_id: &CharacterId,
    model: &str,
    after_rev: u64,
) -> sqlx::Result<Vec<VectorRow>> {
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT rev, kind, item_id, conversation_id, seq, text_hash, dimensions, vector
         FROM memory_vectors
         WHERE player_id = ? AND character_id = ? AND model = ? AND rev > ?
         ORDER BY rev",
    )
    .bind(player_id)
    .bind(character_id)
    .bind(model)
    .bind(after_rev)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(rev, kind, item_id, conversation_id, seq, text_hash, dimensions, bytes)| {
                Some(VectorRow {
                    rev,
                    kind: ItemKind::parse(&kind)?,
                    item_id,
                    conversation_id,
                    seq,
                    text_hash,
                    vector: decode(&bytes, usize::from(dimensions))?,
                })
            },
        )
        .collect())
}

/// Stores vectors of one pair, replacing any earlier vector of the same items (under a
/// new `rev`), in one statement.
pub async fn replace(
    conn: &mut MySqlConnection,
    player_id: &PlayerId,
    character_id: &CharacterId,
    model: &str,
    vectors: &[NewVector<'_>],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if vectors.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::new(
        "REPLACE INTO memory_vectors (kind, item_id, player_id, character_id, conversation_id,
             seq, text_hash, model, dimensions, vector, created_at) ",
    );
    query.push_values(vectors, |mut row, vector| {
        row.push_bind(vector.kind.as_str())
            .push_bind(vector.item_id)
            .push_bind(player_id)
            .push_bind(character_id)
            .push_bind(vector.conversation_id)
            .push_bind(vector.seq)
            .push_bind(vector.text_hash)
            .push_bind(model)
            .push_bind(u16::try_from(vector.vector.len()).unwrap_or(u16::MAX))
            .push_bind(encode(vector.vector))
            .push_bind(now);
    });
    query.build().execute(conn).await?;
    Ok(())
}

/// A text to embed: a fact or a message without a current vector.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Unembedded {
    pub id: u64,
    pub text: String,
    /// Facts: the hash of `text`.
    pub text_hash: Option<String>,
    /// Messages: where they are.
    pub seq: Option<u32>,
}

/// Up to `limit` facts of the pair with no vector of `model` for their current text.
pub async fn facts_without(
    pool: &MySqlPool,
    player_id: &PlayerId,
    character_id: &CharacterId,
    model: &str,
    limit: u32,
) -> sqlx::Result<Vec<Unembedded>> {
    sqlx::query_as(
        "SELECT f.id, f.text, f.text_hash, NULL AS seq FROM memory_facts f
         LEFT JOIN memory_vectors v ON v.kind = 'fact' AND v.item_id = f.id
             AND v.model = ? AND v.text_hash = f.text_hash
         WHERE f.player_id = ? AND f.character_id = ? AND v.rev IS NULL
         ORDER BY f.id LIMIT ?",
    )
    .bind(model)
    .bind(player_id)
    .bind(character_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Up to `limit` messages of the conversation with no vector of `model`, oldest first.
pub async fn messages_without(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    model: &str,
    limit: u32,
) -> sqlx::Result<Vec<Unembedded>> {
    sqlx::query_as(
        "SELECT m.id, m.content AS text, NULL AS text_hash, m.seq FROM messages m
         LEFT JOIN memory_vectors v ON v.kind = 'message' AND v.item_id = m.id AND v.model = ?
         WHERE m.conversation_id = ? AND v.rev IS NULL
         ORDER BY m.seq LIMIT ?",
    )
    .bind(model)
    .bind(conversation_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Forgets a fact's vector (the fact is gone).
pub async fn delete_fact<'c>(conn: impl MySqlExecutor<'c>, fact_id: u64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM memory_vectors WHERE kind = 'fact' AND item_id = ?")
        .bind(fact_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A conversation the sweep found with a message lacking a vector of the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct Behind {
    pub conversation_id: ConversationId,
    pub player_id: PlayerId,
    pub character_id: CharacterId,
}

/// One page of the sweep for `model`: the conversations among the next `page` messages
/// (by id, after where the sweep stopped) that lack a vector of it; the sweep's mark
/// moves past the page. Empty when the sweep has caught up.
pub async fn sweep_page(pool: &MySqlPool, model: &str, page: u32) -> sqlx::Result<Vec<Behind>> {
    let through: Option<u64> =
        sqlx::query_scalar("SELECT through_message FROM embedding_sweeps WHERE model = ?")
            .bind(model)
            .fetch_optional(pool)
            .await?;
    let rows: Vec<(u64, ConversationId, PlayerId, CharacterId, Option<u64>)> = sqlx::query_as(
        "SELECT m.id, m.conversation_id, c.player_id, c.character_id, v.rev
         FROM messages m
         JOIN conversations c ON c.id = m.conversation_id
         LEFT JOIN memory_vectors v ON v.kind = 'message' AND v.item_id = m.id AND v.model = ?
         WHERE m.id > ? ORDER BY m.id LIMIT ?",
    )
    .bind(model)
    .bind(through.unwrap_or(0))
    .bind(page)
    .fetch_all(pool)
    .await?;
    let Some(last) = rows.last().map(|row| row.0) else {
        return Ok(Vec::new());
    };
    sqlx::query(
        "INSERT INTO embedding_sweeps (model, through_message) VALUES (?, ?)
         ON DUPLICATE KEY UPDATE through_message = GREATEST(through_message, VALUES(through_message))",
    )
    .bind(model)
    .bind(last)
    .execute(pool)
    .await?;
    let mut behind: Vec<Behind> = Vec::new();
    for (_, conversation_id, player_id, character_id, rev) in rows {
        let conversation = Behind {
            conversation_id,
            player_id,
            character_id,
        };
        if rev.is_none() && !behind.contains(&conversation) {
            behind.push(conversation);
        }
    }
    Ok(behind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_their_encoding() {
        let vector = vec![0.25f32, -1.5, 3.0e-7, 0.0];
        let bytes = encode(&vector);
        assert_eq!(bytes.len(), 16);
        assert_eq!(decode(&bytes, 4), Some(vector));
        assert_eq!(decode(&bytes, 3), None);
        assert_eq!(&bytes[0..4], &0.25f32.to_le_bytes());
    }
}
