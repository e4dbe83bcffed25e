//! `bench recall`: does the service's memory find what was said in long, natural
//! conversations (issue 24)? On the datasets of `natural.rs`, each sample imported
//! through `POST /conversations/{id}/import` (a conversation per session, the first
//! speaker as the player, the second as the character), background work drained, then
//! for every question:
//!
//! 1. `GET /memory/search?q=<question>&kinds=message&limit=10`: evidence recall@5 and
//!    @10 (a hit is any evidence message), by question category, and the search's
//!    latency;
//! 2. one turn with the question as the line: whether the prompt's notes block quotes an
//!    evidence message, and its tokens (o200k).
//!
//! Modes: the service with `EMBEDDING_MODEL` unset (lexical), and with the local
//! multilingual-e5-small of `scripts/local-embeddings.sh` (hybrid). Beside them, on the
//! same messages, the bench's own baselines (`baseline.rs`): a plain BM25 and a plain
//! e5. Last, search and turn latency for one pair of 10,000 messages and 1,000 facts.

use crate::{
    baseline::{self, E5, PlainBm25},
    client::{CHARACTER, Turns},
    database::{self, BenchDatabase},
    load::median,
    memory::{self, Api, notes_block},
    mock::MockProvider,
    natural::{self, Sample},
    report,
    service::{Service, Settings},
};
use anyhow::Context;
use chrono::Duration as ChronoDuration;
use npc_dialogue::llm::tokens;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};
use tokio::time::Instant;

/// Environment variables for a service run.
type EnvVars = Vec<(String, String)>;

pub const HEADING: &str = "## Recall on natural conversations";
const JOBS_PATIENCE: Duration = Duration::from_secs(1800);
pub(crate) const SCALE_MESSAGES: usize = 10_000;
pub(crate) const SCALE_FACTS: usize = 1_000;
pub(crate) const SCALE_QUERIES: usize = 300;
const SCALE_PLAYER: &str = "p-recall-scale";

#[derive(Debug, Clone)]
pub struct Options {
    pub server: String,
    pub data: Vec<PathBuf>,
    pub no_local_start: bool,
    pub skip_local: bool,
}

/// Recall of one retrieval, overall and by category.
#[derive(Debug, Clone, Default)]
pub struct Recall {
    pub questions: usize,
    pub at5: usize,
    pub at10: usize,
    pub by_category: BTreeMap<u32, (usize, usize, usize)>,
}

impl Recall {
    pub(crate) fn add(&mut self, category: u32, first_hit: Option<usize>) {
        let at5 = usize::from(first_hit.is_some_and(|rank| rank < 5));
        let at10 = usize::from(first_hit.is_some_and(|rank| rank < 10));
        self.questions += 1;
        self.at5 += at5;
        self.at10 += at10;
        let entry = self.by_category.entry(category).or_default();
        entry.0 += 1;
        entry.1 += at5;
        entry.2 += at10;
    }
}

