//! The figures as markdown, against the targets, and their place in
//! `BENCHMARKS.md` (the `## Load benchmark` section, replaced or appended; the other
//! sections stay as they are).

use crate::load::median;
use crate::runs::{
    CONCURRENCIES, COUNTED_TURNS, FACT_TURNS, Results, SATURATION_CONCURRENCY, SLOW_PROVIDER,
    SOAK_CONVERSATIONS, STREAM_CONCURRENCY, ScaleRow, Stats,
};
use crate::service::CpuPerTurn;
use std::{fmt::Write as _, time::Duration};

pub const HEADING: &str = "## Load benchmark";

/// Where and how the figures were made.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub date: String,
    pub command: String,
    pub commit: Option<String>,
    pub cores: usize,
    pub cpu: String,
    pub ram_gib: f64,
    pub mariadb: String,
    pub rounds: usize,
    pub total: Duration,
    pub load_before: String,
}

impl RunInfo {
    /// "Run <date> at commit <c>, <n> s in all (build excluded). Machine: …"
    pub fn describe(&self) -> String {
        let commit = self
            .commit
            .as_deref()
            .map(|commit| format!(" at commit `{commit}`"))
            .unwrap_or_default();
        format!(
            "Run {}{commit}, {:.0} s in all (build excluded). Machine: {} cores ({}), {:.1} GiB \
             RAM, MariaDB {}, load average {} before the run.",
            self.date,
            self.total.as_secs_f64(),
            self.cores,
            self.cpu,
            self.ram_gib,
            self.mariadb,
            self.load_before
        )
    }
}

/// The targets of issue 12.
const ADDED_P50_MS: f64 = 3.0;
const ADDED_P99_MS: f64 = 10.0;
const SATURATION_SHARE: f64 = 0.60;
const FIRST_DELTA_MARGIN_MS: f64 = 2.0;
const RSS_MB: f64 = 40.0;
const GROWTH: f64 = 1.1;

fn verdict(pass: bool) -> &'static str {
    if pass { "**pass**" } else { "**FAIL**" }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Median over the rounds of one figure of the rounds at `concurrency`.
fn latency_median(
    results: &Results,
    concurrency: usize,
    figure: impl Fn(&Stats, &Stats) -> f64,
) -> f64 {
    let values: Vec<f64> = results
        .latency
        .iter()
        .filter(|round| round.concurrency == concurrency)
        .map(|round| figure(&round.floor, &round.turns))
        .collect();
    median(&values)
}

/// Median CPU ms per turn of each process over the rounds, as `service / MariaDB /
/// bench` (a process not measured as `–`).
fn cpu_cell<'a>(rounds: impl Iterator<Item = &'a CpuPerTurn> + Clone) -> String {
    let one = |pick: fn(&CpuPerTurn) -> Option<f64>| {
        let values: Vec<f64> = rounds.clone().filter_map(pick).collect();
        if values.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.2}", median(&values))
        }
    };
    format!(
        "{} / {} / {}",
        one(|c| c.service),
        one(|c| c.database),
        one(|c| c.bench)
    )
}

