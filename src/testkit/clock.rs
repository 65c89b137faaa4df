//! Clocks for [`MemoryConnector`](super::MemoryConnector): where its
//! `updated_at` and per-field timestamps come from.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

/// Where a [`MemoryConnector`](super::MemoryConnector) reads the time it
/// stamps on records.
///
/// Implemented by [`ManualClock`] (deterministic, for tests), [`SystemClock`]
/// (the wall clock, for demos) and any `Fn() -> DateTime<Utc>`.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

impl<F: Fn() -> DateTime<Utc> + Send + Sync> Clock for F {
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::SystemTime::now())
    }
}

/// A clock that only moves when told: tests [`advance`](ManualClock::advance)
/// or [`set`](ManualClock::set) it, or give it a step by which every reading
/// moves it on ([`ticking`](ManualClock::ticking)).
///
/// Clones share one time, so several connectors can read one clock and a
/// test can move it for all of them.
///
/// ```
/// use chrono::TimeDelta;
/// use recsync::testkit::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2026-03-01T09:00:00Z".parse().unwrap());
/// let shared = clock.clone();
/// clock.advance(TimeDelta::minutes(5));
/// assert_eq!(shared.now().to_rfc3339(), "2026-03-01T09:05:00+00:00");
/// ```
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<Mutex<(DateTime<Utc>, TimeDelta)>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock::ticking(start, TimeDelta::zero())
    }

    /// A clock at `start` that moves on by `step` after every reading, so
    /// every stamp differs and later writes are newer.
    pub fn ticking(start: DateTime<Utc>, step: TimeDelta) -> Self {
        ManualClock {
            state: Arc::new(Mutex::new((start, step))),
        }
    }

    /// A clock at 2026-01-01T00:00:00Z moving on one second per reading: the
    /// default of a [`MemoryConnector`](super::MemoryConnector).
    pub fn default_ticking() -> Self {
        ManualClock::ticking(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::UNIX_EPOCH),
            TimeDelta::seconds(1),
        )
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: TimeDelta) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 += by;
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = at;
    }

    /// The time, without moving a ticking clock on.
    pub fn peek(&self) -> DateTime<Utc> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (now, step) = *state;
        state.0 = now + step;
        now
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("ManualClock")
            .field("now", &state.0)
            .field("step", &state.1)
            .finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::default_ticking()
    }
}
