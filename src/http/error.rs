//! The one error type of the API and its JSON body `{"error": {"code", "message"}}`.
//!
//! Database and unexpected failures become an opaque 500 whose cause chain is logged;
//! the client learns only the request id (added by `http::middleware::request_id_in_errors`).

use crate::{domain::ParseError, service::ServiceError};
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("this API key may only read")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// More requests in flight than `HTTP_MAX_CONCURRENT_REQUESTS`.
    #[error("the server is at capacity; retry shortly")]
    Overloaded,
    /// No response within `HTTP_REQUEST_TIMEOUT_MS`. A turn goes on by itself and is
    /// stored whole: a retry with the same `Idempotency-Key` gets its answer.
    #[error("no answer within {} ms; retry with the same Idempotency-Key", .0.as_millis())]
    TimedOut(std::time::Duration),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `validation_failed`, `not_found`, `conversation_conflict`…
    pub code: String,
    /// For humans; may change between versions.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
            },
        }
    }
}

/// Marks a 500 so the request-id middleware can tell the client which id to quote.
#[derive(Debug, Clone, Copy)]
pub struct InternalErrorMarker;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Overloaded | Self::TimedOut(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::InvalidJson(_) => "invalid_json",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded => "overloaded",
            Self::TimedOut(_) => "timeout",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl From<ParseError> for ApiError {
    fn from(error: ParseError) -> Self {
        Self::Validation(error.0)
    }
}

/// The one place where the service's cases become statuses and codes.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(message) => Self::Validation(message),
            ServiceError::NotFound(message) => Self::NotFound(message),
            ServiceError::ConversationBoundElsewhere(_) => Self::Conflict {
                code: "conversation_conflict",
                message: error.to_string(),
            },
            ServiceError::ConversationBusy => Self::Conflict {
                code: "conversation_busy",
                message: error.to_string(),
            },
            ServiceError::IdempotencyInProgress => Self::Conflict {
                code: "idempotency_in_progress",
                message: error.to_string(),
            },
            ServiceError::ImportConflict(_) => Self::Conflict {
                code: "import_conflict",
                message: error.to_string(),
            },
            ServiceError::EventConflict(_) => Self::Conflict {
                code: "event_conflict",
                message: error.to_string(),
            },
            ServiceError::ImportOutOfOrder(_) => Self::Conflict {
                code: "import_out_of_order",
                message: error.to_string(),
            },
            ServiceError::IdempotencyKeyReused(_) => Self::Unprocessable {
                code: "idempotency_key_reused",
                message: error.to_string(),
            },
            ServiceError::PlayerErased(_) => Self::Conflict {
                code: "player_erased",
                message: error.to_string(),
            },
            ServiceError::Unavailable(message) => Self::Unavailable(message),
            ServiceError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl ApiError {
    /// The JSON body the client sees. An internal error's cause is logged here and
    /// replaced by a generic message; an outage is logged too.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                "internal error".to_owned()
            }
            Self::Unavailable(message) => {
                tracing::error!(error = %message, "service unavailable");
                message.clone()
            }
            other => other.to_string(),
        };
        ErrorBody::new(self.code(), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        match self {
            Self::Internal(_) => {
                response.extensions_mut().insert(InternalErrorMarker);
            }
            Self::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
            }
            Self::Overloaded => {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
