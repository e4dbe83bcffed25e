//! The measurements, one function each, and what they found. Two services run one after
//! the other on the same database: one as deployed (`JOB_WORKERS` default, background
//! work on) for latency, streaming, history and facts; one with `JOB_WORKERS=0` and no
//! housekeeping for statement counts, saturation and memory, so that the database sees
//! nothing but turns and the service does nothing but turns.

use crate::{
    ceiling::Ceiling,
    client::{CHARACTER, Conversations, Direct, Turns},
    database::{self, Counters, StatusReader},
    load::{Outcome, Samples, Until, closed_loop, median},
    mock::MockProvider,
    service::{CpuMeter, CpuPerTurn, Service, Settings},
};
use anyhow::Context;
use npc_dialogue::llm::{ChatMessage, ChatRole, tokens};
use serde_json::Value;
use sqlx::MySqlPool;
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::time::Instant;

/// The provider's latency for the latency and streaming runs.
pub const SLOW_PROVIDER: Duration = Duration::from_millis(50);
pub const CONCURRENCIES: [usize; 3] = [1, 16, 64];
pub const SATURATION_CONCURRENCY: usize = 64;
pub const STREAM_CONCURRENCY: usize = 16;
const FLOOR_RUN: Duration = Duration::from_secs(2);
const TURN_RUN: Duration = Duration::from_secs(5);
const CEILING_RUN: Duration = Duration::from_secs(5);
const SATURATION_RUN: Duration = Duration::from_secs(6);
/// Conversations the latency, streaming and saturation runs share out.
const CONVERSATIONS: usize = 256;
/// Turns counted for the statement figures, per attempt, and attempts.
pub const COUNTED_TURNS: u64 = 200;
const COUNT_ATTEMPTS: usize = 3;
/// The long conversation: 500 turns, 1,000 messages; figures at messages 20, 200, 1,000.
const HISTORY_TURNS: u64 = 500;
pub const HISTORY_MARKS: [u64; 3] = [10, 100, 500];
pub const HISTORY_WINDOW: u64 = 5;
pub const FACT_COUNTS: [usize; 3] = [10, 100, 1_000];
pub const FACT_TURNS: u64 = 60;
/// Lore entries stored for the lore run (half of them gated by a flag no turn sends).
pub const LORE_COUNTS: [usize; 3] = [0, 100, 1_000];
/// The memory run's conversations (64 × 160 = 10,240: each worker its own 160).
pub const SOAK_CONVERSATIONS: usize = 10_240;
pub const SOAK_FIRST_MARK: u64 = 10_000;

/// One run's figures, without the samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub ok: u64,
    pub fallbacks: u64,
    pub failures: u64,
}

