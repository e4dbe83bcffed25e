//! `bench memory`: how well the service's memory finds what a player said long ago, and
//! what it costs (issue 13, item 6). For each mode — lexical (`EMBEDDING_MODEL` unset),
//! the mock's deterministic embeddings, and a real model served locally by
//! `scripts/local-embeddings.sh` when it runs or can be started — on a fresh database:
//!
//! 1. the dataset (`dataset.rs`: 4 players × 2 conversations × 320 messages) goes in
//!    through `POST /conversations/{id}/import`, and the bench waits for the background
//!    jobs (`GET /jobs/stats`: nothing pending or running);
//! 2. evidence recall@5 and @10 of `GET /memory/search` for every question: a hit is an
//!    evidence message (its conversation and seq) or the expected fact;
//! 3. duplicates left after the restatements and contradictions resolved, from
//!    `GET /memory`;
//! 4. one turn per question: the tokens of the prompt's notes block against the
//!    tokens of the whole conversation (o200k), and whether the notes hold the answer;
//! 5. `/memory/search` latency for one pair with 10 / 100 / 1,000 / 10,000 facts and
//!    messages (messages imported 500 a request, facts inserted with SQL).
//!
//! The mock extracts facts by rule from the dataset's own sentences (`mock.rs`): the
//! figures measure the service's retrieval and bookkeeping, not a model's extraction.

use crate::{
    client::{CHARACTER, Turns},
    database::BenchDatabase,
    dataset::{self, Dataset, QuestionKind},
    load::median,
    mock::MockProvider,
    report,
    service::{Service, Settings},
};
use anyhow::{Context, bail};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use npc_dialogue::{
    llm::tokens,
    service::{
        memory::extraction::normalize,
        turn::prompt::{NOTES_CLOSE, NOTES_OPEN},
    },
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{MySql, MySqlPool, QueryBuilder};
use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};
use tokio::time::Instant;

pub const HEADING: &str = "## Memory benchmark";
pub const SCALES: [usize; 4] = [10, 100, 1_000, 10_000];
const IMPORT_BATCH: usize = 500;
/// Queries timed at each scale.
pub const SCALE_QUERIES: usize = 300;
const SEARCH_LIMIT: usize = 10;
const JOBS_PATIENCE: Duration = Duration::from_secs(900);
const SCALE_PLAYER: &str = "p-mem-scale";
const SCALE_CONVERSATION: &str = "mem-scale";
/// `scripts/local-embeddings.sh`, from the repository root.
pub const LOCAL_SCRIPT: &str = "scripts/local-embeddings.sh";

#[derive(Debug, Clone)]
pub struct Options {
    pub server: String,
    /// The largest scale the real model's run goes to (embedding 2 × 10,000 texts on 2
    /// cores takes about ten minutes).
    pub local_max_scale: usize,
    /// The largest size any run seeds (10,000 by default).
    pub max_scale: usize,
    /// Do not start the local server when it is not running (use it only if it is).
    pub no_local_start: bool,
    pub skip_local: bool,
}

#[derive(Debug, Clone)]
pub enum Mode {
    Lexical,
    Mock,
    Local { vars: Vec<(String, String)> },
}

impl Mode {
    fn label(&self) -> &'static str {
        match self {
            Self::Lexical => "lexical",
            Self::Mock => "mock embeddings",
            Self::Local { .. } => "local e5-small",
        }
    }

    fn vars(&self, mock: &MockProvider) -> Vec<(&'static str, String)> {
        match self {
            Self::Lexical => Vec::new(),
            Self::Mock => vec![
                ("EMBEDDING_MODEL", "mock-embed".to_owned()),
                ("EMBEDDING_BASE_URL", mock.base_url.clone()),
                ("EMBEDDING_API_KEY", "x".to_owned()),
            ],
            Self::Local { vars } => local_settings(vars),
        }
    }

    fn model(&self) -> String {
        match self {
            Self::Lexical => "–".to_owned(),
            Self::Mock => format!("`mock-embed` ({} dims)", crate::mock_embeddings::DIMENSIONS),
            Self::Local { vars } => vars
                .iter()
                .find(|(key, _)| key == "EMBEDDING_MODEL")
                .map_or_else(
                    || "?".to_owned(),
                    |(_, model)| format!("`{model}` (384 dims)"),
                ),
        }
    }
}

/// Of the variables `scripts/local-embeddings.sh` prints, those the service reads.
pub fn local_settings(vars: &[(String, String)]) -> Vec<(&'static str, String)> {
    const NAMES: [&str; 6] = [
        "EMBEDDING_MODEL",
        "EMBEDDING_BASE_URL",
        "EMBEDDING_API_KEY",
        "EMBEDDING_TIMEOUT_MS",
        "EMBEDDING_INPUT_TYPE",
        "MODEL_PRICES_FILE",
    ];
    NAMES
        .iter()
        .filter_map(|name| {
            vars.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| (*name, value.clone()))
        })
        .collect()
}

