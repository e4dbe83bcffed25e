//! `bench recall --in-process`: the service's own rankers called in this process over
//! the natural datasets, without the HTTP, the database or the background work — for
//! trying a change of the ranker in seconds — and their time at the latency run's scale.

use crate::{
    baseline::E5,
    load::median,
    memory,
    natural::{self, Sample},
    recall::{
        Options, Recall, SCALE_FACTS, SCALE_MESSAGES, SCALE_QUERIES, bm25_baseline, e5_client,
        first_hit, p95, placed, ratio,
    },
};
use std::{collections::HashMap, path::Path, path::PathBuf};

/// Older lines a prompt recalls by default (`MEMORY_MESSAGES_IN_PROMPT`).
const NOTES_LINES: u32 = 3;

/// What the in-process rankings found.
#[derive(Debug, Default)]
pub struct InProcess {
    /// `lines::rank`'s first ten.
    pub search: Recall,
    /// Questions for which the lines a prompt would recall (`recall::older_lines`, with
    /// their neighbours) hold an evidence message.
    pub notes: usize,
}

/// The service's own ranking of messages (`lines::rank`), called in this process over
/// each sample's messages — what `/memory/search?kinds=message` ranks, without the HTTP,
/// the database or the background work: for trying a change of the ranker in seconds.
/// With `e5`, the vectors are the local server's, made as the service makes them
/// (documents and queries on their sides), kept in `cache` between runs.
pub async fn in_process(
    samples: &[Sample],
    e5: Option<&E5>,
    cache: &Path,
) -> anyhow::Result<InProcess> {
    use npc_dialogue::{
        domain::{ConversationId, Role},
        service::memory::{
            lexical::{index::PairText, names::unnamed},
            lines, recall,
            vectors::PairVectors,
        },
        store::{
            messages::MessageRow,
            vectors::{ItemKind, VectorRow},
        },
    };
    let mut vectors: HashMap<String, Vec<f32>> = std::fs::read(cache)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let key = |side: &str, text: &str| format!("{side}\u{1}{text}");
    let mut recall = InProcess::default();
    for sample in samples {
        let turns = placed(sample);
        let rows = turns
            .iter()
            .enumerate()
            .map(
                |(i, (conversation, seq, turn))| -> anyhow::Result<MessageRow> {
                    Ok(MessageRow {
                        id: i as u64 + 1,
                        conversation_id: ConversationId::parse(conversation)?,
                        seq: *seq,
                        role: if turn.speaker == sample.speaker_a {
                            Role::Player
                        } else {
                            Role::Character
                        },
                        content: turn.text.clone(),
                        source: None,
                        fallback_reason: None,
                        truncated: false,
                        created_at: chrono::Utc::now(),
                    })
                },
            )
            .collect::<anyhow::Result<Vec<_>>>()?;
        let index = PairText::build(0, rows);
        let mut pair = PairVectors::default();
        if let Some(e5) = e5 {
            let missing: Vec<String> = turns
                .iter()
                .map(|(_, _, turn)| turn.text.clone())
                .filter(|text| !vectors.contains_key(&key("passage", text)))
                .collect();
            for (text, vector) in missing.iter().zip(e5.embed(&missing, "passage").await?) {
                vectors.insert(key("passage", text), vector);
            }
            let missing: Vec<String> = sample
                .questions
                .iter()
                .map(|q| unnamed(&q.text, &sample.speaker_b))
                .filter(|text| !vectors.contains_key(&key("query", text)))
                .collect();
            for (text, vector) in missing.iter().zip(e5.embed(&missing, "query").await?) {
                vectors.insert(key("query", text), vector);
            }
            pair.apply(
                turns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, _, turn))| VectorRow {
                        rev: i as u64 + 1,
                        kind: ItemKind::Message,
                        item_id: i as u64 + 1,
                        conversation_id: None,
                        seq: None,
                        text_hash: None,
                        vector: vectors[&key("passage", &turn.text)].clone(),
                    })
                    .collect(),
            );
        }
        for question in &sample.questions {
            // As the service asks it: without the character's name.
            let text = unnamed(&question.text, &sample.speaker_b);
            let query = e5.map(|_| vectors[&key("query", &text)].as_slice());
            let meaning = query.map(|vector| lines::Meaning {
                vector,
                pair: &pair,
                min_similarity: f64::MIN_POSITIVE,
            });
            let dia_id = |id: u64| turns[(id - 1) as usize].2.dia_id.as_str();
            let found = lines::rank(&index, &text, meaning, 10, |_, _| false);
            let ranked: Vec<&str> = found.iter().map(|f| dia_id(index.doc(f.doc).id)).collect();
            recall
                .search
                .add(question.category, first_hit(&ranked, &question.evidence));
            let noted = recall::older_lines(
                &index,
                &text,
                query.map(|vector| (vector, &pair)),
                None,
                NOTES_LINES,
            );
            recall.notes += usize::from(
                noted
                    .iter()
                    .any(|id| question.evidence.iter().any(|e| e == dia_id(*id))),
            );
        }
    }
    if e5.is_some() {
        std::fs::write(cache, serde_json::to_vec(&vectors)?)?;
    }
    Ok(recall)
}

