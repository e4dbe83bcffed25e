//! The requests the load generator sends: a player's turn (plain or streamed) to the
//! service, and the same kind of chat completion straight to the mock (the floor).

use crate::load::Outcome;
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};

pub const CHARACTER: &str = "mara";

/// One HTTP client for the whole run: keep-alive connections, no proxy.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Conversation `{prefix}-{index}` belongs to player `p-{prefix}-{index}`.
#[derive(Debug, Clone, Copy)]
pub struct Conversations {
    pub prefix: &'static str,
    pub count: usize,
}

impl Conversations {
    /// Worker `worker` of `concurrency` takes conversations `worker`, `worker +
    /// concurrency`… in turn: no two workers ever share one, so no turn waits for another.
    pub fn pick(&self, concurrency: usize, worker: usize, k: u64) -> usize {
        let per_worker = (self.count / concurrency).max(1) as u64;
        (worker + concurrency * (k % per_worker) as usize) % self.count
    }

    pub fn id(&self, index: usize) -> String {
        format!("{}-{index}", self.prefix)
    }

    pub fn player(&self, index: usize) -> String {
        format!("p-{}-{index}", self.prefix)
    }
}

#[derive(Clone)]
pub struct Turns {
    client: reqwest::Client,
    base_url: String,
}

#[derive(Deserialize)]
struct TurnAnswer {
    source: String,
}

impl Turns {
    pub fn new(client: reqwest::Client, base_url: &str) -> Self {
        Self {
            client,
            base_url: base_url.to_owned(),
        }
    }

    pub async fn create_character(&self) -> anyhow::Result<()> {
        let created = self
            .client
            .put(format!("{}/characters/{CHARACTER}", self.base_url))
            .json(&json!({
                "name": "Mara",
                "persona": "Gruff innkeeper of the Crooked Stag. Speaks plainly.",
                "model": null,
                "fallback_lines": {"high": ["Ah, my favourite guest!"], "medium": ["What'll it be?"], "low": ["Make it quick."]}
            }))
            .send()
            .await?;
        anyhow::ensure!(
            created.status().is_success(),
            "creating the character: {}",
            created.status()
        );
        Ok(())
    }

    /// World lore entry `i`, about 400 characters; every other one requires a flag that
    /// no turn sends.
    pub async fn put_lore(&self, i: usize) -> anyhow::Result<()> {
        const PLACES: [&str; 8] = [
            "Fenford",
            "the Crooked Stag",
            "Esterra",
            "the old mill",
            "the harbour",
            "the north road",
            "Tobin's market",
            "the chapel",
        ];
        let place = PLACES[i % PLACES.len()];
        let text = format!(
            "Entry {i} of the chronicle: at {place} the townsfolk tell of a winter when the \
             river froze solid and the ferry sat idle for forty days, of travellers who paid \
             in salt instead of silver, and of a lantern that burned in the tower every night \
             without oil. The innkeepers repeat it to every guest who stays past midnight, and \
             each adds a detail of their own, so no two tellings agree on the year."
        );
        let requires: &[&str] = if i.is_multiple_of(2) {
            &[]
        } else {
            &["never_set"]
        };
        let stored = self
            .client
            .put(format!("{}/lore/bench-{i}", self.base_url))
            .json(&json!({"text": text, "scope": "world", "tags": ["chronicle", place.replace(' ', "_")],
                          "requires_flags": requires}))
            .send()
            .await?;
        anyhow::ensure!(
            stored.status().is_success(),
            "writing lore entry {i}: {}",
            stored.status()
        );
        Ok(())
    }

    fn body(player: &str, k: u64) -> String {
        json!({
            "player_id": player,
            "character_id": CHARACTER,
            "content": format!("Turn {k}: any rooms free tonight, and is Tobin back from the market yet?"),
            "affinity": 35,
            "context": {"location": "tavern", "time_of_day": "night"},
        })
        .to_string()
    }

