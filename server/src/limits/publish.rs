//! Cluster mode: limits are global in intent. Every
//! `limits.usage_publish_interval` a replica publishes its own usage of
//! every limit key, and enforces against its own plus the others' last
//! publications. Between two publications each replica admits against a
//! view at most one interval old, so the cluster may go over a limit by at
//! most rate × interval × replicas (each replica's admissions in the
//! interval the others have not yet seen).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::UsageLimits;
use super::counters::{Entry, EntryKind};
use super::persist::Saved;
use super::window::Window;

/// What one replica publishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub replica: String,
    pub at_ms: u64,
    pub keys: Vec<Saved>,
}

/// The others' last publications, to take each one's old contribution
/// back when its next arrives.
#[derive(Debug, Default)]
pub struct Remote {
    by_replica: Mutex<HashMap<String, Vec<Saved>>>,
}

impl UsageLimits {
    /// This replica's usage of every limit key, to publish.
    pub fn publication(&self, replica: &str, now_ms: u64) -> Publication {
        let mut keys = Vec::new();
        for index in 0..self.counters.shard_count() {
            let mut shard = self.counters.lock(index);
            for (key, entry) in shard.map.iter_mut() {
                if entry.kind != EntryKind::Limit {
                    continue;
                }
                entry.own.advance(now_ms / entry.width_ms);
                let saved = Saved::of(key, entry);
                if !saved.b.is_empty() {
                    keys.push(saved);
                }
            }
        }
        Publication {
            replica: replica.to_owned(),
            at_ms: now_ms,
            keys,
        }
    }

    /// Replaces what `publication.replica` contributed with this
    /// publication. Keys new here count against `limits.max_keys`; those
    /// that do not fit are not enforced here until they do.
    pub fn apply_remote(&self, publication: Publication) {
        let mut by_replica = self
            .remote
            .by_replica
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let previous = by_replica
            .insert(publication.replica.clone(), publication.keys.clone())
            .unwrap_or_default();
        drop(by_replica);
        for old in previous {
            let mut shard = self.counters.lock(self.counters.shard_of(&old.k));
            if let Some(remote) = shard.map.get_mut(old.k.as_str()).and_then(|e| {
                (e.fingerprint == old.f && e.width_ms == old.w)
                    .then_some(e.remote.as_deref_mut())
                    .flatten()
            }) {
                for (bucket, amount) in &old.b {
                    remote.sub(*bucket, *amount);
                }
            }
        }
        for new in publication.keys {
            let index = self.counters.shard_of(&new.k);
            let mut shard = self.counters.lock(index);
            let make = || Entry::new(EntryKind::Limit, new.f, new.w.max(1));
            let Ok(entry) = self
                .counters
                .entry(&mut shard, &new.k, make, |e| publication.at_ms / e.width_ms)
            else {
                continue;
            };
            if entry.fingerprint != new.f || entry.width_ms != new.w {
                // Another bundle on that replica: not the same budget.
                continue;
            }
            let remote = entry
                .remote
                .get_or_insert_with(|| Box::new(Window::default()));
            for (bucket, amount) in &new.b {
                remote.add(*bucket, *amount);
            }
        }
    }

    /// Forgets a replica that left (its publication deleted).
    pub fn forget_remote(&self, replica: &str) {
        self.apply_remote(Publication {
            replica: replica.to_owned(),
            at_ms: 0,
            keys: Vec::new(),
        });
        self.remote
            .by_replica
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(replica);
    }
}
