//! Counters the decision plane keeps and the admin plane reports.

use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters; cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    /// Checks where the shadow bundle's answer differed from the active one's.
    shadow_divergences: AtomicU64,
}

impl Stats {
    pub fn shadow_diverged(&self) {
        self.shadow_divergences.fetch_add(1, Ordering::Relaxed);
    }

    pub fn shadow_divergences(&self) -> u64 {
        self.shadow_divergences.load(Ordering::Relaxed)
    }
}
