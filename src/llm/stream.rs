//! One streamed attempt: the provider's server-sent events, parsed with
//! `eventsource-stream`, each text delta handed on as it arrives.

use super::{
    ChatRequest, Completion, LlmError, LlmErrorKind, cap_reply,
    openai::{
        OpenAiClient, ResponseUsage, excerpt, refusal_detail, retry_after, send_error_detail,
        send_failure, usage_or_estimate, worst_case_estimate,
    },
};
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// The most a streamed answer may weigh, its framing included (a few hundred bytes per
/// delta): a reply of `max_tokens` is far below; a provider that streams on and on is
/// cut here rather than read into memory for ever.
pub const MAX_STREAM_BYTES: usize = 4 * 1024 * 1024;

/// Why the provider's bytes stopped coming.
#[derive(Debug)]
enum BodyFault {
    Transport(reqwest::Error),
    TooLarge,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// `data: [DONE]`, or the body ended cleanly.
    Done,
    /// The call's deadline came: the text so far is the reply, cut short.
    Deadline,
    /// The reply reached `MAX_REPLY_BYTES`: kept that far, cut short.
    Capped,
    /// Broken: an error reading, an idle gap longer than the timeout.
    Cut(LlmErrorKind, String),
}

impl OpenAiClient {
    /// Streams one attempt, calling `on_delta` with each piece of text. `timeout` bounds
    /// the wait for the answer to start and every gap between chunks; `deadline` bounds
    /// the whole attempt (a provider trickling one token a second cannot outlive the turn).
    ///
    /// A stream cut after text arrived (deadline, byte cap, a break) is not an error: what
    /// was said is kept, marked `truncated` and billed (its tokens estimated when the usage
    /// chunk never came), since it was shown to the player already. Cut before any text,
    /// it is an error like any other, and retried; billed too if the provider took it on.
    pub async fn chat_streaming(
        &self,
        request: &ChatRequest,
        timeout: Duration,
        deadline: tokio::time::Instant,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let fail =
            |kind, detail: String, retry_after| LlmError::since(started, kind, detail, retry_after);
        let sent = tokio::time::timeout(timeout, self.post(request, true).send()).await;
        let response = match sent {
            Err(_) => {
                return Err(fail(LlmErrorKind::Timeout, "no answer".into(), None)
                    .billed(worst_case_estimate(request)));
            }
            Ok(Err(error)) => return Err(send_failure(started, request, error)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let detail = tokio::time::timeout(timeout, refusal_detail(response))
                .await
                .unwrap_or_else(|_| format!("status {}", status.as_u16()));
            return Err(fail(
                LlmErrorKind::Http {
                    status: status.as_u16(),
                },
                detail,
                retry_after,
            ));
        }

        // Counted before the parser, which would otherwise buffer an endless event whole.
        let bytes = response.bytes_stream().scan(0usize, |seen, chunk| {
            let chunk = chunk.map_err(BodyFault::Transport).and_then(|bytes| {
                *seen += bytes.len();
                if *seen > MAX_STREAM_BYTES {
                    Err(BodyFault::TooLarge)
                } else {
                    Ok(bytes)
                }
            });
            std::future::ready(Some(chunk))
        });
        let mut events = bytes.eventsource();
        let mut content = String::new();
        let mut usage = None;
        let mut not_json = 0u32;
        let end = loop {
            let wait = timeout.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let event = match tokio::time::timeout(wait, events.next()).await {
                Err(_) if tokio::time::Instant::now() >= deadline => break End::Deadline,
                Err(_) => break End::Cut(LlmErrorKind::Timeout, "the stream stalled".into()),
                Ok(None) => break End::Done,
                Ok(Some(Err(error))) => {
                    break End::Cut(LlmErrorKind::InvalidResponse, broken(error));
                }
                Ok(Some(Ok(event))) => event,
            };
            if event.data.trim() == "[DONE]" {
                break End::Done;
            }
            let Ok(chunk) = serde_json::from_str::<Chunk>(&event.data) else {
                // What the provider said stays out of the logs above debug.
                tracing::debug!(data = %excerpt(&event.data), "skipping a stream chunk that is not JSON");
                not_json += 1;
                continue;
            };
            if chunk.usage.is_some() {
                usage = chunk.usage;
            }
            let text = chunk
                .choices
                .into_iter()
                .next()
                .and_then(|choice| choice.delta)
                .and_then(|delta| delta.content)
                .unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            let before = content.len();
            content.push_str(&text);
            let capped = cap_reply(&mut content);
            if content.len() > before {
                on_delta(&content[before..]);
            }
            if capped {
                break End::Capped;
            }
        };
        if not_json > 0 {
            tracing::warn!(chunks = not_json, "skipped stream chunks that are not JSON");
        }
        if content.trim().is_empty() {
            let (kind, detail) = match end {
                End::Done | End::Capped => (
                    LlmErrorKind::InvalidResponse,
                    "the stream carried no text".into(),
                ),
                End::Deadline => (LlmErrorKind::Timeout, "the deadline came first".into()),
                End::Cut(kind, detail) => (kind, detail),
            };
            // The provider took the request on (it answered 200): bill its usage if it
            // sent one, else what it could have generated.
            let billed = match usage {
                Some(_) => usage_or_estimate(usage, request, ""),
                None => worst_case_estimate(request),
            };
            return Err(fail(kind, detail, None).billed(billed));
        }
        if end != End::Done {
            tracing::warn!(end = ?end, kept = content.len(), "the provider's stream ended early; keeping what was said");
        }
        let usage = usage_or_estimate(usage, request, &content);
        Ok(Completion {
            content,
            usage,
            truncated: end != End::Done,
            latency: started.elapsed(),
        })
    }
}

/// Why the stream could not be read on, in words that quote none of it (the parser's
/// own error carries the offending input).
fn broken(error: EventStreamError<BodyFault>) -> String {
    match error {
        EventStreamError::Utf8(_) => "the stream is not UTF-8".into(),
        EventStreamError::Parser(_) => "the stream is not server-sent events".into(),
        EventStreamError::Transport(BodyFault::TooLarge) => {
            format!("the stream grew past {MAX_STREAM_BYTES} bytes")
        }
        EventStreamError::Transport(BodyFault::Transport(error)) => {
            format!("the stream broke: {}", send_error_detail(error))
        }
    }
}
