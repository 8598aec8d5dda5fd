//! The partition mode: a cut-off replica's own global switch
//! (`cluster.on_partition`), added to whatever it publishes for checks and
//! never stored, listed or replicated.

use std::sync::Arc;
use std::time::SystemTime;

use super::Control;
use crate::killswitch::{Mode, Scope, Switch, SwitchIndex, unix_ms};

/// The id of the switch a partitioned replica applies; real switches'
/// ids start with `ks-`, so it never names one of them.
pub const PARTITION_SWITCH: &str = "cluster-partition";

impl Control {
    /// Puts `cluster.on_partition` in force (`Some(mode)`) or lifts it
    /// (`None`): a global switch of that mode with the reason
    /// `cluster_partitioned`, this replica's own, held in memory only —
    /// never stored, listed or replicated.
    pub fn set_partition(&self, mode: Option<Mode>, now: SystemTime) {
        let _guard = self.lock();
        let switch = mode.map(|mode| {
            Arc::new(Switch {
                id: PARTITION_SWITCH.to_owned(),
                scope: Scope::default(),
                mode,
                reason: "cluster_partitioned".to_owned(),
                engaged_by: "warden (cluster.on_partition)".to_owned(),
                engaged_at_ms: unix_ms(now),
                expires_at_ms: None,
                ended: None,
            })
        });
        *self
            .partition
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = switch;
        let current = self.switches.current();
        // An unavailable index denies every check already; the overlay
        // joins the index that replaces it.
        if current.unavailable_reason().is_none() {
            let kept = current.switches().iter().cloned();
            self.publish_switches(
                SwitchIndex::build(
                    kept,
                    self.config.read_verbs.clone(),
                    self.config.session_path.clone(),
                ),
                now,
            );
        }
    }

    /// Whether `set_partition` is in force.
    pub fn partitioned(&self) -> Option<Mode> {
        self.partition
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|s| s.mode)
    }

    /// `index` with the partition switch as `set_partition` last said.
    pub(super) fn overlaid(&self, index: Arc<SwitchIndex>) -> Arc<SwitchIndex> {
        let partition = self
            .partition
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let has = index.switches().iter().any(|s| s.id == PARTITION_SWITCH);
        if index.unavailable_reason().is_some() || (partition.is_none() && !has) {
            return index;
        }
        let kept = index
            .switches()
            .iter()
            .filter(|s| s.id != PARTITION_SWITCH)
            .cloned();
        Arc::new(SwitchIndex::build(
            kept.chain(partition),
            self.config.read_verbs.clone(),
            self.config.session_path.clone(),
        ))
    }
}
