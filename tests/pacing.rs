//! The runner under a system's rate limit: every request waits for its
//! permit, runners sharing an account's limit never go over it together, a
//! 429 pauses every holder, several batches go at once with each entity's
//! ops in order, and a spent daily budget stops the run without losing
//! anything. Then pacing at its edges, each case found by a review of the
//! first version: a clock set back, a budget across midnight, a spent
//! budget during a pause, bursts and uneven windows, a permit given at the
//! deadline, a cap the system reports itself, a 429 that is not retried, a
//! paged read slower than its timeout, absurd settings, holders served in
//! turn. Time is a manual clock (one test excepted): nothing here waits
//! for real.
#![cfg(all(feature = "testkit", feature = "rate-limit"))]

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use recsync::connector::{Applied, Capabilities, Changes, Cursor, ErrorKind};
use recsync::plan::WriteOp;
use recsync::runner::{
    RateLimit, RateLimitBuilder, RetryPolicy, RunError, Sleeper, SyncEvent, SyncRunner,
    SyncRunnerBuilder,
};
use recsync::testkit::{Clock, ManualClock, MemoryConnector};
use recsync::{
    Connector, ConnectorError, Field, FieldMap, Guards, MemoryStore, Snapshot, SyncEngine, SystemId,
};
use serde_json::{json, Value};

fn start() -> DateTime<Utc> {
    "2026-03-01T09:00:00Z".parse().unwrap()
}

fn map(object: &str) -> FieldMap {
    FieldMap::builder()
        .object(object)
        .systems(["crm", "shop"])
        .key("email")
        .guards(Guards::off())
        .field(Field::new("email"))
        .field(Field::new("name"))
        .build()
        .unwrap()
}

/// Completes after being polled `polls` times, waking itself in between:
/// a call that takes a while, so that others start meanwhile.
struct Busy(usize);

impl Future for Busy {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What the watched connectors of one account saw.
#[derive(Debug, Default)]
struct Log {
    /// When each request started, by the test's clock, and what it was.
    starts: Mutex<Vec<(DateTime<Utc>, &'static str)>>,
    /// Write calls running now, and the most at once.
    running: AtomicUsize,
    most: AtomicUsize,
    /// Write calls so far.
    applies: AtomicUsize,
    /// Write calls (0-based, over the account) answered 429.
    refuse: Mutex<Vec<usize>>,
    /// Every write is answered with this error.
    apply_error: Mutex<Option<ConnectorError>>,
    /// From this write call on (0-based), the system answers that its own
    /// daily cap is reached.
    cap_from: Mutex<Option<usize>>,
}

impl Log {
    fn starts(&self) -> Vec<DateTime<Utc>> {
        let mut at: Vec<DateTime<Utc>> = self.starts.lock().unwrap().iter().map(|s| s.0).collect();
        at.sort();
        at
    }
}

/// A memory system behind an account's API: every call is noted, a write
/// takes a few polls, and chosen writes are refused with a 429.
#[derive(Debug, Clone)]
struct Watched {
    inner: MemoryConnector,
    clock: ManualClock,
    log: Arc<Log>,
}

impl Watched {
    fn note(&self, what: &'static str) {
        self.log
            .starts
            .lock()
            .unwrap()
            .push((self.clock.peek(), what));
    }
}

#[async_trait]
impl Connector for Watched {
    fn system(&self) -> &SystemId {
        self.inner.system()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn fetch(&self, object: &str) -> Result<Snapshot, ConnectorError> {
        self.note("fetch");
        self.inner.fetch(object).await
    }
    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        self.note("changes");
        self.inner.fetch_changes(object, cursor).await
    }
    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        self.note("read");
        self.inner.fetch_records(object, ids).await
    }
    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        self.note("apply");
        let n = self.log.applies.fetch_add(1, Ordering::SeqCst);
        if let Some(error) = self.log.apply_error.lock().unwrap().clone() {
            return Err(error);
        }
        if self
            .log
            .cap_from
            .lock()
            .unwrap()
            .is_some_and(|from| n >= from)
        {
            return Err(ConnectorError::budget_spent("daily cap reached"));
        }
        if self.log.refuse.lock().unwrap().contains(&n) {
            return Err(ConnectorError::rate_limited(
                Some(Duration::from_secs(2)),
                "secondly limit reached",
            ));
        }
        let now = self.log.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.most.fetch_max(now, Ordering::SeqCst);
        Busy(3).await;
        let answer = self.inner.apply(object, ops).await;
        self.log.running.fetch_sub(1, Ordering::SeqCst);
        answer
    }
}

