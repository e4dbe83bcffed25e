//! Background work: scheduled with the turn that causes it, done by workers in every
//! replica after the answer, never on the player's critical path.

use super::{JobDone, embeddings, facts, summary};
use crate::{
    config::Config,
    domain::{CharacterId, ConversationId, PlayerId},
    service::{ServiceResult, Services},
    store::{jobs, jobs::JobRow},
};
use sqlx::MySqlConnection;
use std::{sync::Arc, time::Duration};
use tokio::{sync::watch, task::JoinSet};
use tracing::Instrument;

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

    fn parse(raw: &str) -> Option<Self> {
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

/// How long work waits when it is deferred (warning band, circuit open, no budget).
const DEFER: Duration = Duration::from_secs(300);

/// Retry wait after the n-th failed attempt: base · 2ⁿ⁻¹, at most an hour.
pub fn retry_delay(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
        .min(Duration::from_secs(3600))
}

/// Starts the workers; when `shutdown` turns true they finish the job in hand (one
/// bounded call) and claim no more, leaving the queue to the next start or another replica.
pub fn spawn_workers(services: Arc<Services>, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
    let mut workers = JoinSet::new();
    for worker in 0..services.config.jobs.workers {
        let services = services.clone();
        let shutdown = shutdown.clone();
        workers.spawn(work(services, shutdown).instrument(tracing::info_span!("worker", worker)));
    }
    workers
}

async fn work(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let poll = services.config.jobs.poll;
    while !*shutdown.borrow() {
        let token = uuid::Uuid::new_v4().to_string();
        let job = match jobs::claim(&services.pool, services.config.jobs.lease, &token).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                let _ = tokio::time::timeout(poll, shutdown.changed()).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot claim background work; database unavailable?");
                let _ = tokio::time::timeout(poll * 4, shutdown.changed()).await;
                continue;
            }
        };
        let span = tracing::info_span!("job", id = job.id, kind = %job.kind, conversation_id = %job.conversation_id);
        // A claimed job runs to its end even during shutdown: it is one bounded LLM call,
        // and stopping it halfway would lose the usage row of a call already paid for.
        let heartbeat = tokio::spawn(
            keep_leased(services.clone(), job.id, token.clone()).instrument(span.clone()),
        );
        run(&services, &job, &token).instrument(span).await;
        heartbeat.abort();
    }
}

/// Renews the job's lease every third of it while the job runs, so that a slow job is
/// never taken over (and paid for twice) while its worker lives; a dead worker's job is
/// free again within one lease (at most 30 s).
async fn keep_leased(services: Arc<Services>, id: u64, token: String) {
    let lease = services.config.jobs.lease;
    loop {
        tokio::time::sleep(lease / 3).await;
        match jobs::heartbeat(&services.pool, id, &token, lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("the job's lease was taken over; its outcome will be dropped");
                return;
            }
            Err(error) => tracing::warn!(%error, "could not renew a job's lease"),
        }
    }
}

async fn run(services: &Services, job: &JobRow, token: &str) {
    let pool = &services.pool;
    // Read first: an erasure after this point fences everything the job writes.
    let key = services.keys.key(&job.player_id);
    let outcome = match crate::store::erasure::generation(pool, &key).await {
        Err(error) => Err(anyhow::Error::new(error).context("reading the player's erasures")),
        Ok(generation) => match JobKind::parse(&job.kind) {
            Some(JobKind::Summarize) => summary::summarize(services, job, generation).await,
            Some(JobKind::ExtractFacts) => facts::extract_facts(services, job, generation).await,
            Some(JobKind::Embed) => embeddings::embed_pending(services, job, generation).await,
            None => Err(anyhow::anyhow!("unknown job kind {:?}", job.kind)),
        },
    };
    let settled = match outcome {
        Ok(JobDone::Finished) => {
            tracing::info!(attempts = job.attempts, "job done");
            jobs::complete(pool, job.id, token).await
        }
        // A backlog (imported history, a long outage) is worked off one bounded call at a
        // time: the next job is written before this one goes, so a crash in between
        // leaves this one to run again rather than the backlog stranded.
        Ok(JobDone::MoreToDo) => match schedule_again(services, job).await {
            Ok(()) => {
                tracing::info!(attempts = job.attempts, "job done; more to do");
                jobs::complete(pool, job.id, token).await
            }
            Err(error) => {
                tracing::warn!(%error, "could not schedule the rest of a backlog; retrying");
                let wait = retry_delay(services.config.jobs.retry_base, job.attempts);
                jobs::reschedule(pool, job.id, token, wait, None, false).await
            }
        },
        Ok(JobDone::Deferred) => {
            tracing::info!("job deferred");
            jobs::reschedule(pool, job.id, token, DEFER, None, false).await
        }
        Err(error) if job.attempts >= services.config.jobs.max_attempts => {
            let error = format!("{error:#}");
            tracing::error!(attempts = job.attempts, %error, "job failed for good; parked");
            jobs::park(pool, job.id, token, &error).await
        }
        Err(error) => {
            let error = format!("{error:#}");
            let wait = retry_delay(services.config.jobs.retry_base, job.attempts);
            tracing::warn!(attempts = job.attempts, ?wait, %error, "job failed; will retry");
            jobs::reschedule(pool, job.id, token, wait, Some(&error), true).await
        }
    };
    match settled {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("the job was taken over by another worker; its outcome is theirs")
        }
        Err(error) => {
            tracing::warn!(%error, "could not record a job's outcome; its lease will expire")
        }
    }
}

/// A job of the same kind for the same conversation, due now (or the pending one).
async fn schedule_again(services: &Services, job: &JobRow) -> anyhow::Result<()> {
    let mut conn = services.pool.acquire().await?;
    jobs::schedule(
        &mut conn,
        &job.kind,
        &job.conversation_id,
        &job.player_id,
        &job.character_id,
    )
    .await?;
    Ok(())
}

/// How long a scrape waits for the queue's figures.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The shared queue (all replicas) as `/metrics` shows it.
pub async fn queue_sample(services: &Services) -> anyhow::Result<crate::metrics::QueueSample> {
    let rows = tokio::time::timeout(SAMPLE_TIMEOUT, jobs::queue_stats(&services.pool))
        .await
        .map_err(|_| anyhow::anyhow!("sampling the job queue timed out"))??;
    Ok(sample_of(rows))
}

/// The shared queue (all replicas) now, for `GET /jobs/stats`: jobs waiting (due or
/// deferred), held by a worker, and parked after `JOB_MAX_ATTEMPTS` failures.
pub async fn stats(services: &Services) -> ServiceResult<crate::metrics::QueueSample> {
    Ok(sample_of(jobs::queue_stats(&services.pool).await?))
}

fn sample_of(rows: Vec<(String, i64, i64)>) -> crate::metrics::QueueSample {
    let mut sample = crate::metrics::QueueSample::default();
    for (status, count, oldest_micros) in rows {
        match status.as_str() {
            "pending" => {
                sample.pending = count;
                sample.oldest_pending_age =
                    Duration::from_micros(u64::try_from(oldest_micros).unwrap_or_default());
            }
            "running" => sample.running = count,
            "parked" => sample.parked = count,
            _ => {}
        }
    }
    sample
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
