//! Pacing at its edges, each case found by a review of the first version:
//! a clock set back, a budget across midnight, a spent budget during a
//! pause, bursts and uneven windows, a permit given at the deadline, a cap
//! the system reports itself, a 429 that is not retried, a paged read
//! slower than its timeout, absurd settings.
#![cfg(all(feature = "testkit", feature = "rate-limit"))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use recsync::connector::{Applied, Capabilities, Changes, Cursor, ErrorKind};
use recsync::plan::WriteOp;
use recsync::runner::{RateLimit, RetryPolicy, RunError, Sleeper, SyncEvent, SyncRunner};
use recsync::testkit::{ManualClock, MemoryConnector};
use recsync::{
    Connector, ConnectorError, Field, FieldMap, Guards, MemoryStore, Snapshot, SyncEngine, SystemId,
};
use serde_json::json;

fn start() -> DateTime<Utc> {
    "2026-03-01T09:00:00Z".parse().unwrap()
}

fn map() -> FieldMap {
    FieldMap::builder()
        .object("contacts")
        .systems(["crm", "shop"])
        .key("email")
        .guards(Guards::off())
        .field(Field::new("email"))
        .field(Field::new("name"))
        .build()
        .unwrap()
}

/// When each call started, and what it was.
type Calls = Vec<(DateTime<Utc>, &'static str)>;

/// Notes (time, what) of every call; optionally answers writes with an
/// error.
#[derive(Clone, Debug)]
struct Watched {
    inner: MemoryConnector,
    clock: ManualClock,
    log: Arc<Mutex<Calls>>,
    apply_error: Arc<Mutex<Option<ConnectorError>>>,
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
        self.log.lock().unwrap().push((self.clock.peek(), "fetch"));
        self.inner.fetch(object).await
    }
    async fn fetch_changes(
        &self,
        object: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Changes, ConnectorError> {
        self.log
            .lock()
            .unwrap()
            .push((self.clock.peek(), "changes"));
        self.inner.fetch_changes(object, cursor).await
    }
    async fn fetch_records(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Snapshot, ConnectorError> {
        self.log.lock().unwrap().push((self.clock.peek(), "read"));
        self.inner.fetch_records(object, ids).await
    }
    async fn apply(
        &self,
        object: &str,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        self.log.lock().unwrap().push((self.clock.peek(), "apply"));
        if let Some(e) = self.apply_error.lock().unwrap().clone() {
            return Err(e);
        }
        self.inner.apply(object, ops).await
    }
}

fn world(people: usize, clock: &ManualClock) -> (MemoryConnector, Watched) {
    let crm = MemoryConnector::builder("crm")
        .clock(clock.clone())
        .build()
        .unwrap();
    for i in 0..people {
        crm.insert(
            "contacts",
            [("email", json!(format!("p{i}@x.io"))), ("name", json!("n"))],
        );
    }
    let shop = MemoryConnector::builder("shop")
        .clock(clock.clone())
        .max_batch_size(5)
        .build()
        .unwrap();
    (
        crm,
        Watched {
            inner: shop,
            clock: clock.clone(),
            log: Arc::default(),
            apply_error: Arc::default(),
        },
    )
}

/// A wall clock set back by an hour (an NTP correction, a VM resumed)
/// holds no request for the hour: the pace runs on the clock made
/// monotonic.
#[test]
fn a_clock_set_back_holds_no_request_for_the_step() {
    futures::executor::block_on(async {
        let clock = ManualClock::new(start());
        let limit = RateLimit::builder(10, Duration::from_secs(1))
            .clock(clock.clone())
            .sleeper(clock.clone())
            .build()
            .unwrap();
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
        let limit = RateLimit::builder(100, Duration::from_secs(1))
            .daily_budget(1)
            .clock(clock.clone())
            .sleeper(clock.clone())
            .build()
            .unwrap();
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
        let limit = RateLimit::builder(10, Duration::from_secs(1))
            .daily_budget(1)
            .clock(clock.clone())
            .sleeper(clock.clone())
            .build()
            .unwrap();
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
        let limit = RateLimit::builder(10, Duration::from_secs(1))
            .burst(5)
            .clock(clock.clone())
            .sleeper(clock.clone())
            .build()
            .unwrap();
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
        let limit = RateLimit::builder(3, Duration::from_secs(1))
            .clock(clock.clone())
            .sleeper(clock.clone())
            .build()
            .unwrap();
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
        let (crm, shop) = world(15, &clock);
        let limit = RateLimit::builder(1, Duration::from_secs(10))
            .daily_budget(100)
            .clock(clock.clone())
            .sleeper(clock.clone())
            .build()
            .unwrap();
        let runner = SyncRunner::builder(SyncEngine::new(map()))
            .connector(crm)
            .connector(shop.clone())
            .store(MemoryStore::new())
            .clock(clock.clone())
            .sleeper(clock.clone())
            .retry(RetryPolicy::new().no_jitter())
            .rate_limit("shop", limit.clone())
            .deadline(Duration::from_secs(15))
            .build()
            .unwrap();
        let report = runner.run().await.unwrap();
        let sent = shop.log.lock().unwrap().len();
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
        let (crm, shop) = world(30, &clock);
        *shop.apply_error.lock().unwrap() = Some(ConnectorError::budget_spent("daily cap"));
        let runner = SyncRunner::builder(SyncEngine::new(map()))
            .connector(crm)
            .connector(shop.clone())
            .store(MemoryStore::new())
            .clock(clock.clone())
            .sleeper(clock.clone())
            .build()
            .unwrap();
        let mut events = runner.subscribe();
        let report = runner.run().await.unwrap();
        let applies = shop
            .log
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
        let (crm, shop) = world(10, &clock);
        let limit = RateLimit::builder(100, Duration::from_secs(1))
            .clock(clock.clone())
            .sleeper(clock.clone())
            .build()
            .unwrap();
        *shop.apply_error.lock().unwrap() = Some(ConnectorError::rate_limited(
            Some(Duration::from_secs(30)),
            "slow down",
        ));
        let runner = SyncRunner::builder(SyncEngine::new(map()))
            .connector(crm)
            .connector(shop.clone())
            .store(MemoryStore::new())
            .clock(clock.clone())
            .sleeper(clock.clone())
            .retry(RetryPolicy::new().no_jitter().max_attempts(1))
            .rate_limit("shop", limit)
            .build()
            .unwrap();
        runner.run().await.unwrap();
        let applies: Vec<DateTime<Utc>> = shop
            .log
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
    let runner = SyncRunner::builder(SyncEngine::new(map()))
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