/// A crm holding `people` contacts of `object` and an empty shop behind a
/// watched account, batches of 5.
fn world(
    object: &str,
    people: usize,
    clock: &ManualClock,
    log: &Arc<Log>,
) -> (MemoryConnector, Watched) {
    let crm = MemoryConnector::builder("crm")
        .clock(clock.clone())
        .build()
        .unwrap();
    for i in 0..people {
        crm.insert(
            object,
            [
                ("email", json!(format!("p{i}@x.io"))),
                ("name", json!(format!("n{i}"))),
            ],
        );
    }
    let shop = MemoryConnector::builder("shop")
        .clock(clock.clone())
        .max_batch_size(5)
        .build()
        .unwrap();
    let shop = Watched {
        inner: shop,
        clock: clock.clone(),
        log: Arc::clone(log),
    };
    (crm, shop)
}

fn runner(
    object: &str,
    crm: MemoryConnector,
    shop: Watched,
    clock: &ManualClock,
    limit: Option<&RateLimit>,
    in_flight: usize,
) -> SyncRunner {
    builder(object, crm, shop, clock, limit, in_flight)
        .build()
        .unwrap()
}

fn builder(
    object: &str,
    crm: MemoryConnector,
    shop: Watched,
    clock: &ManualClock,
    limit: Option<&RateLimit>,
    in_flight: usize,
) -> SyncRunnerBuilder {
    let mut builder = SyncRunner::builder(SyncEngine::new(map(object)))
        .connector(crm)
        .connector(shop)
        .store(MemoryStore::new())
        .clock(clock.clone())
        .sleeper(clock.clone())
        .retry(RetryPolicy::new().no_jitter())
        .batches_in_flight(in_flight);
    if let Some(limit) = limit {
        builder = builder.rate_limit("shop", limit.clone());
    }
    builder
}

/// `builder` on the test's manual clock, as clock and sleeper.
fn on_clock(clock: &ManualClock, builder: RateLimitBuilder) -> RateLimit {
    builder
        .clock(clock.clone())
        .sleeper(clock.clone())
        .build()
        .unwrap()
}

fn limit(clock: &ManualClock, per_second: u32) -> RateLimit {
    on_clock(
        clock,
        RateLimit::builder(per_second, Duration::from_secs(1)),
    )
}

/// The shortest gap between two requests.
fn shortest_gap(starts: &[DateTime<Utc>]) -> TimeDelta {
    starts
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(TimeDelta::MAX)
}

fn emails(c: &MemoryConnector, object: &str) -> Vec<String> {
    let mut all: Vec<String> = c
        .records(object)
        .iter()
        .filter_map(|r| r.get("email").and_then(Value::as_str).map(str::to_owned))
        .collect();
    all.sort();
    all
}

#[test]
fn every_request_to_a_limited_system_waits_for_its_permit() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let log = Arc::new(Log::default());
        let (crm, shop) = world("contacts", 40, &clock, &log);
        let limit = limit(&clock, 10);
        let runner = runner("contacts", crm, shop.clone(), &clock, Some(&limit), 1);
        let report = runner.run().await.unwrap();
        assert_eq!(report.applied(), 40);
        // A read, 8 write batches of 5, 8 read-backs: 17 requests, each at
        // least the interval (100 ms) after the one before.
        let starts = log.starts();
        assert_eq!(starts.len(), 17);
        assert!(shortest_gap(&starts) >= TimeDelta::milliseconds(100));
        assert!(starts[16] - starts[0] >= TimeDelta::milliseconds(1600));
        let shop_report = report.systems.iter().find(|s| s.system == "shop").unwrap();
        assert_eq!(shop_report.requests, 17);
        assert_eq!(limit.stats().requests, 17);
        assert!(!shop_report.budget_spent);
        // The crm has no limit: its one read is counted, not paced.
        assert_eq!(report.systems[0].requests, 1);
    });
}

#[test]
fn without_a_limit_requests_go_at_once() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let log = Arc::new(Log::default());
        let (crm, shop) = world("contacts", 40, &clock, &log);
        let runner = runner("contacts", crm, shop, &clock, None, 1);
        runner.run().await.unwrap();
        let starts = log.starts();
        assert_eq!(starts.len(), 17);
        assert_eq!(starts[16], starts[0]);
    });
}

