#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set itself up should fail loudly"
)]
//! Memory benchmarks (`cargo bench --bench memory`):
//!
//! 1. Prompt tokens and turn latency at message 20, 200 and 1,000 of one conversation:
//!    the real service in-process, over HTTP, on a fresh database, against the mock
//!    provider of the API tests. Prompt tokens are counted on the prompt the provider
//!    actually received (the mock's usage figures are fixed and say nothing).
//! 2. Prompt-time fact retrieval (`memory::recall`) with 10, 100, 1,000 (and 10,000)
//!    facts for one player, and the pure ranking (`retrieval::rank`) alone.
//!
//! Set `BENCH_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`) for another server.
//! The database `npc_bench_<uuid>` it creates is dropped at the end.

#[path = "../tests/api/databases.rs"]
mod databases;
#[path = "../tests/api/mock_provider.rs"]
#[expect(dead_code, reason = "the benchmark uses only part of the test mock")]
mod mock_provider;

use chrono::{Duration as ChronoDuration, Utc};
use mock_provider::{MockProvider, MockReply};
use npc_dialogue::{
    app::Application,
    config::Config,
    domain::{CharacterId, PlayerId},
    llm::{ChatMessage, ChatRole, tokens},
    service::memory::{lexical::index::PairText, recall, retrieval},
    store::facts::FactRow,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{MySql, MySqlPool, QueryBuilder};
use std::{
    collections::HashMap,
    hint::black_box,
    time::{Duration, Instant},
};

/// Turns in the conversation: two messages each, 1,000 messages in all.
const TURNS: u32 = 500;
/// The turns whose last one ends at message 20, 200 and 1,000.
const MARKS: [u32; 3] = [10, 100, 500];
/// Turns measured around each mark (the mark and the ones before it).
const WINDOW_TURNS: u32 = 5;
const CONTEXT_RECENT_MESSAGES: u32 = 10;
const CONVERSATION: &str = "bench-conversation";
const PLAYER: &str = "bench-player";
const CHARACTER: &str = "mara";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let started = Instant::now();
    let server = std::env::var("BENCH_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned());
    let server = server.trim_end_matches('/').to_owned();
    let name = format!("npc_bench_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{server}/{name}");

    println!("# npc-dialogue memory benchmark\n");
    println!("database: {name} (dropped at the end)\n");
    let outcome = run(&url).await;
    drop_database(&name, &url).await;
    outcome.expect("benchmark");
    println!("\ntotal run time: {:.1} s", started.elapsed().as_secs_f64());
}

async fn run(url: &str) -> anyhow::Result<()> {
    let provider = MockProvider::start().await;
    script_background_replies(&provider);
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", url),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("LLM_BASE_URL", provider.base_url.as_str()),
        ("LLM_API_KEY", "bench-provider-key"),
        ("LLM_RETRY_BASE_MS", "10"),
        ("JOB_POLL_MS", "20"),
        ("CONTEXT_RECENT_MESSAGES", "10"),
        // 500 turns from one player in a few seconds: quotas out of the way.
        ("PLAYER_LLM_CALLS_PER_HOUR", "1000000"),
        ("PLAYER_MONTHLY_BUDGET_USD", "1000"),
        ("HTTP_RATE_PER_SECOND", "100000"),
        ("HTTP_RATE_BURST", "100000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = Config::from_lookup(|name| vars.get(name).cloned())?;
    if std::env::var_os("BENCH_LOG").is_some() {
        npc_dialogue::telemetry::init(config.log_format);
    }
    let app = Application::build(config).await?;
    let address = format!("http://{}", app.local_addr()?);
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let pool = MySqlPool::connect(url).await?;

    let conversation = conversation_bench(&address, &provider, &pool).await;
    let retrieval_db = retrieval_bench(&pool).await;
    let ranking = ranking_bench();

    let _ = shutdown.send(());
    server.await??;
    pool.close().await;

    let conversation = conversation?;
    let retrieval_db = retrieval_db?;
    print_conversation(&conversation);
    print_retrieval(&retrieval_db, &ranking);
    Ok(())
}

/// Summaries of realistic length (~150 words, the most the prompt asks for) and a new
/// fact from every extraction, so the prompt carries a full summary and five memories.
fn script_background_replies(provider: &MockProvider) {
    let summary = "The player, a travelling merchant named Aldric, arrived at the Crooked Stag \
        on a cold evening and asked Mara for a room. Mara gave him the last one upstairs for \
        three silver a night and warned him about the leaking roof. Over several evenings they \
        talked about the mill road, the bandits seen near the old bridge, and the missing \
        shipment of wool that Aldric is trying to trace for his guild. Aldric promised to pay \
        Mara's debt to the brewer if she helps him find the wagon driver, a man called Tobin \
        who drinks at the inn on market days. Mara distrusts the guild but likes Aldric's \
        manners; she told him Tobin owes her money too. They agreed to meet again after the \
        market. Aldric mentioned his sister in the capital and his fear of deep water. Mara \
        is tired, short of staff, and worried about the tax collector's visit next week.";
    provider.enqueue_for(
        "summarization",
        (0..1000).map(|_| MockReply::text(summary, 400, 200)),
    );
    provider.enqueue_for(
        "fact_extraction",
        (0..1000).map(|i| {
            let reply = json!({"facts": [{
                "text": format!("Player mentioned errand number {i} on the mill road"),
                "importance": i % 10 + 1,
            }]});
            MockReply::text(&reply.to_string(), 300, 20)
        }),
    );
}

// ---------------------------------------------------------------------------
// 1. One long conversation
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct TurnSample {
    turn: u32,
    latency: Duration,
    prompt_tokens: u32,
    prompt_messages: usize,
    /// Messages 1..=summary_seq are in the summary when the turn starts.
    summary_seq: u32,
    /// Messages stored when the turn starts.
    last_seq: u32,
    /// Whether the background queue was empty when the turn started.
    drained: bool,
    memories: usize,
}

#[derive(Debug)]
struct ConversationResult {
    windows: Vec<(u32, Vec<TurnSample>)>,
    all_latencies: Vec<Duration>,
    fallbacks: u32,
    wall: Duration,
}

async fn conversation_bench(
    address: &str,
    provider: &MockProvider,
    pool: &MySqlPool,
) -> anyhow::Result<ConversationResult> {
    let client = reqwest::Client::new();
    let created = client
        .put(format!("{address}/characters/{CHARACTER}"))
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

    let started = Instant::now();
    let mut windows = Vec::new();
    let mut current: Vec<TurnSample> = Vec::new();
    let mut all_latencies = Vec::with_capacity(TURNS as usize);
    let mut fallbacks = 0;
    for turn in 1..=TURNS {
        let mark = MARKS
            .iter()
            .copied()
            .find(|mark| turn + WINDOW_TURNS > *mark && turn <= *mark);
        // In a measured window, let the background work catch up first, so each
        // measured prompt carries a summary as fresh as the batching policy allows.
        let drained = match mark {
            Some(_) => drain_jobs(pool, Duration::from_secs(5)).await?,
            None => false,
        };
        let (summary_seq, last_seq) = summary_state(pool).await?;
        let content = format!(
            "Turn {turn}: any news from the mill road, and is Tobin back from the market yet?"
        );
        let sent = Instant::now();
        let response = client
            .post(format!("{address}/conversations/{CONVERSATION}/messages"))
            .json(&json!({"player_id": PLAYER, "character_id": CHARACTER, "content": content}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        let latency = sent.elapsed();
        anyhow::ensure!(status.is_success(), "turn {turn}: {status} {body}");
        if body["source"] != "llm" {
            fallbacks += 1;
        }
        all_latencies.push(latency);
        if let Some(mark) = mark {
            let request = provider.last_request();
            let prompt: Vec<ChatMessage> = request
                .messages()
                .into_iter()
                .map(|(role, content)| ChatMessage::new(role_of(&role), content))
                .collect();
            let memories = prompt
                .first()
                .and_then(|system| system.content.split("You remember: ").nth(1))
                .and_then(|rest| {
                    serde_json::Deserializer::from_str(rest)
                        .into_iter::<Vec<String>>()
                        .next()
                })
                .and_then(Result::ok)
                .map_or(0, |memories| memories.len());
            current.push(TurnSample {
                turn,
                latency,
                prompt_tokens: tokens::count_prompt(&prompt),
                prompt_messages: prompt.len(),
                summary_seq,
                last_seq,
                drained,
                memories,
            });
            if turn == mark {
                windows.push((mark, std::mem::take(&mut current)));
            }
        }
    }
    Ok(ConversationResult {
        windows,
        all_latencies,
        fallbacks,
        wall: started.elapsed(),
    })
}

fn role_of(role: &str) -> ChatRole {
    match role {
        "system" => ChatRole::System,
        "assistant" => ChatRole::Assistant,
        _ => ChatRole::User,
    }
}

/// Waits until the conversation has no background job left; false on timeout.
async fn drain_jobs(pool: &MySqlPool, patience: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + patience;
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE conversation_id = ?")
                .bind(CONVERSATION)
                .fetch_one(pool)
                .await?;
        if pending == 0 {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// (summary_seq, last_seq) of the conversation; zeros before it exists.
async fn summary_state(pool: &MySqlPool) -> anyhow::Result<(u32, u32)> {
    let row: Option<(u32, u32)> =
        sqlx::query_as("SELECT summary_seq, last_seq FROM conversations WHERE id = ?")
            .bind(CONVERSATION)
            .fetch_optional(pool)
            .await?;
    Ok(row.unwrap_or_default())
}

fn print_conversation(result: &ConversationResult) {
    println!(
        "## 1. One conversation: {TURNS} turns ({} messages), CONTEXT_RECENT_MESSAGES={CONTEXT_RECENT_MESSAGES}\n",
        TURNS * 2
    );
    println!(
        "| at message | turns measured | prompt tokens (mark turn) | prompt tokens (window min–max) | prompt messages | memories in prompt | summary covers | not in summary nor window | queue drained | turn latency median | latency min–max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut first: Option<(u32, Duration)> = None;
    let mut rows = Vec::new();
    for (mark, samples) in &result.windows {
        let last = samples.last().expect("a sample at the mark");
        let tokens: Vec<u32> = samples.iter().map(|s| s.prompt_tokens).collect();
        let latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        let median = median_duration(&latencies);
        let window_start = last.last_seq.saturating_sub(CONTEXT_RECENT_MESSAGES);
        println!(
            "| {} | {}–{} | {} | {}–{} | {} | {} | 1..{} of {} stored | {} | {} | {} | {}–{} |",
            mark * 2,
            samples.first().map_or(0, |s| s.turn),
            mark,
            last.prompt_tokens,
            tokens.iter().min().unwrap_or(&0),
            tokens.iter().max().unwrap_or(&0),
            last.prompt_messages,
            last.memories,
            last.summary_seq,
            last.last_seq,
            window_start.saturating_sub(last.summary_seq),
            samples.iter().all(|s| s.drained),
            ms(median),
            ms(*latencies.iter().min().unwrap_or(&Duration::ZERO)),
            ms(*latencies.iter().max().unwrap_or(&Duration::ZERO)),
        );
        if first.is_none() {
            first = Some((last.prompt_tokens, median));
        }
        rows.push((*mark, last.prompt_tokens, median));
    }
    if let Some((tokens, latency)) = first {
        println!();
        for (mark, t, l) in &rows {
            println!(
                "- message {}: prompt tokens ×{:.2}, median latency ×{:.2} of message {}",
                mark * 2,
                f64::from(*t) / f64::from(tokens),
                l.as_secs_f64() / latency.as_secs_f64(),
                MARKS[0] * 2,
            );
        }
    }
    let all = &result.all_latencies;
    let segment =
        |from: usize, to: usize| median_duration(&all[from.min(all.len())..to.min(all.len())]);
    println!(
        "\nAll {} turns (no draining outside the windows): median {} ms; by stretch: turns 1–50 {} ms, 51–250 {} ms, 251–500 {} ms; fallbacks: {}; wall time {:.1} s",
        all.len(),
        ms(median_duration(all)),
        ms(segment(0, 50)),
        ms(segment(50, 250)),
        ms(segment(250, 500)),
        result.fallbacks,
        result.wall.as_secs_f64(),
    );
}

// ---------------------------------------------------------------------------
// 2. Fact retrieval
// ---------------------------------------------------------------------------

const FACT_COUNTS: [usize; 4] = [10, 100, 1_000, 10_000];
const RECALL_ITERATIONS: usize = 200;
const QUERY: &str = "Have you seen my cat near the mill road, or heard news of Tobin?";

const WORDS: &[&str] = &[
    "cat", "mill", "road", "bridge", "sister", "capital", "wool", "guild", "brewer", "debt",
    "market", "tobin", "bandits", "river", "sword", "horse", "bread", "tax", "roof", "letter",
    "ring", "forest", "wolf", "boat", "song", "lantern", "key", "map", "cellar", "ale",
];

fn fact_text(i: usize) -> String {
    let w = |k: usize| WORDS[(i * 7 + k * 13) % WORDS.len()];
    format!(
        "Player {} the {} by the {} after the {} (note {i})",
        ["lost", "found", "mentioned", "fears", "likes"][i % 5],
        w(1),
        w(2),
        w(3)
    )
}

async fn insert_facts(pool: &MySqlPool, player: &str, count: usize) -> anyhow::Result<()> {
    let now = Utc::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let mut query = QueryBuilder::<MySql>::new(
            "INSERT INTO memory_facts (player_id, character_id, text, text_hash, importance, \
             conversation_id, from_seq, to_seq, created_at, updated_at, last_used_at) ",
        );
        query.push_values(chunk, |mut row, &i| {
            let text = fact_text(i);
            let hash = hex::encode(Sha256::digest(text.as_bytes()));
            let age = ChronoDuration::minutes((i as i64 * 37) % (60 * 24 * 60));
            let updated = now - age;
            let used = (i % 3 == 0).then(|| updated + ChronoDuration::minutes(5));
            row.push_bind(player.to_owned())
                .push_bind(CHARACTER)
                .push_bind(text)
                .push_bind(hash)
                .push_bind((i % 10 + 1) as u8)
                .push_bind("bench-facts")
                .push_bind(1u32)
                .push_bind(2u32)
                .push_bind(updated)
                .push_bind(updated)
                .push_bind(used);
        });
        query.build().execute(pool).await?;
    }
    Ok(())
}

#[derive(Debug)]
struct Timing {
    facts: usize,
    iterations: usize,
    median: Duration,
    p95: Duration,
}

async fn retrieval_bench(pool: &MySqlPool) -> anyhow::Result<Vec<Timing>> {
    let mut timings = Vec::new();
    for &count in &FACT_COUNTS {
        let player = format!("bench-facts-{count}");
        insert_facts(pool, &player, count).await?;
        let (player_id, character_id) = (PlayerId::parse(&player)?, CharacterId::parse(CHARACTER)?);
        // Warm-up: connections, statement cache, buffer pool.
        for _ in 0..10 {
            recall::recall(pool, &player_id, &character_id, QUERY, 5).await?;
        }
        let mut samples = Vec::with_capacity(RECALL_ITERATIONS);
        for _ in 0..RECALL_ITERATIONS {
            let started = Instant::now();
            let recalled = recall::recall(pool, &player_id, &character_id, QUERY, 5).await?;
            samples.push(started.elapsed());
            anyhow::ensure!(recalled.len() == 5.min(count), "recalled {recalled:?}");
        }
        timings.push(Timing {
            facts: count,
            iterations: RECALL_ITERATIONS,
            median: median_duration(&samples),
            p95: p95_duration(&samples),
        });
    }
    Ok(timings)
}

fn ranking_bench() -> Vec<Timing> {
    let now = Utc::now();
    FACT_COUNTS
        .iter()
        .map(|&count| {
            let facts: Vec<FactRow> = (0..count)
                .map(|i| {
                    let updated = now - ChronoDuration::minutes((i as i64 * 37) % (60 * 24 * 60));
                    FactRow {
                        id: i as u64 + 1,
                        player_id: PLAYER.into(),
                        character_id: CHARACTER.into(),
                        text: fact_text(i),
                        text_hash: format!("{i:064}"),
                        importance: (i % 10 + 1) as u8,
                        source: npc_dialogue::domain::MemorySource::Conversation,
                        heard_from: None,
                        heard_from_name: None,
                        event_id: None,
                        derived_from: None,
                        hops: 0,
                        conversation_id: None,
                        from_seq: Some(1),
                        to_seq: Some(2),
                        created_at: updated,
                        updated_at: updated,
                        last_used_at: (i % 3 == 0).then(|| updated + ChronoDuration::minutes(5)),
                    }
                })
                .collect();
            let iterations = (200_000 / count).clamp(20, 2_000);
            // As the service ranks: facts' terms memoised in the pair's index.
            let index = PairText::build(0, Vec::new());
            let query = retrieval::Query::of_pair(QUERY, &index, None);
            for _ in 0..iterations.min(20) {
                black_box(retrieval::rank(
                    black_box(&facts),
                    &query,
                    retrieval::PROMPT,
                    now,
                    5,
                ));
            }
            let mut samples = Vec::with_capacity(iterations);
            for _ in 0..iterations {
                let started = Instant::now();
                black_box(retrieval::rank(
                    black_box(&facts),
                    &query,
                    retrieval::PROMPT,
                    now,
                    5,
                ));
                samples.push(started.elapsed());
            }
            Timing {
                facts: count,
                iterations,
                median: median_duration(&samples),
                p95: p95_duration(&samples),
            }
        })
        .collect()
}

fn print_retrieval(recall: &[Timing], ranking: &[Timing]) {
    println!(
        "\n## 2. Fact retrieval for one player (limit 5; recall scores every fact of the pair)\n"
    );
    println!(
        "| facts stored | recall() median | recall() p95 | iterations | rank() alone median | rank() p95 | iterations |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (db, pure) in recall.iter().zip(ranking) {
        println!(
            "| {} | {} ms | {} ms | {} | {} µs | {} µs | {} |",
            db.facts,
            ms(db.median),
            ms(db.p95),
            db.iterations,
            us(pure.median),
            us(pure.p95),
            pure.iterations,
        );
    }
    let ratio = |timings: &[Timing], facts: usize| {
        let base = timings[0].median.as_secs_f64();
        timings
            .iter()
            .find(|t| t.facts == facts)
            .map_or(f64::NAN, |t| t.median.as_secs_f64() / base)
    };
    println!(
        "\nmedian ratios vs 10 facts: recall() 1,000/10 = ×{:.2}, 10,000/10 = ×{:.2}; rank() 1,000/10 = ×{:.1}, 10,000/10 = ×{:.1}",
        ratio(recall, 1_000),
        ratio(recall, 10_000),
        ratio(ranking, 1_000),
        ratio(ranking, 10_000),
    );
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn median_duration(samples: &[Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    }
}

fn p95_duration(samples: &[Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * 95).div_ceil(100);
    sorted[rank.saturating_sub(1)]
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1_000.0)
}

fn us(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1_000_000.0)
}

/// Kills what is still connected to the bench database, then drops it.
async fn drop_database(name: &str, url: &str) {
    let dropped = databases::drop_database(url).await;
    if let Err(error) = dropped {
        eprintln!("could not drop the bench database {name}: {error:#}");
    }
}
