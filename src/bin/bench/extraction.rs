//! `bench extraction`: what fact extraction learns from a long natural conversation with
//! a real model instead of the mock (issue 24), so nobody believes the mock. The local
//! model of `scripts/local-llm.sh` is the provider; one natural sample (the first file of
//! `benches/data/natural`, or `--data`) is imported through `POST …/import`, the
//! background work (summaries and extraction, all by that model) drained, and every fact
//! the service kept is judged by the bench's rules:
//!
//! - **grounded**: at least `GROUNDED_SHARE` of the fact's words (stemmed, stop words,
//!   the speakers' names and "player"/"character" left out) were said in the
//!   conversation it was learned in: a fact made of words nobody said is invented;
//! - **answers**: a question of the dataset (categories 1–4) is covered when one grounded
//!   fact holds every word of its answer (an answer of stop words only is left out of
//!   the count).
//!
//! Both are generous to the model (words, not meaning); the counts beside them say how
//! many facts there were to judge.

use crate::{
    database::BenchDatabase,
    memory::{self, Api},
    natural::{self, Sample},
    recall::ratio,
    report::RunInfo,
    service::{Service, Settings},
};
use anyhow::Context;
use npc_dialogue::service::memory::lexical::analyzer::Analyzer;
use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

pub const HEADING: &str = "## Fact extraction with a real model";
const LOCAL_LLM_SCRIPT: &str = "scripts/local-llm.sh";
/// Share of a fact's words that must have been said for it to count as grounded.
const GROUNDED_SHARE: f64 = 0.6;
/// A small model on two cores takes its time: a summary and an extraction per batch.
const JOBS_PATIENCE: Duration = Duration::from_secs(3600);

/// What the run measured.
#[derive(Debug, Default)]
pub struct Results {
    pub model: String,
    pub sample: String,
    pub messages: usize,
    pub background_secs: f64,
    pub drained: bool,
    pub facts: usize,
    pub grounded: usize,
    /// Facts without a conversation (none is expected from an import).
    pub unplaced: usize,
    pub answerable: usize,
    pub covered: usize,
    /// Up to five facts of each kind, for the reader to judge the judge.
    pub grounded_examples: Vec<String>,
    pub invented_examples: Vec<String>,
    /// From the service's log: extraction answers that were a JSON object, facts they
    /// stored, parts refused as malformed or instruction-like, attempts that were no
    /// JSON object at all (retried, then parked), and jobs parked.
    pub extractions: Extractions,
}

#[derive(Debug, Default)]
pub struct Extractions {
    pub answered: u64,
    pub stored: u64,
    pub refused_parts: u64,
    pub not_json: u64,
    pub parked: i64,
}

impl Extractions {
    /// Counted from the service's JSON log lines.
    fn of_log(log: &str) -> Self {
        let mut counts = Self::default();
        for line in log.lines() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let fields = &entry["fields"];
            let number = |name: &str| fields[name].as_u64().unwrap_or(0);
            match fields["message"].as_str().unwrap_or("") {
                "facts extracted" => {
                    counts.answered += 1;
                    counts.stored += number("stored");
                }
                "fact extraction returned malformed or instruction-like parts; skipped them" => {
                    counts.refused_parts += number("skipped");
                }
                "job failed; will retry" | "job failed for good; parked"
                    if fields["error"]
                        .as_str()
                        .is_some_and(|error| error.starts_with("extraction output is not")) =>
                {
                    counts.not_json += 1;
                }
                _ => {}
            }
        }
        counts
    }
}

pub async fn run(
    data: &[PathBuf],
    server: &str,
    no_local_start: bool,
    binary: &Path,
    client: &reqwest::Client,
) -> anyhow::Result<Results> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let files = natural::files(data, &repo)?;
    let file = files.first().context("no dataset to read")?;
    let sample = natural::load(file)?
        .into_iter()
        .next()
        .context("an empty dataset")?;
    let (vars, started_here) = memory::local_script_vars(LOCAL_LLM_SCRIPT, no_local_start, &repo)
        .map_err(|why| anyhow::anyhow!(why))?;
    let var = |name: &str| {
        vars.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let base_url = var("LLM_BASE_URL").context("the script printed no LLM_BASE_URL")?;
    let extra: Vec<(&'static str, String)> = [
        "LLM_MODEL",
        "MODEL_PRICES_FILE",
        "LLM_TIMEOUT_MS",
        "LLM_DEADLINE_MS",
    ]
    .into_iter()
    .filter_map(|name| Some((name, var(name)?)))
    .collect();
    let database = BenchDatabase::create(server).await?;
    let outcome = async {
        let settings = Settings {
            database_url: database.url(),
            llm_base_url: base_url,
            job_workers: None,
            no_housekeeping: false,
            extra,
        };
        let service = Service::start(binary, &settings, client)
            .await
            .context("starting the service")?;
        let measured = measure(&Api::new(client, &service.base_url), &sample)
            .await
            .map(|mut results| {
                let parked = results.extractions.parked;
                results.extractions = Extractions {
                    parked,
                    ..Extractions::of_log(&service.log())
                };
                results
            });
        let stopped = service.stop().await;
        let measured = measured?;
        stopped?;
        anyhow::Ok(measured)
    }
    .await;
    let dropped = database.drop().await;
    if started_here {
        let _ = std::process::Command::new("bash")
            .arg(repo.join(LOCAL_LLM_SCRIPT))
            .arg("stop")
            .current_dir(&repo)
            .status();
    }
    let mut results = outcome?;
    dropped?;
    results.model = var("LLM_MODEL").unwrap_or_default();
    Ok(results)
}