#[test]
fn runners_sharing_an_accounts_limit_never_go_over_it_together() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let log = Arc::new(Log::default());
        let limit = limit(&clock, 10);
        let (crm_a, shop_a) = world("contacts", 30, &clock, &log);
        let (crm_b, shop_b) = world("deals", 30, &clock, &log);
        let a = runner("contacts", crm_a, shop_a.clone(), &clock, Some(&limit), 2);
        let b = runner("deals", crm_b, shop_b.clone(), &clock, Some(&limit), 2);
        let (ra, rb) = futures::join!(a.run(), b.run());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!((ra.applied(), rb.applied()), (30, 30));
        assert_eq!(emails(&shop_a.inner, "contacts").len(), 30);
        assert_eq!(emails(&shop_b.inner, "deals").len(), 30);
        let starts = log.starts();
        // Each: a read, 6 batches, 6 read-backs.
        assert_eq!(starts.len(), 26);
        assert!(shortest_gap(&starts) >= TimeDelta::milliseconds(100));
        assert_eq!(
            ra.systems[1].requests + rb.systems[1].requests,
            starts.len()
        );
    });
}

#[test]
fn a_429_answered_anyway_pauses_every_runner_on_the_account() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let log = Arc::new(Log::default());
        // The account's third write is refused, asking for 2 s.
        log.refuse.lock().unwrap().push(2);
        let limit = limit(&clock, 10);
        let (crm_a, shop_a) = world("contacts", 30, &clock, &log);
        let (crm_b, shop_b) = world("deals", 30, &clock, &log);
        // The runners' own retry waits take no time: only the limit's
        // pause holds them.
        let no_wait = |_: Duration| async {};
        let a = builder("contacts", crm_a, shop_a.clone(), &clock, Some(&limit), 1)
            .sleeper(no_wait)
            .build()
            .unwrap();
        let b = builder("deals", crm_b, shop_b.clone(), &clock, Some(&limit), 1)
            .sleeper(no_wait)
            .build()
            .unwrap();
        let (ra, rb) = futures::join!(a.run(), b.run());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.applied() + rb.applied(), 60, "{ra}\n{rb}");
        assert_eq!(ra.retries() + rb.retries(), 1);
        let all = log.starts.lock().unwrap().clone();
        let refused = all.iter().filter(|(_, w)| *w == "apply").nth(2).unwrap().0;
        // Nothing from either runner in the 2 s after the refusal.
        let during: Vec<_> = all
            .iter()
            .filter(|(t, _)| *t > refused && *t < refused + TimeDelta::seconds(2))
            .collect();
        assert!(during.is_empty(), "{during:?}");
    });
}

#[test]
fn several_batches_go_at_once_up_to_the_setting() {
    for (in_flight, most) in [(1, 1), (3, 3)] {
        futures::executor::block_on(async {
            let clock = ManualClock::new(start());
            let log = Arc::new(Log::default());
            let (crm, shop) = world("contacts", 30, &clock, &log);
            let runner = runner("contacts", crm, shop.clone(), &clock, None, in_flight);
            let report = runner.run().await.unwrap();
            assert_eq!(report.applied(), 30);
            assert_eq!(log.most.load(Ordering::SeqCst), most);
            assert_eq!(emails(&shop.inner, "contacts").len(), 30);
            assert!(runner.dry_run().await.unwrap().is_empty());
        });
    }
}

