//! Exponential backoff with full jitter: after the n-th failure in a row, wait a random
//! time between the floor and min(ceiling, floor × 2ⁿ), so that many agents that lost
//! mailops at once do not come back at once.

use std::time::Duration;

use rand::Rng as _;

#[derive(Clone, Debug)]
pub struct Backoff {
    floor: Duration,
    ceiling: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(floor: Duration, ceiling: Duration) -> Self {
        Backoff {
            floor,
            ceiling: ceiling.max(floor),
            failures: 0,
        }
    }

    /// The wait after one more failure; at least `at_least` (a server's `Retry-After`).
    pub fn next_wait(&mut self, at_least: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exponent = self.failures.min(20) - 1;
        let upper = self
            .floor
            .saturating_mul(1u32 << exponent)
            .min(self.ceiling);
        let wait = rand::rng().random_range(self.floor..=upper);
        wait.max(at_least.unwrap_or_default().min(self.ceiling))
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_within_the_bounds_and_start_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for n in 0..30 {
            let wait = backoff.next_wait(None);
            let cap = Duration::from_millis(100 * (1u64 << n.min(20))).min(Duration::from_secs(2));
            assert!(
                wait >= Duration::from_millis(100) && wait <= cap,
                "{n}: {wait:?}"
            );
        }
        assert_eq!(
            backoff.next_wait(Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
        backoff.succeeded();
        assert!(backoff.next_wait(None) <= Duration::from_millis(100));
    }
}
