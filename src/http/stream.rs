//! A turn as server-sent events, for games that show a typing indicator and the reply
//! as it is written: `POST /conversations/{id}/messages/stream`, and the plain route when
//! asked with `Accept: text/event-stream`.
//!
//! Events: `typing` (`{}`) at once; `delta` (`{"text": "…"}`) for each piece of the reply;
//! then `done` with exactly the JSON a non-streamed turn answers, or `error` with the
//! JSON error body when the turn failed after the stream began. Refusals that can be
//! known before (unknown character, conversation bound elsewhere, bad input) are plain
//! HTTP errors instead.

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    exchange::{PreparedTurn, TurnInput, TurnResponse, prepare_turn},
    extract::{Json, Path},
    wire::{self, GameId},
};
use crate::service::{
    characters::Character,
    turn::{self, TurnEvent, exchange::TurnOutcome, idempotency::IdempotencyKey, input::Turn},
};
use axum::{
    extract::State,
    http::{HeaderMap, header::ACCEPT},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use std::{borrow::Cow, convert::Infallible};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Schema,
        extensions::Extensions,
        schema::{ObjectBuilder, Type},
    },
};

/// A player's turn, the reply streamed as server-sent events as it is written.
///
/// Same body and headers as `POST /conversations/{conversation_id}/messages`. Events, each
/// `data` one JSON object: `typing` (`{}`) at once; `delta` (`{"text": "…"}`) for each piece
/// of the reply; then `done`, carrying exactly the JSON the plain route answers
/// (`TurnResponse`), or `error`, carrying the JSON error body (`ErrorBody`) if the turn
/// failed after the stream began. A replayed or canned reply comes as one `delta`.
///
/// Refusals known before the first event (invalid input, unknown character, conversation
/// bound to another player or character, API key, rate limit, database unreachable) are
/// HTTP statuses with the JSON error body, never events. What the turn itself finds once
/// begun comes as the `error` event: `conversation_busy` (queued past
/// TURN_QUEUE_WAIT_MS), `idempotency_in_progress`, `idempotency_key_reused`. A game that
/// hangs up mid-stream still gets its turn completed, stored and billed.
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages/stream", tag = "conversations",
    params(
        ("conversation_id" = GameId, Path, description = "Id chosen by the game; bound to one player and one character on first use"),
        ("Idempotency-Key" = inline(Option<wire::IdempotencyKeyHeader>), Header, nullable = false, description = "Repeat a request safely: the same key on the same conversation streams the first answer again and changes nothing"),
    ),
    request_body = TurnInput,
    responses(
        (status = 200, description = "Server-sent events: `typing`, `delta`…, then `done` (a `TurnResponse`) or `error` (an `ErrorBody`). The schema describes one event",
            content_type = "text/event-stream", body = TurnStreamEvent),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "Unknown character", body = ErrorBody),
        (status = 409, description = "Conversation bound to another player or character (`conversation_conflict`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub async fn post_message_stream(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<TurnInput>,
) -> Result<Response, ApiError> {
    let PreparedTurn {
        turn,
        character,
        key,
    } = prepare_turn(&state, &conversation_id, &headers, input).await?;
    Ok(turn_events(state, turn, character, key).into_response())
}

/// One server-sent event of a streamed turn, as the document describes it: its `event`
/// name and its `data`, a JSON text whose shape the name decides. (Before OpenAPI 3.2's
/// `itemSchema`, the schema of a `text/event-stream` describes one event.)
pub struct TurnStreamEvent;

impl TurnStreamEvent {
    /// `event: {name}` with `data` a JSON text of `payload`.
    fn variant(name: &str, payload: serde_json::Value) -> serde_json::Value {
        json!({
            "properties": {
                "event": {"const": name},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": payload,
                },
            },
        })
    }
}

impl PartialSchema for TurnStreamEvent {
    fn schema() -> RefOr<Schema> {
        let schema_ref = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
        let variants = json!([
            Self::variant("typing", json!({"type": "object", "maxProperties": 0})),
            Self::variant(
                "delta",
                json!({
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string", "description": "The next piece of the reply."}},
                }),
            ),
            Self::variant("done", schema_ref(&TurnResponse::name())),
            Self::variant("error", schema_ref(&ErrorBody::name())),
        ]);
        let mut event = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "`typing` (`{}`) at once; `delta` (`{\"text\": \"…\"}`) per piece of the reply; then `done` (a `TurnResponse`, as the plain route answers) or `error` (an `ErrorBody`).",
            ))
            .required("event")
            .required("data")
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["typing", "delta", "done", "error"])),
            )
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("A JSON text; its shape depends on `event`.")),
            )
            .examples([
                json!({"event": "typing", "data": "{}"}),
                json!({"event": "delta", "data": "{\"text\":\"One left, \"}"}),
            ])
            .build();
        // utoipa has no `oneOf` beside properties, nor `contentMediaType`/`contentSchema`;
        // an extension writes the keyword as it is. One key only: extensions are a
        // HashMap, and one key keeps the committed document byte for byte the same.
        event.extensions = Some(Extensions::from_iter([("oneOf", variants)]));
        event.into()
    }
}

impl ToSchema for TurnStreamEvent {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TurnStreamEvent")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        // The variants point at these by name.
        schemas.push((TurnResponse::name().into_owned(), TurnResponse::schema()));
        <TurnResponse as ToSchema>::schemas(schemas);
        schemas.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
        <ErrorBody as ToSchema>::schemas(schemas);
    }
}

/// Whether the game asked for `Accept: text/event-stream`.
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("text/event-stream"))
}

fn delta(text: &str) -> Event {
    Event::default()
        .event("delta")
        .data(json!({ "text": text }).to_string())
}

/// The error body a non-streamed turn would answer, as the stream's last event.
fn error(error: &ApiError) -> Event {
    Event::default()
        .event("error")
        .json_data(error.body())
        .unwrap_or_else(|_| Event::default().event("error").data("{}"))
}

fn done(response: TurnResponse) -> Event {
    Event::default()
        .event("done")
        .json_data(response)
        .unwrap_or_else(|cause| {
            error(&ApiError::Internal(anyhow::anyhow!(
                "encoding the turn: {cause}"
            )))
        })
}

/// A turn's event as the game sees it. A replayed turn sends its stored reply as one
/// delta before `done`, as a canned line does.
fn events_of(event: TurnEvent) -> Vec<Event> {
    match event {
        TurnEvent::Delta(text) => vec![delta(&text)],
        TurnEvent::Finished(Ok(TurnOutcome::Fresh(exchange))) => vec![done((*exchange).into())],
        TurnEvent::Finished(Ok(TurnOutcome::Replayed(exchange))) => {
            let response = TurnResponse::from(*exchange);
            vec![delta(&response.reply.content), done(response)]
        }
        TurnEvent::Finished(Err(failure)) => vec![error(&ApiError::from(failure))],
    }
}

/// Starts the turn (already through `turn::precheck`) and answers with its events. The
/// turn runs on its own task: a game that hangs up mid-stream still gets its reply
/// completed, stored and billed.
pub fn turn_events(
    state: AppState,
    turn: Turn,
    character: Character,
    key: Option<IdempotencyKey>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let typing = Event::default().event("typing").data("{}");
    let events = tokio_stream_of(turn::stream_turn(state, turn, character, key))
        .flat_map(|event| futures_util::stream::iter(events_of(event)));
    let stream = futures_util::stream::once(async move { typing })
        .chain(events)
        .map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The receiver as a stream, ending when the turn's task drops its sender.
fn tokio_stream_of<T: Send + 'static>(
    receiver: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}
