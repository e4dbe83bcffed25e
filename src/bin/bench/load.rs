//! The load generator: a fixed number of workers in a closed loop (each sends its next
//! request when the previous one is answered), for a fixed time or a fixed count, and
//! the latencies they saw.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{task::JoinSet, time::Instant};

/// How one request went.
#[derive(Debug)]
pub enum Outcome {
    /// Answered as asked (a turn: stored, its reply from the LLM), after this long.
    Ok(Duration),
    /// Answered, but with a canned line instead of the LLM's reply.
    Fallback,
    /// Not answered as it should have been.
    Failed(String),
}

/// When the workers stop.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long; requests still in flight then finish but are not counted.
    Elapsed(Duration),
    /// After this many requests in all, or at the deadline, whichever comes first.
    Count { total: u64, deadline: Instant },
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Latencies of the requests answered as asked, in microseconds, sorted.
    sorted_micros: Vec<u64>,
    pub fallbacks: u64,
    pub failures: u64,
    /// Requests answered (stored, for a turn) after the run's time was up: not in the
    /// figures, but sent.
    pub late: u64,
    /// The first few failures, to say what went wrong.
    pub failure_examples: Vec<String>,
    pub elapsed: Duration,
}

impl Samples {
    /// Requests answered as asked.
    pub fn ok(&self) -> u64 {
        self.sorted_micros.len() as u64
    }

    /// Every request sent and answered, late ones included: what the service stored.
    pub fn answered(&self) -> u64 {
        self.ok() + self.fallbacks + self.late
    }

    /// Requests answered as asked per second of the run.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ok() as f64 / seconds
        } else {
            0.0
        }
    }

    /// The nearest-rank percentile (`p` in 0..=100) of the latencies, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.sorted_micros, p) as f64 / 1_000.0
    }

    pub fn p50(&self) -> f64 {
        self.percentile_ms(50.0)
    }

    pub fn p99(&self) -> f64 {
        self.percentile_ms(99.0)
    }

    fn merge(&mut self, other: Worker) {
        self.sorted_micros.extend(other.micros);
        self.fallbacks += other.fallbacks;
        self.late += other.late;
        self.failures += other.failures.len() as u64;
        for failure in other.failures {
            if self.failure_examples.len() < 5 {
                self.failure_examples.push(failure);
            }
        }
    }
}

/// The nearest-rank percentile of sorted values; 0 for none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of a few figures (one per round); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[derive(Default)]
struct Worker {
    micros: Vec<u64>,
    fallbacks: u64,
    late: u64,
    failures: Vec<String>,
}

/// Runs `concurrency` workers; worker `w` sends `request(w, k)` for its k-th request
/// (k = 0, 1, 2…), so a caller can give each worker requests no other worker sends at
/// the same time (its own conversations).
pub async fn closed_loop<F, Fut>(concurrency: usize, until: Until, request: F) -> Samples
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let request = Arc::new(request);
    let tickets = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let request = request.clone();
        let tickets = tickets.clone();
        workers.spawn(async move {
            let mut seen = Worker::default();
            for k in 0.. {
                let stop_at = match until {
                    Until::Elapsed(duration) => {
                        if started.elapsed() >= duration {
                            break;
                        }
                        Some(started + duration)
                    }
                    Until::Count { total, deadline } => {
                        if Instant::now() >= deadline
                            || tickets.fetch_add(1, Ordering::Relaxed) >= total
                        {
                            break;
                        }
                        None
                    }
                };
                let outcome = request(worker, k).await;
                if stop_at.is_some_and(|stop_at| Instant::now() > stop_at) {
                    match outcome {
                        Outcome::Ok(_) | Outcome::Fallback => seen.late += 1,
                        Outcome::Failed(why) => seen.failures.push(why),
                    }
                    break;
                }
                match outcome {
                    Outcome::Ok(latency) => seen
                        .micros
                        .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)),
                    Outcome::Fallback => seen.fallbacks += 1,
                    Outcome::Failed(why) => seen.failures.push(why),
                }
            }
            seen
        });
    }
    let mut samples = Samples::default();
    while let Some(worker) = workers.join_next().await {
        match worker {
            Ok(worker) => samples.merge(worker),
            Err(error) => {
                samples.failures += 1;
                samples
                    .failure_examples
                    .push(format!("a worker failed: {error}"));
            }
        }
    }
    samples.elapsed = match until {
        Until::Elapsed(duration) => duration,
        Until::Count { .. } => started.elapsed(),
    };
    samples.sorted_micros.sort_unstable();
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_rank_percentile_of_a_hundred_values_is_the_value_at_that_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&values, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[tokio::test]
    async fn a_counted_run_sends_exactly_that_many_requests() {
        let samples = closed_loop(
            4,
            Until::Count {
                total: 37,
                deadline: Instant::now() + Duration::from_secs(10),
            },
            |_, _| async { Outcome::Ok(Duration::from_micros(5)) },
        )
        .await;
        assert_eq!(samples.ok(), 37);
        assert_eq!(samples.answered() + samples.failures, 37);
    }
}
