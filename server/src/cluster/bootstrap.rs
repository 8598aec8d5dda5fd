//! A new cluster's first state: what the first replica to reach an empty
//! etcd serves and knows.

use super::Cluster;
use super::etcd::{EtcdError, Listing};
use super::keys::{BundlePointer, SnapshotPointer, sha256_hex};
use crate::control::{ControlError, Target, blocking};
use crate::snapshot::SnapshotKind;
use tracing::info;

/// Why a bootstrap could not publish this replica's state.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unpublished {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("cannot read this replica's own state: {0}")]
    Local(ControlError),
}

/// Fills an empty etcd from this replica's state: the first replica of a
/// new cluster publishes what it serves, and every replica the switches it
/// knows of, ended ones included (so that a release is not lost to a
/// replica that missed it). Only absent keys are written, so replicas
/// starting together agree on whichever came first. Returns whether
/// anything was written.
pub(super) async fn bootstrap(cluster: &Cluster, listing: &Listing) -> Result<bool, Unpublished> {
    let has = |key: &str| listing.entries.iter().any(|e| e.key == key);
    let control = &cluster.control;
    let local = blocking(control, |c| {
        let policy = c.generations().current().policy.clone();
        let archive = c.store().bundle_archive(&policy.digest)?;
        let shadow = match c.generations().current().shadow_policy() {
            Some(shadow) => c
                .store()
                .bundle_archive(&shadow.digest)?
                .map(|archive| (shadow, archive)),
            None => None,
        };
        let mut snapshots = Vec::new();
        for kind in SnapshotKind::ALL {
            if let Some(document) = c.store().snapshot(kind)? {
                let version = c.generations().current().snapshot(kind).version.clone();
                snapshots.push((kind, version, document));
            }
        }
        Ok((policy, archive, shadow, snapshots))
    })
    .await
    .map_err(Unpublished::Local)?;
    let (policy, archive, shadow, snapshots) = local;
    let mut wrote = false;
    let active_key = cluster.keys.bundle(Target::Active);
    // A new cluster (no active bundle named yet) takes this replica's
    // shadow too; a running one keeps its own.
    let shadow_key = cluster.keys.bundle(Target::Shadow);
    if !has(&active_key)
        && !has(&shadow_key)
        && let Some((shadow, archive)) = shadow
    {
        wrote |= publish_bundle(cluster, &shadow_key, &shadow, &archive).await?;
    }
    if !has(&active_key)
        && let Some(archive) = archive
    {
        wrote |= publish_bundle(cluster, &active_key, &policy, &archive).await?;
    }
    for (kind, version, document) in snapshots {
        let key = cluster.keys.snapshot(kind.as_str());
        if has(&key) {
            continue;
        }
        let sha256 = sha256_hex(&document);
        let blob = cluster
            .etcd
            .put_blob(&cluster.keys.blob(&sha256), &document)
            .await?;
        let pointer = SnapshotPointer { version, sha256 };
        wrote |= create_naming(cluster, &key, to_json(&pointer), blob).await?;
    }
    for kind in &cluster.kinds {
        let records = blocking(kind, |k| k.local())
            .await
            .map_err(Unpublished::Local)?;
        for record in records {
            let key = cluster.keys.record(kind.name(), &record.id);
            if !has(&key) {
                wrote |= cluster.etcd.create(&key, record.value).await?;
            }
        }
    }
    Ok(wrote)
}

/// Uploads `archive` and names `policy` under `key` if nothing is named
/// there yet; whether it was.
async fn publish_bundle(
    cluster: &Cluster,
    key: &str,
    policy: &crate::generation::LoadedPolicy,
    archive: &[u8],
) -> Result<bool, EtcdError> {
    let archive_sha256 = sha256_hex(archive);
    let blob = cluster
        .etcd
        .put_blob(&cluster.keys.blob(&archive_sha256), archive)
        .await?;
    let pointer = BundlePointer {
        digest: policy.digest.clone(),
        revision: policy.revision.clone(),
        archive_sha256,
        rollback: false,
    };
    create_naming(cluster, key, to_json(&pointer), blob).await
}

/// Creates the pointer `key` if it is absent and the blob it names is
/// still as `put_blob` left it; returns whether it did.
async fn create_naming(
    cluster: &Cluster,
    key: &str,
    value: Vec<u8>,
    blob: (String, i64),
) -> Result<bool, EtcdError> {
    let unchanged = [(key.to_owned(), 0), blob];
    Ok(cluster
        .etcd
        .put_if_all(key, value, &unchanged)
        .await?
        .is_some())
}

fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Publishes the records this replica made while etcd was out of reach
/// (pending), keeping their ids, times and callers: each is created in etcd
/// unless etcd holds that id already (the same switch engaged on several
/// replicas: etcd's copy stands, and this replica takes it on its watch).
/// Only then is it no longer pending, so a crash in between publishes it
/// again. Returns how many were created.
pub(super) async fn publish_pending(cluster: &Cluster) -> Result<usize, Unpublished> {
    let mut created = 0;
    for kind in &cluster.kinds {
        let name = kind.name();
        let pending = blocking(&cluster.control, move |c| Ok(c.store().pending(name)?))
            .await
            .map_err(Unpublished::Local)?;
        if pending.is_empty() {
            continue;
        }
        let local = blocking(kind, |k| k.local())
            .await
            .map_err(Unpublished::Local)?;
        for id in pending {
            if let Some(record) = local.iter().find(|r| r.id == id) {
                let key = cluster.keys.record(name, &id);
                if cluster.etcd.create(&key, record.value.clone()).await? {
                    created += 1;
                    info!(
                        key,
                        "cluster: published a record made while etcd was out of reach"
                    );
                }
            }
            blocking(&cluster.control, move |c| {
                Ok(c.store().clear_pending(name, &id)?)
            })
            .await
            .map_err(Unpublished::Local)?;
        }
    }
    Ok(created)
}
