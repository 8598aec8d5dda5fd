//! Background work that gives way to checks: searches and replays run on
//! their own low-priority threads and, every so often, pause while checks
//! are being answered. A lower priority alone does not do it: on a busy
//! machine nice 19 threads still take its idle moments and its caches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts calls in flight, for background work to give way to.
#[derive(Debug, Default)]
pub struct Busy(AtomicUsize);

impl Busy {
    /// Counts a call until the guard is dropped.
    pub fn enter(&self) -> BusyGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        BusyGuard(self)
    }

    pub fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

/// One call counted by [`Busy`].
#[derive(Debug)]
pub struct BusyGuard<'a>(&'a Busy);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Paces one piece of background work: after running `every`, it sleeps
/// twice as long while checks are in flight (so it takes at most a third
/// of a core from them), else offers its core back (`sched_yield`).
#[derive(Debug)]
pub struct GiveWay {
    every: Duration,
    checks: Arc<Busy>,
    ran_since: Instant,
}

impl GiveWay {
    pub fn new(every: Duration, checks: Arc<Busy>) -> Self {
        Self {
            every,
            checks,
            ran_since: Instant::now(),
        }
    }

    /// Call between units of work.
    pub fn tick(&mut self) {
        if self.ran_since.elapsed() < self.every {
            return;
        }
        if self.checks.any() {
            std::thread::sleep(self.every * 2);
        } else {
            std::thread::yield_now();
        }
        self.ran_since = Instant::now();
    }
}

/// nice 19 for the calling thread (Linux schedules threads one by one).
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), 19) {
            tracing::debug!(error = %e, "background thread keeps its priority");
        }
    }
}
