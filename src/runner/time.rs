//! Time for the runner, injected so that it runs on any executor and tests
//! never wait: a [`Clock`] to read the time from, a [`Sleeper`] to wait with.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::channel::oneshot;

/// Where the time is read from: the runner's debounce and run durations,
/// and the timestamps a [`MemoryConnector`](crate::testkit::MemoryConnector)
/// (feature `testkit`) stamps on records.
///
/// Implemented by [`SystemClock`], by any `Fn() -> DateTime<Utc>`, and (in
/// the testkit) by `ManualClock`, which only moves when a test says so.
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

/// How the runner waits between retries.
///
/// Any `Fn(Duration) -> impl Future<Output = ()>` is a sleeper, so a host on
/// tokio passes `tokio::time::sleep`, and one on async-std
/// `async_std::task::sleep`. [`ThreadSleeper`], the default, needs no
/// runtime. In tests, the testkit's `ManualClock` is a sleeper that moves
/// the clock on instead of waiting.
///
/// ```
/// use std::time::Duration;
/// use recsync::runner::Sleeper;
///
/// async fn nap(_: Duration) {}
/// fn takes(_: impl Sleeper) {}
/// takes(nap);
/// ```
#[async_trait]
pub trait Sleeper: Send + Sync {
    /// Completes after `duration`.
    async fn sleep(&self, duration: Duration);
}

#[async_trait]
impl<F, Fut> Sleeper for F
where
    F: Fn(Duration) -> Fut + Send + Sync,
    Fut: Future<Output = ()> + Send + 'static,
{
    async fn sleep(&self, duration: Duration) {
        self(duration).await;
    }
}

/// Sleeps on a short-lived thread of its own and wakes the waiting task
/// when done: works under any executor, costs a thread per wait. Retries are
/// rare, so that is cheap; hosts on a runtime pass its sleep instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleeper;

#[async_trait]
impl Sleeper for ThreadSleeper {
    async fn sleep(&self, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        let (done, wait) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("recsync-sleep".to_owned())
            .spawn(move || {
                std::thread::sleep(duration);
                let _ = done.send(());
            });
        if spawned.is_ok() {
            // The sender is dropped only after the sleep, sent or not.
            let _ = wait.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_sleeper_wakes_the_task() {
        futures::executor::block_on(ThreadSleeper.sleep(Duration::from_millis(1)));
        futures::executor::block_on(ThreadSleeper.sleep(Duration::ZERO));
    }
}