#[derive(Debug, Clone, Default)]
pub struct KindRecall {
    pub questions: usize,
    pub at5: usize,
    pub at10: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ScaleRow {
    pub size: usize,
    pub p50: f64,
    pub p99: f64,
    pub queries: usize,
    pub failures: usize,
    /// Seconds the seeding and its background work took.
    pub seeded_in: f64,
}

#[derive(Debug, Clone, Default)]
pub struct ModeResult {
    pub label: String,
    pub model: String,
    pub skipped: Option<String>,
    pub questions: usize,
    pub at5: usize,
    pub at10: usize,
    /// By question kind: said once, restated, contradicted.
    pub kinds: Vec<(QuestionKind, KindRecall)>,
    /// Questions whose top 10 held the contradicted (stale) value's fact.
    pub stale_in_top10: usize,
    pub import_secs: f64,
    pub jobs_secs: f64,
    pub jobs_drained: bool,
    pub parked: i64,
    pub facts_stored: usize,
    pub duplicates: usize,
    pub resolved: usize,
    pub contradictions: usize,
    pub notes_tokens: Vec<u32>,
    pub conversation_tokens: u32,
    pub pair_tokens: u32,
    pub answer_in_notes: usize,
    pub turns: usize,
    pub turn_failures: usize,
    pub scale: Vec<ScaleRow>,
    pub scale_note: Option<String>,
    pub embedding_calls: Option<(u64, u64)>,
    pub notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct SearchResult {
    pub kind: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub seq: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct SearchAnswer {
    results: Vec<SearchResult>,
}

#[derive(Debug, Deserialize)]
pub struct MemoryFact {
    pub text: String,
    /// The conversation it was learned in.
    #[serde(default)]
    pub conversation_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MemoryAnswer {
    facts: Vec<MemoryFact>,
}

#[derive(Debug, Deserialize)]
struct JobStats {
    pending: i64,
    running: i64,
    parked: i64,
}

/// The service as the memory runs drive it, talking to one character.
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub character: String,
}

impl Api {
    /// The service at `base`, talking to `CHARACTER`.
    pub fn new(client: &reqwest::Client, base: &str) -> Self {
        Self {
            client: client.clone(),
            base: base.to_owned(),
            character: CHARACTER.to_owned(),
        }
    }

    /// The same service, talking to the character `id`.
    pub fn with_character(&self, id: &str) -> Self {
        Self {
            character: id.to_owned(),
            ..Self::new(&self.client, &self.base)
        }
    }

    /// Creates (or renames) this character, called `name`.
    pub async fn put_character(&self, name: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .put(format!("{}/characters/{}", self.base, self.character))
            .json(&json!({"name": name, "persona": format!("{name}, as in the conversations.")}))
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "PUT /characters/{}: {status}: {}",
            self.character,
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }

    pub async fn import(
        &self,
        conversation: &str,
        player: &str,
        messages: &[Value],
    ) -> anyhow::Result<()> {
        for batch in messages.chunks(IMPORT_BATCH) {
            let response = self
                .client
                .post(format!("{}/conversations/{conversation}/import", self.base))
                .json(&json!({"player_id": player, "character_id": self.character, "messages": batch}))
                .send()
                .await?;
            let status = response.status();
            let body = response.text().await?;
            if !status.is_success() {
                bail!("import into {conversation}: {status}: {body}");
            }
            let answer: Value = serde_json::from_str(&body)?;
            let imported = answer["imported"].as_u64().unwrap_or(0) as usize;
            let skipped = answer["skipped"].as_u64().unwrap_or(0) as usize;
            anyhow::ensure!(
                imported + skipped == batch.len(),
                "import into {conversation}: {body} for {} messages",
                batch.len()
            );
        }
        Ok(())
    }

    async fn job_stats(&self) -> anyhow::Result<JobStats> {
        let response = self
            .client
            .get(format!("{}/jobs/stats", self.base))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET /jobs/stats: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    /// Until nothing is pending or running; false when `patience` ran out first.
    pub async fn drain(&self, patience: Duration) -> anyhow::Result<(bool, i64)> {
        let give_up = Instant::now() + patience;
        // The jobs an import schedules are in the queue when it answers; a moment for
        // the ones scheduled by the jobs themselves.
        let mut idle_reads = 0;
        loop {
            let stats = self.job_stats().await?;
            if stats.pending == 0 && stats.running == 0 {
                idle_reads += 1;
                if idle_reads >= 3 {
                    return Ok((true, stats.parked));
                }
            } else {
                idle_reads = 0;
            }
            if Instant::now() >= give_up {
                return Ok((false, stats.parked));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn search(&self, player: &str, q: &str) -> anyhow::Result<Vec<SearchResult>> {
        self.search_kinds(player, q, "fact,message").await
    }

    /// The first `SEARCH_LIMIT` results of these kinds.
    pub async fn search_kinds(
        &self,
        player: &str,
        q: &str,
        kinds: &str,
    ) -> anyhow::Result<Vec<SearchResult>> {
        let url = url::Url::parse_with_params(
            &format!("{}/memory/search", self.base),
            &[
                ("character_id", self.character.as_str()),
                ("player_id", player),
                ("q", q),
                ("limit", &SEARCH_LIMIT.to_string()),
                ("kinds", kinds),
            ],
        )?;
        let response = self.client.get(url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "GET /memory/search: {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(serde_json::from_slice::<SearchAnswer>(&body)
            .context("a /memory/search answer")?
            .results)
    }

    async fn facts(&self, player: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .memory(player)
            .await?
            .into_iter()
            .map(|fact| fact.text)
            .collect())
    }

    /// The pair's facts as `GET /memory` lists them (at most 500).
    pub async fn memory(&self, player: &str) -> anyhow::Result<Vec<MemoryFact>> {
        let url = url::Url::parse_with_params(
            &format!("{}/memory", self.base),
            &[
                ("character_id", self.character.as_str()),
                ("player_id", player),
                ("limit", "500"),
            ],
        )?;
        let response = self.client.get(url).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET /memory: {}",
            response.status()
        );
        let answer: MemoryAnswer = response.json().await?;
        Ok(answer.facts)
    }

    pub async fn turn(
        &self,
        conversation: &str,
        player: &str,
        content: &str,
    ) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!(
                "{}/conversations/{conversation}/messages",
                self.base
            ))
            .json(&json!({
                "player_id": player,
                "character_id": self.character,
                "content": content,
                "affinity": 35,
            }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "turn: {status}: {body}");
        anyhow::ensure!(
            body["source"] == "llm",
            "turn answered by a fallback: {}",
            body["fallback_reason"]
        );
        Ok(())
    }
}

fn import_body(messages: &[&dataset::Message], start: DateTime<Utc>) -> Vec<Value> {
    messages
        .iter()
        .map(|message| {
            json!({
                "client_id": format!("m-{}", message.seq),
                "role": message.speaker.role(),
                "content": message.content,
                "created_at": (start + ChronoDuration::minutes(message.minute)).to_rfc3339(),
            })
        })
        .collect()
}

/// The notes block of the system message of a conversation request, markers included.
pub fn notes_block(request: &[u8]) -> Option<String> {
    let request: Value = serde_json::from_slice(request).ok()?;
    let system = request["messages"]
        .as_array()?
        .iter()
        .find(|message| message["role"] == "system")?["content"]
        .as_str()?
        .to_owned();
    let open = system.find(NOTES_OPEN)?;
    let close = system[open..].find(NOTES_CLOSE)? + open + NOTES_CLOSE.len();
    Some(system[open..close].to_owned())
}

pub fn nearest_rank(sorted: &[f64], percentile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((percentile / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The local server's variables: running already, or started now (`started` says so),
/// or why not.
pub fn local_server_vars(
    no_local_start: bool,
    repo: &Path,
) -> Result<(Vec<(String, String)>, bool), String> {
    local_script_vars(LOCAL_SCRIPT, no_local_start, repo)
}

/// The variables a local server's `script` (`scripts/local-*.sh`) prints, the server
/// started first unless it runs (or `no_local_start`); true when this call started it.
pub fn local_script_vars(
    script_path: &str,
    no_local_start: bool,
    repo: &Path,
) -> Result<(Vec<(String, String)>, bool), String> {
    let script = repo.join(script_path);
    let run = |command: &str| {
        std::process::Command::new("bash")
            .arg(&script)
            .arg(command)
            .current_dir(repo)
            .output()
    };
    let parse = |stdout: &[u8]| -> Vec<(String, String)> {
        String::from_utf8_lossy(stdout)
            .lines()
            .filter_map(|line| line.strip_prefix("export "))
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    };
    let running = run("status").map_err(|error| format!("{script_path}: {error}"))?;
    if running.status.success() {
        let env = run("env").map_err(|error| format!("{script_path} env: {error}"))?;
        return Ok((parse(&env.stdout), false));
    }
    if no_local_start {
        return Err(format!(
            "`{script_path}` is not running (and --no-local-start)"
        ));
    }
    eprintln!("bench: starting the local server ({script_path})");
    let started = run("start").map_err(|error| format!("{script_path}: {error}"))?;
    if !started.status.success() {
        let stderr = String::from_utf8_lossy(&started.stderr);
        let last = stderr
            .lines()
            .last()
            .unwrap_or("no output")
            .trim()
            .to_owned();
        return Err(format!("`{script_path}` could not start it: {last}"));
    }
    Ok((parse(&started.stdout), true))
}

pub async fn run(
    options: &Options,
    binary: &Path,
    client: &reqwest::Client,
    mock: &MockProvider,
) -> anyhow::Result<Vec<ModeResult>> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = dataset::generate(dataset::SEED);
    mock.set_rule_based_extraction(true);
    let mut modes = vec![(Mode::Lexical, None), (Mode::Mock, None)];
    let mut started_local = false;
    if options.skip_local {
        modes.push((
            Mode::Local { vars: Vec::new() },
            Some("skipped (--skip-local)".to_owned()),
        ));
    } else {
        match local_script_vars(LOCAL_SCRIPT, options.no_local_start, &repo) {
            Ok((vars, started)) => {
                started_local = started;
                modes.push((Mode::Local { vars }, None));
            }
            Err(why) => modes.push((Mode::Local { vars: Vec::new() }, Some(why))),
        }
    }
    let mut results = Vec::new();
    let mut failure = None;
    for (mode, skipped) in modes {
        if let Some(why) = skipped {
            eprintln!("memory: {}: {why}", mode.label());
            results.push(ModeResult {
                label: mode.label().to_owned(),
                model: mode.model(),
                skipped: Some(why),
                ..ModeResult::default()
            });
            continue;
        }
        let max_scale = match mode {
            Mode::Local { .. } => options.local_max_scale,
            _ => options.max_scale,
        };
        eprintln!("memory: {} run", mode.label());
        match run_mode(options, binary, client, mock, &data, &mode, max_scale).await {
            Ok(result) => results.push(result),
            Err(error) => {
                failure = Some(error.context(format!("the {} run", mode.label())));
                break;
            }
        }
    }
    if started_local {
        let _ = std::process::Command::new("bash")
            .arg(repo.join(LOCAL_SCRIPT))
            .arg("stop")
            .current_dir(&repo)
            .status();
    }
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(results)
}

async fn run_mode(
    options: &Options,
    binary: &Path,
    client: &reqwest::Client,
    mock: &MockProvider,
    data: &Dataset,
    mode: &Mode,
    max_scale: usize,
) -> anyhow::Result<ModeResult> {
    let database = BenchDatabase::create(&options.server).await?;
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&database.url())?;
    let outcome = async {
        let settings = Settings {
            database_url: database.url(),
            llm_base_url: mock.base_url.clone(),
            job_workers: None,
            no_housekeeping: false,
            extra: mode.vars(mock),
        };
        let service = Service::start(binary, &settings, client)
            .await
            .context("starting the service")?;
        let result = measure_mode(client, &service, &pool, mock, data, mode, max_scale).await;
        match result {
            Ok(result) => {
                service.stop().await?;
                Ok(result)
            }
            Err(error) => Err(error.context(format!("the service's log:\n{}", service.log_tail()))),
        }
    }
    .await;
    pool.close().await;
    let dropped = database.drop().await;
    let result = outcome?;
    dropped?;
    Ok(result)
}

async fn measure_mode(
    client: &reqwest::Client,
    service: &Service,
    pool: &MySqlPool,
    mock: &MockProvider,
    data: &Dataset,
    mode: &Mode,
    max_scale: usize,
) -> anyhow::Result<ModeResult> {
    let api = Api::new(client, &service.base_url);
    Turns::new(client.clone(), &service.base_url)
        .create_character()
        .await?;
    let embeddings_before = mock.embedding_counts();
    let mut result = ModeResult {
        label: mode.label().to_owned(),
        model: mode.model(),
        questions: data.questions.len(),
        contradictions: data.contradictions.len(),
        ..ModeResult::default()
    };
    // 1. The histories, then their background work.
    let timeline = i64::from(dataset::MESSAGES_PER_CONVERSATION)
        * i64::from(dataset::CONVERSATIONS_PER_PLAYER)
        * dataset::MINUTES_APART;
    let start = Utc::now() - ChronoDuration::minutes(timeline) - ChronoDuration::days(1);
    let started = Instant::now();
    for player in &data.players {
        for conversation in &player.conversations {
            let messages: Vec<&dataset::Message> = player
                .messages
                .iter()
                .filter(|m| &m.conversation == conversation)
                .collect();
            api.import(conversation, &player.id, &import_body(&messages, start))
                .await?;
        }
    }
    result.import_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (drained, parked) = api.drain(JOBS_PATIENCE).await?;
    result.jobs_secs = started.elapsed().as_secs_f64();
    result.jobs_drained = drained;
    result.parked = parked;
    eprintln!(
        "  imported {} messages in {:.1} s; background work {:.1} s{}",
        data.players.iter().map(|p| p.messages.len()).sum::<usize>(),
        result.import_secs,
        result.jobs_secs,
        if drained { "" } else { " (NOT drained)" }
    );
    // 2. Recall.
    let mut kinds: HashMap<QuestionKind, KindRecall> = HashMap::new();
    let mut search_errors = Vec::new();
    for question in &data.questions {
        let results = match api.search(&question.player, &question.text).await {
            Ok(results) => results,
            Err(error) => {
                search_errors.push(format!("{error:#}"));
                Vec::new()
            }
        };
        let expected = normalize(&question.expected_fact);
        let hit = |result: &SearchResult| match result.kind.as_str() {
            "fact" => normalize(&result.text) == expected,
            "message" => question.evidence.iter().any(|(conversation, seq)| {
                result.conversation_id.as_deref() == Some(conversation.as_str())
                    && result.seq == Some(*seq)
            }),
            _ => false,
        };
        let first_hit = results.iter().position(hit);
        let at5 = first_hit.is_some_and(|rank| rank < 5);
        let at10 = first_hit.is_some_and(|rank| rank < 10);
        result.at5 += usize::from(at5);
        result.at10 += usize::from(at10);
        let kind = kinds.entry(question.kind).or_default();
        kind.questions += 1;
        kind.at5 += usize::from(at5);
        kind.at10 += usize::from(at10);
        if question.kind == QuestionKind::Contradicted {
            let stale = data
                .contradictions
                .iter()
                .find(|c| c.player == question.player && c.new_fact == question.expected_fact)
                .map(|c| normalize(&c.old_fact));
            if let Some(stale) = stale
                && results
                    .iter()
                    .any(|r| r.kind == "fact" && normalize(&r.text) == stale)
            {
                result.stale_in_top10 += 1;
            }
        }
    }
    if !search_errors.is_empty() {
        result.notes.push(format!(
            "{} searches failed, e.g. {}",
            search_errors.len(),
            search_errors[0]
        ));
    }
    result.kinds = QuestionKind::ALL
        .iter()
        .map(|kind| (*kind, kinds.remove(kind).unwrap_or_default()))
        .collect();
    eprintln!(
        "  recall@5 {}/{}, @10 {}/{}",
        result.at5, result.questions, result.at10, result.questions
    );
    // 3. Bookkeeping: duplicates and contradictions.
    for player in &data.players {
        let facts = api.facts(&player.id).await?;
        result.facts_stored += facts.len();
        let mut seen = HashSet::new();
        for fact in &facts {
            if !seen.insert(normalize(fact)) {
                result.duplicates += 1;
            }
        }
        for contradiction in data.contradictions.iter().filter(|c| c.player == player.id) {
            let old_gone = !seen.contains(&normalize(&contradiction.old_fact));
            let new_there = seen.contains(&normalize(&contradiction.new_fact));
            result.resolved += usize::from(old_gone && new_there);
        }
    }
    // 4. Turns: the notes block against the history.
    for player in &data.players {
        let Some(last) = player.conversations.last() else {
            continue;
        };
        let history = |conversations: &[&String]| -> u32 {
            let text: String = player
                .messages
                .iter()
                .filter(|m| conversations.contains(&&m.conversation))
                .map(|m| format!("{}: {}\n", m.speaker.role(), m.content))
                .collect();
            tokens::count(&text)
        };
        result.conversation_tokens = result.conversation_tokens.max(history(&[last]));
        result.pair_tokens = result
            .pair_tokens
            .max(history(&player.conversations.iter().collect::<Vec<_>>()));
        for question in data.questions.iter().filter(|q| q.player == player.id) {
            result.turns += 1;
            if let Err(error) = api.turn(last, &player.id, &question.text).await {
                result.turn_failures += 1;
                if result.turn_failures == 1 {
                    result.notes.push(format!("a turn failed: {error:#}"));
                }
                continue;
            }
            let notes = mock
                .last_conversation_request()
                .as_deref()
                .and_then(notes_block)
                .unwrap_or_default();
            result.notes_tokens.push(tokens::count(&notes));
            let evidence_lines: Vec<&str> = player
                .messages
                .iter()
                .filter(|m| {
                    question
                        .evidence
                        .iter()
                        .any(|(c, s)| *c == m.conversation && *s == m.seq)
                })
                .map(|m| m.content.as_str())
                .collect();
            if notes.contains(&question.expected_fact)
                || evidence_lines.iter().any(|line| notes.contains(line))
            {
                result.answer_in_notes += 1;
            }
        }
    }
    // 5. Latency at scale, for one pair.
    let (rows, note) = scale(&api, pool, max_scale).await?;
    result.scale = rows;
    result.scale_note = note;
    if let Mode::Mock = mode {
        let (calls, texts) = mock.embedding_counts();
        result.embedding_calls = Some((calls - embeddings_before.0, texts - embeddings_before.1));
    }
    Ok(result)
}

/// Facts straight into `memory_facts` for the latency runs, `from..to` of
/// `dataset::filler_fact`.
async fn insert_facts(pool: &MySqlPool, from: usize, to: usize) -> anyhow::Result<()> {
    let now = Utc::now();
    let indexes: Vec<usize> = (from..to).collect();
    for chunk in indexes.chunks(500) {
        let mut query = QueryBuilder::<MySql>::new(
            "INSERT INTO memory_facts (player_id, character_id, text, text_hash, importance, \
             conversation_id, from_seq, to_seq, created_at, updated_at) ",
        );
        query.push_values(chunk, |mut row, &i| {
            let (text, importance) = dataset::filler_fact(i);
            let hash = hex::encode(Sha256::digest(normalize(&text).as_bytes()));
            let at = now - ChronoDuration::minutes(i64::try_from(i).unwrap_or(0) % 50_000);
            row.push_bind(SCALE_PLAYER)
                .push_bind(CHARACTER)
                .push_bind(text)
                .push_bind(hash)
                .push_bind(importance)
                .push_bind(SCALE_CONVERSATION)
                .push_bind(1u32)
                .push_bind(2u32)
                .push_bind(at)
                .push_bind(at);
        });
        query
            .build()
            .execute(pool)
            .await
            .context("inserting facts")?;
    }
    Ok(())
}

async fn scale(
    api: &Api,
    pool: &MySqlPool,
    max_scale: usize,
) -> anyhow::Result<(Vec<ScaleRow>, Option<String>)> {
    let mut rows = Vec::new();
    let mut have = 0;
    let mut rng = dataset::Rng::new(dataset::SEED ^ 0x5ca1e);
    let questions = dataset::question_texts();
    // Far enough back for 10,000 messages a minute apart.
    let start = Utc::now() - ChronoDuration::days(30);
    let mut note = None;
    for size in SCALES {
        if size > max_scale {
            note = Some(format!(
                "{size} not run (largest size {max_scale}: `--max-scale`, and \
                 `--local-max-scale` for the real model, whose 2 × {size} embeddings take \
                 long on 2 cores)"
            ));
            break;
        }
        let started = Instant::now();
        let messages: Vec<Value> = (have..size)
            .map(|i| {
                let speaker = if i % 2 == 0 {
                    dataset::Speaker::Player
                } else {
                    dataset::Speaker::Character
                };
                json!({
                    "client_id": format!("s-{i}"),
                    "role": speaker.role(),
                    "content": dataset::small_talk(&mut rng, speaker),
                    "created_at": (start + ChronoDuration::minutes(i as i64)).to_rfc3339(),
                })
            })
            .collect();
        // Facts first: the `embed` jobs the import schedules embed the pair's facts too.
        insert_facts(pool, have, size).await?;
        api.import(SCALE_CONVERSATION, SCALE_PLAYER, &messages)
            .await?;
        have = size;
        let (drained, _) = api.drain(JOBS_PATIENCE).await?;
        let seeded_in = started.elapsed().as_secs_f64();
        // A first query warms the caches; then the timed ones.
        let _ = api.search(SCALE_PLAYER, questions[0]).await;
        let mut latencies = Vec::with_capacity(SCALE_QUERIES);
        let mut failures = 0;
        for k in 0..SCALE_QUERIES {
            let q = questions[k % questions.len()];
            let sent = std::time::Instant::now();
            match api.search(SCALE_PLAYER, q).await {
                Ok(_) => latencies.push(sent.elapsed().as_secs_f64() * 1_000.0),
                Err(_) => failures += 1,
            }
        }
        latencies.sort_by(f64::total_cmp);
        let row = ScaleRow {
            size,
            p50: nearest_rank(&latencies, 50.0),
            p99: nearest_rank(&latencies, 99.0),
            queries: latencies.len(),
            failures,
            seeded_in,
        };
        eprintln!(
            "  {size} facts + {size} messages: p50 {:.2} ms, p99 {:.2} ms ({} queries; seeded in {:.1} s{})",
            row.p50,
            row.p99,
            row.queries,
            seeded_in,
            if drained { "" } else { ", jobs NOT drained" }
        );
        rows.push(row);
    }
    Ok((rows, note))
}

fn percent(hits: usize, of: usize) -> String {
    if of == 0 {
        "–".to_owned()
    } else {
        format!("{:.0}% ({hits}/{of})", hits as f64 * 100.0 / of as f64)
    }
}

pub fn render(results: &[ModeResult], data: &Dataset, info: &report::RunInfo) -> String {
    let mut out = String::new();
    let _ = render_into(&mut out, results, data, info);
    out
}

fn render_into(
    out: &mut String,
    results: &[ModeResult],
    data: &Dataset,
    info: &report::RunInfo,
) -> std::fmt::Result {
    writeln!(out, "{HEADING}\n")?;
    writeln!(
        out,
        "Command (from the repository root; MariaDB as `root@127.0.0.1:3306`, or set \
         `BENCH_MYSQL_URL`; the real-model column needs python3 with pip, see \
         `scripts/local-embeddings.sh`):\n\n    {}\n",
        info.command
    )?;
    writeln!(out, "{}\n", info.describe())?;
    let messages: usize = data.players.iter().map(|p| p.messages.len()).sum();
    writeln!(
        out,
        "Dataset (`src/bin/bench/dataset.rs`, seed `{:#x}`): {} players, each with {} \
         conversations of {} messages with the innkeeper ({messages} messages), imported \
         through `POST /conversations/{{id}}/import`; {} facts planted ({} kinds: {}), {} restated later in \
         other words, {} contradicted (\"Actually, I moved: I live in Riverton now.\"), small \
         talk around them; {} questions, each with the ids of its evidence messages and the \
         fact it expects. Questions share a concept with their evidence more than words \
         (\"Do you have any pets?\" against \"my cat Whiskers…\").\n",
        dataset::SEED,
        data.players.len(),
        dataset::CONVERSATIONS_PER_PLAYER,
        dataset::MESSAGES_PER_CONVERSATION,
        data.planted,
        dataset::SLOTS.len(),
        dataset::SLOTS
            .iter()
            .map(|slot| slot.key)
            .collect::<Vec<_>>()
            .join(", "),
        data.restatements,
        data.contradictions.len(),
        data.questions.len(),
    )?;
    writeln!(
        out,
        "**What this measures:** the service's retrieval and bookkeeping. Fact extraction is \
         the bench's mock answering by rule from the dataset's own sentences (a planted or \
         restated sentence gives the same fact text, a contradiction an `update` of the \
         known fact's id), i.e. a perfect extractor: nothing here says how well a real LLM \
         extracts facts. The conversation replies are the mock's canned line. The \"mock \
         embeddings\" are the deterministic 256-dimension vectors of \
         `src/bin/bench/mock_embeddings.rs` (a word hash plus ten hand-made concept \
         families that cover the dataset's vocabulary), so that column is an upper bound \
         made easy on purpose; the real-model column is multilingual-e5-small (4-bit) \
         served by `scripts/local-embeddings.sh`.\n"
    )?;
    let columns: Vec<&ModeResult> = results.iter().collect();
    write!(out, "| | ")?;
    writeln!(
        out,
        "{} |",
        columns
            .iter()
            .map(|r| r.label.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    )?;
    writeln!(out, "|---|{}", "---|".repeat(columns.len()))?;
    let row = |out: &mut String, name: &str, cell: &dyn Fn(&ModeResult) -> String| {
        let cells: Vec<String> = columns
            .iter()
            .map(|r| {
                if r.skipped.is_some() {
                    "skipped".to_owned()
                } else {
                    cell(r)
                }
            })
            .collect();
        writeln!(out, "| {name} | {} |", cells.join(" | "))
    };
    row(out, "embedding model", &|r| r.model.clone())?;
    row(out, "**evidence recall@5** (`/memory/search`)", &|r| {
        percent(r.at5, r.questions)
    })?;
    row(out, "**evidence recall@10**", &|r| {
        percent(r.at10, r.questions)
    })?;
    for kind in QuestionKind::ALL {
        row(out, &format!("recall@10, facts {}", kind.label()), &|r| {
            r.kinds
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or_else(|| "–".to_owned(), |(_, k)| percent(k.at10, k.questions))
        })?;
    }
    row(out, "stale (contradicted) fact in the top 10", &|r| {
        percent(
            r.stale_in_top10,
            r.kinds
                .iter()
                .find(|(k, _)| *k == QuestionKind::Contradicted)
                .map_or(0, |(_, k)| k.questions),
        )
    })?;
    row(
        out,
        "**memory tokens per turn** (notes block, median / max)",
        &|r| {
            let mut sorted: Vec<f64> = r.notes_tokens.iter().map(|t| f64::from(*t)).collect();
            sorted.sort_by(f64::total_cmp);
            format!(
                "{:.0} / {:.0}",
                median(&sorted),
                sorted.last().copied().unwrap_or(0.0)
            )
        },
    )?;
    row(
        out,
        "full history (one conversation / the pair's two)",
        &|r| format!("{} / {} tokens", r.conversation_tokens, r.pair_tokens),
    )?;
    row(out, "turns whose notes hold the answer", &|r| {
        percent(r.answer_in_notes, r.turns)
    })?;
    for size in SCALES {
        row(
            out,
            &format!("**search p50 / p99**, {size} facts + {size} messages"),
            &|r| {
                r.scale.iter().find(|s| s.size == size).map_or_else(
                    || "not run".to_owned(),
                    |s| format!("{:.2} / {:.2} ms", s.p50, s.p99),
                )
            },
        )?;
    }
    row(
        out,
        "seeding 10 → 10,000 (import, SQL, background work)",
        &|r| {
            r.scale
                .iter()
                .map(|s| format!("{:.0}", s.seeded_in))
                .collect::<Vec<_>>()
                .join(" / ")
                + " s"
        },
    )?;
    row(
        out,
        &format!(
            "**duplicate facts** after {} restatements",
            data.restatements
        ),
        &|r| r.duplicates.to_string(),
    )?;
    row(
        out,
        "**contradictions resolved** (old gone, new there)",
        &|r| percent(r.resolved, r.contradictions),
    )?;
    row(out, "facts stored (4 players)", &|r| {
        r.facts_stored.to_string()
    })?;
    row(out, "import / background work after it", &|r| {
        format!(
            "{:.1} s / {:.1} s{}",
            r.import_secs,
            r.jobs_secs,
            if r.jobs_drained { "" } else { " (not drained)" }
        )
    })?;
    row(out, "parked jobs", &|r| r.parked.to_string())?;
    writeln!(out)?;
    writeln!(
        out,
        "Recall: per question, a hit at rank k is an evidence message (`kind: \"message\"` \
         with the evidence's `conversation_id` and `seq`) or the expected fact among the \
         first k results of `GET /memory/search?q=<question>&limit={SEARCH_LIMIT}&kinds=fact,message`. \
         For a contradicted fact the evidence is the contradiction only and the expected \
         fact the new value. Memory tokens: one turn per question in the player's second \
         conversation, the question as the line; the prompt's notes block (`{NOTES_OPEN}` … \
         `{NOTES_CLOSE}`, summary, facts and older messages) counted with o200k, against \
         the whole conversation's text (`role: content` lines). Latency: one more pair, \
         messages imported {IMPORT_BATCH} a request and facts inserted with SQL, grown to \
         each size, background work drained, then {SCALE_QUERIES} sequential searches \
         (the questions' texts) over loopback; client-side, HTTP included.\n"
    )?;
    for r in results {
        if let Some(why) = &r.skipped {
            writeln!(out, "- {}: **skipped**: {why}.", r.label)?;
        }
        if let Some(note) = &r.scale_note {
            writeln!(out, "- {}: {note}.", r.label)?;
        }
        if let Some((calls, texts)) = r.embedding_calls {
            writeln!(
                out,
                "- {}: {calls} calls to the mock's `/embeddings` for {texts} texts.",
                r.label
            )?;
        }
        for note in &r.notes {
            writeln!(out, "- {}: {note}", r.label)?;
        }
        if r.turn_failures > 0 {
            writeln!(out, "- {}: {} turns failed.", r.label, r.turn_failures)?;
        }
        for s in &r.scale {
            if s.failures > 0 {
                writeln!(
                    out,
                    "- {}: {} of {} searches failed at {}.",
                    r.label,
                    s.failures,
                    s.queries + s.failures,
                    s.size
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notes_block_is_cut_from_the_system_message() {
        let system =
            format!("Persona.\n{NOTES_OPEN}\nYou remember: [\"x\"]\n{NOTES_CLOSE}\nRules.");
        let request = json!({"messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "hi"},
        ]})
        .to_string();
        assert_eq!(
            notes_block(request.as_bytes()).as_deref(),
            Some(format!("{NOTES_OPEN}\nYou remember: [\"x\"]\n{NOTES_CLOSE}").as_str())
        );
        let without = json!({"messages": [{"role": "system", "content": "Persona."}]}).to_string();
        assert_eq!(notes_block(without.as_bytes()), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&values, 50.0), 50.0);
        assert_eq!(nearest_rank(&values, 99.0), 99.0);
        assert_eq!(nearest_rank(&[], 50.0), 0.0);
    }
}
