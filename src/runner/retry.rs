//! [`RetryPolicy`]: how often and how long the runner waits before trying a
//! rate-limited or transiently failed call again.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the runner retries [retryable](crate::ConnectorError::is_retryable)
/// failures: rate limits and transient errors, of a fetch or of single ops
/// in a batch.
///
/// Each op (and each fetch) is tried up to [`max_attempts`] times. Between
/// attempts the runner waits the `retry_after` a rate limit asked for, or
/// else an exponential backoff (`base_delay`, doubled per attempt, at most
/// `max_delay`) with jitter: a uniformly random part of the upper half of
/// the delay, drawn from a small deterministic generator. By default each
/// policy seeds it anew, from `std`'s per-process random state, the process
/// id, the time and a count of the policies made (a clone of such a policy
/// draws a seed of its own too), so runners in different processes, or in
/// one process, that share an API do not retry in step. [`jitter_seed`]
/// fixes the seed instead: the same seed gives the same waits, for tests
/// and reproductions. A `retry_after` longer than `max_delay` is not waited
/// for: the op fails for this run and is planned again by the next.
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
    /// The jitter generator's state; `None` without jitter.
    jitter: Option<AtomicU64>,
    /// The seed was given ([`jitter_seed`](RetryPolicy::jitter_seed)): a
    /// clone goes on from the same state instead of drawing its own.
    fixed_seed: bool,
}

impl Clone for RetryPolicy {
    fn clone(&self) -> Self {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            jitter: self.jitter.as_ref().map(|s| {
                AtomicU64::new(if self.fixed_seed {
                    s.load(Ordering::Relaxed)
                } else {
                    fresh_seed()
                })
            }),
            fixed_seed: self.fixed_seed,
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
    /// Five attempts, 500 ms doubling up to 60 s, jitter seeded anew for
    /// this policy (see [`jitter_seed`](Self::jitter_seed) for waits that
    /// repeat).
    pub fn new() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            jitter: Some(AtomicU64::new(fresh_seed())),
            fixed_seed: false,
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

    /// Seeds the jitter generator with `seed` instead of a seed of its
    /// own: the same seed gives the same waits (in tests, and to reproduce
    /// a run). Give runners that share an API different seeds.
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter = Some(AtomicU64::new(seed));
        self.fixed_seed = true;
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

/// A seed that differs per process and per call: `std`'s randomly keyed
/// hasher (its keys drawn per process, then moved on per hasher) over the
/// process id, a count of the seeds drawn and the time.
fn fresh_seed() -> u64 {
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    std::process::id().hash(&mut h);
    DRAWN.fetch_add(1, Ordering::Relaxed).hash(&mut h);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .hash(&mut h);
    h.finish()
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

    /// The first `n` jittered waits of `p`, 1 s backoff at every attempt.
    fn waits(p: &RetryPolicy, n: usize) -> Vec<Duration> {
        (0..n).map(|_| p.delay(1, None).unwrap()).collect()
    }

    #[test]
    fn default_policies_draw_their_own_seeds_and_a_fixed_seed_repeats() {
        let policy = || {
            RetryPolicy::new()
                .max_attempts(2)
                .base_delay(Duration::from_secs(1))
        };
        // 16 waits of 500 ms jitter at nanosecond resolution: two policies
        // seeded alike would give the same 16; seeded apart, all 16 equal
        // has a chance of about 2^-464.
        let (a, b) = (policy(), policy());
        assert_ne!(waits(&a, 16), waits(&b, 16), "two default policies");
        let c = a.clone();
        assert_ne!(waits(&a, 16), waits(&c, 16), "a default policy's clone");
        for w in waits(&a, 16) {
            assert!(w >= Duration::from_millis(500) && w <= Duration::from_secs(1));
        }
        // A fixed seed repeats, in another policy and in a clone.
        let fixed = policy().jitter_seed(42);
        let first = waits(&fixed, 16);
        assert_eq!(first, waits(&policy().jitter_seed(42), 16));
        let clone = fixed.clone();
        assert_eq!(waits(&fixed, 4), waits(&clone, 4));
        assert_ne!(first, waits(&policy().jitter_seed(43), 16));
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
