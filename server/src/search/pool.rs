//! The threads searches run on, apart from the runtime's: a search is
//! thousands of evaluations, and on a runtime worker it would hold up the
//! checks queued behind it. The threads run at a lower scheduling priority
//! (nice 19), so when the CPUs are busy the kernel serves checks first.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads with a bounded queue.
#[derive(Debug)]
pub struct SearchPool {
    queue: SyncSender<Job>,
}

/// The pool's queue is full.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many searches are waiting; retry shortly")]
pub struct Busy;

impl SearchPool {
    /// `threads` workers (at least one); `queued` searches may wait.
    pub fn new(threads: usize, queued: usize) -> Self {
        let (queue, jobs) = sync_channel::<Job>(queued);
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..threads.max(1) {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("warden-search-{n}"))
                .spawn(move || {
                    crate::giveway::lower_priority();
                    loop {
                        // The lock is held only to take the next job.
                        let job = match jobs.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a search thread");
            }
        }
        Self { queue }
    }

    /// Runs `work` on the pool; its result, or `Busy` when the queue is
    /// full. A caller that goes away leaves the work to finish (it is
    /// bounded) and its result unread.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(Busy),
        }
        rx.await.map_err(|_| Busy)
    }
}
