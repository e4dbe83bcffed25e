//! The HTTP surface: routes (one module per resource), their OpenAPI document, and
//! the layers every request passes through.

pub mod auth;
pub mod characters;
pub mod conversations;
pub mod error;
pub mod exchange;
pub mod extract;
pub mod import;
pub mod memory;
pub mod middleware;
pub mod ops;
pub mod players;
pub mod responses;
pub mod stream;
pub mod studio;
pub mod usage;
pub mod wire;
pub mod world;

use crate::{config::Config, service::Services};
use axum::{
    Router,
    body::Body,
    extract::DefaultBodyLimit,
    http::Request,
    middleware::{from_fn, from_fn_with_state},
};
use error::ApiError;
use middleware::{ApiKeyOrAddress, ApiKeys};
use std::{sync::Arc, time::Duration};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_governor::{GovernorLayer, governor::GovernorConfigBuilder};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

pub type AppState = Arc<Services>;

/// Largest request body accepted; a turn is a few kilobytes at most.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "npc-dialogue",
        description = "Conversations with non-player characters, driven by an LLM, with memory, quotas and usage tracking."
    ),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    tags(
        (name = "conversations", description = "A player's turn and the history"),
        (name = "characters", description = "The NPCs"),
        (name = "usage", description = "Tokens, spend and budgets"),
        (name = "memory", description = "What characters remember, and forgetting"),
        (name = "world", description = "Lore, game events and gossip: what characters share"),
        (name = "operations", description = "Health, metrics, the job queue and the caller's role")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Routes behind the API key and the rate limit.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            characters::put_character,
            characters::get_character
        ))
        .routes(routes!(characters::list_characters))
        .routes(routes!(
            conversations::post_message,
            conversations::list_messages
        ))
        .routes(routes!(stream::post_message_stream))
        .routes(routes!(conversations::list_conversations))
        .routes(routes!(conversations::get_conversation))
        .routes(routes!(conversations::mark_read))
        .merge(import_routes())
        .routes(routes!(usage::get_usage))
        .routes(routes!(usage::get_budget))
        .routes(routes!(usage::list_budgets))
        .routes(routes!(players::put_budget))
        .routes(routes!(players::erase_player))
        .routes(routes!(memory::list_memory))
        .routes(routes!(memory::search_memory))
        .routes(routes!(memory::delete_fact))
        .routes(routes!(
            world::put_lore,
            world::get_lore,
            world::delete_lore
        ))
        .routes(routes!(world::list_lore))
        .routes(routes!(world::post_event, world::list_events))
        .routes(routes!(world::character_knowledge))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::job_stats))
        .routes(routes!(auth::whoami))
}

/// History import, whose bodies may be up to `MAX_IMPORT_BODY_BYTES`: this layer sits
/// inside the router's `MAX_BODY_BYTES` and overrides it for this route alone.
fn import_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import::import_history))
        .layer(DefaultBodyLimit::max(import::MAX_IMPORT_BODY_BYTES))
}

/// Routes open to load balancers and orchestrators.
fn health_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
}

/// The OpenAPI document, from the same definitions that route requests.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(api_routes())
        .merge(health_routes())
        .into_openapi();
    complete_document(&mut doc);
    doc
}

/// What the routes' own definitions cannot say: the responses every operation shares, and
/// the rule between a lore entry's scope and its `scope_id`.
fn complete_document(doc: &mut utoipa::openapi::OpenApi) {
    responses::add_common_responses(doc);
    world::document_scope_rule(doc);
}

async fn route_not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// One token bucket per API key or client address.
fn rate_limit(
    config: &Config,
    keys: &ApiKeys,
) -> anyhow::Result<GovernorLayer<ApiKeyOrAddress, governor::middleware::NoOpMiddleware, Body>> {
    // tower_governor's `per_second(n)` means one request every n seconds; we want n per
    // second, so set the replenish period directly.
    let period = Duration::from_nanos(1_000_000_000 / u64::from(config.http_rate_per_second));
    let governor = GovernorConfigBuilder::default()
        .key_extractor(ApiKeyOrAddress::new(keys))
        .period(period)
        .burst_size(config.http_rate_burst)
        .finish()
        .ok_or_else(|| {
            anyhow::anyhow!("HTTP_RATE_PER_SECOND and HTTP_RATE_BURST must be positive")
        })?;
    let governor = Arc::new(governor);
    let limiter = governor.limiter().clone();
    // Forget idle buckets now and then, so one-off clients do not accumulate.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.retain_recent();
        }
    });
    Ok(GovernorLayer::new(governor).error_handler(middleware::rate_limit_error))
}

pub fn router(state: AppState) -> anyhow::Result<Router> {
    let config = state.config.clone();
    let keys = Arc::new(ApiKeys::new(
        config.game_api_keys.clone(),
        config.readonly_api_keys.clone(),
    ));
    let (api, api_doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api_routes())
        .split_for_parts();
    let (health, health_doc) = health_routes().split_for_parts();
    let mut doc = api_doc;
    doc.merge(health_doc);
    complete_document(&mut doc);

    // Health probes stay outside the cap on requests in flight: an overloaded replica is
    // alive, and says whether its database answers.
    let in_flight = Arc::new(Semaphore::new(config.http.max_concurrent_requests as usize));
    let rate_limit = rate_limit(&config, &keys)?;
    let api = api
        .layer(from_fn_with_state(
            keys.clone(),
            middleware::require_api_key,
        ))
        .layer(from_fn_with_state(in_flight, middleware::cap_in_flight))
        .layer(rate_limit.clone());
    // Pages for people, open without a key (the SPEC's studio support): the studio and
    // the API docs with the document they show. Every API call they make needs a key.
    // Rate limited like the API, per client address.
    let pages = Router::new()
        .merge(studio::router())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .layer(rate_limit);

    let request_layers = ServiceBuilder::new()
        .layer(from_fn(middleware::drop_unacceptable_request_id))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                // One line per request at info, in the request's span (with its id).
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .make_span_with(|request: &Request<Body>| {
                    let request_id = request
                        .headers()
                        .get(middleware::REQUEST_ID)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %request_id,
                    )
                }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(from_fn(middleware::request_id_in_errors))
        .layer(from_fn_with_state(
            config.http.request_timeout,
            middleware::time_limit,
        ));

    Ok(Router::new()
        .merge(api)
        .merge(health)
        .with_state(state)
        .merge(pages)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(request_layers)
        // Outermost, so it sees every answer (401, 429, 404 included) and its whole time.
        .layer(from_fn(crate::metrics::track_http)))
}
