//! Budget and tripwire metrics; the registry in `metrics` exposes them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Debug, Clone, Default)]
pub struct LimitMetrics {
    pub(crate) refusals: Family<RuleLabels, Counter>,
    pub(crate) tripwires_fired: Family<RuleLabels, Counter>,
    /// Keys refused because `limits.max_keys` were live.
    pub(crate) keys_full: Family<RuleLabels, Counter>,
}

impl LimitMetrics {
    pub fn refused(&self, rule: &str) {
        self.refusals
            .get_or_create(&RuleLabels { rule: rule.into() })
            .inc();
    }

    pub fn tripped(&self, rule: &str) {
        self.tripwires_fired
            .get_or_create(&RuleLabels { rule: rule.into() })
            .inc();
    }

    pub fn full(&self, rule: &str) {
        self.keys_full
            .get_or_create(&RuleLabels { rule: rule.into() })
            .inc();
    }
}
