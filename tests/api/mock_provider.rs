//! An OpenAI-compatible chat-completions server that records what it receives and
//! answers from a script (then from its default reply).

#[path = "../../src/bin/bench/mock_embeddings.rs"]
pub mod mock_embeddings;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// What the provider does with one request.
#[derive(Debug, Clone)]
pub enum MockReply {
    /// A completion with this text and, when given, this usage (prompt, completion).
    Text {
        content: String,
        usage: Option<(u32, u32)>,
    },
    /// An error status with a JSON error body.
    Status(u16),
    /// 429 with a `Retry-After` header of this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// 200 with a body that is not a chat completion.
    Garbage,
    /// A streamed answer: these pieces, `gap` apart, then the usage chunk (when given)
    /// and `[DONE]`, unless `cut`, in which case the connection breaks after the pieces.
    Stream {
        chunks: Vec<String>,
        usage: Option<(u32, u32)>,
        gap: Duration,
        cut: bool,
    },
    /// Waits, then answers as the inner reply.
    Delayed(Duration, Box<MockReply>),
    /// This status and this body, as they are (streamed or not).
    Raw { status: u16, body: String },
    /// 200 and this text again and again, as fast as the client reads, never ending.
    Endless(String),
}

impl MockReply {
    pub fn text(content: &str, prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self::Text {
            content: content.to_owned(),
            usage: Some((prompt_tokens, completion_tokens)),
        }
    }
}

/// The reply the SPEC's example shows, with its usage: 412 + 18 tokens.
pub fn spec_reply() -> MockReply {
    MockReply::text("One left, upstairs.", 412, 18)
}

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub headers: HeaderMap,
    pub body: Value,
    pub received_at: Instant,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// (role, content) of every prompt message.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| {
                        (
                            m["role"].as_str().unwrap_or_default().to_owned(),
                            m["content"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct MockState {
    requests: Mutex<Vec<RecordedRequest>>,
    /// Scripted replies by `X-Request-Purpose`.
    scripts: Mutex<HashMap<String, VecDeque<MockReply>>>,
    /// The reply once the script is used up; the SPEC example reply unless set.
    default: Mutex<Option<MockReply>>,
    /// Share of unscripted requests that fail at random, and how each failed.
    fault_rate: Mutex<f64>,
    faults: Mutex<Vec<&'static str>>,
}

/// How long a "timeout" fault keeps the client waiting: longer than any test's
/// `LLM_TIMEOUT_MS`.
pub const HANG: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct MockProvider {
    /// Base URL to use as `LLM_BASE_URL` (ends in `/v1`).
    pub base_url: String,
    state: Arc<MockState>,
}

impl MockProvider {
    pub async fn start() -> Self {
        let state = Arc::new(MockState::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/embeddings", post(embeddings))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the mock provider");
        let address = listener.local_addr().expect("mock provider address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url: format!("http://{address}/v1"),
            state,
        }
    }

    /// The next conversation requests get these replies, in order; then the default again.
    pub fn enqueue(&self, replies: impl IntoIterator<Item = MockReply>) {
        self.enqueue_for("conversation", replies);
    }

    /// As `enqueue`, for requests of another purpose (`summarization`, `fact_extraction`).
    pub fn enqueue_for(&self, purpose: &str, replies: impl IntoIterator<Item = MockReply>) {
        self.state
            .scripts
            .lock()
            .expect("script lock")
            .entry(purpose.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Drops what is left of the script for `purpose` (an outage ends).
    pub fn clear_script(&self, purpose: &str) {
        self.state
            .scripts
            .lock()
            .expect("script lock")
            .remove(purpose);
    }

    /// The reply to conversation requests once the script is used up.
    pub fn set_default(&self, reply: MockReply) {
        *self.state.default.lock().expect("default lock") = Some(reply);
    }

    /// From now on, unscripted requests fail with probability `rate`, at random as a 429,
    /// a 500, a hang past the client's timeout or a body that is not JSON.
    pub fn set_fault_rate(&self, rate: f64) {
        *self.state.fault_rate.lock().expect("fault lock") = rate;
    }

    /// The faults injected so far, by kind.
    pub fn faults(&self) -> Vec<&'static str> {
        self.state.faults.lock().expect("fault lock").clone()
    }

    /// Every request received, of any purpose.
    pub fn all_requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    pub fn requests_for(&self, purpose: &str) -> Vec<RecordedRequest> {
        self.all_requests()
            .into_iter()
            .filter(|request| request.header("x-request-purpose") == Some(purpose))
            .collect()
    }

    /// The conversation requests: a player's turns.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests_for("conversation")
    }

    pub fn request_count(&self) -> usize {
        self.requests().len()
    }

    pub fn last_request(&self) -> RecordedRequest {
        self.requests()
            .pop()
            .expect("the provider received no request")
    }
}

/// `POST /v1/embeddings`: the shared deterministic mock vectors (`mock_embeddings`), one
/// per input in order, with usage; scripted replies (purpose `embedding`) can fail it.
async fn embeddings(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state
        .requests
        .lock()
        .expect("requests lock")
        .push(RecordedRequest {
            headers,
            body: body.clone(),
            received_at: Instant::now(),
        });
    let mut scripted = state
        .scripts
        .lock()
        .expect("script lock")
        .get_mut("embedding")
        .and_then(VecDeque::pop_front);
    while let Some(MockReply::Delayed(delay, inner)) = scripted {
        tokio::time::sleep(delay).await;
        scripted = Some(*inner);
    }
    if let Some(failure) = scripted.filter(|reply| !matches!(reply, MockReply::Text { .. })) {
        return answer(failure, &body).await;
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(texts) => texts
            .iter()
            .map(|text| text.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => return (StatusCode::BAD_REQUEST, "input must be text").into_response(),
    };
    let tokens: usize = inputs
        .iter()
        .map(|text| text.split_whitespace().count())
        .sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index, "embedding": mock_embeddings::embed(text)})
        })
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