#[test]
fn a_spent_daily_budget_stops_the_run_and_the_next_day_goes_on() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let log = Arc::new(Log::default());
        let (crm, shop) = world("contacts", 30, &clock, &log);
        let limit = on_clock(
            &clock,
            RateLimit::builder(10, Duration::from_secs(1)).daily_budget(6),
        );
        let runner = runner(
            "contacts",
            crm.clone(),
            shop.clone(),
            &clock,
            Some(&limit),
            1,
        );
        let mut events = runner.subscribe();

        // A read and 5 write batches spend the budget; the sixth batch is
        // not sent, and nothing is read back.
        let first = runner.run().await.unwrap();
        assert_eq!(first.applied(), 25, "{first}");
        assert_eq!(first.failed(), 5);
        assert!(first.systems[1].budget_spent);
        assert_eq!(first.systems[1].requests, 6);
        assert_eq!(log.starts().len(), 6);
        assert!(first
            .errors
            .iter()
            .all(|g| g.kind == ErrorKind::BudgetSpent));
        assert!(first.to_string().contains("request budget of shop spent"));
        assert_eq!(limit.budget_left(), Some(0));
        let mut spent = 0;
        while let Ok(event) = events.try_recv() {
            spent += usize::from(matches!(event, SyncEvent::BudgetSpent { .. }));
        }
        assert_eq!(spent, 1, "said once");

        // The same day, the shop cannot even be read: the run stops before
        // it plans, and sends nothing.
        match runner.run().await {
            Err(RunError::Fetch { system, source, .. }) => {
                assert_eq!(system, "shop");
                assert_eq!(*source.kind(), ErrorKind::BudgetSpent);
            }
            other => panic!("expected the budget to stop the read: {other:?}"),
        }
        assert_eq!(log.starts().len(), 6);

        // The next day the rest is written (a read, a batch, its
        // read-back): each contact once.
        clock.set("2026-03-02T00:00:01Z".parse().unwrap());
        let next = runner.run().await.unwrap();
        assert_eq!(next.applied(), 5, "{next}");
        assert_eq!(next.systems[1].planned.create, 5);
        assert_eq!(next.systems[1].requests, 3);
        assert!(!next.systems[1].budget_spent);
        let want: Vec<String> = emails(&crm, "contacts");
        assert_eq!(emails(&shop.inner, "contacts"), want);
        assert_eq!(
            want.iter().collect::<BTreeSet<_>>().len(),
            30,
            "no duplicate"
        );
        assert!(runner.dry_run().await.unwrap().is_empty());
    });
}

#[test]
fn bad_limits_are_refused_with_every_problem() {
    let e = RateLimit::builder(0, Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("0 requests"), "{e}");
    let e = RateLimit::builder(10, Duration::from_secs(1))
        .burst(11)
        .budget(5, Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.problems.len(), 2, "{e}");
    let e = RateLimit::builder(10, Duration::ZERO).build().unwrap_err();
    assert!(e.to_string().contains("window is too short"), "{e}");

    let clock = ManualClock::new(start());
    let ok = limit(&clock, 10);
    let e = SyncRunner::builder(SyncEngine::new(map("contacts")))
        .connector(MemoryConnector::new("crm"))
        .connector(MemoryConnector::new("shop"))
        .store(MemoryStore::new())
        .rate_limit("erp", ok.clone())
        .rate_limit("shop", ok.clone())
        .rate_limit("shop", ok)
        .batches_in_flight(0)
        .build()
        .unwrap_err();
    assert_eq!(e.problems.len(), 3, "{e}");
}

#[test]
fn a_pause_holds_every_holder_and_a_burst_goes_at_once() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let limit = on_clock(
            &clock,
            RateLimit::builder(4, Duration::from_secs(1)).burst(4),
        );
        for _ in 0..4 {
            limit.until_ready().await.unwrap();
        }
        assert_eq!(clock.now(), start(), "a burst of 4 waits for nothing");
        limit.until_ready().await.unwrap();
        assert_eq!(clock.now(), start() + TimeDelta::milliseconds(250));
        let other = limit.clone();
        other.pause(Duration::from_secs(3));
        limit.until_ready().await.unwrap();
        assert_eq!(clock.now(), start() + TimeDelta::milliseconds(3250));
        assert_eq!(other.stats().requests, 6);
        assert_eq!(limit.interval(), Duration::from_millis(250));
    });
}

/// A crm holding `people` contacts and a watched shop of its own.
fn edge_world(people: usize, clock: &ManualClock) -> (MemoryConnector, Watched) {
    world("contacts", people, clock, &Arc::new(Log::default()))
}

/// A wall clock set back by an hour (an NTP correction, a VM resumed)
/// holds no request for the hour: the pace runs on the clock made
/// monotonic.
#[test]
fn a_clock_set_back_holds_no_request_for_the_step() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let limit = on_clock(&clock, RateLimit::builder(10, Duration::from_secs(1)));
        limit.until_ready().await.unwrap();
        limit.until_ready().await.unwrap();
        let back = start() - TimeDelta::hours(1);
        clock.set(back);
        limit.until_ready().await.unwrap();
        let waited = clock.peek() - back;
        assert!(
            waited <= TimeDelta::seconds(1),
            "one request after the clock stepped back 1h waited {waited}"
        );
    });
}

