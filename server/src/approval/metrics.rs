//! The approval workflow's own metrics; the registry in `metrics` exposes
//! them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Approval tasks: time from submission to decision (or expiry), and
/// checks that carried an approval, by outcome.
#[derive(Debug, Clone)]
pub struct ApprovalMetrics {
    pub(crate) time_to_decision: Family<OutcomeLabels, Histogram>,
    pub(crate) uses: Family<OutcomeLabels, Counter>,
}

impl Default for ApprovalMetrics {
    fn default() -> Self {
        Self {
            // 1 s to ~12 days: people decide in minutes or days.
            time_to_decision: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 21))
            }),
            uses: Family::default(),
        }
    }
}

impl ApprovalMetrics {
    pub fn decided(&self, outcome: &'static str, elapsed_ms: u64) {
        self.time_to_decision
            .get_or_create(&OutcomeLabels { outcome })
            .observe(elapsed_ms as f64 / 1000.0);
    }

    /// A check carrying an approval: `allowed`, or the refusal's reason.
    pub fn used(&self, outcome: &'static str) {
        self.uses.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}