/// `bench recall --in-process`: the in-process rankings (words; words and e5 when the
/// local server runs), printed.
pub async fn run_in_process(options: &Options, client: &reqwest::Client) -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut samples = Vec::new();
    for file in natural::files(&options.data, &repo)? {
        samples.extend(natural::load(&file)?);
    }
    let cache = std::env::temp_dir().join("npc-dialogue-recall-vectors.json");
    let show = |label: &str, recall: &Recall, notes: Option<usize>| {
        let categories: Vec<String> = recall
            .by_category
            .iter()
            .map(|(c, (n, at5, _))| format!("{} {}", natural::category_name(*c), ratio(*at5, *n)))
            .collect();
        let notes = notes.map_or_else(String::new, |notes| {
            format!(" | notes' lines {}", ratio(notes, recall.questions))
        });
        println!(
            "{label}: @5 {} @10 {} | {}{notes}",
            ratio(recall.at5, recall.questions),
            ratio(recall.at10, recall.questions),
            categories.join(", ")
        );
    };
    show("plain BM25", &bm25_baseline(&samples), None);
    let words = in_process(&samples, None, &cache).await?;
    show("service ranker, words", &words.search, Some(words.notes));
    timing(&samples)?;
    if !options.skip_local
        && let Ok((vars, _)) = memory::local_server_vars(true, &repo)
    {
        let e5 = e5_client(client, &vars);
        let hybrid = in_process(&samples, Some(&e5), &cache).await?;
        show("service ranker, hybrid", &hybrid.search, Some(hybrid.notes));
    }
    Ok(())
}

/// The ranker's own time at the scale of the latency run: `SCALE_MESSAGES` messages,
/// `SCALE_FACTS` facts, the questions as queries.
fn timing(samples: &[Sample]) -> anyhow::Result<()> {
    use npc_dialogue::{
        domain::{ConversationId, Role},
        service::memory::{
            lexical::index::PairText,
            lines,
            retrieval::{self, Query},
        },
        store::{facts::FactRow, messages::MessageRow},
    };
    let texts: Vec<&str> = samples
        .iter()
        .flat_map(|s| {
            s.sessions
                .iter()
                .flat_map(|x| x.turns.iter().map(|t| t.text.as_str()))
        })
        .collect();
    let questions: Vec<&str> = samples
        .iter()
        .flat_map(|s| s.questions.iter().map(|q| q.text.as_str()))
        .collect();
    let conversations = (0..SCALE_MESSAGES.div_ceil(500))
        .map(|c| ConversationId::parse(&format!("c-{c}")))
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<MessageRow> = (0..SCALE_MESSAGES)
        .map(|i| MessageRow {
            id: i as u64 + 1,
            conversation_id: conversations[i / 500].clone(),
            seq: (i % 500) as u32 + 1,
            role: if i % 2 == 0 {
                Role::Player
            } else {
                Role::Character
            },
            content: texts[i % texts.len()].to_owned(),
            source: None,
            fallback_reason: None,
            truncated: false,
            created_at: chrono::Utc::now(),
        })
        .collect();
    let started = std::time::Instant::now();
    let index = PairText::build(0, rows);
    println!(
        "index of {SCALE_MESSAGES} messages built in {:.1} ms, {} KiB",
        started.elapsed().as_secs_f64() * 1e3,
        index.bytes() / 1024
    );
    timed(
        &format!("lines::rank over {SCALE_MESSAGES}"),
        &questions,
        |q| lines::rank(&index, q, None, 10, |_, _| false),
    );
    let now = chrono::Utc::now();
    let facts: Vec<FactRow> = (0..SCALE_FACTS)
        .map(|i| FactRow {
            id: i as u64,
            player_id: "p".into(),
            character_id: "c".into(),
            text: format!(
                "Player mentioned {}",
                texts[(i * 7) % texts.len()]
                    .chars()
                    .take(120)
                    .collect::<String>()
            ),
            text_hash: String::new(),
            importance: 5,
            source: npc_dialogue::domain::MemorySource::Conversation,
            heard_from: None,
            heard_from_name: None,
            event_id: None,
            derived_from: None,
            hops: 0,
            conversation_id: None,
            from_seq: None,
            to_seq: None,
            created_at: now,
            updated_at: now,
            last_used_at: None,
        })
        .collect();
    timed(
        &format!("retrieval::rank over {SCALE_FACTS} facts"),
        &questions,
        |q| {
            retrieval::rank(
                &facts,
                &Query::of_pair(q, &index, None),
                retrieval::PROMPT,
                now,
                5,
            )
        },
    );
    Ok(())
}

/// Runs `rank` on `SCALE_QUERIES` of the questions, in turn, and prints its p50 and p95.
fn timed<T>(what: &str, questions: &[&str], rank: impl Fn(&str) -> T) {
    let mut times = Vec::new();
    for q in questions.iter().cycle().take(SCALE_QUERIES) {
        let started = std::time::Instant::now();
        std::hint::black_box(rank(q));
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{what}: p50 {:.2} ms p95 {:.2} ms",
        median(&times),
        p95(&times)
    );
}
