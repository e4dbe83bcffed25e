//! The provider the benchmark talks to: an OpenAI-compatible `POST /v1/chat/completions`
//! on 127.0.0.1 that answers a fixed completion, with usage, after a fixed latency, or
//! streams it (`"stream": true`: the first delta after the latency, the rest, the usage
//! chunk and `[DONE]` at once). Built to cost next to nothing: canned bytes, no
//! recording but the last conversation request (for the prompt-size figures).
//!
//! For the memory benchmark it also answers `POST /v1/embeddings` with the deterministic
//! vectors of `mock_embeddings.rs` (with usage), and, once `set_rule_based_extraction`
//! is on, extracts facts by rule from the dataset's sentences (`dataset::recognize`): a
//! planted or restated fact gives the slot's fact text, a contradiction an `update` of
//! the known fact of that slot (the prompt lists the known facts with their ids). That
//! is an oracle extractor: the memory figures measure the service's retrieval and
//! bookkeeping, not a real model's extraction.

use crate::{dataset, mock_embeddings};
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
use serde_json::{Value, json};
use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
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
    rule_based_extraction: AtomicBool,
    embedding_calls: AtomicU64,
    embedded_texts: AtomicU64,
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
            rule_based_extraction: AtomicBool::new(false),
            embedding_calls: AtomicU64::new(0),
            embedded_texts: AtomicU64::new(0),
            last_conversation_request: Mutex::new(None),
            completion: completion(REPLY, PROMPT_TOKENS, COMPLETION_TOKENS),
            frames: frames(REPLY, PROMPT_TOKENS, COMPLETION_TOKENS).into(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/embeddings", post(embeddings))
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

    /// Fact extraction by rule from the memory dataset's sentences (on), or one made-up
    /// fact per call (off, the default: the load benchmark's prompts fill up with facts).
    pub fn set_rule_based_extraction(&self, on: bool) {
        self.state
            .rule_based_extraction
            .store(on, Ordering::Relaxed);
    }

    /// (calls, texts) of `/embeddings` so far.
    pub fn embedding_counts(&self) -> (u64, u64) {
        (
            self.state.embedding_calls.load(Ordering::Relaxed),
            self.state.embedded_texts.load(Ordering::Relaxed),
        )
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
        "fact_extraction" if state.rule_based_extraction.load(Ordering::Relaxed) => {
            let facts = rule_based_extraction(&body).to_string();
            (completion(&facts, 300, 20), frames(&facts, 300, 20).into())
        }
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

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    input: EmbeddingInput,
}

/// OpenAI's `/embeddings`: a string or an array of strings in, one vector each out, in
/// order, with usage (a token a word: the mock's own count).
async fn embeddings(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<EmbeddingRequest>(&body) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "input must be a string or an array of strings", "type": "invalid_request_error"}})),
        )
            .into_response();
    };
    let texts = match request.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
    };
    state.embedding_calls.fetch_add(1, Ordering::Relaxed);
    state
        .embedded_texts
        .fetch_add(texts.len() as u64, Ordering::Relaxed);
    axum::Json(embedding_response(&texts)).into_response()
}

fn embedding_response(texts: &[String]) -> Value {
    let tokens: usize = texts
        .iter()
        .map(|text| text.split_whitespace().count().max(1))
        .sum();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index, "embedding": mock_embeddings::embed(text)})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": "mock-embed",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    })
}