fn range(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

pub fn render(results: &Results, info: &RunInfo) -> String {
    let mut out = String::new();
    let _ = render_into(&mut out, results, info);
    out
}

fn render_into(out: &mut String, r: &Results, info: &RunInfo) -> std::fmt::Result {
    writeln!(out, "{HEADING}\n")?;
    writeln!(
        out,
        "Command (from the repository root; MariaDB as `root@127.0.0.1:3306`, or set \
         `BENCH_MYSQL_URL=mysql://user@host:port`):\n\n    {}\n",
        info.command
    )?;
    writeln!(
        out,
        "Source: `src/bin/bench/`, a second binary of the crate (`npc-dialogue` is built and \
         run as it ships). `bench -- latency | streaming | saturation | statements | rss | \
         history | facts | lore` runs one part and prints it without writing this file.\n"
    )?;
    let commit = info
        .commit
        .as_deref()
        .map(|commit| format!(" at commit `{commit}`"))
        .unwrap_or_default();
    writeln!(
        out,
        "Run {}{commit}: {:.0} s in all (start-ups of the services included, the build \
         excluded); figures are medians of {} rounds unless said otherwise.  ",
        info.date,
        info.total.as_secs_f64(),
        info.rounds
    )?;
    writeln!(
        out,
        "Machine: {} cores ({}), {:.1} GiB RAM, MariaDB {}. The service, MariaDB, the mock \
         provider and the load generator share those cores; 1-minute load average {} \
         just before the run.\n",
        info.cores, info.cpu, info.ram_gib, info.mariadb, info.load_before
    )?;
    writeln!(
        out,
        "How: a fresh database `npc_bench_<uuid>` (dropped at the end); the release binary \
         `target/release/npc-dialogue` as a child process on 127.0.0.1, configured by \
         environment only (`LLM_API_KEY=x`, no `GAME_API_KEYS`, quotas, budgets and the HTTP \
         rate limit out of reach, `LOG_FORMAT=json` to a file, everything else default); a \
         mock OpenAI-compatible provider in the bench process (axum, canned bytes, a fixed \
         latency, 412 + 18 tokens of usage, streaming with `include_usage`); a Rust load \
         generator (reqwest, keep-alive) in a closed loop at fixed concurrency, each worker \
         on its own conversations (so no turn waits for another), one player per \
         conversation. Latency, streaming, history and facts ran against a service with \
         background work on (`JOB_WORKERS` default, 2); statement counts, saturation and \
         memory against a second start of it with `JOB_WORKERS=0` and housekeeping \
         pushed out, so that only turns reach the database (the jobs the turns schedule \
         pile up unworked).\n"
    )?;

    targets(out, r)?;
    latency(out, r)?;
    saturation(out, r)?;
    streaming(out, r)?;
    statements(out, r)?;
    rss(out, r)?;
    history(out, r)?;
    facts(out, r)?;
    lore(out, r)?;
    if !r.failures.is_empty() {
        writeln!(out, "### Failures\n")?;
        for failure in &r.failures {
            writeln!(out, "- {failure}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn targets(out: &mut String, r: &Results) -> std::fmt::Result {
    writeln!(out, "### Against the targets\n")?;
    writeln!(out, "| target | measured | |")?;
    writeln!(out, "|---|---|---|")?;
    if !r.latency.is_empty() {
        let added50 = latency_median(r, 16, |floor, turns| turns.p50 - floor.p50);
        let added99 = latency_median(r, 16, |floor, turns| turns.p99 - floor.p99);
        writeln!(
            out,
            "| added latency at c = 16 over a 50 ms provider, p50 ≤ {ADDED_P50_MS} ms | +{added50:.2} ms | {} |",
            verdict(added50 <= ADDED_P50_MS)
        )?;
        writeln!(
            out,
            "| … p99 ≤ {ADDED_P99_MS} ms | +{added99:.2} ms | {} |",
            verdict(added99 <= ADDED_P99_MS)
        )?;
    }
    if let Some((answered, stored)) = r.persisted {
        let refused: u64 = r
            .latency
            .iter()
            .map(|round| round.turns.failures + round.turns.fallbacks)
            .sum();
        writeln!(
            out,
            "| every turn persisted (latency runs) | {answered} turns answered, {stored} messages stored, {refused} failed or fell back | {} |",
            verdict(refused == 0 && stored == 2 * answered)
        )?;
    }
    if !r.saturation.is_empty() {
        let share = saturation_share(r);
        writeln!(
            out,
            "| turns/s at saturation (c = {SATURATION_CONCURRENCY}, 0 ms provider) ≥ {:.0} % of the database-only ceiling | {:.1} % | {} |",
            SATURATION_SHARE * 100.0,
            share * 100.0,
            verdict(share >= SATURATION_SHARE)
        )?;
    }
    if !r.streaming.is_empty() {
        let (token, delta) = streaming_p99(r);
        writeln!(
            out,
            "| first delta p99 ≤ the provider's first token p99 + {FIRST_DELTA_MARGIN_MS} ms (c = {STREAM_CONCURRENCY}) | {delta:.2} ms vs {token:.2} ms (+{:.2} ms) | {} |",
            delta - token,
            verdict(delta <= token + FIRST_DELTA_MARGIN_MS)
        )?;
    }
    if let Some(last) = r.rss.last().filter(|_| r.soak_goal.is_some()) {
        let reached = !r.soak_goal.is_some_and(|(_, out_of_time)| out_of_time);
        let goal = r.soak_goal.map_or(0, |(goal, _)| goal);
        let what = if reached {
            format!("{:.1} MB after {} turns", mb(last.bytes), last.turns)
        } else {
            format!(
                "{:.1} MB after {} turns (the time allowed ran out before {goal}; nothing extrapolated)",
                mb(last.bytes),
                last.turns
            )
        };
        writeln!(
            out,
            "| RSS ≤ {RSS_MB:.0} MB after {goal} turns over {SOAK_CONVERSATIONS} conversations | {what} | {} |",
            verdict(mb(last.bytes) <= RSS_MB)
        )?;
    }
    if let (Some(first), Some(last)) = (r.history.first(), r.history.last()) {
        let tokens = f64::from(last.prompt_tokens) / f64::from(first.prompt_tokens.max(1));
        let latency = last.latency_median / first.latency_median;
        writeln!(
            out,
            "| history growth: prompt tokens at message {} ≤ {GROWTH}× message {} | ×{tokens:.2} ({} vs {}) | {} |",
            last.message,
            first.message,
            last.prompt_tokens,
            first.prompt_tokens,
            verdict(tokens <= GROWTH)
        )?;
        writeln!(
            out,
            "| … turn latency (0 ms provider; per round the median of {} turns, then the median of the rounds) | ×{latency:.2} ({:.2} vs {:.2} ms) | {} |",
            crate::runs::HISTORY_WINDOW,
            last.latency_median,
            first.latency_median,
            verdict(latency <= GROWTH)
        )?;
    }
    writeln!(out)
}

fn saturation_share(r: &Results) -> f64 {
    let shares: Vec<f64> = r
        .saturation
        .iter()
        .map(|round| round.service.rate / round.ceiling.rate)
        .collect();
    median(&shares)
}

fn streaming_p99(r: &Results) -> (f64, f64) {
    let token: Vec<f64> = r.streaming.iter().map(|s| s.first_token.p99).collect();
    let delta: Vec<f64> = r.streaming.iter().map(|s| s.first_delta.p99).collect();
    (median(&token), median(&delta))
}

fn latency(out: &mut String, r: &Results) -> std::fmt::Result {
    if r.latency.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "### Turns over a {} ms provider\n",
        SLOW_PROVIDER.as_millis()
    )?;
    writeln!(
        out,
        "Each round: the floor (the mock called straight from the load generator, same \
         concurrency, same prompt size; 2 s), then turns (`POST \
         /conversations/{{id}}/messages`, 5 s), at c = 1, 16, 64 in turn. Added = turn − \
         floor at the same percentile, in the same round; medians of the rounds, the \
         rounds' range in brackets.\n"
    )?;
    writeln!(
        out,
        "| c | floor p50 | floor p99 | turns/s | turn p50 | turn p99 | added p50 | added p99 | turns measured | CPU ms per turn: service / MariaDB / bench |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|")?;
    for c in CONCURRENCIES {
        let rounds: Vec<_> = r.latency.iter().filter(|l| l.concurrency == c).collect();
        let fig = |f: &dyn Fn(&Stats, &Stats) -> f64| -> String {
            let values: Vec<f64> = rounds.iter().map(|l| f(&l.floor, &l.turns)).collect();
            let (min, max) = range(&values);
            format!("{:.2} ({min:.2}–{max:.2})", median(&values))
        };
        let measured: u64 = rounds.iter().map(|l| l.turns.ok).sum();
        writeln!(
            out,
            "| {c} | {} | {} | {} | {} | {} | {} | {} | {measured} | {} |",
            fig(&|f, _| f.p50),
            fig(&|f, _| f.p99),
            {
                let values: Vec<f64> = rounds.iter().map(|l| l.turns.rate).collect();
                format!("{:.0}", median(&values))
            },
            fig(&|_, t| t.p50),
            fig(&|_, t| t.p99),
            fig(&|f, t| t.p50 - f.p50),
            fig(&|f, t| t.p99 - f.p99),
            cpu_cell(rounds.iter().map(|l| &l.cpu)),
        )?;
    }
    writeln!(
        out,
        "\nTimes in ms. CPU: user + system time of each process over the turn runs \
         (`/proc/<pid>/stat`), per turn; the service's and MariaDB's include the \
         background jobs' work, the bench's is the mock provider and the load generator."
    )?;
    if let Some(pending) = r.jobs_pending {
        writeln!(
            out,
            "Background jobs (summaries, extraction; the same 50 ms provider) waiting when \
             the latency runs ended: {pending}{}.",
            if pending > 100 {
                ": the two workers did not keep up, so they were busy all along"
            } else {
                ""
            }
        )?;
    }
    writeln!(out)
}

fn saturation(out: &mut String, r: &Results) -> std::fmt::Result {
    if r.saturation.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "### Saturation and the database-only ceiling (c = {SATURATION_CONCURRENCY}, 0 ms provider)\n"
    )?;
    writeln!(
        out,
        "Ceiling: the least a turn asks of MariaDB, a loop over sqlx with a pool of the \
         service's size (32) and no HTTP: one transaction reading the window of 10 messages, \
         counting the player's calls of the last hour, inserting both messages (one \
         multi-row statement) and a usage row, then commit, on tables made `LIKE` the \
         service's (6 statements). Each round runs the ceiling (5 s) and then the service \
         (6 s), so both meet the machine in the same state.\n"
    )?;
    writeln!(
        out,
        "| round | ceiling turns/s | ceiling p50 / p99 ms | ceiling CPU ms per turn: – / MariaDB / bench | service turns/s | service p50 / p99 ms | service CPU ms per turn: service / MariaDB / bench | service / ceiling |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|")?;
    for (i, round) in r.saturation.iter().enumerate() {
        writeln!(
            out,
            "| {} | {:.0} | {:.2} / {:.2} | {} | {:.0} | {:.2} / {:.2} | {} | {:.1} % |",
            i + 1,
            round.ceiling.rate,
            round.ceiling.p50,
            round.ceiling.p99,
            cpu_cell(std::iter::once(&round.ceiling_cpu)),
            round.service.rate,
            round.service.p50,
            round.service.p99,
            cpu_cell(std::iter::once(&round.service_cpu)),
            100.0 * round.service.rate / round.ceiling.rate
        )?;
    }
    let med = |f: &dyn Fn(&crate::runs::SaturationRound) -> f64| {
        median(&r.saturation.iter().map(f).collect::<Vec<_>>())
    };
    writeln!(
        out,
        "| median | {:.0} | {:.2} / {:.2} | {} | {:.0} | {:.2} / {:.2} | {} | {:.1} % |\n",
        med(&|s| s.ceiling.rate),
        med(&|s| s.ceiling.p50),
        med(&|s| s.ceiling.p99),
        cpu_cell(r.saturation.iter().map(|s| &s.ceiling_cpu)),
        med(&|s| s.service.rate),
        med(&|s| s.service.p50),
        med(&|s| s.service.p99),
        cpu_cell(r.saturation.iter().map(|s| &s.service_cpu)),
        100.0 * saturation_share(r)
    )?;
    writeln!(
        out,
        "CPU: user + system time of each process during the run, per turn; with {} cores \
         the machine has {:.0} ms of CPU per second to share between them.\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        1_000.0 * std::thread::available_parallelism().map_or(0.0, |n| n.get() as f64)
    )
}

fn streaming(out: &mut String, r: &Results) -> std::fmt::Result {
    if r.streaming.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "### Streamed turns (c = {STREAM_CONCURRENCY}, {} ms to the provider's first token)\n",
        SLOW_PROVIDER.as_millis()
    )?;
    writeln!(
        out,
        "First token: the mock streamed straight to the load generator (headers at once, \
         the first delta after the latency), until the first chunk with a delta. First \
         delta: `POST /conversations/{{id}}/messages/stream` until the first `event: delta` \
         (the stream then read to `done`).\n"
    )?;
    writeln!(
        out,
        "| | p50 ms | p99 ms | streams measured |\n|---|---|---|---|"
    )?;
    let fig = |f: &dyn Fn(&crate::runs::StreamRound) -> f64| {
        median(&r.streaming.iter().map(f).collect::<Vec<_>>())
    };
    let count =
        |f: &dyn Fn(&crate::runs::StreamRound) -> u64| r.streaming.iter().map(f).sum::<u64>();
    writeln!(
        out,
        "| provider's first token | {:.2} | {:.2} | {} |",
        fig(&|s| s.first_token.p50),
        fig(&|s| s.first_token.p99),
        count(&|s| s.first_token.ok)
    )?;
    writeln!(
        out,
        "| service's first delta | {:.2} | {:.2} | {} |",
        fig(&|s| s.first_delta.p50),
        fig(&|s| s.first_delta.p99),
        count(&|s| s.first_delta.ok)
    )?;
    writeln!(
        out,
        "| added | +{:.2} | +{:.2} | |\n",
        fig(&|s| s.first_delta.p50 - s.first_token.p50),
        fig(&|s| s.first_delta.p99 - s.first_token.p99)
    )
}

/// The per-turn figures the statements section and the summary use.
pub struct PerTurn {
    pub statements: f64,
    pub reads: f64,
    pub writes: f64,
    pub explicit_transactions: f64,
    /// Transactions that wrote, by InnoDB's transaction id counter, with the minimal
    /// turn (one writing transaction) as the unit.
    pub write_transactions: f64,
    /// Statements, pings and prepares: each one a round trip to MariaDB.
    pub round_trips: f64,
}

pub fn per_turn(counters: &[(String, f64)], unit_trx_ids: f64) -> PerTurn {
    let get = |name: &str| {
        counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, v)| *v)
    };
    PerTurn {
        statements: get("Questions"),
        reads: get("Com_select"),
        writes: get("Com_insert")
            + get("Com_update")
            + get("Com_delete")
            + get("Com_replace")
            + get("Com_insert_select"),
        explicit_transactions: get("Com_begin"),
        write_transactions: get(crate::database::TRX_ID_COUNTER) / unit_trx_ids,
        round_trips: get("Questions")
            + get("Com_admin_commands")
            + get("Com_stmt_prepare")
            + get("Com_stmt_close"),
    }
}