/// What one service mode measured.
#[derive(Debug, Clone, Default)]
pub struct ModeResult {
    pub label: String,
    pub skipped: Option<String>,
    pub recall: Recall,
    pub search_ms: Vec<f64>,
    pub notes_hold_evidence: usize,
    pub turns: usize,
    pub notes_tokens: Vec<u32>,
    pub import_secs: f64,
    pub jobs_secs: f64,
    pub drained: bool,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ScaleResult {
    pub search_ms: Vec<f64>,
    pub turn_ms_empty: Vec<f64>,
    pub turn_ms_full: Vec<f64>,
    pub seeding_secs: f64,
}

#[derive(Debug, Default)]
pub struct Results {
    pub samples: Vec<Sample>,
    pub modes: Vec<ModeResult>,
    /// The bench's own baselines: label and recall (or why not run).
    pub baselines: Vec<(String, Result<Recall, String>)>,
    pub scale: Option<ScaleResult>,
}

/// Questions asked as turns of one copy of a sample's history. Each turn stores the
/// question and the mock's reply, which the pair's later turns recall beside the
/// evidence: 455 questions in one pair would measure the bench's own questions more
/// than the history (at 455, 263 turns' recalled lines quoted an earlier question).
/// So the history is imported once per `TURNS_PER_COPY` questions, each copy a player
/// of its own; the searches, all made before the first turn, ask the first copy.
const TURNS_PER_COPY: usize = 30;

fn copies(sample: &Sample) -> usize {
    sample.questions.len().div_ceil(TURNS_PER_COPY).max(1)
}

/// A sample's ids in the service: its player (one per copy of the history) and one
/// conversation per session.
fn player_of(sample: &Sample, copy: usize) -> String {
    match copy {
        0 => format!("p-{}", slug(&sample.id)),
        copy => format!("p-{}-{copy}", slug(&sample.id)),
    }
}

/// The service talking to the sample's second speaker, a character of their name: what a
/// game importing the talk would create.
fn api_of(api: &Api, sample: &Sample) -> Api {
    api.with_character(&format!("c-{}", slug(&sample.id)))
}

fn conversation_of(sample: &Sample, session: u32, copy: usize) -> String {
    match copy {
        0 => format!("{}-s{session}", slug(&sample.id)),
        copy => format!("{}-{copy}-s{session}", slug(&sample.id)),
    }
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Every message of a sample in order, with the conversation and `seq` the import
/// gives it.
pub(crate) fn placed(sample: &Sample) -> Vec<(String, u32, &natural::Turn)> {
    sample
        .sessions
        .iter()
        .flat_map(|session| {
            session.turns.iter().enumerate().map(move |(i, turn)| {
                (
                    conversation_of(sample, session.number, 0),
                    i as u32 + 1,
                    turn,
                )
            })
        })
        .collect()
}

fn normalized(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

pub async fn run(
    options: &Options,
    binary: &Path,
    client: &reqwest::Client,
    mock: &MockProvider,
) -> anyhow::Result<Results> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut samples = Vec::new();
    for file in natural::files(&options.data, &repo)? {
        samples.extend(natural::load(&file)?);
    }
    anyhow::ensure!(!samples.is_empty(), "no dataset to read");
    mock.set_rule_based_extraction(true);
    let local = if options.skip_local {
        Err("skipped (--skip-local)".to_owned())
    } else {
        memory::local_server_vars(options.no_local_start, &repo)
    };
    let mut results = Results::default();
    // The bench's own baselines first: they need nothing of the service.
    results
        .baselines
        .push(("plain BM25 (bench)".to_owned(), Ok(bm25_baseline(&samples))));
    match &local {
        Ok((vars, _)) => {
            let e5 = e5_client(client, vars);
            for (label, document_type) in [
                ("plain e5-small, query/passage prefixes (bench)", "passage"),
                ("plain e5-small, query: on both sides (bench)", "query"),
            ] {
                eprintln!("recall: {label}");
                let recall = e5_baseline(&e5, &samples, document_type)
                    .await
                    .map_err(|error| format!("{error:#}"));
                results.baselines.push((label.to_owned(), recall));
            }
        }
        Err(why) => results
            .baselines
            .push(("plain e5-small (bench)".to_owned(), Err(why.clone()))),
    }
    let mut modes: Vec<(&str, Result<EnvVars, String>)> =
        vec![("service, lexical (EMBEDDING_MODEL unset)", Ok(Vec::new()))];
    modes.push((
        "service, hybrid with local e5-small",
        local.clone().map(|(vars, _)| vars),
    ));
    for (index, (label, vars)) in modes.into_iter().enumerate() {
        let vars = match vars {
            Ok(vars) => vars,
            Err(why) => {
                results.modes.push(ModeResult {
                    label: label.to_owned(),
                    skipped: Some(why),
                    ..ModeResult::default()
                });
                continue;
            }
        };
        eprintln!("recall: {label}");
        let lexical = index == 0;
        let (result, scale) = run_mode(
            options, binary, client, mock, &samples, label, &vars, lexical,
        )
        .await?;
        results.modes.push(result);
        if scale.is_some() {
            results.scale = scale;
        }
    }
    if let Ok((_, true)) = local {
        let _ = std::process::Command::new("bash")
            .arg(repo.join(memory::LOCAL_SCRIPT))
            .arg("stop")
            .current_dir(&repo)
            .status();
    }
    results.samples = samples;
    Ok(results)
}

pub(crate) fn e5_client(client: &reqwest::Client, vars: &[(String, String)]) -> E5 {
    let var = |name: &str| {
        vars.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    E5 {
        client: client.clone(),
        base_url: var("EMBEDDING_BASE_URL"),
        model: var("EMBEDDING_MODEL"),
    }
}

/// Whether any evidence of a question is among `ranked` (ids of the sample's turns in
/// rank order): the rank of the first.
pub(crate) fn first_hit(ranked: &[&str], evidence: &[String]) -> Option<usize> {
    ranked
        .iter()
        .position(|id| evidence.iter().any(|wanted| wanted == id))
}

pub(crate) fn bm25_baseline(samples: &[Sample]) -> Recall {
    let mut recall = Recall::default();
    for sample in samples {
        let turns = placed(sample);
        let texts: Vec<&str> = turns
            .iter()
            .map(|(_, _, turn)| turn.text.as_str())
            .collect();
        let index = PlainBm25::new(&texts);
        for question in &sample.questions {
            let ranked: Vec<&str> = index
                .rank(&question.text)
                .into_iter()
                .take(10)
                .map(|i| turns[i].2.dia_id.as_str())
                .collect();
            recall.add(question.category, first_hit(&ranked, &question.evidence));
        }
    }
    recall
}

async fn e5_baseline(e5: &E5, samples: &[Sample], document_type: &str) -> anyhow::Result<Recall> {
    let mut recall = Recall::default();
    for sample in samples {
        let turns = placed(sample);
        let texts: Vec<String> = turns.iter().map(|(_, _, turn)| turn.text.clone()).collect();
        let documents = e5.embed(&texts, document_type).await?;
        let questions: Vec<String> = sample.questions.iter().map(|q| q.text.clone()).collect();
        let queries = e5.embed(&questions, "query").await?;
        for (question, vector) in sample.questions.iter().zip(&queries) {
            let ranked: Vec<&str> = baseline::rank_by_cosine(vector, &documents)
                .into_iter()
                .take(10)
                .map(|i| turns[i].2.dia_id.as_str())
                .collect();
            recall.add(question.category, first_hit(&ranked, &question.evidence));
        }
    }
    Ok(recall)
}

#[allow(clippy::too_many_arguments)]
async fn run_mode(
    options: &Options,
    binary: &Path,
    client: &reqwest::Client,
    mock: &MockProvider,
    samples: &[Sample],
    label: &str,
    vars: &[(String, String)],
    measure_scale: bool,
) -> anyhow::Result<(ModeResult, Option<ScaleResult>)> {
    let database = BenchDatabase::create(&options.server).await?;
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&database.url())?;
    let outcome = async {
        let extra = memory::local_settings(vars);
        let settings = Settings {
            database_url: database.url(),
            llm_base_url: mock.base_url.clone(),
            job_workers: None,
            no_housekeeping: false,
            extra,
        };
        let service = Service::start(binary, &settings, client)
            .await
            .context("starting the service")?;
        let api = Api::new(client, &service.base_url);
        let measured = async {
            let result = measure(&api, mock, samples, label).await?;
            if !vars.is_empty() {
                // What the hybrid rows rest on: a message without its vector is found by
                // words alone.
                let (messages, vectors): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM messages),
                        (SELECT COUNT(*) FROM memory_vectors WHERE kind = 'message')",
                )
                .fetch_one(&pool)
                .await?;
                eprintln!("  {vectors} message vectors for {messages} messages");
            }
            let scale = match measure_scale {
                true => Some(scale(&api, &pool, samples).await?),
                false => None,
            };
            anyhow::Ok((result, scale))
        }
        .await;
        match measured {
            Ok(measured) => {
                service.stop().await?;
                Ok(measured)
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

fn import_body(
    turns: &[&natural::Turn],
    sample: &Sample,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    turns
        .iter()
        .enumerate()
        .map(|(i, turn)| {
            let role = if turn.speaker == sample.speaker_a {
                "player"
            } else {
                "character"
            };
            json!({
                "client_id": turn.dia_id,
                "role": role,
                "content": turn.text,
                "created_at": (at + ChronoDuration::seconds(30 * i as i64)).to_rfc3339(),
            })
        })
        .collect()
}

async fn measure(
    api: &Api,
    mock: &MockProvider,
    samples: &[Sample],
    label: &str,
) -> anyhow::Result<ModeResult> {
    Turns::new(api.client.clone(), &api.base)
        .create_character()
        .await?;
    let mut result = ModeResult {
        label: label.to_owned(),
        ..ModeResult::default()
    };
    let started = Instant::now();
    for sample in samples {
        let api = api_of(api, sample);
        api.put_character(&sample.speaker_b).await?;
        for copy in 0..copies(sample) {
            for session in &sample.sessions {
                let turns: Vec<&natural::Turn> = session.turns.iter().collect();
                api.import(
                    &conversation_of(sample, session.number, copy),
                    &player_of(sample, copy),
                    &import_body(&turns, sample, session.at),
                )
                .await?;
            }
        }
    }
    result.import_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (drained, _) = api.drain(JOBS_PATIENCE).await?;
    result.jobs_secs = started.elapsed().as_secs_f64();
    result.drained = drained;
    eprintln!(
        "  imported in {:.1} s, background work {:.1} s{}",
        result.import_secs,
        result.jobs_secs,
        if drained { "" } else { " (NOT drained)" }
    );
    // 1. Search.
    for sample in samples {
        let api = api_of(api, sample);
        let turns = placed(sample);
        let by_place: HashMap<(&str, u32), &str> = turns
            .iter()
            .map(|(conversation, seq, turn)| ((conversation.as_str(), *seq), turn.dia_id.as_str()))
            .collect();
        let player = player_of(sample, 0);
        for question in &sample.questions {
            let started = Instant::now();
            let found = api.search_kinds(&player, &question.text, "message").await?;
            result
                .search_ms
                .push(started.elapsed().as_secs_f64() * 1000.0);
            let ranked: Vec<&str> = found
                .iter()
                .filter_map(|hit| {
                    by_place
                        .get(&(hit.conversation_id.as_deref()?, hit.seq?))
                        .copied()
                })
                .collect();
            result
                .recall
                .add(question.category, first_hit(&ranked, &question.evidence));
        }
    }
    eprintln!(
        "  recall@5 {}/{}, @10 {}/{}",
        result.recall.at5, result.recall.questions, result.recall.at10, result.recall.questions
    );
    // 2. Turns: the notes block. Asked in a conversation of their own, after every
    // search, so their lines never stand in a search's way.
    for sample in samples {
        let texts: HashMap<&str, String> = sample
            .sessions
            .iter()
            .flat_map(|session| &session.turns)
            .map(|turn| (turn.dia_id.as_str(), normalized(&turn.text)))
            .collect();
        let api = api_of(api, sample);
        for (i, question) in sample.questions.iter().enumerate() {
            let copy = i / TURNS_PER_COPY;
            let player = player_of(sample, copy);
            let conversation = format!("{}-{copy}-asked", slug(&sample.id));
            result.turns += 1;
            if let Err(error) = api.turn(&conversation, &player, &question.text).await {
                result.notes.push(format!("a turn failed: {error:#}"));
                continue;
            }
            let notes = mock
                .last_conversation_request()
                .as_deref()
                .and_then(notes_block)
                .unwrap_or_default();
            result.notes_tokens.push(tokens::count(&notes));
            let notes = normalized(&notes);
            let held = question.evidence.iter().any(|id| {
                texts.get(id.as_str()).is_some_and(|text| {
                    let head: String = text.chars().take(120).collect();
                    !head.is_empty() && notes.contains(&head)
                })
            });
            result.notes_hold_evidence += usize::from(held);
        }
    }
    Ok(result)
}

/// One pair grown to `SCALE_MESSAGES` messages (the datasets' lines, again and again,
/// in conversations of 500) and `SCALE_FACTS` facts; search latency over the
/// questions, and a turn's latency there against a pair with no history.
async fn scale(
    api: &Api,
    pool: &sqlx::MySqlPool,
    samples: &[Sample],
) -> anyhow::Result<ScaleResult> {
    let started = Instant::now();
    let lines: Vec<(&Sample, &natural::Turn)> = samples
        .iter()
        .flat_map(|sample| {
            sample
                .sessions
                .iter()
                .flat_map(move |session| session.turns.iter().map(move |turn| (sample, turn)))
        })
        .collect();
    let questions: Vec<&str> = samples
        .iter()
        .flat_map(|sample| sample.questions.iter().map(|q| q.text.as_str()))
        .collect();
    let at = chrono::Utc::now() - ChronoDuration::days(200);
    for (chunk_index, chunk) in (0..SCALE_MESSAGES)
        .collect::<Vec<_>>()
        .chunks(500)
        .enumerate()
    {
        let body: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                let (sample, turn) = lines[i % lines.len()];
                json!({
                    "client_id": format!("m-{i}"),
                    "role": if turn.speaker == sample.speaker_a { "player" } else { "character" },
                    "content": turn.text,
                    "created_at": (at + ChronoDuration::minutes(i as i64)).to_rfc3339(),
                })
            })
            .collect();
        api.import(&format!("recall-scale-{chunk_index}"), SCALE_PLAYER, &body)
            .await?;
    }
    database::insert_facts(pool, SCALE_PLAYER, CHARACTER, SCALE_FACTS).await?;
    api.drain(JOBS_PATIENCE).await?;
    let mut result = ScaleResult {
        seeding_secs: started.elapsed().as_secs_f64(),
        ..ScaleResult::default()
    };
    // A first search builds the replica's index of the pair; the figures are of the
    // searches after it, as a replica serving the pair has it.
    api.search_kinds(SCALE_PLAYER, questions[0], "fact,message")
        .await?;
    for query in questions.iter().cycle().take(SCALE_QUERIES) {
        let started = Instant::now();
        api.search_kinds(SCALE_PLAYER, query, "fact,message")
            .await?;
        result
            .search_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
    }
    for (player, times) in [
        ("p-recall-empty", &mut result.turn_ms_empty),
        (SCALE_PLAYER, &mut result.turn_ms_full),
    ] {
        for (i, query) in questions.iter().cycle().take(100).enumerate() {
            let started = Instant::now();
            api.turn(&format!("{player}-turns-{}", i / 20), player, query)
                .await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(result)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

pub(crate) fn p95(values: &[f64]) -> f64 {
    memory::nearest_rank(&sorted(values), 95.0)
}

pub(crate) fn ratio(hits: usize, of: usize) -> String {
    if of == 0 {
        return "–".to_owned();
    }
    format!("{:.3} ({hits}/{of})", hits as f64 / of as f64)
}

pub fn render(results: &Results, info: &report::RunInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADING}\n");
    let _ = writeln!(
        out,
        "Command (from the repository root; MariaDB as `root@127.0.0.1:3306`, or set `BENCH_MYSQL_URL`; the e5 rows need python3 with pip, see `scripts/local-embeddings.sh`):\n\n    {}\n",
        info.command
    );
    let _ = writeln!(out, "{}\n", info.describe());
    let messages: usize = results
        .samples
        .iter()
        .map(|s| s.sessions.iter().map(|x| x.turns.len()).sum::<usize>())
        .sum();
    let questions: usize = results.samples.iter().map(|s| s.questions.len()).sum();
    let mut files: Vec<String> = results
        .samples
        .iter()
        .map(|sample| {
            format!(
                "`{}` ({}: {} as the player, {} as the character, {} sessions, {} messages, {} questions)",
                sample.file,
                sample.id,
                sample.speaker_a,
                sample.speaker_b,
                sample.sessions.len(),
                sample.sessions.iter().map(|x| x.turns.len()).sum::<usize>(),
                sample.questions.len()
            )
        })
        .collect();
    files.dedup();
    let _ = writeln!(
        out,
        "Data: {} samples, {messages} messages, {questions} questions with the ids of their evidence messages: {}.\n",
        results.samples.len(),
        files.join(", ")
    );
    let mut categories: Vec<u32> = results
        .samples
        .iter()
        .flat_map(|s| s.questions.iter().map(|q| q.category))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    categories.sort();
    let _ = write!(out, "| retrieval | **recall@5** | recall@10 |");
    for category in &categories {
        let _ = write!(out, " @5 {} |", natural::category_name(*category));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|---|---|{}", "---|".repeat(categories.len()));
    let row = |out: &mut String, label: &str, recall: &Recall| {
        let _ = write!(
            out,
            "| {label} | {} | {} |",
            ratio(recall.at5, recall.questions),
            ratio(recall.at10, recall.questions)
        );
        for category in &categories {
            let (n, at5, _) = recall
                .by_category
                .get(category)
                .copied()
                .unwrap_or_default();
            let _ = write!(out, " {} |", ratio(at5, n));
        }
        let _ = writeln!(out);
    };
    for (label, recall) in &results.baselines {
        match recall {
            Ok(recall) => row(&mut out, label, recall),
            Err(why) => {
                let _ = writeln!(
                    out,
                    "| {label} | not run: {why} | | {}",
                    "|".repeat(categories.len())
                );
            }
        }
    }
    for mode in &results.modes {
        match &mode.skipped {
            None => row(&mut out, &format!("**{}**", mode.label), &mode.recall),
            Some(why) => {
                let _ = writeln!(
                    out,
                    "| {} | not run: {why} | | {}",
                    mode.label,
                    "|".repeat(categories.len())
                );
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| service mode | notes quote an evidence message | notes tokens (median / max) | search p50 / p95 | import / background work |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for mode in results.modes.iter().filter(|m| m.skipped.is_none()) {
        let tokens: Vec<f64> = mode.notes_tokens.iter().map(|t| f64::from(*t)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} / {:.0} | {:.1} / {:.1} ms | {:.1} s / {:.1} s{} |",
            mode.label,
            ratio(mode.notes_hold_evidence, mode.turns),
            median(&tokens),
            tokens.iter().copied().fold(0.0, f64::max),
            median(&mode.search_ms),
            p95(&mode.search_ms),
            mode.import_secs,
            mode.jobs_secs,
            if mode.drained { "" } else { " (not drained)" }
        );
    }
    let _ = writeln!(
        out,
        "\nThe notes: each question is the line of one turn, the history imported once per {TURNS_PER_COPY} questions (a player per copy), so a turn recalls the history and at most {} earlier questions with the mock's replies; the import and background times count every copy.",
        TURNS_PER_COPY - 1
    );
    if let Some(scale) = &results.scale {
        let _ = writeln!(
            out,
            "\nAt scale (lexical mode; one pair of {SCALE_MESSAGES} messages and {SCALE_FACTS} facts, seeded in {:.0} s): `/memory/search?kinds=fact,message` p50 / p95 **{:.1} / {:.1} ms** over {SCALE_QUERIES} searches; a turn (mock provider, 0 ms) p50 / p95 {:.1} / {:.1} ms against {:.1} / {:.1} ms for a pair with no history: **{:+.1} ms at p95** for its retrieval.",
            scale.seeding_secs,
            median(&scale.search_ms),
            p95(&scale.search_ms),
            median(&scale.turn_ms_full),
            p95(&scale.turn_ms_full),
            median(&scale.turn_ms_empty),
            p95(&scale.turn_ms_empty),
            p95(&scale.turn_ms_full) - p95(&scale.turn_ms_empty),
        );
    }
    for mode in &results.modes {
        for note in mode.notes.iter().take(3) {
            let _ = writeln!(out, "\n- {}: {note}", mode.label);
        }
    }
    out
}