/// A clock set back over midnight, and forward again, renews the daily
/// budget once: windows only move forward.
#[test]
fn a_clock_set_back_over_midnight_renews_no_budget() {
    futures::executor::block_on(async {
        let d1: DateTime<Utc> = "2026-03-01T23:59:59.500Z".parse().unwrap();
        let clock = ManualClock::new(d1);
        let limit = on_clock(
            &clock,
            RateLimit::builder(100, Duration::from_secs(1)).daily_budget(1),
        );
        let mut granted = 0;
        for at in [
            "2026-03-01T23:59:59.500Z", // day 1: its one request
            "2026-03-02T00:00:00.200Z", // day 2: its one request
            "2026-03-01T23:59:59.900Z", // clock steps back 0.3 s: day 1 again
            "2026-03-02T00:00:00.600Z", // and forward: day 2 again
        ] {
            clock.set(at.parse().unwrap());
            granted += usize::from(limit.until_ready().await.is_ok());
        }
        assert_eq!(
            granted, 2,
            "a budget of 1 a day let {granted} through in 1.1 s"
        );
    });
}

/// A spent budget fails at once, even while a pause holds the others.
#[test]
fn a_spent_budget_fails_at_once_even_during_a_pause() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let limit = on_clock(
            &clock,
            RateLimit::builder(10, Duration::from_secs(1)).daily_budget(1),
        );
        limit.until_ready().await.unwrap();
        limit.pause(Duration::from_secs(60));
        let before = clock.peek();
        let e = limit.until_ready().await.unwrap_err();
        assert_eq!(*e.kind(), ErrorKind::BudgetSpent);
        assert_eq!(
            clock.peek(),
            before,
            "waited {} for a spent budget",
            clock.peek() - before
        );
    });
}

/// With burst b, a window of `per` sees up to n + b - 1 requests after a
/// quiet spell, as the docs say: a rolling n-per-window API needs
/// `requests` lowered by b - 1.
#[test]
fn a_window_sees_at_most_the_rate_plus_the_burst_less_one() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let limit = on_clock(
            &clock,
            RateLimit::builder(10, Duration::from_secs(1)).burst(5),
        );
        let mut at = Vec::new();
        for _ in 0..30 {
            limit.until_ready().await.unwrap();
            at.push(clock.peek());
        }
        let most = at
            .iter()
            .map(|t0| {
                at.iter()
                    .filter(|t| **t >= *t0 && **t < *t0 + TimeDelta::seconds(1))
                    .count()
            })
            .max()
            .unwrap();
        // A burst of 5 after the quiet start, then the pace: 10 + 5 - 1,
        // as the docs say, and no more.
        assert_eq!(most, 14, "{most} requests within one 1 s window");
    });
}

/// 3 per second: the interval is rounded up (333,333,334 ns), so no 4
/// requests fall within one second.
#[test]
fn an_uneven_window_does_not_let_one_more_through() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let limit = on_clock(&clock, RateLimit::builder(3, Duration::from_secs(1)));
        let mut at = Vec::new();
        for _ in 0..4 {
            limit.until_ready().await.unwrap();
            at.push(clock.peek());
        }
        assert!(
            at[3] - at[0] >= TimeDelta::seconds(1),
            "4 requests in {}",
            at[3] - at[0]
        );
    });
}

/// A permit given at the deadline sends nothing: its budget is given back
/// and the report counts only requests sent.
#[test]
fn a_permit_given_at_the_deadline_sends_and_spends_nothing() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let (crm, shop) = edge_world(15, &clock);
        let limit = on_clock(
            &clock,
            RateLimit::builder(1, Duration::from_secs(10)).daily_budget(100),
        );
        let runner = builder("contacts", crm, shop.clone(), &clock, Some(&limit), 1)
            .deadline(Duration::from_secs(15))
            .build()
            .unwrap();
        let report = runner.run().await.unwrap();
        let sent = shop.log.starts.lock().unwrap().len();
        let shop_report = &report.systems[1];
        assert_eq!(
            shop_report.requests, sent,
            "report counts requests never sent"
        );
        assert_eq!(
            limit.budget_left(),
            Some(100 - sent as u64),
            "budget spent on unsent requests"
        );
    });
}

