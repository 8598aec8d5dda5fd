//! Limit usage as replicated records (`RecordKind`): one record per
//! replica, holding its last `Publication`, which every other replica
//! counts against its budgets (`limits::publish` says why that bounds the
//! overshoot). The publisher writes these records on its own timer
//! (`cluster/usage.rs`), outside `Changes`: usage is not an admin change,
//! it is not audited, and it is never bootstrapped.
//!
//! Unlike kill switches, usage never fails a replica closed. A publication
//! this replica cannot read only means that replica's usage is not counted
//! here (the replica under-counts by what that one admitted, as if it had
//! not published yet); denying every check over it would turn a bad value
//! in etcd into an outage, and restarting the cluster session would hold
//! back kill switches for nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use serde::Deserialize;
use tracing::{info, warn};

use super::ControlError;
use super::records::{Record, RecordKind};
use crate::limits::UsageLimits;
use crate::limits::publish::Publication;

/// The kind's name: etcd holds `{prefix}/limit_usage/{replica}`.
pub const LIMIT_USAGE: &str = "limit_usage";

/// This replica's view of the others' limit usage, fed by the cluster.
#[derive(Debug)]
pub struct LimitUsageRecords {
    limits: Arc<UsageLimits>,
    /// This replica: its own record is its own usage, counted already.
    replica: String,
    /// Replicas whose publication is applied here, so that a resync can
    /// forget those whose record is gone from etcd.
    heard: Mutex<HashSet<String>>,
    /// Replicas whose last publication could not be read: warned about
    /// once, not at every publication (four a second).
    unreadable: Mutex<HashSet<String>>,
}

/// Just enough of a publication to say whose it is when the rest does not
/// decode.
#[derive(Deserialize)]
struct Whose {
    replica: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LimitUsageRecords {
    pub fn new(limits: Arc<UsageLimits>, replica: String) -> Self {
        Self {
            limits,
            replica,
            heard: Mutex::new(HashSet::new()),
            unreadable: Mutex::new(HashSet::new()),
        }
    }

    /// The publication in `value`, or `None` (logged once per replica)
    /// when it cannot be read. An unreadable one leaves that replica's
    /// previous contribution in place: it is the best estimate there is,
    /// and it leaves with its window.
    fn decode(&self, value: &[u8]) -> Option<Publication> {
        match serde_json::from_slice::<Publication>(value) {
            Ok(publication) => {
                if lock(&self.unreadable).remove(&publication.replica) {
                    info!(
                        replica = publication.replica,
                        "limits: the replica's usage publication is readable again"
                    );
                }
                Some(publication)
            }
            Err(e) => {
                let replica = serde_json::from_slice::<Whose>(value)
                    .map_or_else(|_| "(unknown)".to_owned(), |w| w.replica);
                if lock(&self.unreadable).insert(replica.clone()) {
                    warn!(
                        replica,
                        error = %e,
                        "limits: a replica's usage publication cannot be read; its usage is not \
                         counted here until one can"
                    );
                }
                None
            }
        }
    }

    /// Counts `publication` here unless it is this replica's own.
    fn take(&self, publication: Publication) {
        if publication.replica == self.replica {
            return;
        }
        lock(&self.heard).insert(publication.replica.clone());
        self.limits.apply_remote(publication);
    }
}

impl RecordKind for LimitUsageRecords {
    fn name(&self) -> &'static str {
        LIMIT_USAGE
    }

    fn noun(&self) -> &'static str {
        "limit usage"
    }

    /// Usage is live state, republished every interval by its replica:
    /// nothing to bootstrap a new cluster with.
    fn local(&self) -> Result<Vec<Record>, ControlError> {
        Ok(Vec::new())
    }

    fn resync(&self, shared: &[Vec<u8>], _now: SystemTime) -> Result<(), ControlError> {
        let mut present = HashSet::new();
        for value in shared {
            if let Some(publication) = self.decode(value) {
                present.insert(publication.replica.clone());
                self.take(publication);
            }
        }
        // A record deleted from etcd while this replica was not watching
        // (an operator removing a replica for good).
        let gone: Vec<String> = lock(&self.heard)
            .iter()
            .filter(|replica| !present.contains(*replica))
            .cloned()
            .collect();
        for replica in gone {
            lock(&self.heard).remove(&replica);
            self.limits.forget_remote(&replica);
        }
        Ok(())
    }

    /// Not audited: a replica's usage changes every interval.
    fn apply(
        &self,
        value: &[u8],
        _now: SystemTime,
    ) -> Result<Option<serde_json::Value>, ControlError> {
        if let Some(publication) = self.decode(value) {
            self.take(publication);
        }
        Ok(None)
    }

    /// Never called for an unreadable publication (`apply` and `resync`
    /// skip those); if a backend calls it anyway, usage is still not a
    /// reason to deny checks (see the module's doc), so it is only logged.
    fn fail(&self, reason: String) {
        warn!(
            reason,
            "limits: the others' usage could not be applied; enforcing on what is known"
        );
    }

    fn failed(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::limits::config::LimitsConfig;
    use crate::request::InputPath;

    fn records(replica: &str) -> LimitUsageRecords {
        let limits = UsageLimits::new(LimitsConfig::default(), Arc::new(InputPath::default()));
        LimitUsageRecords::new(Arc::new(limits), replica.into())
    }

    #[test]
    fn an_unreadable_publication_is_skipped_and_fails_nothing() {
        let records = records("r1");
        for value in [&b"not json"[..], br#"{"replica":"r2","keys":7}"#] {
            assert!(matches!(records.apply(value, SystemTime::now()), Ok(None)));
        }
        assert!(records.resync(&[b"{".to_vec()], SystemTime::now()).is_ok());
        assert_eq!(records.failed(), None);
        assert!(lock(&records.unreadable).contains("r2"));
        let readable = serde_json::to_vec(&Publication {
            replica: "r2".into(),
            ..Publication::default()
        })
        .unwrap();
        assert!(matches!(
            records.apply(&readable, SystemTime::now()),
            Ok(None)
        ));
        assert!(!lock(&records.unreadable).contains("r2"));
    }

    #[test]
    fn its_own_publication_is_not_counted_twice_and_resync_forgets_the_departed() {
        let records = records("r1");
        let of = |replica: &str| {
            serde_json::to_vec(&Publication {
                replica: replica.into(),
                ..Publication::default()
            })
            .unwrap()
        };
        records.apply(&of("r1"), SystemTime::now()).unwrap();
        records.apply(&of("r2"), SystemTime::now()).unwrap();
        assert_eq!(*lock(&records.heard), HashSet::from(["r2".to_owned()]));
        assert!(records.resync(&[of("r3")], SystemTime::now()).is_ok());
        assert_eq!(*lock(&records.heard), HashSet::from(["r3".to_owned()]));
    }
}
