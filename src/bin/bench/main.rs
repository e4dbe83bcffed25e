//! `cargo run --release --bin bench -- all`: the load benchmark (issue 12). Starts a mock
//! provider in this process, the release service as a child process on a fresh
//! database, and a closed-loop load generator, all on 127.0.0.1; prints the figures as
//! markdown against the targets and (for `all`) writes them into
//! `BENCHMARKS.md`. Bounded: `all` takes at most about 10 minutes, the build excluded.
//!
//! `bench memory` is the memory benchmark (issue 13): recall of `/memory/search` over
//! generated long conversations, memory tokens per turn, search latency up to 10,000
//! facts and messages, duplicates and contradictions, lexically, with the mock's
//! embeddings and with a local model; it writes the `## Memory benchmark` section.
//!
//! `bench recall` is the recall benchmark on long natural conversations (issue 24):
//! `/memory/search` and the turn's notes against a plain BM25 and a plain e5 computed by
//! the bench, lexically and with a local e5; it writes the `## Recall on natural
//! conversations` section.
//!
//! Not a test and not run by CI: figures depend on the machine.

mod baseline;
mod ceiling;
mod client;
mod database;
mod dataset;
mod extraction;
mod load;
mod memory;
mod mock;
mod mock_embeddings;
mod natural;
mod ranker;
mod recall;
mod report;
mod runs;
mod service;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runs::{Bench, Parts, Results};
use std::{path::Path, process::ExitCode, time::Duration};
use tokio::time::Instant;

/// The whole of `all`, from the first start-up to the database dropped. The memory run
/// stops early enough to stay inside it.
const BUDGET: Duration = Duration::from_secs(600);
/// Kept back from the budget for stopping the service and dropping the database.
const TEARDOWN: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(about = "Load benchmark of npc-dialogue (all traffic on 127.0.0.1)")]
struct Cli {
    #[command(subcommand)]
    part: Part,
    /// Rounds of each latency, streaming and saturation run; figures are their medians.
    #[arg(long, default_value_t = 3, global = true)]
    rounds: usize,
    /// Turns the memory run goes to (RSS is read at 10,000 and there).
    #[arg(long, default_value_t = 100_000, global = true)]
    soak_turns: u64,
    /// Print the report without writing BENCHMARKS.md (`all` writes it otherwise).
    #[arg(long, global = true)]
    no_write: bool,
    /// MariaDB server to create the bench database on.
    #[arg(
        long,
        env = "BENCH_MYSQL_URL",
        default_value = "mysql://root@127.0.0.1:3306",
        global = true
    )]
    mysql_url: String,
    /// Memory benchmark: the largest facts-and-messages size any run seeds.
    #[arg(long, default_value_t = 10_000, global = true)]
    max_scale: usize,
    /// Memory benchmark: the largest facts-and-messages size the real model's run seeds.
    #[arg(long, default_value_t = 1_000, global = true)]
    local_max_scale: usize,
    /// Memory benchmark: use the local embedding server only if it already runs.
    #[arg(long, global = true)]
    no_local_start: bool,
    /// Memory benchmark: no real-model run.
    #[arg(long, global = true)]
    skip_local: bool,
    /// Recall benchmark: a LoCoMo-shaped JSON file to read (repeatable; default every
    /// file of `benches/data/natural`).
    #[arg(long, global = true)]
    data: Vec<std::path::PathBuf>,
    /// Recall benchmark: only the service's ranker called in this process, printed
    /// (for trying a change in seconds; writes nothing).
    #[arg(long, global = true)]
    in_process: bool,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Everything below, then BENCHMARKS.md.
    All,
    /// The floor and turns at c = 1, 16, 64 over a 50 ms provider.
    Latency,
    /// Time to the first streamed delta vs the provider's first token.
    Streaming,
    /// Turns/s at c = 64 over a 0 ms provider vs the database-only ceiling.
    Saturation,
    /// Statements and transactions per turn from MariaDB's status counters.
    Statements,
    /// RSS of the service at start, after 10k and after 100k turns.
    Rss,
    /// Prompt tokens and latency at message 20, 200 and 1,000 of one conversation.
    History,
    /// Turn latency with 10, 100 and 1,000 facts stored.
    Facts,
    /// Turn latency with 0, 100 and 1,000 lore entries.
    Lore,
    /// The memory benchmark (not part of `all`): recall, memory tokens, search latency,
    /// duplicates and contradictions; lexical, mock embeddings, local model.
    Memory,
    /// The recall benchmark on natural conversations (not part of `all`): lexical and
    /// hybrid against plain BM25 and e5 baselines, notes, latency at 10k messages.
    Recall,
    /// Fact extraction by the local model of `scripts/local-llm.sh` on a natural
    /// conversation (not part of `all`), judged by the bench's rules.
    Extraction,
}

