//! The one retry helper: exponential backoff with bounded jitter, `Retry-After`, and an
//! overall deadline.
//!
//! Hand-written rather than from a backoff crate because the contract is precise (each
//! wait within ±25 % of base·2ⁿ, `Retry-After` honoured up to a cap, nothing past the
//! deadline) and the well-kept crates jitter differently (`backon` adds up to +100 %).

use super::{LlmError, LlmErrorKind};
use rand::Rng;
use std::time::Duration;
use tokio::time::Instant;

/// Longest `Retry-After` we accept from a provider; longer ones are cut to this.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);
/// Longest backoff, so that jitter arithmetic never overflows.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Each wait stays within this fraction of its nominal value.
pub const JITTER: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_retries: u32,
    /// Per-attempt timeout (shortened when the deadline is nearer).
    pub attempt_timeout: Duration,
}

impl LlmError {
    /// 429, 5xx, timeouts, connection errors and unusable answers may succeed on a
    /// second try; other 4xx (bad request, auth, unknown model) will not.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            LlmErrorKind::Http { status } => status == 429 || status == 408 || status >= 500,
            LlmErrorKind::Timeout | LlmErrorKind::Connect | LlmErrorKind::InvalidResponse => true,
        }
    }
}

impl RetryPolicy {
    /// base · 2ⁿ for the n-th retry (0-based), never more than `MAX_BACKOFF`.
    pub fn nominal_delay(&self, retry: u32) -> Duration {
        self.base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(MAX_BACKOFF)
    }

    /// The nominal delay scaled by `unit` ∈ [0, 1] into [0.75, 1.25] of itself.
    pub fn jittered(nominal: Duration, unit: f64) -> Duration {
        nominal.mul_f64(1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0))
    }

    /// The wait before retry `retry`: the provider's `Retry-After` (capped) when it sent
    /// one, else the jittered backoff.
    pub fn delay(&self, retry: u32, error: &LlmError, unit: f64) -> Duration {
        match error.retry_after {
            Some(retry_after) => retry_after.min(RETRY_AFTER_CAP),
            None => Self::jittered(self.nominal_delay(retry), unit),
        }
    }
}

/// How a retried call ended without an answer.
#[derive(Debug, Clone)]
pub struct RetryFailure {
    pub last_error: LlmError,
    pub attempts: u32,
    /// True when the failure was retryable but retries or time ran out: the kind of
    /// failure that counts towards opening the circuit.
    pub exhausted: bool,
}

/// The attempts of one call: how long the next may take, and whether (and after what
/// wait) another follows a failure. The caller runs the loop, so it can record each
/// attempt as it happens; no recursion, no unbounded waits.
#[derive(Debug, Clone)]
pub struct Attempts {
    policy: RetryPolicy,
    deadline: Instant,
    made: u32,
}

impl RetryPolicy {
    pub fn begin(&self, deadline: Instant) -> Attempts {
        Attempts {
            policy: *self,
            deadline,
            made: 0,
        }
    }
}

impl Attempts {
    /// The timeout of the next attempt: the per-attempt timeout, or less near the deadline.
    pub fn timeout(&self) -> Duration {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        self.policy.attempt_timeout.min(remaining)
    }

    /// After a failed attempt: the wait before the next one, or why there is none.
    /// `unit` ∈ [0, 1] places the wait inside its jitter band.
    pub fn after_failure(&mut self, error: LlmError, unit: f64) -> Result<Duration, RetryFailure> {
        self.made += 1;
        let retry = self.made - 1;
        let give_up = |error, exhausted| RetryFailure {
            last_error: error,
            attempts: self.made,
            exhausted,
        };
        if !error.is_retryable() {
            return Err(give_up(error, false));
        }
        if retry >= self.policy.max_retries {
            return Err(give_up(error, true));
        }
        let wait = self.policy.delay(retry, &error, unit);
        // Sleeping into the deadline only to give up after is a wasted wait for the player.
        if Instant::now() + wait >= self.deadline {
            return Err(give_up(error, true));
        }
        Ok(wait)
    }

    /// When the whole call must be over (a stream is cut there, keeping its text).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Attempts made so far, counting the one that succeeded when called after it.
    pub fn made(&self) -> u32 {
        self.made
    }
}

