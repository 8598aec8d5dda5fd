//! Garbage collection in etcd: blobs (bundle archives, snapshots) that no
//! pointer names any more, and stored-bundle pointers past the newest
//! `bundles.keep`. Without it every push would stay in etcd for good, until
//! etcd's space quota stopped all writes — kill switches included.
//!
//! A blob is only removed once `cluster.blob_grace` has passed since it was
//! last written: a writer uploads (or renews) the blob and then names it,
//! and a collector that listed the pointers in between must not take it.
//! The removal is a compare-and-delete on the blob's meta, which every
//! writer renews before naming the blob, so a blob renewed after the
//! collector looked survives. Every replica collects; their removals are
//! idempotent.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::etcd::EtcdError;
use super::{BundlePointer, Cluster, Link, SnapshotPointer};

/// How often a replica collects: often enough that garbage does not pile
/// up, rarely enough to cost etcd nothing.
fn interval(grace: Duration) -> Duration {
    grace.clamp(Duration::from_secs(1), Duration::from_secs(600))
}

pub(super) async fn run(cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
    let every = interval(cluster.blob_grace);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        // Only with a current view of etcd: a replica that cannot apply
        // what etcd holds should not judge what is still needed.
        if cluster.sync_link() != Link::Connected {
            continue;
        }
        match collect(&cluster).await {
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
pub(super) struct Collected {
    pub blobs: usize,
    pub stored: usize,
}

pub(super) async fn collect(cluster: &Cluster) -> Result<Collected, EtcdError> {
    let mut collected = Collected::default();
    let listing = cluster.etcd.range(&cluster.keys.all()).await?;
    let stored_prefix = format!("{}bundle/stored/", cluster.keys.all());
    let bundle_keys = [
        cluster.keys.bundle(crate::control::Target::Active),
        cluster.keys.bundle(crate::control::Target::Shadow),
    ];
    let snapshot_prefix = format!("{}snapshot/", cluster.keys.all());

    // Stored pointers newest first; a replica fetches only the newest
    // `keep` (see `sync`), so older ones name nothing anyone will read.
    let mut stored: Vec<_> = listing
        .entries
        .iter()
        .filter(|e| e.key.starts_with(&stored_prefix))
        .collect();
    stored.sort_by_key(|e| std::cmp::Reverse(e.mod_revision));
    let keep = cluster.control.config().bundle_keep;
    let (kept, dropped) = stored.split_at(keep.min(stored.len()));
    for entry in dropped {
        if cluster
            .etcd
            .delete_if(&entry.key, entry.mod_revision)
            .await?
        {
            collected.stored += 1;
        }
    }

    let mut named = HashSet::new();
    for entry in &listing.entries {
        let unreadable = |e: serde_json::Error| {
            EtcdError::Data(format!("`{}`: {e}; nothing collected", entry.key))
        };
        if bundle_keys.contains(&entry.key) || kept.iter().any(|k| k.key == entry.key) {
            let pointer: BundlePointer =
                serde_json::from_slice(&entry.value).map_err(unreadable)?;
            named.insert(pointer.archive_sha256);
        } else if entry.key.starts_with(&snapshot_prefix) {
            let pointer: SnapshotPointer =
                serde_json::from_slice(&entry.value).map_err(unreadable)?;
            named.insert(pointer.sha256);
        }
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let grace = cluster.blob_grace.as_secs();
    let blobs = cluster.keys.blobs();
    for meta in cluster.etcd.keys(&blobs).await? {
        let Some(sha256) = meta
            .key
            .strip_prefix(&blobs)
            .and_then(|rest| rest.strip_suffix("/meta"))
        else {
            continue;
        };
        if named.contains(sha256) {
            continue;
        }
        let Some(current) = cluster.etcd.get(&meta.key).await? else {
            continue;
        };
        // A meta without a time predates this collector: as old as can be.
        let written = serde_json::from_slice::<serde_json::Value>(&current.value)
            .ok()
            .and_then(|m| m["written"].as_u64())
            .unwrap_or(0);
        if now.saturating_sub(written) < grace {
            debug!(
                sha256,
                "cluster: an unnamed blob is within its grace period"
            );
            continue;
        }
        if cluster
            .etcd
            .delete_prefix_if(
                &format!("{blobs}{sha256}/"),
                &meta.key,
                current.mod_revision,
            )
            .await?
        {
            collected.blobs += 1;
        }
    }
    Ok(collected)
}
