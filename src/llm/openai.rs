//! One attempt at `{LLM_BASE_URL}/chat/completions`, as every OpenAI-compatible server speaks it.

use super::{ChatRequest, Completion, LlmError, LlmErrorKind, TokenUsage, tokens};
use crate::config::{LlmConfig, Secret, ServiceUrl};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    base_url: ServiceUrl,
    api_key: Option<Secret>,
}

#[derive(Serialize)]
struct RequestBody<'a> {
    model: &'a str,
    messages: &'a [super::ChatMessage],
    max_tokens: u32,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ResponseBody {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ResponseMessage>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ResponseUsage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

/// The provider's counts when it gave both, else our tokenizer's, marked as estimates.
pub(super) fn usage_or_estimate(
    usage: Option<ResponseUsage>,
    request: &ChatRequest,
    content: &str,
) -> TokenUsage {
    match usage {
        Some(ResponseUsage {
            prompt_tokens: Some(prompt_tokens),
            completion_tokens: Some(completion_tokens),
        }) => TokenUsage {
            prompt_tokens,
            completion_tokens,
            estimated: false,
        },
        _ => TokenUsage {
            prompt_tokens: tokens::count_prompt(&request.messages),
            completion_tokens: tokens::count(content),
            estimated: true,
        },
    }
}

/// What an attempt the provider took on but whose usage we cannot read is billed at: the
/// prompt and a full `max_tokens` (all it could have generated: exactly what the call's
/// reservation holds), marked as an estimate.
pub(super) fn worst_case_estimate(request: &ChatRequest) -> TokenUsage {
    TokenUsage {
        prompt_tokens: tokens::count_prompt(&request.messages),
        completion_tokens: request.max_tokens,
        estimated: true,
    }
}

/// The most a whole (not streamed) answer may weigh. A completion of `max_tokens` is a
/// few kilobytes; anything near this is not one, and is not read into memory.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// How much of an error body is read, for a debug line: enough to diagnose, not a page.
const ERROR_BODY_BYTES: usize = 4096;
/// How much of it the debug line shows.
const ERROR_BODY_EXCERPT: usize = 300;

impl OpenAiClient {
    pub fn new(config: &LlmConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("npc-dialogue/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Self {
            http,
            base_url: config.base_url.clone(),
            api_key: config.api_key.clone(),
        })
    }

    /// No key, no calls: the SPEC treats an unset `LLM_API_KEY` as "no LLM configured".
    pub fn is_configured(&self) -> bool {
        self.api_key.is_some()
    }

    /// The POST of one attempt; `stream` asks for server-sent events with usage at the end.
    pub(super) fn post(&self, request: &ChatRequest, stream: bool) -> reqwest::RequestBuilder {
        let body = RequestBody {
            model: &request.model,
            messages: &request.messages,
            max_tokens: request.max_tokens,
            user: &request.user,
            response_format: request
                .json_object
                .then(|| serde_json::json!({"type": "json_object"})),
            stream,
            stream_options: stream.then(|| serde_json::json!({"include_usage": true})),
        };
        let builder = self
            .http
            .post(format!("{}/chat/completions", self.base_url.expose()))
            .header("X-Request-Purpose", request.purpose.as_str())
            .json(&body);
        match &self.api_key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }

    /// One attempt, bounded by `timeout`. Retrying is the caller's (see `retry.rs`).
    pub async fn chat(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let fail =
            |kind, detail: String, retry_after| LlmError::since(started, kind, detail, retry_after);
        let response = self
            .post(request, false)
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| send_failure(started, request, error))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            return Err(fail(
                LlmErrorKind::Http {
                    status: status.as_u16(),
                },
                refusal_detail(response).await,
                retry_after,
            ));
        }
        let body = read_at_most(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|error| {
                let kind = if error.is_timeout() {
                    LlmErrorKind::Timeout
                } else {
                    LlmErrorKind::InvalidResponse
                };
                // A 200 is billed, readable or not.
                fail(
                    kind,
                    format!("reading the body: {:#}", error.without_url()),
                    None,
                )
                .billed(worst_case_estimate(request))
            })?
            .ok_or_else(|| {
                fail(
                    LlmErrorKind::InvalidResponse,
                    format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                    None,
                )
                .billed(worst_case_estimate(request))
            })?;
        let parsed: ResponseBody = serde_json::from_slice(&body).map_err(|error| {
            fail(
                LlmErrorKind::InvalidResponse,
                format!("not a chat completion: {}", json_error(&error)),
                None,
            )
            .billed(worst_case_estimate(request))
        })?;
        let text = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message)
            .and_then(|message| message.content)
            .map(|content| content.trim().to_owned())
            .filter(|content| !content.is_empty());
        // No text to use, but the provider did the work: its usage is billed all the same.
        let usage = usage_or_estimate(parsed.usage, request, text.as_deref().unwrap_or(""));
        let Some(mut content) = text else {
            return Err(fail(
                LlmErrorKind::InvalidResponse,
                "no reply text in the completion".into(),
                None,
            )
            .billed(usage));
        };
        let truncated = super::cap_reply(&mut content);
        Ok(Completion {
            content,
            usage,
            truncated,
            latency: started.elapsed(),
        })
    }
}

/// A request that got no answer: timed out, or never reached the provider.
pub(super) fn send_error_kind(error: &reqwest::Error) -> LlmErrorKind {
    if error.is_timeout() && !error.is_connect() {
        LlmErrorKind::Timeout
    } else {
        LlmErrorKind::Connect
    }
}

/// A failed send: a timeout came after the request was sent, so the provider may be
/// generating (and billing) it; a refused connection cost nothing.
pub(super) fn send_failure(
    started: Instant,
    request: &ChatRequest,
    error: reqwest::Error,
) -> LlmError {
    let kind = send_error_kind(&error);
    let failure = LlmError::since(started, kind.clone(), send_error_detail(error), None);
    match kind {
        LlmErrorKind::Timeout => failure.billed(worst_case_estimate(request)),
        _ => failure,
    }
}

/// What a failed send says, without the URL (whatever the gateway put in it).
pub(super) fn send_error_detail(error: reqwest::Error) -> String {
    format!("{:#}", error.without_url())
}

/// The body, unless it is longer than `limit` bytes (then `None`, having read no more
/// than that).
pub(super) async fn read_at_most(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// An error status as the error says it: the status only. The provider's body may echo
/// the prompt (the player's words) or worse, so it is shown at debug level at most.
pub(super) async fn refusal_detail(response: reqwest::Response) -> String {
    let status = response.status();
    if tracing::enabled!(tracing::Level::DEBUG) {
        let mut response = response;
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        tracing::debug!(
            status = status.as_u16(),
            body = %excerpt(&String::from_utf8_lossy(&body)),
            "the provider's error body"
        );
    }
    format!("status {}", status.as_u16())
}

/// Where and how a body failed to parse as JSON, never what it said: serde's messages
/// quote the offending value.
pub(super) fn json_error(error: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    )
}

/// The start of a provider's text, for debug lines only.
pub(super) fn excerpt(text: &str) -> String {
    text.chars().take(ERROR_BODY_EXCERPT).collect()
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(RETRY_AFTER, value);
        }
        map
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after(&headers("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&headers("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&headers("soon")), None);
        let future = SystemTime::now() + Duration::from_secs(120);
        let parsed = retry_after(&headers(&httpdate::fmt_http_date(future)));
        assert!(
            parsed.is_some_and(|d| d > Duration::from_secs(110) && d <= Duration::from_secs(120)),
            "{parsed:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(retry_after(&headers(&past)), Some(Duration::ZERO));
    }
}
