//! The workers of every replica: claim a due job (`FOR UPDATE SKIP LOCKED`, under a claim
//! token), keep its lease while it runs, hand it to its capability's handler, and settle
//! it: done, followed by more of a backlog, deferred, retried with backoff, or parked.

use super::policy::{JobKind, retry_delay};
use crate::{
    service::Services,
    store::{jobs, jobs::JobRow},
};
use futures_util::future::BoxFuture;
use std::{sync::Arc, time::Duration};
use tokio::{sync::watch, task::JoinSet};
use tracing::Instrument;

/// How a job ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobDone {
    Finished,
    /// Not now: the player is in the warning band, the budget cannot afford it, or the
    /// circuit is open. Try again later without counting an attempt.
    Deferred,
    /// Done, and a backlog remains that is due now (imported history, say): a job of the
    /// same kind follows at once.
    MoreToDo,
}

/// The work of one kind: the job and the player's erasure count as the run read it
/// (everything the handler writes is fenced by it).
pub type Handler =
    for<'a> fn(&'a Services, &'a JobRow, u32) -> BoxFuture<'a, anyhow::Result<JobDone>>;

/// The handler of each kind, handed over by the capabilities at start-up, so this room
/// imports none of them.
#[derive(Clone, Copy)]
pub struct Handlers {
    pub summarize: Handler,
    pub extract_facts: Handler,
    pub embed: Handler,
}

impl Handlers {
    fn of(&self, kind: JobKind) -> Handler {
        match kind {
            JobKind::Summarize => self.summarize,
            JobKind::ExtractFacts => self.extract_facts,
            JobKind::Embed => self.embed,
        }
    }
}

/// How long work waits when it is deferred (warning band, circuit open, no budget).
const DEFER: Duration = Duration::from_secs(300);

/// Starts the workers; when `shutdown` turns true they finish the job in hand (one
/// bounded call) and claim no more, leaving the queue to the next start or another replica.
pub fn spawn_workers(
    services: Arc<Services>,
    handlers: Handlers,
    shutdown: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut workers = JoinSet::new();
    for worker in 0..services.config.jobs.workers {
        let services = services.clone();
        let shutdown = shutdown.clone();
        workers.spawn(
            work(services, handlers, shutdown).instrument(tracing::info_span!("worker", worker)),
        );
    }
    workers
}

async fn work(services: Arc<Services>, handlers: Handlers, mut shutdown: watch::Receiver<bool>) {
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
        run(&services, handlers, &job, &token)
            .instrument(span)
            .await;
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

async fn run(services: &Services, handlers: Handlers, job: &JobRow, token: &str) {
    let pool = &services.pool;
    // Read first: an erasure after this point fences everything the job writes.
    let key = services.keys.key(&job.player_id);
    let outcome = match crate::store::erasure::generation(pool, &key).await {
        Err(error) => Err(anyhow::Error::new(error).context("reading the player's erasures")),
        Ok(generation) => match JobKind::parse(&job.kind) {
            Some(kind) => handlers.of(kind)(services, job, generation).await,
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