/// The extraction prompt's user message: `{"known_facts": [{"id", "text", "importance"}],
/// "new_exchange": [{"speaker", "text"}]}` (`service::memory::extraction::prompt`).
/// Player lines are read by rule; a change updates the known fact of its slot (or, when
/// none is known, is a new fact). Anything else yields nothing.
fn rule_based_extraction(body: &[u8]) -> Value {
    let prompt: Option<Value> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|request| {
            let user = request["messages"]
                .as_array()?
                .iter()
                .find(|message| message["role"] == "user")?["content"]
                .as_str()?
                .to_owned();
            serde_json::from_str(&user).ok()
        });
    let Some(prompt) = prompt else {
        return json!({"facts": []});
    };
    let known: Vec<(u64, &str)> = prompt["known_facts"]
        .as_array()
        .map(|facts| {
            facts
                .iter()
                .filter_map(|fact| Some((fact["id"].as_u64()?, fact["text"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    // (slot, text, importance) found in this exchange, and updates (slot, id, text, importance).
    let mut facts: Vec<(usize, String, u8)> = Vec::new();
    let mut updates: Vec<(usize, u64, String, u8)> = Vec::new();
    let lines = prompt["new_exchange"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for line in &lines {
        if line["speaker"] != "player" {
            continue;
        }
        let Some(text) = line["text"].as_str() else {
            continue;
        };
        match dataset::recognize(text) {
            Some(dataset::Recognized::Fact {
                slot,
                text,
                importance,
            }) => facts.push((slot, text, importance)),
            Some(dataset::Recognized::Change {
                slot,
                text,
                importance,
            }) => {
                // A value said earlier in this same exchange is superseded at once.
                facts.retain(|(s, _, _)| *s != slot);
                updates.retain(|(s, _, _, _)| *s != slot);
                match known
                    .iter()
                    .find(|(_, known)| dataset::is_fact_of(slot, known))
                {
                    Some((id, _)) => updates.push((slot, *id, text, importance)),
                    None => facts.push((slot, text, importance)),
                }
            }
            None => {}
        }
    }
    json!({
        "facts": facts
            .iter()
            .map(|(_, text, importance)| json!({"text": text, "importance": importance}))
            .collect::<Vec<_>>(),
        "update": updates
            .iter()
            .map(|(_, id, text, importance)| json!({"id": id, "text": text, "importance": importance}))
            .collect::<Vec<_>>(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn extraction_request(known: Value, exchange: Value) -> Vec<u8> {
        let user = json!({"known_facts": known, "new_exchange": exchange}).to_string();
        json!({"model": "m", "messages": [
            {"role": "system", "content": "You maintain the long-term memory…"},
            {"role": "user", "content": user},
        ]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn planted_and_restated_lines_give_one_fact_text_and_small_talk_none() {
        let body = extraction_request(
            json!([]),
            json!([
                {"speaker": "player", "text": "Long day on the road. By the way, my sister is named Elsa."},
                {"speaker": "character", "text": "My sister Brigid would love this place."},
                {"speaker": "player", "text": "A dog barked all night outside my window."},
                {"speaker": "player", "text": "A letter came from Elsa, my sister, this morning."},
            ]),
        );
        let answer = rule_based_extraction(&body);
        assert_eq!(
            answer["facts"],
            json!([
                {"text": "Player's sister is named Elsa", "importance": 7},
                {"text": "Player's sister is named Elsa", "importance": 7},
            ])
        );
        assert_eq!(answer["update"], json!([]));
    }

    #[test]
    fn a_contradiction_updates_the_known_fact_of_its_slot() {
        let body = extraction_request(
            json!([
                {"id": 3, "text": "Player's sister is named Elsa", "importance": 7},
                {"id": 9, "text": "Player lives in Millbrook", "importance": 6},
            ]),
            json!([{"speaker": "player", "text": "Actually, I moved: I live in Riverton now."}]),
        );
        let answer = rule_based_extraction(&body);
        assert_eq!(answer["facts"], json!([]));
        assert_eq!(
            answer["update"],
            json!([{"id": 9, "text": "Player lives in Riverton", "importance": 6}])
        );
        // Nothing known of that slot: a new fact.
        let body = extraction_request(
            json!([]),
            json!([
                {"speaker": "player", "text": "I live in Ashford, past the old bridge."},
                {"speaker": "player", "text": "Actually, I moved: I live in Riverton now."},
            ]),
        );
        assert_eq!(
            rule_based_extraction(&body)["facts"],
            json!([{"text": "Player lives in Riverton", "importance": 6}])
        );
        assert_eq!(rule_based_extraction(b"not json"), json!({"facts": []}));
    }

    #[test]
    fn embeddings_answer_in_order_with_usage() {
        let answer = embedding_response(&["my cat".to_owned(), "the sea".to_owned()]);
        assert_eq!(answer["data"][1]["index"], 1);
        assert_eq!(
            answer["data"][0]["embedding"].as_array().map(Vec::len),
            Some(mock_embeddings::DIMENSIONS)
        );
        assert_eq!(answer["usage"]["prompt_tokens"], 4);
        let one: EmbeddingRequest = serde_json::from_str(r#"{"model": "m", "input": "one"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(one.input, EmbeddingInput::One(_)));
    }
}
