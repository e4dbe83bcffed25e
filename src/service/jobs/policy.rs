//! What background work there is and when it is due: the kinds of job, the SPEC's policy
//! for summaries and extraction, how a backlog is cut into calls, how failures back off,
//! and the one place new messages schedule their work. Pure but for `schedule_*`, which
//! write into the caller's transaction.

use crate::{
    config::Config,
    domain::{CharacterId, ConversationId, PlayerId},
    store::jobs,
};
use sqlx::MySqlConnection;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Summarize,
    ExtractFacts,
    /// Vectors for the conversation's messages and its pair's facts (embeddings on).
    Embed,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Summarize => "summarize",
            Self::ExtractFacts => "extract_facts",
            Self::Embed => "embed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "summarize" => Some(Self::Summarize),
            "extract_facts" => Some(Self::ExtractFacts),
            "embed" => Some(Self::Embed),
            _ => None,
        }
    }
}

/// Where a conversation stands after new messages, for deciding its background work.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub last_seq: u32,
    pub summary_seq: u32,
    pub extracted_seq: u32,
}

/// How new messages came: a player's turn, or a studio's imported history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Turn,
    Import,
}

/// Imported history is extracted in batches of at least this many times
/// `FACT_EXTRACTION_EVERY` messages: at most one call per that many.
pub const IMPORT_EXTRACTION_FACTOR: u32 = 4;

/// The SPEC's policy: summarize once `summary_batch` messages have left the window of
/// `window` since the last summary; extract every `extract_every` player messages.
pub fn due(
    progress: Progress,
    window: u32,
    summary_batch: u32,
    extract_every: u32,
) -> Vec<JobKind> {
    let mut due = Vec::new();
    let aged_out = progress.last_seq.saturating_sub(window);
    if aged_out >= progress.summary_seq.saturating_add(summary_batch) {
        due.push(JobKind::Summarize);
    }
    // Player and character lines alternate, so half the unread messages are the player's.
    let player_lines = progress
        .last_seq
        .saturating_sub(progress.extracted_seq)
        .div_ceil(2);
    if player_lines >= extract_every {
        due.push(JobKind::ExtractFacts);
    }
    due
}

/// What new messages make due. A turn: the SPEC's policy (`due`). An import: the same
/// summaries, but extraction only once `IMPORT_EXTRACTION_FACTOR × extract_every`
/// messages wait for it, so that imported history costs at most one call per that many
/// (a smaller rest waits for the next import or the turns that follow).
pub fn due_after(arrival: Arrival, progress: Progress, policy: &Policy) -> Vec<JobKind> {
    let mut due = due(
        progress,
        policy.window,
        policy.summary_batch,
        policy.extract_every,
    );
    if arrival == Arrival::Import {
        let waiting = progress.last_seq.saturating_sub(progress.extracted_seq);
        let batch = policy
            .extract_every
            .saturating_mul(IMPORT_EXTRACTION_FACTOR);
        due.retain(|kind| *kind != JobKind::ExtractFacts);
        if waiting >= batch {
            due.push(JobKind::ExtractFacts);
        }
    }
    due
}

/// How many of a backlog of `backlog` messages the next call reads: calls of at most
/// `most` (at least one), the backlog shared evenly between them, so that no call is left
/// with a small tail. With `least`, no call reads fewer than `least` (unless the whole
/// backlog is smaller): `least` wins over `most` where they disagree.
pub fn next_batch(backlog: u32, most: u32, least: u32) -> u32 {
    if backlog == 0 {
        return 0;
    }
    let most = most.max(1);
    let mut calls = backlog.div_ceil(most);
    if let Some(at_most) = backlog.checked_div(least) {
        calls = calls.min(at_most).max(1);
    }
    backlog.div_ceil(calls)
}

/// When background work is due: the SPEC's settings, read once.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Messages kept in full in prompts.
    pub window: u32,
    pub summary_batch: u32,
    pub extract_every: u32,
    /// Embeddings are on: new messages get vectors.
    pub embed: bool,
}

impl Policy {
    pub fn of(config: &Config) -> Self {
        Self {
            window: config.context_recent_messages,
            summary_batch: config.summary_batch,
            extract_every: config.fact_extraction_every,
            embed: config.embedding.is_some(),
        }
    }
}

/// The conversation (and its pair) a job is for.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub conversation_id: &'a ConversationId,
    pub player_id: &'a PlayerId,
    pub character_id: &'a CharacterId,
}

/// The one place where new messages (a turn's exchange, an import) schedule the
/// background work they make due, inside the transaction that stores them; with
/// embeddings on, an `embed` job for them too.
pub async fn schedule_for_new_messages(
    conn: &mut MySqlConnection,
    policy: &Policy,
    owner: Owner<'_>,
    progress: Progress,
    arrival: Arrival,
) -> sqlx::Result<()> {
    let mut kinds = due_after(arrival, progress, policy);
    if policy.embed {
        kinds.push(JobKind::Embed);
    }
    for kind in kinds {
        schedule(conn, kind, owner).await?;
    }
    Ok(())
}

