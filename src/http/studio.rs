//! `/studio`: the web page for writers and operators (characters, a streaming
//! playground, the memory inspector, the world's lore and events, usage and budgets). Plain HTML, CSS and JavaScript
//! built into the binary: nothing is fetched from elsewhere, and there is no build step.
//! The page and its assets are open; the page asks for an API key and sends it on every
//! API call it makes, so what it may show or change is what the key may.

use axum::{
    Router,
    http::{
        HeaderMap, HeaderName, HeaderValue, StatusCode,
        header::{
            CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
            REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
        },
    },
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Only the page's own files, scripts and styles; API calls to this origin only; no
/// inline script or style, no framing, no form posted anywhere (forms are handled by
/// the script).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A file of the page, with the validator browsers revalidate it by.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: &'static [u8], content_type: &'static str) -> Self {
        let digest = hex::encode(Sha256::digest(body));
        let etag = HeaderValue::from_str(&format!("\"{}\"", &digest[..32]))
            .unwrap_or_else(|_| HeaderValue::from_static("\"studio\""));
        Self {
            body,
            content_type,
            etag,
        }
    }

    /// The file, or 304 when the browser's copy is this one. `no-cache`: kept, but
    /// checked on every load, so a new binary's page never mixes with an old script.
    fn serve(&self, headers: &HeaderMap) -> Response {
        let fresh = headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/").as_bytes() == self.etag.as_bytes()
            });
        let common = [
            (ETAG, self.etag.clone()),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ];
        if fresh {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
        (
            common,
            [(CONTENT_TYPE, HeaderValue::from_static(self.content_type))],
            self.body,
        )
            .into_response()
    }
}

static PAGE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("studio/index.html"),
        "text/html; charset=utf-8",
    )
});
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("studio/studio.js"),
        "text/javascript; charset=utf-8",
    )
});
static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("studio/studio.css"),
        "text/css; charset=utf-8",
    )
});
static ICON: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("studio/icon.svg"), "image/svg+xml"));

/// The page and its files, open (no API key): one route each, so that the metrics'
/// `route` label stays a small fixed set.
pub fn router() -> Router {
    Router::new()
        .route(
            "/studio",
            get(|headers: HeaderMap| async move { PAGE.serve(&headers) }),
        )
        .route(
            "/studio/",
            get(|headers: HeaderMap| async move { PAGE.serve(&headers) }),
        )
        .route(
            "/studio/studio.js",
            get(|headers: HeaderMap| async move { SCRIPT.serve(&headers) }),
        )
        .route(
            "/studio/studio.css",
            get(|headers: HeaderMap| async move { STYLE.serve(&headers) }),
        )
        .route(
            "/studio/icon.svg",
            get(|headers: HeaderMap| async move { ICON.serve(&headers) }),
        )
}
