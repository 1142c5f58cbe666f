//! Running independent per-layer (or per-blob) jobs on every core.
//!
//! Results come back in input order and the first error *in input order* is the
//! one reported, so what the user sees does not depend on thread timing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many threads to use for independent jobs: `$WHITTLE_THREADS` when it is a positive
/// number, else one per core this process may use (cgroup quota and affinity included).
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::env::var("WHITTLE_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
    })
}

/// Calls `job(i)` for every `i` in `0..n` on up to `workers` threads and
/// collects the results in order. After a failure no new job starts; the first
/// failure in index order is returned.
pub fn map_indexed<T, E, F>(n: usize, workers: usize, job: F) -> Result<Vec<T>, E>
where
    T: Send,
    E: Send,
    F: Fn(usize) -> Result<T, E> + Sync,
{
    if n == 0 {
        return Ok(Vec::new());
    }
    let workers = workers.clamp(1, n);
    if workers == 1 {
        return (0..n).map(&job).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<T, E>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let r = job(i);
                let failed = r.is_err();
                if let Ok(mut slots) = slots.lock() {
                    slots[i] = Some(r);
                }
                if failed {
                    next.store(n, Ordering::SeqCst);
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::with_capacity(n);
    for (i, slot) in slots.into_iter().enumerate() {
        match slot {
            Some(r) => out.push(r?),
            // Not run because a later-indexed job failed first; run it here so
            // that the error reported is the first in index order.
            None => out.push(job(i)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Result};

    fn fail(i: usize) -> Error {
        Error::InvalidDigest(format!("job {i}"))
    }

    #[test]
    fn keeps_order_and_reports_the_first_failure_by_index() {
        let squares = map_indexed(50, 4, |i| Ok::<usize, Error>(i * i)).unwrap();
        assert_eq!(squares, (0..50).map(|i| i * i).collect::<Vec<_>>());
        for workers in [1, 2, 8] {
            let r: Result<Vec<usize>> = map_indexed(10, workers, |i| {
                if i == 3 || i == 7 {
                    Err(fail(i))
                } else {
                    Ok(i)
                }
            });
            match r {
                Err(Error::InvalidDigest(m)) => assert_eq!(m, "job 3"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(map_indexed(0, 2, |_| Ok::<(), Error>(()))
            .unwrap()
            .is_empty());
    }
}