impl From<&Samples> for Stats {
    fn from(samples: &Samples) -> Self {
        Self {
            rate: samples.rate(),
            p50: samples.p50(),
            p99: samples.p99(),
            ok: samples.ok(),
            fallbacks: samples.fallbacks,
            failures: samples.failures,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LatencyRound {
    pub concurrency: usize,
    pub floor: Stats,
    pub turns: Stats,
    pub cpu: CpuPerTurn,
}

#[derive(Debug, Clone)]
pub struct StreamRound {
    pub first_token: Stats,
    pub first_delta: Stats,
}

#[derive(Debug, Clone)]
pub struct SaturationRound {
    pub ceiling: Stats,
    pub ceiling_cpu: CpuPerTurn,
    pub service: Stats,
    pub service_cpu: CpuPerTurn,
}

#[derive(Debug, Clone)]
pub struct HistoryMark {
    pub message: u64,
    pub prompt_tokens: u32,
    pub prompt_messages: usize,
    pub latency_median: f64,
    pub latency_min: f64,
    pub latency_max: f64,
    pub drained: bool,
}

/// What the history run saw at one mark, over the rounds.
#[derive(Debug, Clone, Default)]
struct MarkSamples {
    /// The median of each round's window.
    window_medians: Vec<f64>,
    /// Every latency of every window.
    latencies: Vec<f64>,
    /// Whether every drain before a window's turn emptied the queue.
    drained: bool,
    /// (tokens, messages) of the mark turn's prompt, by round.
    prompts: Vec<(u32, usize)>,
}

/// Turn latency with `count` things stored (facts, lore entries).
#[derive(Debug, Clone)]
pub struct ScaleRow {
    pub count: usize,
    pub stats: Stats,
}

#[derive(Debug, Clone)]
pub struct Statements {
    /// Counter deltas of the cleanest attempt (fewest statements), per turn.
    pub per_turn: Vec<(String, f64)>,
    /// The same for the ceiling's minimal turn (one transaction, six statements).
    pub minimal_per_turn: Vec<(String, f64)>,
    pub attempts: usize,
    /// Statements from other clients seen in the idle seconds before and after the
    /// chosen attempts (0: the server was otherwise idle).
    pub foreign_statements: i64,
    /// Median latency of those turns, one at a time (0 ms provider), and of the
    /// minimal turns: the serial cost of each, without queueing.
    pub service_p50: f64,
    pub minimal_p50: f64,
}

#[derive(Debug, Clone)]
pub struct RssPoint {
    pub label: String,
    pub turns: u64,
    pub bytes: u64,
}

/// Everything measured; a part not run stays empty.
#[derive(Debug, Default)]
pub struct Results {
    pub latency: Vec<LatencyRound>,
    /// (turns answered, messages stored) over the latency runs.
    pub persisted: Option<(u64, u64)>,
    /// Background jobs waiting when the latency runs ended: whether the two workers
    /// kept up with the turns.
    pub jobs_pending: Option<i64>,
    pub streaming: Vec<StreamRound>,
    pub history: Vec<HistoryMark>,
    pub facts: Vec<ScaleRow>,
    pub lore: Vec<ScaleRow>,
    pub statements: Option<Statements>,
    pub saturation: Vec<SaturationRound>,
    pub rss: Vec<RssPoint>,
    /// The memory run's goal and whether the time ran out before it.
    pub soak_goal: Option<(u64, bool)>,
    pub failures: Vec<String>,
}

impl Results {
    fn note_failures(&mut self, what: &str, samples: &Samples) {
        if samples.failures > 0 || samples.fallbacks > 0 {
            self.failures.push(format!(
                "{what}: {} failed, {} fallbacks; e.g. {:?}",
                samples.failures, samples.fallbacks, samples.failure_examples
            ));
        }
    }
}

/// What the runs share.
pub struct Bench {
    pub client: reqwest::Client,
    pub mock: MockProvider,
    pub binary: PathBuf,
    pub server: String,
    /// MariaDB's process, when it runs here: its CPU time per turn.
    pub database_pid: Option<u32>,
    pub database_url: String,
    pub pool: MySqlPool,
    pub rounds: usize,
    /// The memory run stops here, wherever it got to.
    pub deadline: Instant,
    pub soak_turns: u64,
}

/// Which measurements to make.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parts {
    pub latency: bool,
    pub streaming: bool,
    pub history: bool,
    pub facts: bool,
    pub lore: bool,
    pub statements: bool,
    pub saturation: bool,
    pub rss: bool,
}

impl Bench {
    fn settings(&self, job_workers: Option<u32>, no_housekeeping: bool) -> Settings {
        Settings {
            database_url: self.database_url.clone(),
            llm_base_url: self.mock.base_url.clone(),
            job_workers,
            no_housekeeping,
            extra: Vec::new(),
        }
    }

    pub async fn run(&self, parts: Parts, results: &mut Results) -> anyhow::Result<()> {
        if parts.latency || parts.streaming || parts.history || parts.facts || parts.lore {
            let service = Service::start(&self.binary, &self.settings(None, false), &self.client)
                .await
                .context("starting the service (background work on)")?;
            let turns = Turns::new(self.client.clone(), &service.base_url);
            turns.create_character().await?;
            if parts.latency {
                eprintln!("latency: floor and turns at c = 1, 16, 64, 50 ms provider");
                self.latency(&turns, service.pid(), results).await?;
            }
            if parts.streaming {
                eprintln!("streaming: first delta vs the provider's first token");
                self.streaming(&turns, results).await?;
            }
            if parts.history {
                eprintln!("history: one conversation of 1,000 messages");
                self.history(&turns, results).await?;
            }
            if parts.facts {
                eprintln!("facts: turns with 10, 100, 1,000 facts");
                self.facts(&turns, results).await?;
            }
            if parts.lore {
                eprintln!("lore: turns with 0, 100, 1,000 lore entries");
                self.lore(&turns, results).await?;
            }
            service.stop().await?;
        }
        if parts.statements || parts.saturation || parts.rss {
            let service = Service::start(&self.binary, &self.settings(Some(0), true), &self.client)
                .await
                .context("starting the service (JOB_WORKERS=0)")?;
            results.rss.push(RssPoint {
                label: "at start (ready, no turn yet)".to_owned(),
                turns: 0,
                bytes: service.rss_bytes()?,
            });
            let turns = Turns::new(self.client.clone(), &service.base_url);
            turns.create_character().await?;
            let mut served = 0;
            if parts.statements || parts.saturation {
                served += warm_up(
                    &turns,
                    saturation_conversations(),
                    SATURATION_CONCURRENCY,
                    results,
                )
                .await?;
            }
            if parts.statements {
                eprintln!("statements: global status counters around {COUNTED_TURNS} turns");
                served += self.statements(&turns, results).await?;
            }
            if parts.saturation {
                eprintln!("saturation: ceiling and service at c = 64, 0 ms provider");
                served += self.saturation(&turns, service.pid(), results).await?;
            }
            if served > 0 {
                results.rss.push(RssPoint {
                    label: "after the counted and saturation turns".to_owned(),
                    turns: served,
                    bytes: service.rss_bytes()?,
                });
            }
            if parts.rss {
                eprintln!(
                    "memory: up to {} turns over {SOAK_CONVERSATIONS} conversations",
                    self.soak_turns
                );
                self.soak(&turns, &service, served, results).await?;
            }
            service.stop().await?;
        }
        Ok(())
    }

    async fn latency(
        &self,
        turns: &Turns,
        service: u32,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        self.mock.set_latency(SLOW_PROVIDER);
        let conversations = Conversations {
            prefix: "lat",
            count: CONVERSATIONS,
        };
        // First turns bind their conversation and create their player: not the plain
        // turn measured here.
        let mut answered = warm_up(turns, conversations, 64, results).await?;
        let direct = Direct::new(self.client.clone(), &self.mock.base_url);
        for round in 0..self.rounds {
            for concurrency in CONCURRENCIES {
                let direct = direct.clone();
                let floor = closed_loop(concurrency, Until::Elapsed(FLOOR_RUN), move |_, _| {
                    let direct = direct.clone();
                    async move { direct.completion().await }
                })
                .await;
                results.note_failures("floor", &floor);
                let cpu = CpuMeter::start(Some(service), self.database_pid);
                let samples = turn_load(
                    turns,
                    conversations,
                    concurrency,
                    Until::Elapsed(TURN_RUN),
                    0,
                )
                .await;
                results.note_failures(&format!("turns at c = {concurrency}"), &samples);
                answered += samples.answered();
                eprintln!(
                    "  round {} c = {concurrency}: floor p50 {:.2} p99 {:.2} ms; turns {:.0}/s p50 {:.2} p99 {:.2} ms",
                    round + 1,
                    floor.p50(),
                    floor.p99(),
                    samples.rate(),
                    samples.p50(),
                    samples.p99()
                );
                results.latency.push(LatencyRound {
                    concurrency,
                    floor: Stats::from(&floor),
                    turns: Stats::from(&samples),
                    cpu: cpu.per_turn(samples.answered()),
                });
            }
        }
        let stored = database::messages_stored(&self.pool, "lat-").await?;
        results.persisted = Some((answered, stored));
        results.jobs_pending = Some(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?,
        );
        Ok(())
    }

    async fn streaming(&self, turns: &Turns, results: &mut Results) -> anyhow::Result<()> {
        self.mock.set_latency(SLOW_PROVIDER);
        let conversations = Conversations {
            prefix: "stream",
            count: CONVERSATIONS,
        };
        warm_up(turns, conversations, 64, results).await?;
        let direct = Direct::new(self.client.clone(), &self.mock.base_url);
        for round in 0..self.rounds {
            let direct = direct.clone();
            let first_token = closed_loop(
                STREAM_CONCURRENCY,
                Until::Elapsed(FLOOR_RUN),
                move |_, _| {
                    let direct = direct.clone();
                    async move { direct.first_token().await }
                },
            )
            .await;
            results.note_failures("provider stream", &first_token);
            let streams = turns.clone();
            let first_delta = closed_loop(
                STREAM_CONCURRENCY,
                Until::Elapsed(TURN_RUN),
                move |worker, k| {
                    let turns = streams.clone();
                    let index = conversations.pick(STREAM_CONCURRENCY, worker, k);
                    async move {
                        turns
                            .streamed_turn(
                                &conversations.id(index),
                                &conversations.player(index),
                                k,
                            )
                            .await
                    }
                },
            )
            .await;
            results.note_failures("streamed turns", &first_delta);
            eprintln!(
                "  round {}: first token p50 {:.2} p99 {:.2} ms; first delta p50 {:.2} p99 {:.2} ms",
                round + 1,
                first_token.p50(),
                first_token.p99(),
                first_delta.p50(),
                first_delta.p99()
            );
            results.streaming.push(StreamRound {
                first_token: Stats::from(&first_token),
                first_delta: Stats::from(&first_delta),
            });
        }
        Ok(())
    }

    /// One long conversation per round; at each mark the median of its window's turns,
    /// then the median of those over the rounds.
    async fn history(&self, turns: &Turns, results: &mut Results) -> anyhow::Result<()> {
        self.mock.set_latency(Duration::ZERO);
        let mut marks = vec![
            MarkSamples {
                drained: true,
                ..MarkSamples::default()
            };
            HISTORY_MARKS.len()
        ];
        for round in 0..self.rounds {
            let conversation = format!("history-{round}");
            let player = format!("p-history-{round}");
            let mut window: Vec<f64> = Vec::new();
            for turn in 1..=HISTORY_TURNS {
                let mark = HISTORY_MARKS
                    .iter()
                    .position(|mark| turn + HISTORY_WINDOW > *mark && turn <= *mark);
                // In a measured window, let the background work catch up first, so that
                // each measured prompt carries a summary as fresh as the batching policy
                // allows.
                if let Some(mark) = mark {
                    marks[mark].drained &=
                        database::drain_jobs(&self.pool, &conversation, Duration::from_secs(5))
                            .await?;
                }
                let latency = match turns.turn(&conversation, &player, turn).await {
                    Outcome::Ok(latency) => latency.as_secs_f64() * 1_000.0,
                    other => anyhow::bail!("history turn {turn}: {other:?}"),
                };
                let Some(mark) = mark else { continue };
                window.push(latency);
                marks[mark].latencies.push(latency);
                if turn == HISTORY_MARKS[mark] {
                    marks[mark].window_medians.push(median(&window));
                    marks[mark].prompts.push(self.last_prompt()?);
                    window.clear();
                }
            }
        }
        for (mark, samples) in HISTORY_MARKS.iter().zip(marks) {
            let (prompt_tokens, prompt_messages) =
                samples.prompts.iter().copied().max().unwrap_or_default();
            results.history.push(HistoryMark {
                message: mark * 2,
                prompt_tokens,
                prompt_messages,
                latency_median: median(&samples.window_medians),
                latency_min: samples
                    .latencies
                    .iter()
                    .copied()
                    .fold(f64::INFINITY, f64::min),
                latency_max: samples.latencies.iter().copied().fold(0.0, f64::max),
                drained: samples.drained,
            });
        }
        Ok(())
    }

    /// Tokens and messages of the prompt the provider last received for a turn.
    fn last_prompt(&self) -> anyhow::Result<(u32, usize)> {
        let body = self
            .mock
            .last_conversation_request()
            .context("the provider received no turn")?;
        let request: Value = serde_json::from_slice(&body)?;
        let messages: Vec<ChatMessage> = request["messages"]
            .as_array()
            .context("a request without messages")?
            .iter()
            .map(|message| {
                let role = match message["role"].as_str() {
                    Some("system") => ChatRole::System,
                    Some("assistant") => ChatRole::Assistant,
                    _ => ChatRole::User,
                };
                ChatMessage::new(role, message["content"].as_str().unwrap_or_default())
            })
            .collect();
        Ok((tokens::count_prompt(&messages), messages.len()))
    }

    async fn facts(&self, turns: &Turns, results: &mut Results) -> anyhow::Result<()> {
        self.mock.set_latency(Duration::ZERO);
        for count in FACT_COUNTS {
            let conversations = Conversations {
                prefix: match count {
                    10 => "facts10",
                    100 => "facts100",
                    _ => "facts1000",
                },
                count: 1,
            };
            database::insert_facts(&self.pool, &conversations.player(0), CHARACTER, count).await?;
            let samples = turns_in_a_row(turns, conversations).await;
            results.note_failures(&format!("turns with {count} facts"), &samples);
            results.facts.push(ScaleRow {
                count,
                stats: Stats::from(&samples),
            });
        }
        Ok(())
    }

    /// Turn latency with 0, 100 and 1,000 world lore entries written through the API
    /// (every other one requires a flag the turns never send), each run on a
    /// conversation of its own after 5 unmeasured turns (the first reads the lore).
    async fn lore(&self, turns: &Turns, results: &mut Results) -> anyhow::Result<()> {
        self.mock.set_latency(Duration::ZERO);
        let mut written = 0;
        for count in LORE_COUNTS {
            while written < count {
                turns.put_lore(written).await?;
                written += 1;
            }
            let conversations = Conversations {
                prefix: match count {
                    0 => "lore0",
                    100 => "lore100",
                    _ => "lore1000",
                },
                count: 1,
            };
            let samples = turns_in_a_row(turns, conversations).await;
            results.note_failures(&format!("turns with {count} lore entries"), &samples);
            results.lore.push(ScaleRow {
                count,
                stats: Stats::from(&samples),
            });
        }
        Ok(())
    }

    /// Returns the turns it sent.
    async fn statements(&self, turns: &Turns, results: &mut Results) -> anyhow::Result<u64> {
        self.mock.set_latency(Duration::ZERO);
        let mut reader = StatusReader::connect(&self.server).await?;
        // What reading the counters adds to them, the least of three.
        let mut overhead: Option<Counters> = None;
        for _ in 0..3 {
            let before = reader.read().await?;
            let after = reader.read().await?;
            let cost = database::delta(&before, &after);
            if overhead
                .as_ref()
                .is_none_or(|least| questions(&cost) < questions(least))
            {
                overhead = Some(cost);
            }
        }
        let overhead = overhead.unwrap_or_default();
        let conversations = saturation_conversations();
        let mut sent = 0;
        let service = count_least(&mut reader, &overhead, |attempt| {
            let turns = turns.clone();
            async move {
                let samples = turn_load(
                    &turns,
                    conversations,
                    1,
                    Until::Count {
                        total: COUNTED_TURNS,
                        deadline: Instant::now() + Duration::from_secs(120),
                    },
                    1_000 * (attempt as u64 + 1),
                )
                .await;
                anyhow::ensure!(
                    samples.ok() == COUNTED_TURNS,
                    "counted turns failed: {:?}",
                    samples.failure_examples
                );
                Ok((samples.answered(), samples.p50()))
            }
        })
        .await?;
        sent += service.turns;
        // The same counters around the ceiling's minimal turn, one transaction of six
        // statements: what each counter says of a turn known by construction.
        let ceiling = Ceiling::prepare(&self.database_url).await?;
        ceiling
            .run(
                SATURATION_CONCURRENCY,
                Until::Elapsed(Duration::from_secs(1)),
            )
            .await;
        let minimal = count_least(&mut reader, &overhead, |_| {
            let ceiling = &ceiling;
            async move {
                let samples = ceiling
                    .run(
                        1,
                        Until::Count {
                            total: COUNTED_TURNS,
                            deadline: Instant::now() + Duration::from_secs(120),
                        },
                    )
                    .await;
                anyhow::ensure!(
                    samples.ok() == COUNTED_TURNS,
                    "minimal turns failed: {:?}",
                    samples.failure_examples
                );
                Ok((samples.ok(), samples.p50()))
            }
        })
        .await?;
        ceiling.close().await;
        reader.close().await?;
        let per_turn = |counters: &Counters| -> Vec<(String, f64)> {
            database::COUNTERS
                .iter()
                .map(|name| {
                    let value = counters.get(*name).copied().unwrap_or(0);
                    ((*name).to_owned(), value as f64 / COUNTED_TURNS as f64)
                })
                .collect()
        };
        results.statements = Some(Statements {
            per_turn: per_turn(&service.during),
            minimal_per_turn: per_turn(&minimal.during),
            attempts: COUNT_ATTEMPTS,
            foreign_statements: service.foreign + minimal.foreign,
            service_p50: service.p50,
            minimal_p50: minimal.p50,
        });
        Ok(sent)
    }

    /// Returns the turns it sent.
    async fn saturation(
        &self,
        turns: &Turns,
        service: u32,
        results: &mut Results,
    ) -> anyhow::Result<u64> {
        self.mock.set_latency(Duration::ZERO);
        let ceiling = Ceiling::prepare(&self.database_url).await?;
        // Its first transactions fill the pool and the statement caches.
        ceiling
            .run(
                SATURATION_CONCURRENCY,
                Until::Elapsed(Duration::from_secs(1)),
            )
            .await;
        let conversations = saturation_conversations();
        let mut sent = 0;
        for round in 0..self.rounds {
            let cpu = CpuMeter::start(None, self.database_pid);
            let floor = ceiling
                .run(SATURATION_CONCURRENCY, Until::Elapsed(CEILING_RUN))
                .await;
            let ceiling_cpu = cpu.per_turn(floor.answered() + floor.failures);
            results.note_failures("ceiling", &floor);
            let cpu = CpuMeter::start(Some(service), self.database_pid);
            let samples = turn_load(
                turns,
                conversations,
                SATURATION_CONCURRENCY,
                Until::Elapsed(SATURATION_RUN),
                10_000 * (round as u64 + 1),
            )
            .await;
            results.note_failures("saturation", &samples);
            sent += samples.answered() + samples.failures;
            eprintln!(
                "  round {}: ceiling {:.0}/s (p50 {:.2} ms); service {:.0}/s (p50 {:.2} p99 {:.2} ms)",
                round + 1,
                floor.rate(),
                floor.p50(),
                samples.rate(),
                samples.p50(),
                samples.p99()
            );
            results.saturation.push(SaturationRound {
                ceiling: Stats::from(&floor),
                ceiling_cpu,
                service: Stats::from(&samples),
                service_cpu: cpu.per_turn(samples.answered()),
            });
        }
        ceiling.close().await;
        Ok(sent)
    }

    async fn soak(
        &self,
        turns: &Turns,
        service: &Service,
        mut served: u64,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        self.mock.set_latency(Duration::ZERO);
        let conversations = Conversations {
            prefix: "soak",
            count: SOAK_CONVERSATIONS,
        };
        let mut marks = vec![self.soak_turns];
        if self.soak_turns > SOAK_FIRST_MARK {
            marks.insert(0, SOAK_FIRST_MARK);
        }
        let mut out_of_time = false;
        for mark in marks {
            if served < mark && !out_of_time {
                let samples = turn_load(
                    turns,
                    conversations,
                    SATURATION_CONCURRENCY,
                    Until::Count {
                        total: mark - served,
                        deadline: self.deadline,
                    },
                    served,
                )
                .await;
                results.note_failures("memory run", &samples);
                served += samples.answered() + samples.failures;
                out_of_time = served < mark;
                eprintln!(
                    "  {served} turns ({:.0}/s), RSS {:.1} MB",
                    samples.rate(),
                    service.rss_bytes()? as f64 / 1e6
                );
            }
            results.rss.push(RssPoint {
                label: if out_of_time {
                    format!("after {served} turns (time up before {mark})")
                } else {
                    format!("after {mark} turns")
                },
                turns: served,
                bytes: service.rss_bytes()?,
            });
            if out_of_time {
                break;
            }
        }
        results.soak_goal = Some((self.soak_turns, out_of_time));
        Ok(())
    }
}

fn saturation_conversations() -> Conversations {
    Conversations {
        prefix: "sat",
        count: CONVERSATIONS,
    }
}

/// What `count_least` found.
struct Counted {
    during: Counters,
    foreign: i64,
    /// Turns made in all attempts.
    turns: u64,
    /// Median over the attempts of the turns' median latency (ms).
    p50: f64,
}

/// Runs `work` (which makes `COUNTED_TURNS` turns and returns how many and their p50) `COUNT_ATTEMPTS` times between reads
/// of the counters, with an idle second before and after to see other clients; returns
/// the deltas of the attempt with the fewest statements (others' statements only add),
/// the statements others made in its idle seconds, and what `work` returned in all.
async fn count_least<F, Fut>(
    reader: &mut StatusReader,
    overhead: &Counters,
    work: F,
) -> anyhow::Result<Counted>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(u64, f64)>>,
{
    let idle = Duration::from_secs(1);
    let less_overhead = |d: Counters| database::delta(overhead, &d);
    let mut best: Option<(Counters, i64)> = None;
    let mut done = 0;
    let mut p50s = Vec::new();
    for attempt in 0..COUNT_ATTEMPTS {
        let c0 = reader.read().await?;
        tokio::time::sleep(idle).await;
        let c1 = reader.read().await?;
        let (turns, p50) = work(attempt).await?;
        done += turns;
        p50s.push(p50);
        let c2 = reader.read().await?;
        tokio::time::sleep(idle).await;
        let c3 = reader.read().await?;
        let during = less_overhead(database::delta(&c1, &c2));
        let foreign = questions(&less_overhead(database::delta(&c0, &c1)))
            + questions(&less_overhead(database::delta(&c2, &c3)));
        eprintln!(
            "  attempt {}: {} statements in {COUNTED_TURNS} turns; {foreign} from others in the idle seconds around",
            attempt + 1,
            questions(&during)
        );
        if best
            .as_ref()
            .is_none_or(|(least, _)| questions(&during) < questions(least))
        {
            best = Some((during, foreign));
        }
    }
    let (during, foreign) = best.context("no attempt")?;
    Ok(Counted {
        during,
        foreign,
        turns: done,
        p50: median(&p50s),
    })
}

fn questions(counters: &Counters) -> i64 {
    counters.get("Questions").copied().unwrap_or(0)
}

/// One turn on every conversation (binding it and creating its player), worker `w` of
/// `concurrency` taking conversations `w`, `w + concurrency`…; returns the turns
/// answered. A turn refused here is a finding, not the end of the run: it goes to the
/// report's failures.
/// `FACT_TURNS` turns in a row on the one conversation of `conversations`, 0 ms
/// provider, after 5 unmeasured ones (which bind the conversation, warm the statement
/// cache and read what changed, lore included).
async fn turns_in_a_row(turns: &Turns, conversations: Conversations) -> Samples {
    for k in 0..5 {
        turns
            .turn(&conversations.id(0), &conversations.player(0), k)
            .await;
    }
    turn_load(
        turns,
        conversations,
        1,
        Until::Count {
            total: FACT_TURNS,
            deadline: Instant::now() + Duration::from_secs(60),
        },
        5,
    )
    .await
}

async fn warm_up(
    turns: &Turns,
    conversations: Conversations,
    concurrency: usize,
    results: &mut Results,
) -> anyhow::Result<u64> {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency.min(conversations.count) {
        let turns = turns.clone();
        workers.spawn(async move {
            let mut failures = Vec::new();
            for index in (worker..conversations.count).step_by(concurrency) {
                let outcome = turns
                    .turn(&conversations.id(index), &conversations.player(index), 0)
                    .await;
                if let Outcome::Failed(why) = outcome {
                    failures.push(why);
                }
            }
            failures
        });
    }
    let mut failures = Vec::new();
    while let Some(worker) = workers.join_next().await {
        failures.extend(worker?);
    }
    if !failures.is_empty() {
        results.failures.push(format!(
            "first turns of the {} conversations (c = {concurrency}): {} failed; e.g. {:?}",
            conversations.prefix,
            failures.len(),
            &failures[..failures.len().min(3)]
        ));
    }
    Ok((conversations.count - failures.len()) as u64)
}

/// Turns in a closed loop; `offset` numbers the lines so that runs differ.
async fn turn_load(
    turns: &Turns,
    conversations: Conversations,
    concurrency: usize,
    until: Until,
    offset: u64,
) -> Samples {
    let turns = Arc::new(turns.clone());
    closed_loop(concurrency, until, move |worker, k| {
        let turns = turns.clone();
        let index = conversations.pick(concurrency, worker, k);
        async move {
            turns
                .turn(
                    &conversations.id(index),
                    &conversations.player(index),
                    offset + k,
                )
                .await
        }
    })
    .await
}
