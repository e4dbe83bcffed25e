//! The provider the benchmark talks to: an OpenAI-compatible `POST /v1/chat/completions`
//! on 127.0.0.1 that answers a fixed completion, with usage, after a fixed latency, or
//! streams it (`"stream": true`: the first delta after the latency, the rest, the usage
//! chunk and `[DONE]` at once). Built to cost next to nothing: canned bytes, no
//! recording but the last conversation request (for the prompt-size figures).

use anyhow::Context;
use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::post,
};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::task::JoinHandle;

/// The SPEC's example reply and its usage.
pub const REPLY: &str = "One left, upstairs.";
const PROMPT_TOKENS: u32 = 412;
const COMPLETION_TOKENS: u32 = 18;

/// A summary of realistic length (~150 words, the most the summarization prompt asks
/// for), so long conversations carry a full one (as in `benches/memory.rs`).
const SUMMARY: &str = "The player, a travelling merchant named Aldric, arrived at the Crooked Stag \
    on a cold evening and asked Mara for a room. Mara gave him the last one upstairs for \
    three silver a night and warned him about the leaking roof. Over several evenings they \
    talked about the mill road, the bandits seen near the old bridge, and the missing \
    shipment of wool that Aldric is trying to trace for his guild. Aldric promised to pay \
    Mara's debt to the brewer if she helps him find the wagon driver, a man called Tobin \
    who drinks at the inn on market days. Mara distrusts the guild but likes Aldric's \
    manners; she told him Tobin owes her money too. They agreed to meet again after the \
    market. Aldric mentioned his sister in the capital and his fear of deep water. Mara \
    is tired, short of staff, and worried about the tax collector's visit next week.";

struct MockState {
    latency_micros: AtomicU64,
    extractions: AtomicU64,
    last_conversation_request: Mutex<Option<Bytes>>,
    completion: Bytes,
    frames: Arc<[Bytes]>,
}

pub struct MockProvider {
    /// `LLM_BASE_URL` for the service (ends in `/v1`).
    pub base_url: String,
    state: Arc<MockState>,
    server: JoinHandle<()>,
}

impl MockProvider {
    pub async fn start() -> anyhow::Result<Self> {
        let state = Arc::new(MockState {
            latency_micros: AtomicU64::new(0),
            extractions: AtomicU64::new(0),
            last_conversation_request: Mutex::new(None),
            completion: completion(REPLY, PROMPT_TOKENS, COMPLETION_TOKENS),
            frames: frames(REPLY, PROMPT_TOKENS, COMPLETION_TOKENS).into(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the mock provider")?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the mock provider stopped: {error}");
            }
        });
        Ok(Self {
            base_url: format!("http://{address}/v1"),
            state,
            server,
        })
    }

    /// From now on every answer (and every stream's first delta) comes this late.
    pub fn set_latency(&self, latency: Duration) {
        self.state.latency_micros.store(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The body of the last conversation call: the prompt the provider received.
    pub fn last_conversation_request(&self) -> Option<Bytes> {
        self.state
            .last_conversation_request
            .lock()
            .ok()
            .and_then(|last| last.clone())
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    stream: bool,
}

async fn chat_completions(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = Duration::from_micros(state.latency_micros.load(Ordering::Relaxed));
    let streamed = serde_json::from_slice::<Probe>(&body).is_ok_and(|probe| probe.stream);
    let purpose = headers
        .get("x-request-purpose")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let (completion, frames) = match purpose {
        "summarization" => (
            completion(SUMMARY, 400, 200),
            frames(SUMMARY, 400, 200).into(),
        ),
        // Every extraction learns one new fact, so prompts carry five memories soon.
        "fact_extraction" => {
            let n = state.extractions.fetch_add(1, Ordering::Relaxed);
            let facts = json!({"facts": [{
                "text": format!("Player mentioned errand number {n} on the mill road"),
                "importance": n % 10 + 1,
            }]})
            .to_string();
            (completion(&facts, 300, 20), frames(&facts, 300, 20).into())
        }
        _ => {
            if let Ok(mut last) = state.last_conversation_request.lock() {
                *last = Some(body);
            }
            (state.completion.clone(), state.frames.clone())
        }
    };
    if streamed {
        return stream(frames, latency);
    }
    tokio::time::sleep(latency).await;
    ([(CONTENT_TYPE, "application/json")], completion).into_response()
}

/// Headers at once, the first frame after `latency`, the others right after it.
fn stream(frames: Arc<[Bytes]>, latency: Duration) -> Response {
    let body = futures_util::stream::iter(0..frames.len()).then(move |i| {
        let frame = frames[i].clone();
        async move {
            if i == 0 {
                tokio::time::sleep(latency).await;
            }
            Ok::<_, Infallible>(frame)
        }
    });
    (
        [(CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

fn completion(content: &str, prompt_tokens: u32, completion_tokens: u32) -> Bytes {
    Bytes::from(
        json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_764_000_000,
            "model": "gpt-4o-mini",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens
            }
        })
        .to_string(),
    )
}

/// The reply word by word as `chat.completion.chunk`s, then the usage chunk
/// (`stream_options.include_usage`) and `[DONE]`.
fn frames(content: &str, prompt_tokens: u32, completion_tokens: u32) -> Vec<Bytes> {
    let mut frames: Vec<Bytes> = content
        .split_inclusive(' ')
        .map(|piece| {
            let chunk = json!({
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]
            });
            Bytes::from(format!("data: {chunk}\n\n"))
        })
        .collect();
    let usage = json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    });
    frames.push(Bytes::from(format!("data: {usage}\n\n")));
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}
