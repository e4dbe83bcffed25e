//! `Idempotency-Key`: a repeated turn returns the first answer and changes nothing, on
//! any replica, also when the two requests arrive together.

use super::{exchange::Exchange, polling::Poller};
use crate::{
    domain::{ConversationId, ParseError},
    service::{ServiceError, ServiceResult},
    store::{
        self,
        idempotency::{self as store_keys, Claim},
    },
};
use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;
use std::time::Duration;

pub const MAX_KEY_CHARS: usize = 128;

/// A key as the game sent it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let key = raw.trim();
        if key.is_empty()
            || key.chars().count() > MAX_KEY_CHARS
            || key.chars().any(char::is_control)
        {
            return Err(ParseError(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable characters"
            )));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key, held by this request until the turn is stored or abandoned.
#[derive(Debug, Clone)]
pub struct ClaimedKey {
    pub conversation_id: ConversationId,
    pub key: IdempotencyKey,
    pub token: String,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Begin {
    /// Process it; store the response with `store::idempotency::complete`.
    Process(ClaimedKey),
    /// Answer with this stored exchange and do nothing else.
    Replay(Box<Exchange>),
}

/// The fingerprint of a request, so one key cannot be reused for another request.
pub fn request_hash(canonical_request: &[u8]) -> String {
    hex::encode(Sha256::digest(canonical_request))
}

/// How long keys are held and kept, and how long a repeat waits for the first request.
#[derive(Debug, Clone, Copy)]
pub struct KeyHolds {
    /// A claim not completed within this is presumed dead (its replica died).
    pub hold: Duration,
    /// Answers older than this are not replayed (and are purged).
    pub retention: Duration,
    /// How long a repeat waits for the request that holds the key.
    pub wait: Duration,
}

/// Claims the key, or waits (up to `holds.wait`) for the request that holds it to finish.
pub async fn begin(
    pool: &MySqlPool,
    conversation_id: &ConversationId,
    key: IdempotencyKey,
    request_hash: &str,
    holds: KeyHolds,
) -> ServiceResult<Begin> {
    let token = uuid::Uuid::new_v4().to_string();
    let mut poller = Poller::new(holds.wait);
    loop {
        let claim = store::retry_lock_conflicts(|| {
            store_keys::claim(
                pool,
                conversation_id,
                key.as_str(),
                request_hash,
                &token,
                holds.hold,
                holds.retention,
            )
        })
        .await?;
        match claim {
            Claim::Claimed => {
                return Ok(Begin::Process(ClaimedKey {
                    conversation_id: conversation_id.clone(),
                    key,
                    token,
                }));
            }
            Claim::Done {
                request_hash: stored,
                ..
            }
            | Claim::InProgress {
                request_hash: stored,
            } if stored != request_hash => {
                return Err(ServiceError::IdempotencyKeyReused(key.as_str().to_owned()));
            }
            Claim::Done { response, .. } => {
                let exchange = serde_json::from_str(&response)
                    .context("reading a stored idempotent answer")?;
                return Ok(Begin::Replay(Box::new(exchange)));
            }
            // The first request still runs: poll again for its answer, backing off.
            Claim::InProgress { .. } => {
                if !poller.pause().await {
                    return Err(ServiceError::IdempotencyInProgress);
                }
            }
        }
    }
}

/// Frees a key whose turn failed. Best effort: an unfreed key expires by itself.
pub async fn abandon(pool: &MySqlPool, claimed: &ClaimedKey) {
    let freed = store::retry_lock_conflicts(|| {
        store_keys::abandon(
            pool,
            &claimed.conversation_id,
            claimed.key.as_str(),
            &claimed.token,
        )
    })
    .await;
    if let Err(error) = freed {
        tracing::warn!(%error, "could not free an idempotency key; it will expire");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_printable() {
        assert!(IdempotencyKey::parse("turn-123").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("  ").is_err());
        assert!(IdempotencyKey::parse("a\u{1}b").is_err());
    }

    #[test]
    fn the_request_hash_tells_requests_apart() {
        assert_eq!(request_hash(b"a"), request_hash(b"a"));
        assert_ne!(request_hash(b"a"), request_hash(b"b"));
        assert_eq!(request_hash(b"a").len(), 64);
    }
}
