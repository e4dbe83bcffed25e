//! Cross-cutting layers: API keys, the HTTP rate limit's key, request ids (which a
//! client may send, within reason) and in 500s, the request timeout and the cap on
//! requests in flight.

use super::error::{ApiError, ErrorBody, InternalErrorMarker};
use crate::config::Secret;
use axum::{
    Json,
    body::{Body, Bytes, HttpBody},
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
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_governor::{GovernorError, key_extractor::KeyExtractor};

pub const REQUEST_ID: &str = "x-request-id";

/// Longest `x-request-id` a client may choose.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// A client's request id goes into every log line of its request and into error
/// messages: it is taken only when short and made of characters ids are made of.
pub fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_REQUEST_ID_CHARS).contains(&bytes.len())
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:/+=@".contains(byte))
}

/// Forgets an `x-request-id` the client sent that is not acceptable (or sent twice), so
/// that the next layer makes a fresh one.
pub async fn drop_unacceptable_request_id(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    let mut sent = headers.get_all(REQUEST_ID).iter();
    let acceptable = match (sent.next(), sent.next()) {
        (Some(value), None) => acceptable_request_id(value),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !acceptable {
        headers.remove(REQUEST_ID);
    }
    next.run(request).await
}

/// A request that has not started its answer within the limit gets 503 `timeout`. Only
/// the wait for the response's head is bounded: a streamed reply, once begun, is bounded
/// by the turn's own deadline, not cut here. A turn's work runs on a task of its own and
/// is finished and stored all the same.
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_ms = limit.as_millis() as u64, "request timed out");
            ApiError::TimedOut(limit).into_response()
        }
    }
}

/// At most so many requests in flight; over it, 503 `overloaded` at once rather than a
/// queue that grows until every request is late. A request holds its slot until its
/// response body is sent, so a streamed turn counts for as long as it streams.
pub async fn cap_in_flight(
    State(slots): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(slot) = slots.try_acquire_owned() else {
        tracing::debug!("over HTTP_MAX_CONCURRENT_REQUESTS; refused");
        return ApiError::Overloaded.into_response();
    };
    next.run(request)
        .await
        .map(|body| Body::new(HoldingSlot { body, _slot: slot }))
}

/// A response body that keeps its request's slot until it is sent or dropped.
struct HoldingSlot {
    body: Body,
    _slot: OwnedSemaphorePermit,
}

impl HttpBody for HoldingSlot {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

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

/// 401 without a known key, 403 when a read-only key tries to write. A request let
/// through carries its `Access` (full when no keys are configured) for the handler.
pub async fn require_api_key(
    State(keys): State<Arc<ApiKeys>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !keys.enabled() {
        request.extensions_mut().insert(Access::Full);
        return next.run(request).await;
    }
    match bearer_token(request.headers()).and_then(|token| keys.access(token)) {
        Some(Access::Full) => {
            request.extensions_mut().insert(Access::Full);
            next.run(request).await
        }
        Some(Access::ReadOnly) if is_read(request.method()) => {
            request.extensions_mut().insert(Access::ReadOnly);
            next.run(request).await
        }
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
        .get(REQUEST_ID)
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

    #[test]
    fn request_ids_are_taken_only_when_short_and_plain() {
        let id = |text: &str| HeaderValue::from_str(text).map(|v| acceptable_request_id(&v));
        for good in [
            "4f9c2a7e-1b3d-4c5e-8f6a-0b1c2d3e4f5a",
            "req_123.abc:7",
            "Root=1-5759e988/bd862e3f+x@y",
            &"a".repeat(MAX_REQUEST_ID_CHARS),
        ] {
            assert_eq!(id(good).ok(), Some(true), "{good}");
        }
        for bad in [
            "",
            "with space",
            "quote\"d",
            "tab\there",
            "new<line>",
            "ümlaut",
            &"a".repeat(MAX_REQUEST_ID_CHARS + 1),
        ] {
            assert_ne!(id(bad).ok(), Some(true), "{bad}");
        }
        let raw = HeaderValue::from_bytes(b"obs\xfftext").map(|v| acceptable_request_id(&v));
        assert_eq!(raw.ok(), Some(false));
    }
}
