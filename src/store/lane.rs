//! [`Lane`]: the blocking pool the file stores run on, without a runtime.
//!
//! Each store has a lane: a queue of jobs run one after another, in the
//! order they were given, on a thread of the lane's own that is started
//! when a job arrives at an idle lane and ends when the queue is empty. So
//! a store's calls never overlap or overtake each other (a load given after
//! a save sees it, even if the save's future was dropped), stores do not
//! wait for each other, and no thread is kept while nothing is asked.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::channel::oneshot;

use super::StoreError;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Whether a thread is draining the queue.
    draining: bool,
}

/// A FIFO of blocking jobs with a thread of its own while it has work.
/// Clones share the queue.
#[derive(Clone, Default)]
pub(crate) struct Lane {
    queue: Arc<Mutex<Queue>>,
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lane")
    }
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock; a panic cannot leave it half changed.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `job` on the lane's thread, after every job given before it,
    /// and returns what it returns. A panic in `job` is resumed here, as if
    /// it had been called inline.
    pub(crate) async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let wrapped: Job = Box::new(move || {
            // The receiver may be gone (the caller's future was dropped):
            // the job has run all the same.
            let _ = done.send(panic::catch_unwind(AssertUnwindSafe(job)));
        });
        let start = {
            let mut queue = self.lock();
            queue.jobs.push_back(wrapped);
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            let lane = self.clone();
            let spawned = std::thread::Builder::new()
                .name("recsync-store".to_owned())
                .spawn(move || lane.drain());
            if let Err(error) = spawned {
                // Nothing will run the queue: fail every job in it (their
                // senders are dropped) and let the next call try again.
                let mut queue = self.lock();
                queue.jobs.clear();
                queue.draining = false;
                return Err(StoreError::Backend {
                    message: "could not start the store's thread".to_owned(),
                    source: Some(Box::new(error)),
                });
            }
        }
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panicked)) => panic::resume_unwind(panicked),
            Err(oneshot::Canceled) => Err(StoreError::Backend {
                message: "the store's thread could not start, so this call was not run".to_owned(),
                source: None,
            }),
        }
    }

    fn drain(&self) {
        loop {
            let job = {
                let mut queue = self.lock();
                match queue.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        queue.draining = false;
                        return;
                    }
                }
            };
            job();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn jobs_run_in_order_off_the_calling_thread() {
        let lane = Lane::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        let caller = std::thread::current().id();
        let futures: Vec<_> = (0..20)
            .map(|i| {
                let order = order.clone();
                lane.run(move || {
                    order.lock().unwrap().push(i);
                    std::thread::current().id()
                })
            })
            .collect();
        let threads = futures::executor::block_on(futures::future::join_all(futures));
        assert!(threads.iter().all(|t| *t.as_ref().unwrap() != caller));
        assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn a_dropped_call_still_runs_before_the_next() {
        let lane = Lane::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let first = {
            let ran = ran.clone();
            lane.run(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        // Polled once (so queued), then dropped.
        let mut first = Box::pin(first);
        let waker = futures::task::noop_waker();
        let _ = first
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
        drop(first);
        let seen = futures::executor::block_on(lane.run({
            let ran = ran.clone();
            move || ran.load(Ordering::SeqCst)
        }));
        assert_eq!(seen.unwrap(), 1);
    }

    #[test]
    #[should_panic(expected = "store bug")]
    fn a_panic_comes_back_to_the_caller() {
        let lane = Lane::default();
        let _ = futures::executor::block_on(lane.run(|| -> () { panic!("store bug") }));
    }
}