fn statements(out: &mut String, r: &Results) -> std::fmt::Result {
    let Some(s) = &r.statements else {
        return Ok(());
    };
    let unit = s
        .minimal_per_turn
        .iter()
        .find(|(name, _)| name == crate::database::TRX_ID_COUNTER)
        .map_or(f64::NAN, |(_, v)| *v);
    writeln!(
        out,
        "### Statements and transactions per turn
"
    )?;
    writeln!(
        out,
        "MariaDB's global status counters read before and after {COUNTED_TURNS} plain turns \
         (c = 1, conversations that exist already, 0 ms provider, `JOB_WORKERS=0`: the \
         background jobs the turns schedule are not run, so their statements are not in \
         these figures), less what reading the counters adds; the least of {} attempts. \
         The same around {COUNTED_TURNS} of the ceiling's minimal turns (one transaction: \
         BEGIN, 2 SELECT, 2 INSERT, COMMIT) shows what each counter says of a turn known \
         by construction. Statements from other clients in the idle second before and \
         after each counted run: {} (0: the server was otherwise idle).\n",
        s.attempts, s.foreign_statements
    )?;
    writeln!(
        out,
        "| counter | service turn | minimal turn | what it counts |\n|---|---|---|---|"
    )?;
    let meaning = |name: &str| match name {
        "Questions" => {
            "statements from clients (each a round trip; pings and prepares are not in it)"
        }
        "Com_select" => "SELECT",
        "Com_insert" => "INSERT",
        "Com_update" => "UPDATE",
        "Com_delete" => "DELETE",
        "Com_insert_select" => "INSERT … SELECT",
        "Com_replace" => "REPLACE",
        "Com_begin" => "BEGIN: explicit transactions",
        "Com_commit" => "COMMIT",
        "Com_rollback" => "ROLLBACK",
        "Com_savepoint" => "SAVEPOINT",
        "Com_stmt_execute" => "executions of prepared statements (counted in the rows above too)",
        "Com_stmt_prepare" => "prepares: statement-cache misses, a round trip each",
        "Com_stmt_close" => "prepared statements closed",
        "Com_admin_commands" => {
            "pings (sqlx checks a connection each time it leaves the pool): a round trip each"
        }
        "Com_set_option" => "SET OPTION",
        "Handler_commit" => {
            "engine commit calls: one per statement and one per COMMIT, not a transaction count"
        }
        "Handler_rollback" => "engine rollbacks",
        "Innodb_log_writes" => "redo log writes (at c = 1 about one per durable commit)",
        crate::database::TRX_ID_COUNTER => {
            "InnoDB transaction ids: moves for transactions that write"
        }
        _ => "",
    };
    for ((name, value), (_, minimal)) in s.per_turn.iter().zip(&s.minimal_per_turn) {
        if *value == 0.0 && *minimal == 0.0 && name != "Com_rollback" {
            continue;
        }
        writeln!(
            out,
            "| `{name}` | {value:.2} | {minimal:.2} | {} |",
            meaning(name)
        )?;
    }
    let service = per_turn(&s.per_turn, unit);
    let minimal = per_turn(&s.minimal_per_turn, unit);
    writeln!(
        out,
        "\nSo a plain turn sends {:.1} statements ({:.1} reads, {:.1} writes) and {:.1} \
         explicit transactions; {:.1} transactions write (InnoDB's counter, the minimal \
         turn as 1), the others' writes being autocommitted statements; with pings and \
         prepares, {:.0} round trips to MariaDB. The minimal turn: {:.0} statements, \
         {:.0} round trips. One at a time (c = 1, 0 ms provider, so no queueing), a \
         service turn took {:.2} ms (median, client side, HTTP included) and a minimal \
         turn {:.2} ms.\n",
        service.statements,
        service.reads,
        service.writes,
        service.explicit_transactions,
        service.write_transactions,
        service.round_trips,
        minimal.statements,
        minimal.round_trips,
        s.service_p50,
        s.minimal_p50
    )
}

