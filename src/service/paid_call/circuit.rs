//! Circuit breakers, one per model: after `LLM_CIRCUIT_FAILURES` consecutive turns
//! whose retries were exhausted, stop calling for `LLM_CIRCUIT_COOLDOWN_MS`, then let
//! one probe through.
//!
//! Every transition sets the `npc_circuit_state` gauge of the model.
//!
//! Per process on purpose: each replica sees the provider from its own network position,
//! and a breaker's value is in reacting within milliseconds, which a database round trip
//! per decision would undo.

use crate::metrics::CircuitState;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; `since` lets a probe that never reports back (its request was
    /// dropped) be replaced.
    HalfOpen {
        since: Instant,
    },
}

impl From<State> for CircuitState {
    fn from(state: State) -> Self {
        match state {
            State::Closed { .. } => Self::Closed,
            State::Open { .. } => Self::Open,
            State::HalfOpen { .. } => Self::HalfOpen,
        }
    }
}

#[derive(Debug)]
pub struct CircuitBreakers {
    threshold: u32,
    cooldown: Duration,
    /// How long a probe may take before another is let through.
    probe_timeout: Duration,
    states: Mutex<HashMap<String, State>>,
}

/// May this turn call the model?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Allowed as the single probe of a half-open circuit.
    Probe,
    Refused,
}

impl CircuitBreakers {
    pub fn new(threshold: u32, cooldown: Duration, probe_timeout: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            probe_timeout,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn with_state<T>(&self, model: &str, f: impl FnOnce(&mut State) -> T) -> T {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = states.entry(model.to_owned()).or_insert_with(|| {
            crate::metrics::circuit_state(model, CircuitState::Closed);
            State::Closed { failures: 0 }
        });
        let before = CircuitState::from(*state);
        let answer = f(state);
        let after = CircuitState::from(*state);
        if after != before {
            crate::metrics::circuit_state(model, after);
        }
        answer
    }

    pub fn admit(&self, model: &str) -> Admission {
        self.admit_at(model, Instant::now())
    }

    fn admit_at(&self, model: &str, now: Instant) -> Admission {
        self.with_state(model, |state| match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now < until => Admission::Refused,
            State::HalfOpen { since } if now < since + self.probe_timeout => Admission::Refused,
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { since: now };
                tracing::info!(model, "circuit half-open: letting one probe through");
                Admission::Probe
            }
        })
    }

    /// The provider answered (even with a non-retryable error): it is reachable.
    pub fn record_success(&self, model: &str) {
        self.with_state(model, |state| {
            if !matches!(state, State::Closed { .. }) {
                tracing::info!(model, "circuit closed: the provider answered again");
            }
            *state = State::Closed { failures: 0 };
        });
    }

    /// A turn's retries were exhausted.
    pub fn record_failure(&self, model: &str) {
        self.record_failure_at(model, Instant::now());
    }

    fn record_failure_at(&self, model: &str, now: Instant) {
        self.with_state(model, |state| {
            let failures = match *state {
                State::Closed { failures } => failures + 1,
                State::Open { .. } | State::HalfOpen { .. } => self.threshold,
            };
            if failures >= self.threshold {
                if !matches!(state, State::Open { .. }) {
                    tracing::warn!(model, failures, cooldown = ?self.cooldown, "circuit open: not calling the provider");
                }
                *state = State::Open { until: now + self.cooldown };
            } else {
                *state = State::Closed { failures };
            }
        });
    }

    /// A background call's retries were exhausted. Only turns count towards opening the
    /// circuit (the player-facing path decides it); but a background call that was the
    /// half-open probe failed as a probe, so the circuit opens again.
    pub fn record_background_failure(&self, model: &str) {
        let now = Instant::now();
        self.with_state(model, |state| {
            if matches!(state, State::HalfOpen { .. }) {
                tracing::warn!(model, "circuit open again: the probe failed");
                *state = State::Open {
                    until: now + self.cooldown,
                };
            }
        });
    }

    /// An admitted call was not made after all (refused by the quota or the budget). A
    /// probe goes back, so the next call may probe at once instead of after its timeout.
    pub fn not_called(&self, model: &str, admission: Admission) {
        if admission != Admission::Probe {
            return;
        }
        let now = Instant::now();
        self.with_state(model, |state| {
            if matches!(state, State::HalfOpen { .. }) {
                *state = State::Open { until: now };
            }
        });
    }

    pub fn state(&self, model: &str) -> CircuitState {
        self.with_state(model, |state| CircuitState::from(*state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    fn breakers() -> CircuitBreakers {
        CircuitBreakers::new(3, COOLDOWN, Duration::from_secs(20))
    }

    #[test]
    fn the_circuit_opens_after_consecutive_failures_only() {
        let b = breakers();
        let now = Instant::now();
        b.record_failure_at("m", now);
        b.record_failure_at("m", now);
        b.record_success("m");
        b.record_failure_at("m", now);
        b.record_failure_at("m", now);
        assert_eq!(b.admit_at("m", now), Admission::Allowed);
        b.record_failure_at("m", now);
        assert_eq!(b.state("m"), CircuitState::Open);
        assert_eq!(b.admit_at("m", now + COOLDOWN / 2), Admission::Refused);
        assert_eq!(
            b.admit_at("other", now),
            Admission::Allowed,
            "one breaker per model"
        );
    }

    #[test]
    fn after_the_cooldown_one_probe_decides() {
        let b = breakers();
        let now = Instant::now();
        for _ in 0..3 {
            b.record_failure_at("m", now);
        }
        let later = now + COOLDOWN;
        assert_eq!(b.admit_at("m", later), Admission::Probe);
        assert_eq!(
            b.admit_at("m", later),
            Admission::Refused,
            "only one probe at a time"
        );
        b.record_failure_at("m", later);
        assert_eq!(
            b.state("m"),
            CircuitState::Open,
            "a failed probe reopens at once"
        );
        let much_later = later + COOLDOWN;
        assert_eq!(b.admit_at("m", much_later), Admission::Probe);
        b.record_success("m");
        assert_eq!(b.admit_at("m", much_later), Admission::Allowed);
    }

    #[test]
    fn background_failures_do_not_open_the_circuit_but_a_failed_background_probe_reopens_it() {
        let b = breakers();
        let now = Instant::now();
        for _ in 0..10 {
            b.record_background_failure("m");
        }
        assert_eq!(b.state("m"), CircuitState::Closed);
        for _ in 0..3 {
            b.record_failure_at("m", now);
        }
        assert_eq!(b.admit_at("m", now + COOLDOWN), Admission::Probe);
        b.record_background_failure("m");
        assert_eq!(b.state("m"), CircuitState::Open);
    }

    #[test]
    fn a_probe_that_was_not_called_goes_back_at_once() {
        let b = breakers();
        let now = Instant::now();
        for _ in 0..3 {
            b.record_failure_at("m", now);
        }
        let admission = b.admit_at("m", now + COOLDOWN);
        assert_eq!(admission, Admission::Probe);
        b.not_called("m", admission);
        assert_eq!(b.admit("m"), Admission::Probe);
    }

    #[test]
    fn a_lost_probe_is_replaced_after_its_timeout() {
        let b = breakers();
        let now = Instant::now();
        for _ in 0..3 {
            b.record_failure_at("m", now);
        }
        assert_eq!(b.admit_at("m", now + COOLDOWN), Admission::Probe);
        assert_eq!(
            b.admit_at("m", now + COOLDOWN + Duration::from_secs(21)),
            Admission::Probe
        );
    }
}