    /// A plain turn; its latency is until the whole answer is read.
    pub async fn turn(&self, conversation: &str, player: &str, k: u64) -> Outcome {
        let started = Instant::now();
        let sent = self
            .client
            .post(format!(
                "{}/conversations/{conversation}/messages",
                self.base_url
            ))
            .header("content-type", "application/json")
            .body(Self::body(player, k))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Outcome::Failed(format!("{error}")),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return Outcome::Failed(format!("{error}")),
        };
        let latency = started.elapsed();
        if !status.is_success() {
            return Outcome::Failed(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        match serde_json::from_slice::<TurnAnswer>(&body) {
            Ok(answer) if answer.source == "llm" => Outcome::Ok(latency),
            Ok(_) => Outcome::Fallback,
            Err(error) => Outcome::Failed(format!("an answer that is not a turn: {error}")),
        }
    }

    /// A streamed turn; its latency is until the first `delta` event. The rest is read
    /// to the end (`done`) before the worker goes on.
    pub async fn streamed_turn(&self, conversation: &str, player: &str, k: u64) -> Outcome {
        let started = Instant::now();
        let sent = self
            .client
            .post(format!(
                "{}/conversations/{conversation}/messages/stream",
                self.base_url
            ))
            .header("content-type", "application/json")
            .body(Self::body(player, k))
            .send()
            .await;
        let mut response = match sent {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => return Outcome::Failed(format!("{}", response.status())),
            Err(error) => return Outcome::Failed(format!("{error}")),
        };
        let mut seen = Vec::new();
        let mut first_delta = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    seen.extend_from_slice(&chunk);
                    if first_delta.is_none() && contains(&seen, b"event: delta") {
                        first_delta = Some(started.elapsed());
                    }
                }
                Ok(None) => break,
                Err(error) => return Outcome::Failed(format!("{error}")),
            }
        }
        let Some(first_delta) = first_delta else {
            return Outcome::Failed("a stream without a delta".to_owned());
        };
        if !contains(&seen, b"event: done") {
            return Outcome::Failed(format!(
                "a stream that did not end with done: {}",
                String::from_utf8_lossy(&seen)
            ));
        }
        if contains(&seen, b"\"source\":\"llm\"") {
            Outcome::Ok(first_delta)
        } else {
            Outcome::Fallback
        }
    }
}

/// Calls of the mock straight from the load generator, with a prompt of the size a turn
/// sends: the provider's own latency at that concurrency.
#[derive(Clone)]
pub struct Direct {
    client: reqwest::Client,
    url: String,
    plain: String,
    streamed: String,
}

impl Direct {
    pub fn new(client: reqwest::Client, provider_base_url: &str) -> Self {
        let request = |stream: bool| {
            let mut body = json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You are Mara, the gruff innkeeper of the Crooked Stag. Speaks plainly. ".repeat(12)},
                    {"role": "user", "content": "Any rooms free tonight, and is Tobin back from the market yet?"},
                ],
                "max_tokens": 120,
                "user": "p-floor",
            });
            if stream {
                body["stream"] = json!(true);
                body["stream_options"] = json!({"include_usage": true});
            }
            body.to_string()
        };
        Self {
            client,
            url: format!("{provider_base_url}/chat/completions"),
            plain: request(false),
            streamed: request(true),
        }
    }

    fn post(&self, body: &str) -> reqwest::RequestBuilder {
        self.client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("authorization", "Bearer x")
            .header("x-request-purpose", "conversation")
            .body(body.to_owned())
    }

    /// Until the whole completion is read.
    pub async fn completion(&self) -> Outcome {
        let started = Instant::now();
        match self.post(&self.plain).send().await {
            Ok(response) if response.status().is_success() => match response.bytes().await {
                Ok(_) => Outcome::Ok(started.elapsed()),
                Err(error) => Outcome::Failed(format!("{error}")),
            },
            Ok(response) => Outcome::Failed(format!("{}", response.status())),
            Err(error) => Outcome::Failed(format!("{error}")),
        }
    }

    /// Until the first content delta; then read to the end.
    pub async fn first_token(&self) -> Outcome {
        let started = Instant::now();
        let mut response = match self.post(&self.streamed).send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => return Outcome::Failed(format!("{}", response.status())),
            Err(error) => return Outcome::Failed(format!("{error}")),
        };
        let mut first = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if first.is_none() && contains(&chunk, b"\"delta\"") {
                        first = Some(started.elapsed());
                    }
                }
                Ok(None) => break,
                Err(error) => return Outcome::Failed(format!("{error}")),
            }
        }
        match first {
            Some(first) => Outcome::Ok(first),
            None => Outcome::Failed("a stream without a delta".to_owned()),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