async fn measure(api: &Api, sample: &Sample) -> anyhow::Result<Results> {
    let character = api.with_character("c-extraction");
    character.put_character(&sample.speaker_b).await?;
    let player = "p-extraction";
    let mut said: HashMap<String, String> = HashMap::new();
    for session in &sample.sessions {
        let conversation = format!("extraction-s{}", session.number);
        let messages: Vec<serde_json::Value> = session
            .turns
            .iter()
            .enumerate()
            .map(|(i, turn)| {
                serde_json::json!({
                    "client_id": turn.dia_id,
                    "role": if turn.speaker == sample.speaker_a { "player" } else { "character" },
                    "content": turn.text,
                    "created_at": (session.at + chrono::Duration::seconds(30 * i as i64)).to_rfc3339(),
                })
            })
            .collect();
        character.import(&conversation, player, &messages).await?;
        let text: Vec<&str> = session
            .turns
            .iter()
            .map(|turn| turn.text.as_str())
            .collect();
        said.insert(conversation, text.join("\n"));
    }
    let started = std::time::Instant::now();
    eprintln!(
        "extraction: {} sessions imported; the local model works through them",
        sample.sessions.len()
    );
    let (drained, parked) = character.drain(JOBS_PATIENCE).await?;
    let facts = character.memory(player).await?;
    let mut results = judge(sample, &said, &facts);
    results.background_secs = started.elapsed().as_secs_f64();
    results.drained = drained;
    results.extractions.parked = parked;
    results.sample = format!("`{}` ({})", sample.file, sample.id);
    results.messages = sample.sessions.iter().map(|s| s.turns.len()).sum();
    Ok(results)
}

/// The bench's rules (see the module's comment) applied to `facts`.
fn judge(sample: &Sample, said: &HashMap<String, String>, facts: &[memory::MemoryFact]) -> Results {
    let analyzer = Analyzer::english();
    let ignored: HashSet<String> = [
        sample.speaker_a.as_str(),
        sample.speaker_b.as_str(),
        "player",
        "character",
    ]
    .iter()
    .flat_map(|words| analyzer.terms(words))
    .collect();
    let words = |text: &str| -> HashSet<String> {
        analyzer
            .terms(text)
            .into_iter()
            .filter(|term| !ignored.contains(term))
            .collect()
    };
    let said_words: HashMap<&str, HashSet<String>> = said
        .iter()
        .map(|(conversation, text)| (conversation.as_str(), words(text)))
        .collect();
    let mut results = Results {
        facts: facts.len(),
        ..Results::default()
    };
    let mut grounded_words: Vec<HashSet<String>> = Vec::new();
    for fact in facts {
        let own = words(&fact.text);
        let Some(heard) = fact
            .conversation_id
            .as_deref()
            .and_then(|conversation| said_words.get(conversation))
        else {
            results.unplaced += 1;
            continue;
        };
        let share = match own.len() {
            0 => 0.0,
            n => own.iter().filter(|word| heard.contains(*word)).count() as f64 / n as f64,
        };
        if share >= GROUNDED_SHARE {
            results.grounded += 1;
            if results.grounded_examples.len() < 5 {
                results.grounded_examples.push(fact.text.clone());
            }
            grounded_words.push(own);
        } else if results.invented_examples.len() < 5 {
            results.invented_examples.push(fact.text.clone());
        }
    }
    for question in &sample.questions {
        let answer = words(&question.answer);
        if answer.is_empty() {
            continue;
        }
        results.answerable += 1;
        if grounded_words.iter().any(|fact| answer.is_subset(fact)) {
            results.covered += 1;
        }
    }
    results
}

