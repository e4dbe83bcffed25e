//! The provider seam: everything the service asks of an LLM provider, one attempt at a
//! time. Retries, money, circuits and usage rows are the paid call's
//! (`service::paid_call`, `Services::paid_embedding`), which take any `Provider`;
//! `OpenAiCompatible` is the one that speaks the OpenAI wire protocol (chat completions,
//! streamed or whole, and embeddings, each at the base URL its variables name). A
//! provider of another protocol, or a moderation call, is added here and nowhere else.

use super::{
    ChatRequest, Completion, LlmError, LlmErrorKind, OpenAiClient,
    embeddings::{Embedded, EmbeddingClient, Side},
};
use crate::config::{EmbeddingConfig, LlmConfig};
use futures_util::future::BoxFuture;
use std::time::Duration;

/// One attempt of each kind of call a provider takes.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Whether calls may be made at all: the SPEC treats an unset `LLM_API_KEY` as "no
    /// LLM configured".
    fn is_configured(&self) -> bool;

    /// One chat completion, whole, bounded by `timeout`.
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Completion, LlmError>>;

    /// One chat completion streamed, `on_delta` called with each piece of text; `timeout`
    /// bounds the start and every gap, `deadline` the whole attempt.
    fn chat_streaming<'a>(
        &'a self,
        request: &'a ChatRequest,
        timeout: Duration,
        deadline: tokio::time::Instant,
        on_delta: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Completion, LlmError>>;

    /// The vectors of `texts`, all on one `side`, on behalf of `user`, bounded by
    /// `timeout`; a `Connect` error when no embedding model is configured (callers ask
    /// `Services::embeddings` first).
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        side: Side,
        user: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Embedded, LlmError>>;
}

/// An OpenAI-compatible server for chat (`LLM_*`) and, when `EMBEDDING_MODEL` is set, one
/// for embeddings (`EMBEDDING_*`, by default the same server).
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    chat: OpenAiClient,
    embeddings: Option<EmbeddingClient>,
}

impl OpenAiCompatible {
    pub fn new(llm: &LlmConfig, embedding: Option<&EmbeddingConfig>) -> anyhow::Result<Self> {
        Ok(Self {
            chat: OpenAiClient::new(llm)?,
            embeddings: embedding.map(EmbeddingClient::new).transpose()?,
        })
    }
}

impl Provider for OpenAiCompatible {
    fn is_configured(&self) -> bool {
        self.chat.is_configured()
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(self.chat.chat(request, timeout))
    }

    fn chat_streaming<'a>(
        &'a self,
        request: &'a ChatRequest,
        timeout: Duration,
        deadline: tokio::time::Instant,
        on_delta: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(
            self.chat
                .chat_streaming(request, timeout, deadline, on_delta),
        )
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        side: Side,
        user: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Embedded, LlmError>> {
        Box::pin(async move {
            match &self.embeddings {
                Some(client) => client.embed(texts, side, user, timeout).await,
                None => Err(LlmError::since(
                    std::time::Instant::now(),
                    LlmErrorKind::Connect,
                    "no embedding model configured".into(),
                    None,
                )),
            }
        })
    }
}