fn rss(out: &mut String, r: &Results) -> std::fmt::Result {
    if r.rss.is_empty() {
        return Ok(());
    }
    writeln!(out, "### Memory of the service process\n")?;
    writeln!(
        out,
        "`VmRSS` of the `npc-dialogue` process (`JOB_WORKERS=0`) from `/proc/<pid>/status`, \
         by turns it served (0 ms provider, c = {SATURATION_CONCURRENCY}; the memory run over \
         {SOAK_CONVERSATIONS} conversations, one player each).\n"
    )?;
    writeln!(out, "| when | turns served | RSS |\n|---|---|---|")?;
    for point in &r.rss {
        writeln!(
            out,
            "| {} | {} | {:.1} MB |",
            point.label,
            point.turns,
            mb(point.bytes)
        )?;
    }
    writeln!(out, "\nMB = 2^20 bytes.\n")
}

fn history(out: &mut String, r: &Results) -> std::fmt::Result {
    if r.history.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "### History growth: one conversation of 1,000 messages\n"
    )?;
    writeln!(
        out,
        "Each round, 500 turns in a row on a conversation of its own, 0 ms provider (so \
         latency is the service's own); the mock answers summaries with ~150 words and \
         each extraction with a new fact. Before each of the 5 turns ending at a mark the \
         background queue of the conversation was drained. Latency: the median of those 5 \
         turns, then the median of the rounds (min–max: of all the turns). Prompt tokens \
         are counted (o200k, chat overhead included) on the last prompt the mock received \
         at the mark (the largest of the rounds).\n"
    )?;
    writeln!(
        out,
        "| at message | prompt tokens | prompt messages | turn latency median (min–max) ms | queue drained |\n|---|---|---|---|---|"
    )?;
    for mark in &r.history {
        writeln!(
            out,
            "| {} | {} | {} | {:.2} ({:.2}–{:.2}) | {} |",
            mark.message,
            mark.prompt_tokens,
            mark.prompt_messages,
            mark.latency_median,
            mark.latency_min,
            mark.latency_max,
            if mark.drained { "yes" } else { "no (5 s)" }
        )?;
    }
    writeln!(out)
}