async fn chat_completions(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let purpose = headers
        .get("x-request-purpose")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state
        .requests
        .lock()
        .expect("requests lock")
        .push(RecordedRequest {
            headers,
            body: body.clone(),
            received_at: Instant::now(),
        });
    let scripted = state
        .scripts
        .lock()
        .expect("script lock")
        .get_mut(&purpose)
        .and_then(VecDeque::pop_front);
    let default = || match purpose.as_str() {
        "summarization" => {
            MockReply::text("Summary: the player and the character talked.", 200, 20)
        }
        "fact_extraction" => MockReply::text(r#"{"facts": []}"#, 300, 10),
        _ => state
            .default
            .lock()
            .expect("default lock")
            .clone()
            .unwrap_or_else(spec_reply),
    };
    let reply = scripted
        .or_else(|| random_fault(&state))
        .unwrap_or_else(default);
    if body["stream"] == json!(true) {
        return stream_answer(reply).await;
    }
    answer(reply, &body).await
}

fn random_fault(state: &MockState) -> Option<MockReply> {
    let rate = *state.fault_rate.lock().expect("fault lock");
    let mut rng = rand::rng();
    if rate <= 0.0 || !rng.random_bool(rate.min(1.0)) {
        return None;
    }
    let (kind, reply) = match rng.random_range(0..4) {
        0 => (
            "429",
            MockReply::RateLimited {
                retry_after_secs: 0,
            },
        ),
        1 => ("500", MockReply::Status(500)),
        2 => ("timeout", MockReply::Delayed(HANG, Box::new(spec_reply()))),
        _ => ("garbage", MockReply::Garbage),
    };
    state.faults.lock().expect("fault lock").push(kind);
    Some(reply)
}

/// Server-sent events as OpenAI streams them. A `Text` reply is streamed word by word;
/// errors and garbage answer as they would unstreamed.
async fn stream_answer(reply: MockReply) -> Response {
    let mut reply = reply;
    while let MockReply::Delayed(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    let (chunks, usage, gap, cut) = match reply {
        MockReply::Text { content, usage } => (
            content.split_inclusive(' ').map(str::to_owned).collect(),
            usage,
            Duration::ZERO,
            false,
        ),
        MockReply::Stream {
            chunks,
            usage,
            gap,
            cut,
        } => (chunks, usage, gap, cut),
        MockReply::Endless(text) => return endless(text, "text/event-stream"),
        other => return answer(other, &Value::Null).await,
    };
    let mut frames: Vec<Result<String, std::io::Error>> = chunks
        .iter()
        .map(|chunk| {
            let data = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": chunk}}]});
            Ok(format!("data: {data}\n\n"))
        })
        .collect();
    if cut {
        frames.push(Err(std::io::Error::other("the mock cuts the stream")));
    } else {
        if let Some((prompt, completion)) = usage {
            let data = json!({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}});
            frames.push(Ok(format!("data: {data}\n\n")));
        }
        frames.push(Ok("data: [DONE]\n\n".to_owned()));
    }
    // The gap comes before every frame, the break too, so what was sent is flushed
    // before the connection goes.
    let body = futures::stream::iter(frames).then(move |frame| async move {
        tokio::time::sleep(gap).await;
        frame
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from_stream(body))
        .expect("a streaming response")
}

async fn answer(reply: MockReply, request: &Value) -> Response {
    let mut reply = reply;
    while let MockReply::Delayed(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    // Asked without streaming, a streamed reply answers whole.
    if let MockReply::Stream { chunks, usage, .. } = reply {
        reply = MockReply::Text {
            content: chunks.concat(),
            usage,
        };
    }
    match reply {
        MockReply::Text { content, usage } => {
            let mut body = json!({
                "id": "chatcmpl-mock",
                "object": "chat.completion",
                "created": 1_764_000_000,
                "model": request["model"],
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop"
                }]
            });
            if let Some((prompt, completion)) = usage {
                body["usage"] = json!({
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion
                });
            }
            Json(body).into_response()
        }
        MockReply::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                Json(json!({"error": {"message": "mock failure", "type": "server_error"}})),
            )
                .into_response()
        }
        MockReply::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after_secs.to_string())],
            Json(json!({"error": {"message": "slow down", "type": "rate_limit"}})),
        )
            .into_response(),
        MockReply::Garbage => (StatusCode::OK, "<html>not json</html>").into_response(),
        MockReply::Raw { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response(),
        MockReply::Endless(text) => endless(text, "application/json"),
        MockReply::Delayed(..) => unreachable!("unwrapped above"),
        MockReply::Stream { .. } => unreachable!("made whole above"),
    }
}

fn endless(text: String, content_type: &str) -> Response {
    // Sent in pieces of about 16 KiB: a short text sent a frame at a time would make the
    // client's byte caps a matter of how fast a loaded machine turns frames around.
    let piece = axum::body::Bytes::from(text.repeat((16 * 1024 / text.len().max(1)).max(1)));
    let body = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(piece.clone()));
    Response::builder()
        .header("content-type", content_type)
        .body(axum::body::Body::from_stream(body))
        .expect("an endless response")
}
