//! [`RateLimit`]: a system's request rate, burst and budget, shared by
//! every runner and connector that talks to the same account.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::channel::oneshot;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::time::{Clock, Sleeper, SystemClock, ThreadSleeper};
use super::BuildError;
use crate::connector::ConnectorError;

/// The time by a recsync [`Clock`], made monotonic: it moves on as the
/// clock moves forward and stands still (never back) when the clock is set
/// back, so that a wall clock corrected by an hour does not hold every
/// request for that hour. The instants governor's limiter reckons in, so
/// tests drive it with a manual clock.
#[derive(Clone)]
struct Monotonic {
    clock: Arc<dyn Clock>,
    /// The clock's last reading and the monotonic time then (both since
    /// the Unix epoch).
    last: Arc<Mutex<(Duration, Duration)>>,
}

impl Monotonic {
    fn new(clock: Arc<dyn Clock>) -> Self {
        let now = since_epoch(clock.now());
        Monotonic {
            clock,
            last: Arc::new(Mutex::new((now, now))),
        }
    }
}

/// The time since the Unix epoch (zero before it).
fn since_epoch(t: DateTime<Utc>) -> Duration {
    (t - DateTime::UNIX_EPOCH)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

impl GovernorClock for Monotonic {
    type Instant = Duration;

    fn now(&self) -> Duration {
        // Read under the lock: a reading older than the last one stored
        // would count the same stretch of time twice.
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let wall = since_epoch(self.clock.now());
        let (seen, mono) = *last;
        let mono = mono.saturating_add(wall.saturating_sub(seen));
        *last = (wall, mono);
        mono
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, Monotonic, NoOpMiddleware<Duration>>;

/// What every holder of a [`RateLimit`] shares besides the limiter.
#[derive(Debug, Default)]
struct Shared {
    /// No request starts before this (by the limit's monotonic time): set
    /// when the system answered 429 although the pace kept to the limit.
    paused_until: Duration,
    /// Requests started per budget window (by its index since the epoch),
    /// for the last few windows the clock was in: a clock set back to a
    /// window finds its count again, and a window never seen starts
    /// afresh.
    used: BTreeMap<u64, u64>,
    /// Requests started in all.
    requests: u64,
    /// Waits for a permit.
    waits: u64,
    /// The line of holders waiting for a permit: the next ticket to give,
    /// the ticket whose turn it is, how to tell each one waiting that its
    /// turn came, and the tickets of those who left the line.
    next_ticket: u64,
    serving: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
    left: BTreeSet<u64>,
}

/// A holder's place in the line for a permit; its turn ends when dropped.
struct Turn<'a> {
    limit: &'a RateLimit,
    ticket: u64,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.limit.turn_over(self.ticket);
    }
}

struct Inner {
    requests: u32,
    per: Duration,
    burst: u32,
    budget: Option<(u64, Duration)>,
    limiter: Limiter,
    time: Monotonic,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    shared: Mutex<Shared>,
}

/// A system's request rate: at most `requests` per `per`, in bursts of at
/// most [`burst`](RateLimitBuilder::burst), and optionally at most a
/// [budget](RateLimitBuilder::budget) of requests per day (or other
/// window). Feature `rate-limit`.
///
/// Give one to a runner for a system
/// ([`SyncRunnerBuilder::rate_limit`](super::SyncRunnerBuilder::rate_limit)):
/// the runner then waits for a permit before every call it makes to the
/// system's connector (each read, page of changes, write batch and
/// read-back), and sends none once the budget is spent. A `RateLimit` is a handle: clones share the
/// pace and the budget, so the runners of one account (contacts, deals,
/// companies) share one limit by sharing clones, and never burst past it
/// together. When the system answers 429 anyway (another client uses the
/// same account), every holder pauses for the wait the runner decided on
/// ([`pause`](Self::pause)).
///
/// The pace is a GCRA ([`governor`](https://docs.rs/governor)): a
/// request every `per / requests`, plus up to `burst` at once after a
/// quiet spell. So one window of `per` may see up to
/// `requests + burst - 1` requests: for an API that counts requests over a
/// rolling window (100 per 10 seconds), give `requests` at most the API's
/// limit less `burst - 1`, and a little under where requests reach it late
/// or other clients share the account. A small burst (2 to 5) keeps the
/// pace when a wait ends a little late; the default is 1.
///
/// The pace runs on the limit's clock made monotonic: a clock set back
/// holds nothing for the step. Give it a sleeper of your runtime's: the
/// default [`ThreadSleeper`] spends a thread on every wait, and at the pace
/// of an API most requests wait.
///
/// A connector that sends more than one request in a call (a complete
/// read over many pages, one request per kind of op) takes a permit with
/// [`until_ready`](Self::until_ready) before each request after the first:
/// the runner takes one per call.
///
/// Budget windows are counted from the Unix epoch by the limit's clock: a
/// day's starts at 00:00 UTC (an API whose day starts at midnight in the
/// account's time zone is met by a budget a little under its cap, or
/// windows of your own with [`budget`](RateLimitBuilder::budget)). The
/// count is kept in memory, per process: a restart starts it again, and
/// the system's own refusals are the backstop.
///
/// ```
/// use std::time::Duration;
/// use recsync::runner::RateLimit;
///
/// // HubSpot, for an OAuth app: 100 requests per 10 seconds, 250,000 a day.
/// let hubspot = RateLimit::builder(100, Duration::from_secs(10))
///     .daily_budget(250_000)
///     .build()?;
/// assert_eq!(hubspot.budget_left(), Some(250_000));
/// let shared = hubspot.clone(); // for the runner of another object type
/// # futures::executor::block_on(async {
/// shared.until_ready().await?;
/// # Ok::<(), recsync::ConnectorError>(())
/// # }).unwrap();
/// assert_eq!(hubspot.budget_left(), Some(249_999));
/// # Ok::<(), recsync::runner::BuildError>(())
/// ```
#[derive(Clone)]
pub struct RateLimit {
    inner: Arc<Inner>,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("requests", &self.inner.requests)
            .field("per", &self.inner.per)
            .field("burst", &self.inner.burst)
            .field("budget", &self.inner.budget)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateLimit`]; see [`RateLimit::builder`].
pub struct RateLimitBuilder {
    requests: u32,
    per: Duration,
    burst: u32,
    budget: Option<(u64, Duration)>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
}

impl fmt::Debug for RateLimitBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitBuilder")
            .field("requests", &self.requests)
            .field("per", &self.per)
            .field("burst", &self.burst)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How many budget windows' counts are kept (the latest by index).
const WINDOWS_KEPT: usize = 8;

/// The longest window a pace may have: ten years (governor's arithmetic
/// holds far longer; a longer window is a mistake).
const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// `a / b` rounded up, in nanoseconds that fit a `u64`.
fn ceil_div(a: u128, b: u32) -> u64 {
    let b = u128::from(b.max(1));
    u64::try_from(a.div_ceil(b)).unwrap_or(u64::MAX)
}

impl RateLimitBuilder {
    /// At most this many requests at once after a quiet spell (default 1;
    /// at least 1, at most the requests per window). A window then sees up
    /// to `requests + burst - 1`: see [`RateLimit`].
    #[must_use]
    pub fn burst(mut self, requests: u32) -> Self {
        self.burst = requests;
        self
    }

    /// At most `requests` per `window` (windows counted from the Unix
    /// epoch); once they are spent, [`until_ready`](RateLimit::until_ready)
    /// fails with [`BudgetSpent`](crate::connector::ErrorKind::BudgetSpent) until the
    /// next window.
    #[must_use]
    pub fn budget(mut self, requests: u64, window: Duration) -> Self {
        self.budget = Some((requests, window));
        self
    }

    /// At most `requests` per day, from 00:00 UTC: [`budget`](Self::budget)
    /// over a day.
    #[must_use]
    pub fn daily_budget(self, requests: u64) -> Self {
        self.budget(requests, DAY)
    }

    /// Where the time is read from (default [`SystemClock`]): give runners
    /// and the limit the same clock.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How to wait for a permit (default [`ThreadSleeper`], a thread per
    /// wait; on tokio, pass `tokio::time::sleep`).
    #[must_use]
    pub fn sleeper(mut self, sleeper: impl Sleeper + 'static) -> Self {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// Checks the settings: at least one request per window, a window
    /// longer than zero and at most ten years, a burst between 1 and the
    /// requests per window, a budget window longer than zero.
    pub fn build(self) -> Result<RateLimit, BuildError> {
        let mut problems = Vec::new();
        let requests = NonZeroU32::new(self.requests);
        if requests.is_none() {
            problems.push("a rate limit of 0 requests lets none through".to_owned());
        }
        let burst = NonZeroU32::new(self.burst).filter(|b| b.get() <= self.requests);
        if burst.is_none() {
            problems.push(format!(
                "burst {} must be between 1 and the {} requests per window",
                self.burst, self.requests
            ));
        }
        if self.budget.is_some_and(|(_, window)| window.is_zero()) {
            problems.push("a budget window of zero".to_owned());
        }
        if self.per > LONGEST {
            problems.push(format!(
                "a window of {:?} is longer than the longest, {} days",
                self.per,
                LONGEST.as_secs() / 86_400
            ));
        }
        // Rounded up, so that no window of `per` lets `requests + 1` in.
        let interval = requests
            .filter(|_| self.per <= LONGEST)
            .map(|n| Duration::from_nanos(ceil_div(self.per.as_nanos(), n.get())));
        let quota = interval.and_then(Quota::with_period);
        if requests.is_some() && quota.is_none() {
            problems.push(format!(
                "{} requests per {:?} is no pace: the window is too short",
                self.requests, self.per
            ));
        }
        let (Some(quota), Some(burst), true) = (quota, burst, problems.is_empty()) else {
            return Err(BuildError { problems });
        };
        let time = Monotonic::new(self.clock.clone());
        let limiter = RateLimiter::direct_with_clock(quota.allow_burst(burst), time.clone());
        let window = self
            .budget
            .map_or(0, |(_, w)| budget_window(since_epoch(self.clock.now()), w));
        Ok(RateLimit {
            inner: Arc::new(Inner {
                requests: self.requests,
                per: self.per,
                burst: self.burst,
                budget: self.budget,
                limiter,
                time,
                clock: self.clock,
                sleeper: self.sleeper,
                shared: Mutex::new(Shared {
                    used: BTreeMap::from([(window, 0)]),
                    ..Shared::default()
                }),
            }),
        })
    }
}

/// The index of the budget window `now` falls in.
fn budget_window(now: Duration, window: Duration) -> u64 {
    let n = now.as_nanos() / window.as_nanos().max(1);
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The counts of a [`RateLimit`] since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PaceStats {
    /// Permits given: requests started.
    pub requests: u64,
    /// Times a request waited for its permit.
    pub waits: u64,
}

impl RateLimit {
    /// A limit of `requests` per `per`, with a burst of 1 and no budget.
    pub fn builder(requests: u32, per: Duration) -> RateLimitBuilder {
        RateLimitBuilder {
            requests,
            per,
            burst: 1,
            budget: None,
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(ThreadSleeper),
        }
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves whole counts behind.
        self.inner
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The limit's monotonic time.
    fn now(&self) -> Duration {
        self.inner.time.now()
    }

    /// The wall time, for the budget's windows.
    fn wall(&self) -> Duration {
        since_epoch(self.inner.clock.now())
    }

    /// Waits until a request may start, and counts it against the budget:
    /// call it right before sending one. Holders are served in the order
    /// they asked, so no runner on the account starves behind the others.
    /// Fails with [`BudgetSpent`](crate::connector::ErrorKind::BudgetSpent),
    /// at once, when the budget is spent (also while a pause holds the
    /// others); the request must not be sent then.
    pub async fn until_ready(&self) -> Result<(), ConnectorError> {
        self.budget_check(false)?;
        let (turn, wait) = self.take_turn();
        if let Some(wait) = wait {
            // Sent by the turn before this one when it is done (or dropped).
            let _ = wait.await;
        }
        let granted = self.acquire().await;
        drop(turn);
        granted
    }

    /// A place in line; and, where someone is ahead, the signal that it is
    /// this one's turn.
    fn take_turn(&self) -> (Turn<'_>, Option<oneshot::Receiver<()>>) {
        let mut shared = self.shared();
        let ticket = shared.next_ticket;
        shared.next_ticket += 1;
        let wait = (ticket != shared.serving).then(|| {
            let (tell, wait) = oneshot::channel();
            shared.waiting.insert(ticket, tell);
            wait
        });
        (
            Turn {
                limit: self,
                ticket,
            },
            wait,
        )
    }

    /// The turn of `ticket` is over (done, or its future dropped): the next
    /// one in line goes, skipping those who left the line.
    fn turn_over(&self, ticket: u64) {
        let mut shared = self.shared();
        if shared.serving != ticket {
            // Left the line before its turn.
            shared.waiting.remove(&ticket);
            shared.left.insert(ticket);
            return;
        }
        loop {
            shared.serving += 1;
            let next = shared.serving;
            if shared.left.remove(&next) {
                continue;
            }
            if let Some(tell) = shared.waiting.remove(&next) {
                let _ = tell.send(());
            }
            return;
        }
    }

    /// The head of the line's wait: the pause, then the pace; then the
    /// budget.
    async fn acquire(&self) -> Result<(), ConnectorError> {
        let mut waited = false;
        loop {
            self.budget_check(false)?;
            let now = self.now();
            let paused = self.shared().paused_until;
            if paused > now {
                waited = true;
                self.inner.sleeper.sleep(paused - now).await;
                continue;
            }
            match self.inner.limiter.check() {
                Ok(()) => break,
                Err(not_until) => {
                    waited = true;
                    let wait = not_until.wait_time_from(self.now());
                    self.inner.sleeper.sleep(wait).await;
                }
            }
        }
        self.budget_check(true)?;
        let mut shared = self.shared();
        shared.requests += 1;
        shared.waits += u64::from(waited);
        Ok(())
    }

    /// Whether the budget has a request left now; `take` counts one.
    fn budget_check(&self, take: bool) -> Result<(), ConnectorError> {
        let Some((budget, window)) = self.inner.budget else {
            return Ok(());
        };
        let now = self.wall();
        let mut shared = self.shared();
        let current = budget_window(now, window);
        // The count of the window the clock is in: a clock set back over
        // midnight finds the old day's count, renewing nothing, and one
        // set back from a mistaken step forward goes on from its own day.
        let used = *shared.used.entry(current).or_insert(0);
        while shared.used.len() > WINDOWS_KEPT {
            shared.used.pop_first();
        }
        if used >= budget {
            let next = window.as_nanos() * (u128::from(current) + 1);
            let left = next.saturating_sub(now.as_nanos()) / 1_000_000_000;
            return Err(ConnectorError::budget_spent(format!(
                "the budget of {budget} requests per {}s is spent; it renews in {}s",
                window.as_secs(),
                left
            )));
        }
        if take {
            shared.used.insert(current, used + 1);
        }
        Ok(())
    }

    /// Gives back the budget of a permit whose request was not sent (the
    /// pace's slot is spent).
    pub(super) fn give_back(&self) {
        let current = self
            .inner
            .budget
            .map(|(_, w)| budget_window(self.wall(), w));
        let mut shared = self.shared();
        if let Some(used) = current.and_then(|c| shared.used.get_mut(&c)) {
            *used = used.saturating_sub(1);
        }
        shared.requests = shared.requests.saturating_sub(1);
    }

    /// Requests left in the current budget window; `None` without a
    /// budget.
    pub fn budget_left(&self) -> Option<u64> {
        let (budget, window) = self.inner.budget?;
        let now = self.wall();
        let shared = self.shared();
        let used = shared.used.get(&budget_window(now, window)).copied();
        Some(budget.saturating_sub(used.unwrap_or(0)))
    }

    /// Holds every request through this limit, from every holder, for
    /// `wait` from now: the system answered 429 although the pace kept to
    /// the limit (another client shares the account, or its window counts
    /// differently), so all back off together rather than each find out.
    pub fn pause(&self, wait: Duration) {
        let until = self.now().saturating_add(wait);
        let mut shared = self.shared();
        shared.paused_until = shared.paused_until.max(until);
    }

    /// The counts since the limit was built.
    pub fn stats(&self) -> PaceStats {
        let shared = self.shared();
        PaceStats {
            requests: shared.requests,
            waits: shared.waits,
        }
    }

    /// The wait between two requests at the steady pace: `per / requests`,
    /// rounded up to the nanosecond.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(ceil_div(self.inner.per.as_nanos(), self.inner.requests))
    }
}
