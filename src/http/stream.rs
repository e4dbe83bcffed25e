//! A turn as server-sent events, for games that show a typing indicator and the reply
//! as it is written.
//!
//! Events: `typing` (`{}`) at once; `delta` (`{"text": "…"}`) for each piece of the reply;
//! then `done` with exactly the JSON a non-streamed turn answers, or `error` with the
//! JSON error body when the turn failed after the stream began. Refusals that can be
//! known before (unknown character, conversation bound elsewhere, bad input) are plain
//! HTTP errors instead.

use super::AppState;
use crate::{
    error::ApiError,
    service::{
        characters::Character,
        idempotency::IdempotencyKey,
        turn::{self, Turn, TurnOutcome},
    },
};
use axum::{
    http::{HeaderMap, header::ACCEPT},
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::Stream;
use serde_json::{Value, json};
use std::convert::Infallible;
use tokio::sync::mpsc;
use tracing::Instrument;

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

/// Starts the turn (already through `turn::precheck`) and answers with its events. The
/// turn runs on its own task: a game that hangs up mid-stream still gets its reply
/// completed, stored and billed.
pub fn turn_events(
    state: AppState,
    turn: Turn,
    character: Character,
    key: Option<IdempotencyKey>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (events, receiver) = mpsc::unbounded_channel::<Event>();
    let _ = events.send(Event::default().event("typing").data("{}"));
    let (deltas, mut written) = mpsc::unbounded_channel::<String>();
    let forwarding = async move {
        let outcome = turn::take_turn(state, turn, character, key, Some(deltas));
        tokio::pin!(outcome);
        let result = loop {
            tokio::select! {
                Some(text) = written.recv() => {
                    let _ = events.send(delta(&text));
                }
                result = &mut outcome => break result,
            }
        };
        // The turn is over, so its sender is gone: what is left is all there is.
        while let Ok(text) = written.try_recv() {
            let _ = events.send(delta(&text));
        }
        let last = match result {
            Ok(TurnOutcome::Fresh(response)) => {
                match Event::default().event("done").json_data(&*response) {
                    Ok(event) => event,
                    Err(cause) => error(&ApiError::Internal(anyhow::anyhow!(
                        "encoding the turn: {cause}"
                    ))),
                }
            }
            Ok(TurnOutcome::Replayed(stored)) => {
                let reply = serde_json::from_str::<Value>(&stored)
                    .ok()
                    .and_then(|value| value["reply"]["content"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let _ = events.send(delta(&reply));
                Event::default().event("done").data(stored)
            }
            Err(failure) => error(&failure),
        };
        let _ = events.send(last);
    };
    // In the request's span, so the turn's log lines carry its request id.
    tokio::spawn(forwarding.instrument(tracing::Span::current()));
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
