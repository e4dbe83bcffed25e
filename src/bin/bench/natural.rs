//! Long natural conversations for `bench recall`, in the shape of the public LoCoMo
//! benchmark (Maharana et al., 2024): samples of two speakers talking over many dated
//! sessions, and questions with the ids (`D<session>:<turn>`) of the messages that
//! answer them. The repository's own (`benches/data/natural/*.json`) were written for
//! this bench; LoCoMo's `locomo10.json` (CC BY-NC 4.0, not in the repository) reads the
//! same way with `--data`.

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The repository's datasets, from its root.
pub const DEFAULT_DIR: &str = "benches/data/natural";

#[derive(Debug, Clone)]
pub struct Sample {
    pub id: String,
    /// File it came from, for the report.
    pub file: String,
    pub speaker_a: String,
    pub speaker_b: String,
    pub sessions: Vec<Session>,
    pub questions: Vec<Question>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub number: u32,
    pub at: DateTime<Utc>,
    pub turns: Vec<Turn>,
}

#[derive(Debug, Clone)]
pub struct Turn {
    pub dia_id: String,
    pub speaker: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Question {
    pub text: String,
    pub evidence: Vec<String>,
    pub category: u32,
    /// The answer as the dataset words it (empty when it has none).
    pub answer: String,
}

/// LoCoMo's categories; 5 (adversarial: unanswerable) has no evidence to find and is
/// left out.
pub fn category_name(category: u32) -> &'static str {
    match category {
        1 => "multi-hop",
        2 => "temporal",
        3 => "open-domain",
        4 => "single-hop",
        _ => "other",
    }
}

#[derive(Deserialize)]
struct RawSample {
    sample_id: Value,
    conversation: Map<String, Value>,
    qa: Vec<RawQuestion>,
}

#[derive(Deserialize)]
struct RawQuestion {
    question: String,
    #[serde(default)]
    evidence: Vec<String>,
    #[serde(default)]
    category: Option<u32>,
    /// A string or a number (LoCoMo writes years as numbers).
    #[serde(default)]
    answer: Option<Value>,
}

/// The files to read: those given, else every `.json` of the default folder.
pub fn files(given: &[PathBuf], repo: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let dir = repo.join(DEFAULT_DIR);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    found.sort();
    Ok(found)
}

pub fn load(path: &Path) -> anyhow::Result<Vec<Sample>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let raw: Vec<RawSample> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let file = path
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    raw.into_iter()
        .map(|sample| parse(sample, &file))
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("reading {}", path.display()))
}

fn parse(raw: RawSample, file: &str) -> anyhow::Result<Sample> {
    let id = match &raw.sample_id {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    };
    let text_of = |key: &str| -> anyhow::Result<String> {
        raw.conversation
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("{id}: no {key}"))
    };
    let speaker_a = text_of("speaker_a")?;
    let speaker_b = text_of("speaker_b")?;
    let mut sessions = Vec::new();
    for (key, value) in &raw.conversation {
        let Some(number) = key
            .strip_prefix("session_")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(turns) = value.as_array() else {
            continue;
        };
        let when = text_of(&format!("session_{number}_date_time"))?;
        let turns = turns
            .iter()
            .filter_map(|turn| {
                Some(Turn {
                    dia_id: turn.get("dia_id")?.as_str()?.to_owned(),
                    speaker: turn.get("speaker")?.as_str()?.to_owned(),
                    text: turn.get("text")?.as_str()?.to_owned(),
                })
            })
            .filter(|turn| !turn.text.trim().is_empty())
            .collect::<Vec<_>>();
        if turns.is_empty() {
            continue;
        }
        sessions.push(Session {
            number,
            at: session_time(&when).with_context(|| format!("{id}: session {number}"))?,
            turns,
        });
    }
    sessions.sort_by_key(|session| session.number);
    if sessions.is_empty() {
        bail!("{id}: no sessions");
    }
    // Some files set their stories in a year before the service's (1970 on): the whole
    // timeline moves forward by whole years, gaps kept.
    let earliest = sessions.iter().map(|s| s.at.year()).min().unwrap_or(2000);
    if earliest < 2000 {
        let years = 2000 - earliest;
        for session in &mut sessions {
            session.at = shift_years(session.at, years);
        }
    }
    let questions = raw
        .qa
        .into_iter()
        .filter_map(|qa| {
            let category = qa.category.unwrap_or(0);
            let evidence: Vec<String> = qa
                .evidence
                .iter()
                .flat_map(|ids| ids.split([';', ',', ' ']))
                .map(str::trim)
                .filter(|id| id.starts_with('D') && id.contains(':'))
                .map(str::to_owned)
                .collect();
            let answer = match qa.answer {
                Some(Value::String(answer)) => answer,
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (category != 5 && !evidence.is_empty()).then_some(Question {
                text: qa.question,
                evidence,
                category,
                answer,
            })
        })
        .collect();
    Ok(Sample {
        id,
        file: file.to_owned(),
        speaker_a,
        speaker_b,
        sessions,
        questions,
    })
}

