//! [`RetryPolicy`]: how often and how long the runner waits before trying a
//! rate-limited or transiently failed call again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the runner retries [retryable](crate::ConnectorError::is_retryable)
/// failures: rate limits and transient errors, of a fetch or of single ops
/// in a batch.
///
/// Each op (and each fetch) is tried up to [`max_attempts`] times. Between
/// attempts the runner waits the `retry_after` a rate limit asked for, or
/// else an exponential backoff (`base_delay`, doubled per attempt, at most
/// `max_delay`) with jitter: a uniformly random part of the upper half of
/// the delay, drawn from a deterministic generator seeded by
/// [`jitter_seed`] (give runners that share an API different seeds). A
/// `retry_after` longer than `max_delay` is not waited for: the op fails
/// for this run and is planned again by the next.
///
/// ```
/// use std::time::Duration;
/// use recsync::runner::RetryPolicy;
///
/// let policy = RetryPolicy::new()
///     .max_attempts(4)
///     .base_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(10))
///     .no_jitter();
/// // After the first and second failed attempts, without jitter:
/// assert_eq!(policy.delay(1, None), Some(Duration::from_millis(200)));
/// assert_eq!(policy.delay(2, None), Some(Duration::from_millis(400)));
/// // A rate limit's retry-after is honoured as given...
/// assert_eq!(policy.delay(1, Some(Duration::from_secs(3))), Some(Duration::from_secs(3)));
/// // ...unless it is longer than the policy waits at most.
/// assert_eq!(policy.delay(1, Some(Duration::from_secs(60))), None);
/// // No attempt after the fourth.
/// assert_eq!(policy.delay(4, None), None);
/// ```
///
/// [`max_attempts`]: RetryPolicy::max_attempts
/// [`jitter_seed`]: RetryPolicy::jitter_seed
#[derive(Debug)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    jitter: Option<AtomicU64>,
}

impl Clone for RetryPolicy {
    fn clone(&self) -> Self {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            jitter: self
                .jitter
                .as_ref()
                .map(|s| AtomicU64::new(s.load(Ordering::Relaxed))),
        }
    }
}

impl PartialEq for RetryPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.max_attempts == other.max_attempts
            && self.base_delay == other.base_delay
            && self.max_delay == other.max_delay
            && self.jitter.is_some() == other.jitter.is_some()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new()
    }
}

impl RetryPolicy {
    /// Five attempts, 500 ms doubling up to 60 s, jitter seeded with 0.
    pub fn new() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            jitter: Some(AtomicU64::new(0)),
        }
    }

    /// How many times an op or fetch is tried in all (at least 1: no
    /// retry).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait after the first failed attempt.
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The longest wait, for backoff and for a rate limit's retry-after.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Seeds the jitter generator: the same seed gives the same waits.
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter = Some(AtomicU64::new(seed));
        self
    }

    /// Waits exactly the exponential backoff, with no jitter.
    #[must_use]
    pub fn no_jitter(mut self) -> Self {
        self.jitter = None;
        self
    }

    /// The number of attempts in all.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// How long to wait after `attempt` attempts (1-based) failed, the last
    /// with `retry_after` if a rate limit said; `None` when there is no
    /// further attempt.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(after) = retry_after {
            return (after <= self.max_delay).then_some(after);
        }
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let full = self
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        Some(match &self.jitter {
            None => full,
            Some(state) => {
                let half = full / 2;
                let spread = full - half;
                half + spread.mul_f64(unit(next(state)))
            }
        })
    }
}

/// splitmix64: a small, good, deterministic generator.
fn next(state: &AtomicU64) -> u64 {
    let seed = state
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) from the top 53 bits.
fn unit(bits: u64) -> f64 {
    // 53 bits fit an f64's mantissa exactly.
    #[allow(clippy::cast_precision_loss)]
    let n = (bits >> 11) as f64;
    n / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_the_upper_half_and_repeats_with_the_seed() {
        let a = RetryPolicy::new()
            .base_delay(Duration::from_secs(1))
            .jitter_seed(7);
        let b = RetryPolicy::new()
            .base_delay(Duration::from_secs(1))
            .jitter_seed(7);
        let mut seen = Vec::new();
        for attempt in 1..5 {
            let full = Duration::from_secs(1) * 2u32.pow(attempt - 1);
            let d = a.delay(attempt, None).unwrap();
            assert!(d >= full / 2 && d <= full, "{d:?} for {full:?}");
            assert_eq!(Some(d), b.delay(attempt, None));
            seen.push(d);
        }
        let c = RetryPolicy::new()
            .base_delay(Duration::from_secs(1))
            .jitter_seed(8);
        assert_ne!(
            c.delay(1, None),
            Some(seen[0]),
            "another seed, another wait"
        );
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        let p = RetryPolicy::new()
            .max_attempts(u32::MAX)
            .max_delay(Duration::from_secs(30))
            .no_jitter();
        assert_eq!(p.delay(200, None), Some(Duration::from_secs(30)));
        assert_eq!(RetryPolicy::new().max_attempts(0).attempts(), 1);
        assert_eq!(RetryPolicy::new().max_attempts(1).delay(1, None), None);
    }
}
