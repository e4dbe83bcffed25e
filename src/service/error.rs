//! What can go wrong in the service, in its own words. The HTTP layer maps each case to a
//! status and a `code` once (`http::error`); nothing here knows about either.

use crate::{domain::ParseError, store::LockConflict};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input that parses but breaks a rule (a limit out of range, a foreign cursor).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The conversation is bound to another player or character; which one stays private.
    #[error("conversation {0:?} is bound to another player or character")]
    ConversationBoundElsewhere(String),
    /// Earlier turns of the conversation held it past `TURN_QUEUE_WAIT_MS`.
    #[error("another turn of this conversation is still being processed; retry shortly")]
    ConversationBusy,
    #[error("Idempotency-Key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyInProgress,
    /// An imported message's `client_id` was imported before with another speaker, text
    /// or time.
    #[error("client_id {0:?} was already imported into this conversation with other content")]
    ImportConflict(String),
    /// A `client_event_id` already recorded for another event.
    #[error("client_event_id {0:?} was already recorded for a different event")]
    EventConflict(String),
    /// Imported history would go before the conversation's last message: it conflicts
    /// with what the conversation holds now (a turn or an import came first).
    #[error("{0}")]
    ImportOutOfOrder(String),
    /// The database cannot be reached: an outage, worth retrying, not a bug.
    /// The player was erased while this request ran: nothing of it is written back.
    #[error("player {0:?} was erased while this request ran; nothing was stored")]
    PlayerErased(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<ParseError> for ServiceError {
    fn from(error: ParseError) -> Self {
        Self::Invalid(error.0)
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable("database unavailable; retry shortly".into())
            }
            other => Self::Internal(anyhow::Error::new(other).context("database error")),
        }
    }
}

impl LockConflict for ServiceError {
    fn is_lock_conflict(&self) -> bool {
        match self {
            Self::Internal(cause) => cause.is_lock_conflict(),
            _ => false,
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