/// "1:56 pm on 8 May, 2023" (LoCoMo's form) as UTC.
pub fn session_time(text: &str) -> anyhow::Result<DateTime<Utc>> {
    let cleaned = text.replace(" on ", " ").replace(',', "");
    let cleaned = cleaned.trim().to_uppercase();
    for format in ["%I:%M %p %d %B %Y", "%H:%M %d %B %Y"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(&cleaned, format) {
            return Ok(Utc.from_utc_datetime(&at));
        }
    }
    bail!("a session time not of the form \"1:56 pm on 8 May, 2023\": {text:?}")
}

fn shift_years(at: DateTime<Utc>, years: i32) -> DateTime<Utc> {
    at.with_year(at.year() + years)
        .or_else(|| (at - chrono::Duration::days(1)).with_year(at.year() + years))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_times_read_as_locomo_writes_them() {
        let at = session_time("1:56 pm on 8 May, 2023").unwrap();
        assert_eq!(at.to_rfc3339(), "2023-05-08T13:56:00+00:00");
        let at = session_time("10:04 am on 19 December, 1247").unwrap();
        assert_eq!(at.year(), 1247);
        assert_eq!(shift_years(at, 778).year(), 2025);
        assert!(session_time("yesterday").is_err());
    }

    #[test]
    fn a_sample_reads_with_its_sessions_in_order_and_usable_questions() {
        let raw: RawSample = serde_json::from_value(serde_json::json!({
            "sample_id": "s",
            "conversation": {
                "speaker_a": "A", "speaker_b": "B",
                "session_2_date_time": "9:00 am on 2 March, 1990",
                "session_2": [{"speaker": "B", "dia_id": "D2:1", "text": "Later"}],
                "session_1_date_time": "9:00 am on 1 March, 1990",
                "session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "Hello"},
                              {"speaker": "B", "dia_id": "D1:2", "text": ""}]
            },
            "qa": [
                {"question": "q1", "answer": "a", "evidence": ["D1:1; D2:1"], "category": 1},
                {"question": "q5", "adversarial_answer": "a", "evidence": ["D1:1"], "category": 5},
                {"question": "none", "answer": "a", "evidence": [], "category": 4}
            ]
        }))
        .unwrap();
        let sample = parse(raw, "f.json").unwrap();
        assert_eq!(sample.sessions.len(), 2);
        assert_eq!(sample.sessions[0].number, 1);
        assert_eq!(
            sample.sessions[0].turns.len(),
            1,
            "an empty turn is left out"
        );
        assert_eq!(sample.sessions[0].at.year(), 2000);
        assert_eq!(sample.questions.len(), 1);
        assert_eq!(sample.questions[0].evidence, ["D1:1", "D2:1"]);
    }
}
