//! A turn as server-sent events, for games that show a typing indicator and the reply
//! as it is written.
//!
//! Events: `typing` (`{}`) at once; `delta` (`{"text": "…"}`) for each piece of the reply;
//! then `done` with exactly the JSON a non-streamed turn answers, or `error` with the
//! JSON error body when the turn failed after the stream began. Refusals that can be
//! known before (unknown character, conversation bound elsewhere, bad input) are plain
//! HTTP errors instead.

use super::{AppState, conversations::TurnResponse, error::ApiError};
use crate::service::{
    characters::Character,
    turn::{self, TurnEvent, exchange::TurnOutcome, idempotency::IdempotencyKey, input::Turn},
};
use axum::{
    http::{HeaderMap, header::ACCEPT},
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use std::convert::Infallible;

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