fn facts(out: &mut String, r: &Results) -> std::fmt::Result {
    scale(
        out,
        "### Fact retrieval\n",
        &format!(
            "N facts inserted straight into `memory_facts` for one (player, character), as \
             `benches/memory.rs` does; then {FACT_TURNS} turns in a row (after 5 unmeasured) on \
             one conversation of that player, 0 ms provider.\n"
        ),
        "facts",
        &r.facts,
    )
}

fn lore(out: &mut String, r: &Results) -> std::fmt::Result {
    scale(
        out,
        "### Lore\n",
        &format!(
            "N world lore entries of about 400 characters written through `PUT /lore` (every \
             other one requires a flag the turns never send, so half are known); then \
             {FACT_TURNS} turns in a row (after 5 unmeasured, the first of which reads the \
             lore) on a conversation of its own, 0 ms provider. Each turn weighs every known \
             entry against its line and carries the best 3 (at most 2,400 characters).\n"
        ),
        "lore entries",
        &r.lore,
    )
}

/// Turn latency against how much is stored: one row per size, against the first.
fn scale(
    out: &mut String,
    heading: &str,
    intro: &str,
    what: &str,
    rows: &[ScaleRow],
) -> std::fmt::Result {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    writeln!(out, "{heading}")?;
    writeln!(out, "{intro}")?;
    writeln!(
        out,
        "| {what} | turn p50 ms | turn p99 ms | p50 vs {} |\n|---|---|---|---|",
        first.count
    )?;
    for row in rows {
        writeln!(
            out,
            "| {} | {:.2} | {:.2} | ×{:.2} |",
            row.count,
            row.stats.p50,
            row.stats.p99,
            row.stats.p50 / first.stats.p50
        )?;
    }
    writeln!(out)
}