/// The system's own daily cap, reported by the connector as
/// `BudgetSpent`, stops the run's requests to it and is reported as a
/// spent budget, like the limit's.
#[test]
fn a_cap_the_system_reports_stops_the_run_like_the_budget() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let (crm, shop) = edge_world(30, &clock);
        *shop.log.apply_error.lock().unwrap() = Some(ConnectorError::budget_spent("daily cap"));
        let runner = builder("contacts", crm, shop.clone(), &clock, None, 1)
            .build()
            .unwrap();
        let mut events = runner.subscribe();
        let report = runner.run().await.unwrap();
        let applies = shop
            .log
            .starts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, w)| *w == "apply")
            .count();
        let mut said = 0;
        while let Ok(e) = events.try_recv() {
            said += usize::from(matches!(e, SyncEvent::BudgetSpent { .. }));
        }
        eprintln!(
            "applies after the cap: {applies}; event {said}; flag {}",
            report.systems[1].budget_spent
        );
        assert_eq!(
            applies, 1,
            "kept sending batches to a system whose budget is spent"
        );
        assert!(report.systems[1].budget_spent);
    });
}

/// A 429 whose retry the policy does not make (attempts spent, a wait
/// longer than `max_delay`, past the deadline) still pauses the account:
/// the next batch does not go into the same 429 window.
#[test]
fn a_429_not_retried_still_pauses_the_account() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let (crm, shop) = edge_world(10, &clock);
        let limit = limit(&clock, 100);
        *shop.log.apply_error.lock().unwrap() = Some(ConnectorError::rate_limited(
            Some(Duration::from_secs(30)),
            "slow down",
        ));
        let runner = builder("contacts", crm, shop.clone(), &clock, Some(&limit), 1)
            .retry(RetryPolicy::new().no_jitter().max_attempts(1))
            .build()
            .unwrap();
        runner.run().await.unwrap();
        let applies: Vec<DateTime<Utc>> = shop
            .log
            .starts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, w)| *w == "apply")
            .map(|(t, _)| *t)
            .collect();
        assert!(
            applies[1] - applies[0] >= TimeDelta::seconds(30),
            "second batch sent {} after a 429 asking 30s",
            applies[1] - applies[0]
        );
    });
}

/// Real time: a paged read under a limit is not failed by its waits for
/// permits; the timeout bounds each page's request, not the waits.
#[test]
fn a_paced_paged_read_is_not_failed_by_its_permit_waits() {
    let crm = MemoryConnector::builder("crm")
        .page_size(1)
        .build()
        .unwrap();
    for i in 0..30 {
        crm.insert(
            "contacts",
            [("email", json!(format!("p{i}@x.io"))), ("name", json!("n"))],
        );
    }
    let shop = MemoryConnector::new("shop");
    let limit = RateLimit::builder(20, Duration::from_secs(1))
        .build()
        .unwrap();
    let runner = SyncRunner::builder(SyncEngine::new(map("contacts")))
        .connector(crm)
        .connector(shop)
        .store(MemoryStore::new())
        .retry(
            RetryPolicy::new()
                .no_jitter()
                .max_attempts(2)
                .base_delay(Duration::from_millis(10)),
        )
        .timeout(Duration::from_secs(1))
        .rate_limit("crm", limit.clone())
        .build()
        .unwrap();
    let r = futures::executor::block_on(runner.run());
    match r {
        Ok(report) => assert_eq!(report.applied(), 30),
        Err(RunError::Fetch { source, .. }) => panic!("paced read failed: {source}"),
        Err(e) => panic!("{e}"),
    }
}

/// An absurd window is a `BuildError`, not a panic in governor.
#[test]
fn a_huge_window_is_refused_not_a_panic() {
    let r = std::panic::catch_unwind(|| {
        RateLimit::builder(1, Duration::from_secs(600 * 365 * 86_400))
            .build()
            .is_err()
    });
    assert!(r.is_ok(), "RateLimitBuilder::build panicked");
    let r = std::panic::catch_unwind(|| {
        RateLimit::builder(4, Duration::from_secs(1000 * 365 * 86_400))
            .burst(4)
            .build()
            .is_err()
    });
    assert!(
        r.is_ok(),
        "RateLimitBuilder::build panicked (burst overflow)"
    );
}

