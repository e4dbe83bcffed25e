//! The LLM client: OpenAI-compatible chat completions and embeddings over HTTP.

pub mod embeddings;
pub mod openai;
pub mod provider;
pub mod retry;
pub mod stream;
pub mod tokens;

pub use openai::OpenAiClient;
pub use provider::{OpenAiCompatible, Provider};

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Why a call is made; sent as `X-Request-Purpose` and stored on the usage row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Conversation,
    Summarization,
    FactExtraction,
    Embedding,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conversation => "conversation",
            Self::Summarization => "summarization",
            Self::FactExtraction => "fact_extraction",
            Self::Embedding => "embedding",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    /// The player the call is for: the OpenAI `user` field.
    pub user: String,
    pub purpose: Purpose,
    /// Ask for a JSON object (`response_format: {"type": "json_object"}`).
    pub json_object: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// The provider sent no usage; these come from our tokenizer.
    pub estimated: bool,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub content: String,
    pub usage: TokenUsage,
    pub latency: Duration,
    /// Cut short: the stream hit the turn's deadline, or the reply its byte cap. What
    /// was said is kept (and billed).
    pub truncated: bool,
}

/// Longest reply kept, in bytes of UTF-8: far beyond any `max_tokens` a dialogue uses,
/// and well inside the `messages.content` column (TEXT, 65,535 bytes).
pub const MAX_REPLY_BYTES: usize = 16 * 1024;

/// `text` cut to at most `MAX_REPLY_BYTES` on a character boundary; true when it was cut.
pub fn cap_reply(text: &mut String) -> bool {
    if text.len() <= MAX_REPLY_BYTES {
        return false;
    }
    let mut end = MAX_REPLY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmErrorKind {
    /// The provider answered with a non-success status.
    Http { status: u16 },
    /// No answer within the per-attempt timeout.
    Timeout,
    /// The provider could not be reached at all.
    Connect,
    /// An answer came but could not be used (bad JSON, no choices, empty text).
    InvalidResponse,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("LLM call failed ({kind:?}): {detail}")]
pub struct LlmError {
    pub kind: LlmErrorKind,
    pub detail: String,
    pub latency: Duration,
    /// The provider's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// What the provider will bill for this failed attempt: its own usage when an unusable
    /// answer carried one, else our estimate (marked) for an attempt the provider took
    /// on (a 200 that could not be used, a timeout after the request was sent).
    pub billed: Option<TokenUsage>,
}

impl LlmError {
    /// A failure of the attempt that began at `started`.
    pub fn since(
        started: std::time::Instant,
        kind: LlmErrorKind,
        detail: String,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            kind,
            detail,
            latency: started.elapsed(),
            retry_after,
            billed: None,
        }
    }

    /// The same failure, billed `usage`.
    pub fn billed(mut self, usage: TokenUsage) -> Self {
        self.billed = Some(usage);
        self
    }

    /// Whether the request reached the provider, so that it may have cost something
    /// and gets a usage row.
    pub fn reached_provider(&self) -> bool {
        !matches!(self.kind, LlmErrorKind::Connect)
    }

    /// The outcome label stored on the usage row.
    pub fn outcome(&self) -> &'static str {
        match self.kind {
            LlmErrorKind::Http { .. } => "http_error",
            LlmErrorKind::Timeout => "timeout",
            LlmErrorKind::Connect => "connection_error",
            LlmErrorKind::InvalidResponse => "invalid_response",
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self.kind {
            LlmErrorKind::Http { status } => Some(status),
            _ => None,
        }
    }
}
