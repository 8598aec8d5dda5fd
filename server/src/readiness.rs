//! Whether this server should receive traffic, and why not: set by whoever
//! knows (start-up, shutdown, the cluster link), read by the ops listener.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the server should receive traffic: true once the first
/// generation is published, false again when shutdown begins, and false
/// while something that makes every check deny is unresolved.
#[derive(Debug, Default)]
pub struct Readiness {
    serving: AtomicBool,
    blocked: Mutex<Option<String>>,
    /// Serving, and ready, but with a caveat operators must see: a replica
    /// that lost etcd answers from its last known state.
    degraded: Mutex<Option<String>>,
    /// Not ready yet for this reason, without being blocked: a replica
    /// that has not yet read the cluster's state might lack a switch.
    pending: Mutex<Option<String>>,
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.serving.store(ready, Ordering::SeqCst);
    }

    /// Serving, but not ready, for `reason`.
    pub fn set_blocked(&self, reason: String) {
        self.serving.store(true, Ordering::SeqCst);
        *self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
    }

    pub fn get(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
            && self.blocked_reason().is_none()
            && self.pending_reason().is_none()
    }

    pub fn set_pending(&self, reason: Option<String>) {
        *self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    pub fn pending_reason(&self) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set_degraded(&self, reason: Option<String>) {
        *self
            .degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    pub fn degraded_reason(&self) -> Option<String> {
        self.degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn blocked_reason(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
