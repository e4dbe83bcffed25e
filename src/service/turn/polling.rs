//! How a turn waits for something another request holds (the conversation's lease, an
//! idempotency key): polls that start quick and back off, with jitter, up to a deadline.
//!
//! A fixed 25–50 ms poll costs every waiting turn 20–40 queries a second; doubling from
//! 10 ms to 500 ms keeps a short wait short and a long one cheap, and the jitter keeps
//! waiters on several replicas from polling in lockstep.

use std::time::Duration;
use tokio::time::Instant;

/// The first pause.
pub const FIRST: Duration = Duration::from_millis(10);
/// The longest pause.
pub const LONGEST: Duration = Duration::from_millis(500);

/// The pause after `polls` unsuccessful polls, for `unit` drawn uniformly from [0, 1):
/// nominally `FIRST` doubled per poll up to `LONGEST`, jittered down to half of that.
pub fn pause(polls: u32, unit: f64) -> Duration {
    let nominal = FIRST
        .checked_mul(1u32.checked_shl(polls).unwrap_or(u32::MAX))
        .unwrap_or(LONGEST)
        .min(LONGEST);
    nominal.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// The polls of one wait.
#[derive(Debug)]
pub struct Poller {
    give_up: Instant,
    polls: u32,
}

impl Poller {
    pub fn new(wait: Duration) -> Self {
        Self {
            give_up: Instant::now() + wait,
            polls: 0,
        }
    }

    /// Sleeps before the next poll. `false` when the wait is over: the poll that just
    /// failed was the last. The last pause is cut short so that one poll falls on the
    /// deadline itself.
    pub async fn pause(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.give_up {
            return false;
        }
        let pause = pause(self.polls, rand::random::<f64>()).min(self.give_up - now);
        self.polls = self.polls.saturating_add(1);
        tokio::time::sleep(pause).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn pauses_double_from_10_ms_up_to_half_a_second() {
        let nominal: Vec<Duration> = (0..9).map(|polls| pause(polls, 1.0)).collect();
        assert_eq!(
            nominal,
            [
                MS(10),
                MS(20),
                MS(40),
                MS(80),
                MS(160),
                MS(320),
                MS(500),
                MS(500),
                MS(500)
            ]
        );
        assert_eq!(pause(31, 1.0), LONGEST);
        assert_eq!(pause(32, 1.0), LONGEST, "no overflow past 2^31");
        assert_eq!(pause(u32::MAX, 1.0), LONGEST);
    }

    #[test]
    fn jitter_keeps_each_pause_between_half_and_all_of_its_nominal_value() {
        for polls in 0..12 {
            let nominal = pause(polls, 1.0);
            assert_eq!(pause(polls, 0.0), nominal / 2);
            for unit in [0.1, 0.37, 0.5, 0.99] {
                let jittered = pause(polls, unit);
                assert!(
                    jittered >= nominal / 2 && jittered <= nominal,
                    "{polls}: {jittered:?}"
                );
            }
        }
        // Out-of-range draws stay in bounds.
        assert_eq!(pause(0, -3.0), MS(5));
        assert_eq!(pause(0, 7.0), MS(10));
    }

    #[tokio::test]
    async fn a_wait_ends_on_its_deadline_after_a_few_polls() {
        let started = Instant::now();
        let mut poller = Poller::new(MS(300));
        let mut polls = 0;
        while poller.pause().await {
            polls += 1;
        }
        let waited = started.elapsed();
        assert!(waited >= MS(300) && waited < MS(2000), "{waited:?}");
        // Pauses of 10, 20, 40, 80, 160 ms nominal reach 300 ms in 5 to 7 with the jitter
        // (fewer when the machine oversleeps), not the 12 of a fixed 25 ms poll.
        assert!((1..=7).contains(&polls), "{polls} polls");
    }
}