/// `document` with its `## Load benchmark` section (up to the next `## ` heading)
/// replaced by `section`, or with `section` appended.
pub fn replace_section(document: &str, section: &str) -> String {
    replace_section_under(document, HEADING, section)
}

/// `section` in place of the one under `heading` (to the next `## `), or appended.
pub fn replace_section_under(document: &str, heading: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end());
    let lines: Vec<&str> = document.lines().collect();
    let Some(start) = lines.iter().position(|line| line.trim_end() == heading) else {
        let mut out = document.trim_end().to_owned();
        out.push_str("\n\n");
        out.push_str(&section);
        return out;
    };
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.starts_with("## "))
        .map_or(lines.len(), |offset| start + 1 + offset);
    let mut out = lines[..start].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&section);
    if end < lines.len() {
        out.push('\n');
        out.push_str(&lines[end..].join("\n"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_section_is_appended_after_the_rest() {
        let document = "# Benchmarks\n\n## 1. Memory\n\nfigures\n";
        let updated = replace_section(document, "## Load benchmark\n\nnew\n");
        assert_eq!(
            updated,
            "# Benchmarks\n\n## 1. Memory\n\nfigures\n\n## Load benchmark\n\nnew\n"
        );
    }

    #[test]
    fn an_existing_section_is_replaced_and_the_next_one_kept() {
        let document =
            "# Benchmarks\n\n## Load benchmark\n\nold\n\n### sub\n\nold too\n\n## Log\n\nkept\n";
        let updated = replace_section(document, "## Load benchmark\n\nnew\n");
        assert_eq!(
            updated,
            "# Benchmarks\n\n## Load benchmark\n\nnew\n\n## Log\n\nkept\n"
        );
    }

    #[test]
    fn a_section_at_the_end_is_replaced_whole() {
        let document = "# B\n\n## Load benchmark\n\nold\n";
        assert_eq!(
            replace_section(document, "## Load benchmark\n\nnew"),
            "# B\n\n## Load benchmark\n\nnew\n"
        );
    }
}
