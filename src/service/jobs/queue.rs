//! The shared queue's figures (all replicas), for `/metrics` and `GET /jobs/stats`.

use crate::{
    service::{ServiceResult, Services},
    store::jobs,
};
use std::time::Duration;

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