/// Moves the clock on, and lets other tasks run before it returns, as a
/// real sleep does.
struct Yielding(ManualClock);

#[async_trait]
impl Sleeper for Yielding {
    async fn sleep(&self, duration: Duration) {
        self.0.advance(TimeDelta::from_std(duration).unwrap());
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                return std::task::Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
    }
}

/// Holders are served in the order they asked: runners on one account
/// take turns, none starves behind the others.
#[test]
fn holders_take_turns_in_the_order_they_asked() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let limit = RateLimit::builder(10, Duration::from_secs(1))
            .clock(clock.clone())
            .sleeper(Yielding(clock.clone()))
            .build()
            .unwrap();
        let order = Mutex::new(String::new());
        let holder = |name: char| {
            let limit = limit.clone();
            let order = &order;
            async move {
                for _ in 0..6 {
                    limit.until_ready().await.unwrap();
                    order.lock().unwrap().push(name);
                }
            }
        };
        futures::join!(holder('a'), holder('b'), holder('c'));
        let order = order.into_inner().unwrap();
        // Between two permits of one holder, each other holder gets one at
        // most: nobody waits longer than a round.
        for name in ['a', 'b', 'c'] {
            let at: Vec<usize> = order.match_indices(name).map(|(i, _)| i).collect();
            assert_eq!(at.len(), 6);
            assert!(at.windows(2).all(|w| w[1] - w[0] <= 3), "{order}");
        }
    });
}

/// A holder that gives up while in line (its future dropped, the head's
/// or one behind it) holds up nobody.
#[test]
fn a_holder_that_leaves_the_line_holds_up_nobody() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let limit = RateLimit::builder(10, Duration::from_secs(1))
            .clock(clock.clone())
            .sleeper(Yielding(clock.clone()))
            .build()
            .unwrap();
        limit.until_ready().await.unwrap();
        // The head waits for the pace; one behind it waits for its turn.
        let mut head = Box::pin(limit.until_ready());
        let mut behind = Box::pin(limit.until_ready());
        assert!(futures::poll!(head.as_mut()).is_pending());
        assert!(futures::poll!(behind.as_mut()).is_pending());
        drop(behind);
        head.await.unwrap();
        // The head leaves mid-wait too.
        let mut head = Box::pin(limit.until_ready());
        assert!(futures::poll!(head.as_mut()).is_pending());
        drop(head);
        limit.until_ready().await.unwrap();
        assert_eq!(limit.stats().requests, 3);
    });
}

/// Batches waiting in line for a permit when the system reports its cap
/// are not sent: the request is given back.
#[test]
fn batches_waiting_for_a_permit_are_not_sent_once_the_system_reports_its_cap() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let (crm, shop) = edge_world(30, &clock);
        *shop.log.cap_from.lock().unwrap() = Some(1);
        let limit = RateLimit::builder(10, Duration::from_secs(1))
            .clock(clock.clone())
            .sleeper(Yielding(clock.clone()))
            .build()
            .unwrap();
        let runner = builder("contacts", crm, shop.clone(), &clock, Some(&limit), 4)
            .build()
            .unwrap();
        let report = runner.run().await.unwrap();
        // The first batch is made; the second is told the cap; the ones in
        // line behind it are not sent.
        assert_eq!(shop.log.applies.load(Ordering::SeqCst), 2, "{report}");
        assert_eq!(report.applied(), 5, "{report}");
        assert!(report.systems[1].budget_spent);
    });
}

/// A clock set forward by mistake, then corrected: the budget goes on
/// from the window the clock is in and renews the next real day.
#[test]
fn a_budget_renews_the_next_day_after_a_clock_set_forward_and_back() {
    futures::executor::block_on(async {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let clock = ManualClock::new(at("2026-03-01T10:00:00Z"));
        let limit = on_clock(
            &clock,
            RateLimit::builder(100, Duration::from_secs(1)).daily_budget(2),
        );
        limit.until_ready().await.unwrap();
        clock.set(at("2026-03-05T10:00:00Z"));
        limit.until_ready().await.unwrap();
        clock.set(at("2026-03-01T10:00:05Z"));
        limit.until_ready().await.unwrap();
        assert!(limit.until_ready().await.is_err(), "spent for the day");
        clock.set(at("2026-03-02T00:00:10Z"));
        limit.until_ready().await.unwrap();
        assert_eq!(limit.budget_left(), Some(1));
    });
}
