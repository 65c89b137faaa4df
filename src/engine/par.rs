//! Splitting a plan's work over threads (feature `parallel`).
//!
//! Entities are independent: looking up records in the baseline, checking
//! the fast path and planning an entity read only the plan's inputs. The
//! work is cut into contiguous chunks, one per thread, and the results come
//! back in chunk order, so a plan is the same on any number of threads.
//! Threads are scoped (`std::thread::scope`): nothing outlives the plan, and
//! nothing is added to the dependencies.

/// Fewer items than this per thread are not worth a thread.
#[cfg(feature = "parallel")]
const MIN_CHUNK: usize = 2048;

/// How many threads a plan uses when the options do not say: the cores
/// available, asked once per process (on Linux the answer reads cgroup
/// files, which would cost a small plan more than planning).
#[cfg(feature = "parallel")]
fn default_threads() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES
        .get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

/// `work` over contiguous chunks of `items`, on up to `threads` threads
/// (`None`: one per core), the results in chunk order. One chunk (and no
/// thread) without the feature, for one thread, or for few items. A thread
/// the system cannot start leaves its chunk to the calling thread.
pub(crate) fn chunked<T, R, F>(items: &[T], threads: Option<usize>, work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&[T]) -> R + Sync,
{
    #[cfg(feature = "parallel")]
    {
        let most = items.len() / MIN_CHUNK;
        let threads = if most > 1 {
            threads.unwrap_or_else(default_threads).min(most)
        } else {
            1
        };
        if threads > 1 {
            return spread(items, threads, &work);
        }
    }
    #[cfg(not(feature = "parallel"))]
    let _ = threads;
    vec![work(items)]
}

#[cfg(feature = "parallel")]
fn spread<T, R, F>(items: &[T], threads: usize, work: &F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&[T]) -> R + Sync,
{
    let size = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(size);
        let first = chunks.next().unwrap_or(&[]);
        let spawned: Vec<_> = chunks
            .map(|chunk| {
                // The stack of a main thread: hashing and comparing nest
                // as deep as the values do.
                let started = std::thread::Builder::new()
                    .name("recsync-plan".into())
                    .stack_size(8 << 20)
                    .spawn_scoped(scope, move || work(chunk));
                (chunk, started.ok())
            })
            .collect();
        let mut out = Vec::with_capacity(spawned.len() + 1);
        out.push(work(first));
        for (chunk, handle) in spawned {
            out.push(match handle.map(std::thread::ScopedJoinHandle::join) {
                Some(Ok(r)) => r,
                // A panic in a worker is a bug in recsync: pass it on as is.
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => work(chunk),
            });
        }
        out
    })
}

#[cfg(all(test, feature = "parallel"))]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_back_in_order_on_any_number_of_threads() {
        let items: Vec<u32> = (0..10_000).collect();
        for threads in [1, 2, 3, 8] {
            let parts = chunked(&items, Some(threads), |c| c.to_vec());
            assert_eq!(parts.len(), threads.min(items.len() / MIN_CHUNK).max(1));
            assert_eq!(parts.concat(), items);
        }
    }

    #[test]
    fn few_items_stay_on_one_thread() {
        let items = [1, 2, 3];
        let parts = chunked(&items, None, |c| {
            (c.to_vec(), std::thread::current().name().map(str::to_owned))
        });
        assert_eq!(
            parts,
            vec![(
                vec![1, 2, 3],
                std::thread::current().name().map(str::to_owned)
            )]
        );
    }
}