/// A uniformly random point in the jitter band.
pub fn random_unit() -> f64 {
    rand::rng().random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(1000),
            max_retries: 3,
            attempt_timeout: Duration::from_secs(10),
        }
    }

    fn error(kind: LlmErrorKind, retry_after: Option<Duration>) -> LlmError {
        LlmError {
            kind,
            detail: String::new(),
            latency: Duration::ZERO,
            retry_after,
            billed: None,
        }
    }

    #[test]
    fn the_nominal_schedule_is_one_two_four_seconds() {
        let delays: Vec<u64> = (0..3)
            .map(|n| policy().nominal_delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![1000, 2000, 4000]);
        assert_eq!(
            policy().nominal_delay(200),
            MAX_BACKOFF,
            "bounded, never overflows"
        );
    }

    #[test]
    fn jitter_keeps_each_wait_within_a_quarter_of_nominal() {
        let nominal = Duration::from_millis(2000);
        assert_eq!(
            RetryPolicy::jittered(nominal, 0.0),
            Duration::from_millis(1500)
        );
        assert_eq!(
            RetryPolicy::jittered(nominal, 0.5),
            Duration::from_millis(2000)
        );
        assert_eq!(
            RetryPolicy::jittered(nominal, 1.0),
            Duration::from_millis(2500)
        );
        for _ in 0..1000 {
            let wait = policy().delay(1, &error(LlmErrorKind::Timeout, None), random_unit());
            assert!((1500..=2500).contains(&wait.as_millis()), "{wait:?}");
        }
    }

    #[test]
    fn retry_after_wins_over_backoff_up_to_the_cap() {
        let rate_limited = |after| error(LlmErrorKind::Http { status: 429 }, Some(after));
        assert_eq!(
            policy().delay(2, &rate_limited(Duration::from_secs(1)), 0.9),
            Duration::from_secs(1)
        );
        assert_eq!(
            policy().delay(0, &rate_limited(Duration::from_secs(3600)), 0.1),
            RETRY_AFTER_CAP
        );
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        for status in [429, 500, 502, 503, 504] {
            assert!(
                error(LlmErrorKind::Http { status }, None).is_retryable(),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(
                !error(LlmErrorKind::Http { status }, None).is_retryable(),
                "{status}"
            );
        }
        for kind in [
            LlmErrorKind::Timeout,
            LlmErrorKind::Connect,
            LlmErrorKind::InvalidResponse,
        ] {
            assert!(error(kind, None).is_retryable());
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(1),
            max_retries: 3,
            attempt_timeout: Duration::from_secs(1),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn exhausted_retries_end_after_one_plus_max_retries_attempts() {
        let mut attempts = fast().begin(far());
        let waits: Vec<_> = (0..3)
            .map(|_| attempts.after_failure(error(LlmErrorKind::Http { status: 500 }, None), 0.5))
            .collect();
        assert!(waits.iter().all(Result::is_ok), "{waits:?}");
        let failure = attempts
            .after_failure(error(LlmErrorKind::Http { status: 500 }, None), 0.5)
            .expect_err("the fourth failure ends it");
        assert_eq!((failure.attempts, failure.exhausted), (4, true));
    }

    #[test]
    fn a_permanent_failure_ends_at_once() {
        let mut attempts = fast().begin(far());
        let failure = attempts
            .after_failure(error(LlmErrorKind::Http { status: 400 }, None), 0.5)
            .expect_err("400 is final");
        assert_eq!((failure.attempts, failure.exhausted), (1, false));
    }

    #[test]
    fn the_waits_follow_the_schedule() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            ..fast()
        };
        let mut attempts = policy.begin(far());
        let waits: Vec<u128> = (0..3)
            .filter_map(|_| {
                attempts
                    .after_failure(error(LlmErrorKind::Timeout, None), 0.5)
                    .ok()
            })
            .map(|wait| wait.as_millis())
            .collect();
        assert_eq!(waits, vec![100, 200, 400]);
    }

    #[test]
    fn no_wait_runs_past_the_deadline() {
        let slow = RetryPolicy {
            base: Duration::from_secs(10),
            ..fast()
        };
        let mut attempts = slow.begin(Instant::now() + Duration::from_millis(100));
        assert!(attempts.timeout() <= Duration::from_millis(100));
        let failure = attempts
            .after_failure(error(LlmErrorKind::Timeout, None), 0.5)
            .expect_err("a 10 s wait does not fit in 100 ms");
        assert!(failure.exhausted);
    }
}
