//! Cross-cutting layers: API keys, the HTTP rate limit's key, request ids in 500s.

use super::error::{ApiError, ErrorBody, InternalErrorMarker};
use crate::config::Secret;
use axum::{
    Json,
    extract::{ConnectInfo, Request, State},
    http::{
        HeaderMap, HeaderValue, Method,
        header::{AUTHORIZATION, WWW_AUTHENTICATE},
    },
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};
use tower_governor::{GovernorError, key_extractor::KeyExtractor};

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Full,
    ReadOnly,
}

/// The configured keys; with none, the service is open.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    game: Vec<Secret>,
    readonly: Vec<Secret>,
}

/// Compares without stopping at the first differing byte, so response time does not
/// reveal how much of a guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ApiKeys {
    pub fn new(game: Vec<Secret>, readonly: Vec<Secret>) -> Self {
        Self { game, readonly }
    }

    pub fn enabled(&self) -> bool {
        !self.game.is_empty() || !self.readonly.is_empty()
    }

    pub fn access(&self, token: &str) -> Option<Access> {
        let matches = |keys: &[Secret]| {
            keys.iter()
                .any(|key| constant_time_eq(key.expose().as_bytes(), token.as_bytes()))
        };
        if matches(&self.game) {
            Some(Access::Full)
        } else if matches(&self.readonly) {
            Some(Access::ReadOnly)
        } else {
            None
        }
    }

    fn all(&self) -> impl Iterator<Item = &Secret> {
        self.game.iter().chain(&self.readonly)
    }
}

pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// 401 without a known key, 403 when a read-only key tries to write.
pub async fn require_api_key(
    State(keys): State<Arc<ApiKeys>>,
    request: Request,
    next: Next,
) -> Response {
    if !keys.enabled() {
        return next.run(request).await;
    }
    match bearer_token(request.headers()).and_then(|token| keys.access(token)) {
        Some(Access::Full) => next.run(request).await,
        Some(Access::ReadOnly) if is_read(request.method()) => next.run(request).await,
        Some(Access::ReadOnly) => ApiError::Forbidden.into_response(),
        None => {
            let mut response = ApiError::Unauthorized.into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// A 500 tells the client only which request id to quote; the cause is in the logs.
pub async fn request_id_in_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let response = next.run(request).await;
    if response.extensions().get::<InternalErrorMarker>().is_none() {
        return response;
    }
    let (parts, _) = response.into_parts();
    let body = ErrorBody::new(
        "internal_error",
        format!("internal error; quote request id {request_id} when reporting it"),
    );
    (parts.status, parts.headers, Json(body)).into_response()
}

/// The HTTP rate limit's bucket: the API key when it is a known one (so one game
/// server behind a NAT does not starve another), else the client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    ApiKey(String),
    Address(IpAddr),
    /// No peer address (only in in-process tests): one shared bucket.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct ApiKeyOrAddress {
    known: Arc<HashSet<String>>,
}

impl ApiKeyOrAddress {
    pub fn new(keys: &ApiKeys) -> Self {
        Self {
            known: Arc::new(keys.all().map(|key| key.expose().to_owned()).collect()),
        }
    }
}

impl KeyExtractor for ApiKeyOrAddress {
    type Key = RateKey;

    fn extract<T>(&self, request: &axum::http::Request<T>) -> Result<RateKey, GovernorError> {
        if let Some(token) = bearer_token(request.headers())
            && self.known.contains(token)
        {
            return Ok(RateKey::ApiKey(token.to_owned()));
        }
        Ok(request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| RateKey::Address(address.ip()))
            .unwrap_or(RateKey::Unknown))
    }
}

/// tower_governor answers in plain text; ours is the JSON error with `Retry-After`.
pub fn rate_limit_error(error: GovernorError) -> Response {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => ApiError::RateLimited {
            retry_after_secs: wait_time.max(1),
        }
        .into_response(),
        other => ApiError::Internal(anyhow::anyhow!("rate limiter: {other}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys::new(vec![Secret::new("game")], vec![Secret::new("reader")])
    }

    #[test]
    fn keys_grant_full_or_read_only_access() {
        assert_eq!(keys().access("game"), Some(Access::Full));
        assert_eq!(keys().access("reader"), Some(Access::ReadOnly));
        assert_eq!(keys().access("gam"), None);
        assert_eq!(keys().access(""), None);
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively_by_scheme() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
    }
}
