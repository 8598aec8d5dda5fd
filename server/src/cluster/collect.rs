//! Garbage collection in etcd: blobs (bundle archives, snapshots) that no
//! pointer names any more, and stored-bundle pointers past the newest
//! `bundles.keep`. Without it every push would stay in etcd for good, until
//! etcd's space quota stopped all writes — kill switches included.
//!
//! A blob is removed only once it has been seen unnamed, at the same meta
//! revision, for `cluster.blob_grace` of this replica's own monotonic clock:
//! no wall clocks to skew. A writer renews a blob's meta (a new revision)
//! before naming it, and the removal is a compare-and-delete on the revision
//! the collector saw, so a blob about to be named survives: either its
//! renewal moved the revision, or the renewal found it gone and uploaded it
//! again. Every replica collects; removals are idempotent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::etcd::EtcdError;
use super::keys::{BundlePointer, SnapshotPointer};
use super::{Cluster, Link};
use crate::control::Target;

/// How often a replica collects: often enough that garbage does not pile
/// up, rarely enough to cost etcd nothing.
fn interval(grace: Duration) -> Duration {
    (grace / 2).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

pub(super) async fn run(cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
    let mut collector = Collector::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval(cluster.blob_grace)) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        // Only with a current view of etcd: a replica that cannot apply
        // what etcd holds should not judge what is still needed.
        if cluster.sync_link() != Link::Connected {
            continue;
        }
        match collector.pass(&cluster).await {
            Ok(Collected {
                blobs: 0,
                stored: 0,
            }) => {}
            Ok(Collected { blobs, stored }) => info!(
                blobs,
                stored_pointers = stored,
                "cluster: removed what no pointer in etcd needs"
            ),
            Err(e) => {
                warn!(error = %e, "cluster: garbage collection in etcd failed; retrying later")
            }
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Collected {
    blobs: usize,
    stored: usize,
}

/// Unnamed blobs by SHA-256: the meta revision seen, and since when.
#[derive(Debug, Default)]
struct Collector {
    unnamed: HashMap<String, (i64, Instant)>,
}

fn is_sha256(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Collector {
    async fn pass(&mut self, cluster: &Cluster) -> Result<Collected, EtcdError> {
        let listing = cluster.etcd.range(&cluster.keys.all()).await?;
        let stored_prefix = format!("{}bundle/stored/", cluster.keys.all());
        let snapshot_prefix = format!("{}snapshot/", cluster.keys.all());
        let served = [
            cluster.keys.bundle(Target::Active),
            cluster.keys.bundle(Target::Shadow),
        ];

        // What is named, read before anything is removed. A served or
        // snapshot pointer that cannot be read stops the pass: what it
        // names is unknown. A stored one that cannot be read names nothing
        // a replica could fetch (sync cannot read it either).
        let mut named = HashSet::new();
        let mut stored = Vec::new();
        for entry in &listing.entries {
            let unreadable = |e: serde_json::Error| {
                EtcdError::Data(format!("`{}`: {e}; nothing collected", entry.key))
            };
            if served.contains(&entry.key) {
                let pointer: BundlePointer =
                    serde_json::from_slice(&entry.value).map_err(unreadable)?;
                named.insert(pointer.archive_sha256);
            } else if entry.key.starts_with(&snapshot_prefix) {
                let pointer: SnapshotPointer =
                    serde_json::from_slice(&entry.value).map_err(unreadable)?;
                named.insert(pointer.sha256);
            } else if entry.key.starts_with(&stored_prefix) {
                let pointer = serde_json::from_slice::<BundlePointer>(&entry.value).ok();
                stored.push((entry, pointer));
            }
        }
        // Newest first; a replica fetches only the newest `keep` (see
        // `sync`), so older ones name nothing anyone will read.
        stored.sort_by_key(|(entry, _)| std::cmp::Reverse(entry.mod_revision));
        let keep = cluster.control.config().bundle_keep;
        let mut collected = Collected::default();
        for (index, (entry, pointer)) in stored.into_iter().enumerate() {
            match pointer {
                Some(pointer) if index < keep => {
                    named.insert(pointer.archive_sha256);
                }
                _ => {
                    if cluster
                        .etcd
                        .delete_if(&entry.key, entry.mod_revision)
                        .await?
                    {
                        collected.stored += 1;
                    }
                }
            }
        }

        let blobs = cluster.keys.blobs();
        let mut seen = HashSet::new();
        for meta in cluster.etcd.keys(&blobs).await? {
            let Some(sha256) = meta
                .key
                .strip_prefix(&blobs)
                .and_then(|rest| rest.strip_suffix("/meta"))
                .filter(|name| is_sha256(name))
            else {
                continue;
            };
            if named.contains(sha256) {
                continue;
            }
            seen.insert(sha256.to_owned());
            let now = Instant::now();
            let since = match self.unnamed.get(sha256) {
                Some((revision, since)) if *revision == meta.mod_revision => *since,
                _ => {
                    self.unnamed
                        .insert(sha256.to_owned(), (meta.mod_revision, now));
                    continue;
                }
            };
            if now.duration_since(since) < cluster.blob_grace {
                continue;
            }
            if cluster
                .etcd
                .delete_prefix_if(&format!("{blobs}{sha256}/"), &meta.key, meta.mod_revision)
                .await?
            {
                collected.blobs += 1;
            }
            self.unnamed.remove(sha256);
        }
        // Named again, or gone: no longer a candidate.
        self.unnamed.retain(|sha256, _| seen.contains(sha256));
        Ok(collected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_names_are_blobs() {
        assert!(is_sha256(&"ab".repeat(32)));
        assert!(!is_sha256(&"AB".repeat(32)));
        assert!(!is_sha256(&"ab".repeat(31)));
        assert!(!is_sha256(&format!("{}/x", "a".repeat(62))));
    }

    #[test]
    fn collection_runs_often_but_not_constantly() {
        assert_eq!(interval(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(
            interval(Duration::from_secs(7200)),
            Duration::from_secs(600)
        );
    }
}