/// Writes one job (coalesced with a pending one of its kind).
async fn schedule(conn: &mut MySqlConnection, kind: JobKind, owner: Owner<'_>) -> sqlx::Result<()> {
    jobs::schedule(
        &mut *conn,
        kind.as_str(),
        owner.conversation_id,
        owner.player_id,
        owner.character_id,
    )
    .await
}

/// Retry wait after the n-th failed attempt: base · 2ⁿ⁻¹, at most an hour.
pub fn retry_delay(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
        .min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(last_seq: u32, summary_seq: u32, extracted_seq: u32) -> Progress {
        Progress {
            last_seq,
            summary_seq,
            extracted_seq,
        }
    }

    #[test]
    fn a_summary_is_due_once_a_batch_has_left_the_window() {
        assert!(!due(progress(14, 0, 14), 10, 5, 5).contains(&JobKind::Summarize));
        assert!(due(progress(16, 0, 16), 10, 5, 5).contains(&JobKind::Summarize));
        assert!(!due(progress(20, 6, 20), 10, 5, 5).contains(&JobKind::Summarize));
        assert!(due(progress(22, 6, 22), 10, 5, 5).contains(&JobKind::Summarize));
    }

    #[test]
    fn forty_messages_need_at_most_seven_summaries() {
        // Each turn adds two messages; a summary job folds everything aged out so far.
        let (mut summary_seq, mut calls) = (0, 0);
        for last_seq in (2..=40).step_by(2) {
            if due(progress(last_seq, summary_seq, last_seq), 10, 5, 5)
                .contains(&JobKind::Summarize)
            {
                summary_seq = last_seq - 10;
                calls += 1;
            }
        }
        assert!(calls <= 7, "{calls}");
        assert_eq!(summary_seq, 30);
    }

    #[test]
    fn extraction_is_due_every_n_player_messages() {
        assert!(!due(progress(8, 0, 0), 10, 5, 5).contains(&JobKind::ExtractFacts));
        assert!(due(progress(10, 0, 0), 10, 5, 5).contains(&JobKind::ExtractFacts));
        assert!(!due(progress(18, 0, 10), 10, 5, 5).contains(&JobKind::ExtractFacts));
        assert!(due(progress(20, 0, 10), 10, 5, 5).contains(&JobKind::ExtractFacts));
    }

    fn policy() -> Policy {
        Policy {
            window: 10,
            summary_batch: 5,
            extract_every: 5,
            embed: false,
        }
    }

    #[test]
    fn an_import_makes_extraction_due_only_for_a_batch_of_four_times_the_period() {
        let import = |last_seq, extracted_seq| {
            due_after(
                Arrival::Import,
                progress(last_seq, 0, extracted_seq),
                &policy(),
            )
        };
        assert!(!import(19, 0).contains(&JobKind::ExtractFacts));
        assert!(import(20, 0).contains(&JobKind::ExtractFacts));
        assert!(!import(519, 500).contains(&JobKind::ExtractFacts));
        assert!(import(500, 0).contains(&JobKind::Summarize));
        // A turn keeps its own period.
        assert!(
            due_after(Arrival::Turn, progress(10, 0, 0), &policy())
                .contains(&JobKind::ExtractFacts)
        );
    }

    #[test]
    fn a_backlog_is_shared_evenly_between_calls_of_at_most_the_cap() {
        let walk = |backlog: u32, most: u32, least: u32| {
            let (mut left, mut calls) = (backlog, Vec::new());
            while left > 0 {
                let batch = next_batch(left, most, least);
                assert!(batch > 0 && batch <= left);
                calls.push(batch);
                left -= batch;
            }
            calls
        };
        assert_eq!(walk(490, 60, 0).len(), 9);
        assert!(
            walk(490, 60, 0)
                .iter()
                .all(|batch| (54..=60).contains(batch))
        );
        assert_eq!(walk(7, 60, 0), vec![7]);
        assert_eq!(walk(0, 60, 0), Vec::<u32>::new());
        // Imported history: never fewer than `least` a call, so at most one per `least`.
        for every in 1..=30 {
            let least = every * IMPORT_EXTRACTION_FACTOR;
            let most = 60u32.max(least);
            for backlog in least..=600 {
                let calls = walk(backlog, most, least);
                assert!(
                    calls.iter().all(|batch| *batch >= least),
                    "{backlog} {every}: {calls:?}"
                );
                assert!(
                    calls.len() as u32 <= backlog / least,
                    "{backlog} {every}: {calls:?}"
                );
                assert!(
                    calls.iter().all(|batch| *batch < most + least),
                    "{backlog} {every}: {calls:?}"
                );
            }
        }
        assert_eq!(walk(500, 60, 20).len(), 9);
    }

    #[test]
    fn retries_back_off_exponentially_and_stay_bounded() {
        let base = Duration::from_secs(2);
        assert_eq!(retry_delay(base, 1), Duration::from_secs(2));
        assert_eq!(retry_delay(base, 3), Duration::from_secs(8));
        assert_eq!(retry_delay(base, 100), Duration::from_secs(3600));
    }
}