impl Part {
    fn parts(self) -> Parts {
        let all = self == Self::All;
        Parts {
            latency: all || self == Self::Latency,
            streaming: all || self == Self::Streaming,
            history: all || self == Self::History,
            facts: all || self == Self::Facts,
            lore: all || self == Self::Lore,
            statements: all || self == Self::Statements,
            saturation: all || self == Self::Saturation,
            rss: all || self == Self::Rss,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Latency => "latency",
            Self::Streaming => "streaming",
            Self::Saturation => "saturation",
            Self::Statements => "statements",
            Self::Rss => "rss",
            Self::History => "history",
            Self::Facts => "facts",
            Self::Lore => "lore",
            Self::Memory => "memory",
            Self::Recall => "recall",
            Self::Extraction => "extraction",
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    if cli.part == Part::Memory {
        return run_memory(cli).await;
    }
    if cli.part == Part::Recall {
        return run_recall(cli).await;
    }
    if cli.part == Part::Extraction {
        return run_extraction(cli).await;
    }
    let Standalone {
        binary,
        server,
        started,
        info,
        ..
    } = Standalone::begin(cli).await?;
    let database = database::BenchDatabase::create(&server).await?;
    eprintln!(
        "bench {}: database {} (dropped at the end)",
        cli.part.name(),
        database.name
    );
    let mut results = Results::default();
    // Interrupted or out of time, the services are killed (dropped) and the database
    // still dropped.
    let limit = BUDGET - TEARDOWN / 3;
    let measured = tokio::time::timeout(
        limit,
        measure(cli, &binary, &database, started, &mut results),
    );
    let outcome = tokio::select! {
        outcome = measured => outcome.unwrap_or_else(|_| {
            Err(anyhow::anyhow!("out of time: the runs took over {} s", limit.as_secs()))
        }),
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let dropped = database.drop().await;
    outcome?;
    dropped?;
    let info = report::RunInfo {
        rounds: cli.rounds,
        total: started.elapsed(),
        ..info
    };
    let markdown = report::render(&results, &info);
    println!("{markdown}");
    if cli.part == Part::All && !cli.no_write {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        let document = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, report::replace_section(&document, &markdown))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("written to {}", path.display());
    }
    eprintln!("total run time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_info(cli: &Cli, mariadb: String, load_before: String) -> report::RunInfo {
    report::RunInfo {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        command: command(cli),
        commit: git_commit(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        cpu: cpu_model(),
        ram_gib: ram_gib(),
        mariadb,
        rounds: 1,
        total: Duration::ZERO,
        load_before,
    }
}

/// Writes `markdown` as the section under `heading` of BENCHMARKS.md.
fn write_section(heading: &str, markdown: &str) -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let document = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(
        &path,
        report::replace_section_under(&document, heading, markdown),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("written to {}", path.display());
    Ok(())
}

/// What a run starts from: the service binary, the MariaDB server named, an HTTP client,
/// and the run's facts (clock, load before).
struct Standalone {
    binary: std::path::PathBuf,
    server: String,
    client: reqwest::Client,
    started: Instant,
    info: report::RunInfo,
}

impl Standalone {
    async fn begin(cli: &Cli) -> anyhow::Result<Self> {
        let binary = service::binary()?;
        let started = Instant::now();
        let load_before = load_average();
        let server = cli.mysql_url.trim_end_matches('/').to_owned();
        let mariadb = database::server_version(&server)
            .await
            .with_context(|| format!("connecting to {server}"))?;
        Ok(Self {
            binary,
            server,
            client: client::http_client()?,
            started,
            info: run_info(cli, mariadb, load_before),
        })
    }

    /// Prints the report `render` makes and writes it under `heading` (unless
    /// `--no-write`).
    fn finish(
        mut self,
        cli: &Cli,
        heading: &str,
        render: impl FnOnce(&report::RunInfo) -> String,
    ) -> anyhow::Result<()> {
        self.info.total = self.started.elapsed();
        let markdown = render(&self.info);
        println!("{markdown}");
        if !cli.no_write {
            write_section(heading, &markdown)?;
        }
        eprintln!(
            "total run time: {:.0} s",
            self.started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

async fn run_recall(cli: &Cli) -> anyhow::Result<()> {
    let run = Standalone::begin(cli).await?;
    let options = recall::Options {
        server: run.server.clone(),
        data: cli.data.clone(),
        no_local_start: cli.no_local_start,
        skip_local: cli.skip_local,
    };
    if cli.in_process {
        return ranker::run_in_process(&options, &run.client).await;
    }
    let mock = mock::MockProvider::start().await?;
    let results = tokio::select! {
        outcome = recall::run(&options, &run.binary, &run.client, &mock) => outcome?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    };
    run.finish(cli, recall::HEADING, |info| recall::render(&results, info))
}

async fn run_extraction(cli: &Cli) -> anyhow::Result<()> {
    let run = Standalone::begin(cli).await?;
    let results = tokio::select! {
        outcome = extraction::run(&cli.data, &run.server, cli.no_local_start, &run.binary, &run.client) => outcome?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    };
    run.finish(cli, extraction::HEADING, |info| {
        extraction::render(&results, info)
    })
}

async fn run_memory(cli: &Cli) -> anyhow::Result<()> {
    let run = Standalone::begin(cli).await?;
    let options = memory::Options {
        server: run.server.clone(),
        local_max_scale: cli.local_max_scale.min(cli.max_scale),
        max_scale: cli.max_scale,
        no_local_start: cli.no_local_start,
        skip_local: cli.skip_local,
    };
    let mock = mock::MockProvider::start().await?;
    // Each mode drops its own database, also on failure; ^C kills the service (dropped)
    // and may leave that mode's `npc_bench_…` database behind.
    let results = tokio::select! {
        outcome = memory::run(&options, &run.binary, &run.client, &mock) => outcome?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    };
    let data = dataset::generate(dataset::SEED);
    run.finish(cli, memory::HEADING, |info| {
        memory::render(&results, &data, info)
    })
}

async fn measure(
    cli: &Cli,
    binary: &Path,
    database: &database::BenchDatabase,
    started: Instant,
    results: &mut Results,
) -> anyhow::Result<()> {
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&database.url())?;
    let bench = Bench {
        client: client::http_client()?,
        mock: mock::MockProvider::start().await?,
        binary: binary.to_owned(),
        server: database.server.clone(),
        database_pid: database::server_pid(&database.server).await,
        database_url: database.url(),
        pool: pool.clone(),
        rounds: cli.rounds.max(1),
        deadline: started + BUDGET - TEARDOWN,
        soak_turns: cli.soak_turns,
    };
    let outcome = bench.run(cli.part.parts(), results).await;
    pool.close().await;
    outcome
}

fn command(cli: &Cli) -> String {
    let mut command = if matches!(cli.part, Part::Memory | Part::Recall | Part::Extraction) {
        format!(
            "cargo build --release && ./target/release/bench {}",
            cli.part.name()
        )
    } else {
        format!(
            "cargo build --release && cargo run --release --bin bench -- {}",
            cli.part.name()
        )
    };
    if cli.part == Part::Memory && cli.max_scale != 10_000 {
        command.push_str(&format!(" --max-scale {}", cli.max_scale));
    }
    if cli.part == Part::Memory && cli.local_max_scale != 1_000 {
        command.push_str(&format!(" --local-max-scale {}", cli.local_max_scale));
    }
    if cli.rounds != 3 {
        command.push_str(&format!(" --rounds {}", cli.rounds));
    }
    if cli.soak_turns != 100_000 {
        command.push_str(&format!(" --soak-turns {}", cli.soak_turns));
    }
    for file in &cli.data {
        command.push_str(&format!(" --data {}", file.display()));
    }
    if cli.skip_local {
        command.push_str(" --skip-local");
    }
    command
}

fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn ram_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