pub fn render(results: &Results, info: &RunInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADING}\n");
    let _ = writeln!(
        out,
        "Command (from the repository root; MariaDB as `root@127.0.0.1:3306`; the first run builds llama-server, about 12 minutes, see `scripts/local-llm.sh`):\n\n    {}\n",
        info.command
    );
    let _ = writeln!(out, "{}\n", info.describe());
    let _ = writeln!(
        out,
        "Model: `{}` (the local model of `scripts/local-llm.sh`), for summaries and extraction alike. Data: {}, {} messages, imported through `POST /conversations/{{id}}/import`; background work {:.0} s{}.\n",
        results.model,
        results.sample,
        results.messages,
        results.background_secs,
        if results.drained {
            ""
        } else {
            " (NOT drained)"
        }
    );
    let _ = writeln!(
        out,
        "| facts kept | grounded (≥ {:.0} % of their words said in their conversation) | questions whose answer a grounded fact holds |",
        GROUNDED_SHARE * 100.0
    );
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| {} | {} | {} |",
        results.facts,
        ratio(results.grounded, results.facts),
        ratio(results.covered, results.answerable)
    );
    let calls = &results.extractions;
    let _ = writeln!(
        out,
        "\nFrom the service's log: {} extraction answers were a JSON object and stored {} facts; {} parts of them were refused (malformed or instruction-like); {} attempts answered no JSON object at all (retried with backoff, then parked); {} jobs parked in the end.",
        calls.answered, calls.stored, calls.refused_parts, calls.not_json, calls.parked
    );
    if results.unplaced > 0 {
        let _ = writeln!(
            out,
            "\n{} facts came with no conversation and were not judged.",
            results.unplaced
        );
    }
    for (label, examples) in [
        ("Grounded, for example", &results.grounded_examples),
        ("Not grounded, for example", &results.invented_examples),
    ] {
        if !examples.is_empty() {
            let _ = writeln!(out, "\n{label}:\n");
            for example in examples {
                let _ = writeln!(out, "- {example:?}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::natural::{Question, Session, Turn};

    fn sample() -> Sample {
        Sample {
            id: "s".into(),
            file: "f.json".into(),
            speaker_a: "Sefa".into(),
            speaker_b: "Master Idris".into(),
            sessions: vec![Session {
                number: 1,
                at: chrono::Utc::now(),
                turns: vec![Turn {
                    dia_id: "D1:1".into(),
                    speaker: "Sefa".into(),
                    text: "I bought an oud in the lower market for twelve silver".into(),
                }],
            }],
            questions: vec![
                Question {
                    text: "What did Sefa buy?".into(),
                    evidence: vec!["D1:1".into()],
                    category: 1,
                    answer: "an oud".into(),
                },
                Question {
                    text: "When?".into(),
                    evidence: vec!["D1:1".into()],
                    category: 2,
                    answer: "2023".into(),
                },
            ],
        }
    }

    fn fact(text: &str, conversation: Option<&str>) -> memory::MemoryFact {
        memory::MemoryFact {
            text: text.into(),
            conversation_id: conversation.map(str::to_owned),
        }
    }

    #[test]
    fn facts_are_judged_by_the_words_of_their_conversation() {
        let said = HashMap::from([(
            "extraction-s1".to_owned(),
            "I bought an oud in the lower market for twelve silver".to_owned(),
        )]);
        let facts = [
            fact("The player bought an oud", Some("extraction-s1")),
            fact("Sefa owns a flying carpet", Some("extraction-s1")),
            fact("The player bought an oud", None),
        ];
        let results = judge(&sample(), &said, &facts);
        assert_eq!(results.facts, 3);
        assert_eq!(results.grounded, 1, "{results:?}");
        assert_eq!(results.unplaced, 1);
        assert_eq!(results.invented_examples, vec!["Sefa owns a flying carpet"]);
        // "2023" is a word too: both answers count, one is held.
        assert_eq!(results.answerable, 2);
        assert_eq!(results.covered, 1);
    }

    #[test]
    fn the_extractions_are_counted_from_the_log() {
        let log = [
            r#"{"fields":{"message":"facts extracted","stored":3}}"#,
            r#"{"fields":{"message":"facts extracted","stored":0}}"#,
            r#"{"fields":{"message":"fact extraction returned malformed or instruction-like parts; skipped them","skipped":2}}"#,
            r#"{"fields":{"message":"job failed; will retry","error":"extraction output is not a JSON object: EOF"}}"#,
            r#"{"fields":{"message":"job failed; will retry","error":"the database is gone"}}"#,
            "not json",
        ]
        .join("\n");
        let counts = Extractions::of_log(&log);
        assert_eq!(
            (
                counts.answered,
                counts.stored,
                counts.refused_parts,
                counts.not_json
            ),
            (2, 3, 2, 1)
        );
    }
}
