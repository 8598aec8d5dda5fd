//! Keeping a replica in step with etcd: read everything under the prefix,
//! apply it, then apply every change the watch reports, in etcd's order.
//! When etcd is lost — the watch fails, or a probe goes unanswered — the
//! replica is degraded until a new session has read and applied the state
//! again, so it converges whatever it missed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::etcd::{Change, Entry, EtcdError, Listing};
use super::{BundlePointer, Cluster, Link, SnapshotPointer, sha256_hex};
use crate::audit::record::admin_record;
use crate::control::{Control, ControlError, Target};
use crate::killswitch::{Switch, unix_ms};
use crate::snapshot::SnapshotKind;

const PROBE_EVERY: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) async fn run(cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let outcome = tokio::select! {
            outcome = session(&cluster) => outcome,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        if let Err(e) = outcome {
            if cluster.link() != Link::Degraded(e.to_string()) {
                warn!(error = %e, "cluster: etcd lost; serving the last known state, refusing admin writes");
            }
            let connected_before = cluster.link() == Link::Connected;
            cluster.set_link(Link::Degraded(e.to_string()));
            if connected_before {
                backoff = Duration::from_millis(100);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn session(cluster: &Cluster) -> Result<(), EtcdError> {
    let mut listing = cluster.listing().await?;
    if bootstrap(cluster, &listing).await? {
        listing = cluster.listing().await?;
    }
    apply_listing(cluster, &listing).await;
    cluster.applied.send_replace(listing.revision);
    let mut changes = cluster
        .etcd
        .watch(&cluster.keys.all(), listing.revision + 1)
        .await?;
    if cluster.link() != Link::Connected {
        info!(
            revision = listing.revision,
            replica = cluster.replica(),
            "cluster: in step with etcd"
        );
    }
    cluster.set_link(Link::Connected);
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let health = format!("{}/health", cluster.keys.prefix);
    loop {
        tokio::select! {
            message = changes.recv() => match message {
                Some(Ok((changes, revision))) => {
                    for change in changes {
                        apply_change(cluster, change).await;
                    }
                    cluster.applied.send_if_modified(|applied| {
                        let newer = revision > *applied;
                        if newer {
                            *applied = revision;
                        }
                        newer
                    });
                }
                Some(Err(e)) => return Err(e),
                None => return Err(EtcdError::Data("the watch ended".into())),
            },
            // A watch on a half-dead connection may just go quiet.
            _ = probe.tick() => {
                cluster.etcd.get(&health).await?;
            }
        }
    }
}

/// Fills an empty etcd from this replica's state: the first replica of a
/// new cluster publishes what it serves. Only absent keys are written, so
/// replicas starting together agree on whichever came first. Returns
/// whether anything was written.
async fn bootstrap(cluster: &Cluster, listing: &Listing) -> Result<bool, EtcdError> {
    let has = |key: &str| listing.entries.iter().any(|e| e.key == key);
    let mut wrote = false;
    let active_key = cluster.keys.bundle(Target::Active);
    if !has(&active_key) {
        let policy = cluster.control.generations().current().policy.clone();
        if let Ok(Some(archive)) = cluster.control.store().bundle_archive(&policy.digest) {
            let archive_sha256 = sha256_hex(&archive);
            cluster
                .etcd
                .put_blob(&cluster.keys.blob(&archive_sha256), &archive)
                .await?;
            let pointer = BundlePointer {
                digest: policy.digest.clone(),
                revision: policy.revision.clone(),
                archive_sha256,
            };
            wrote |= cluster.etcd.create(&active_key, to_json(&pointer)).await?;
        }
    }
    for kind in SnapshotKind::ALL {
        let key = cluster.keys.snapshot(kind.as_str());
        if has(&key) {
            continue;
        }
        if let Ok(Some(document)) = cluster.control.store().snapshot(kind) {
            let sha256 = sha256_hex(&document);
            cluster
                .etcd
                .put_blob(&cluster.keys.blob(&sha256), &document)
                .await?;
            let pointer = SnapshotPointer {
                version: cluster
                    .control
                    .generations()
                    .current()
                    .snapshot(kind)
                    .version
                    .clone(),
                sha256,
            };
            wrote |= cluster.etcd.create(&key, to_json(&pointer)).await?;
        }
    }
    let now_ms = unix_ms(SystemTime::now());
    if let Ok(switches) = cluster.control.store().switches() {
        for switch in switches.into_iter().filter(|s| s.in_force(now_ms)) {
            let key = cluster.keys.switch(&switch.id);
            if !has(&key) {
                wrote |= cluster.etcd.create(&key, to_json(&switch)).await?;
            }
        }
    }
    Ok(wrote)
}

fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The whole state, safest first: switches (denials) before data and
/// policy.
async fn apply_listing(cluster: &Cluster, listing: &Listing) {
    let rank = |key: &str| {
        let rest = key.strip_prefix(&cluster.keys.all()).unwrap_or(key);
        if rest.starts_with("switches/") {
            0
        } else if rest.starts_with("snapshot/") {
            1
        } else if rest.starts_with("bundle/stored/") {
            2
        } else if rest.starts_with("bundle/") {
            3
        } else {
            4
        }
    };
    let mut entries: Vec<&Entry> = listing
        .entries
        .iter()
        .filter(|e| rank(&e.key) < 4)
        .collect();
    entries.sort_by_key(|e| (rank(&e.key), e.mod_revision));
    for entry in entries {
        apply_change(cluster, Change::Put(entry.clone())).await;
    }
}

fn parse<T: DeserializeOwned>(entry: &Entry) -> Result<T, String> {
    serde_json::from_slice(&entry.value).map_err(|e| format!("`{}` is not valid: {e}", entry.key))
}

async fn blocking<T: Send + 'static>(
    control: &Arc<Control>,
    work: impl FnOnce(&Control) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, String> {
    let control = control.clone();
    match tokio::task::spawn_blocking(move || work(&control)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("apply task failed: {e}")),
    }
}

/// Applies one change; a change that cannot be applied is logged and
/// audited, and the replica goes on with the next (it keeps enforcing
/// everything it did apply).
async fn apply_change(cluster: &Cluster, change: Change) {
    let Change::Put(entry) = change else {
        if let Change::Delete { key, .. } = &change
            && *key == cluster.keys.bundle(Target::Shadow)
        {
            let cleared = blocking(&cluster.control, |c| c.clear_shadow()).await;
            record(cluster, "shadow", json!({"cleared": cleared.is_ok()})).await;
        }
        return;
    };
    let rest = entry
        .key
        .strip_prefix(&cluster.keys.all())
        .unwrap_or(&entry.key)
        .to_owned();
    let outcome = if rest.starts_with("switches/") {
        apply_switch(cluster, &entry).await
    } else if let Some(kind) = rest.strip_prefix("snapshot/") {
        apply_snapshot(cluster, kind, &entry).await
    } else if rest.starts_with("bundle/stored/") {
        match parse::<BundlePointer>(&entry) {
            Ok(pointer) => stored(cluster, &pointer).await.map(|_| ()),
            Err(e) => Err(e),
        }
    } else if rest == "bundle/active" {
        apply_bundle(cluster, &entry, Target::Active).await
    } else if rest == "bundle/shadow" {
        apply_bundle(cluster, &entry, Target::Shadow).await
    } else {
        Ok(())
    };
    if let Err(e) = outcome {
        error!(key = entry.key, error = %e, "cluster: cannot apply a change from etcd");
        record(cluster, "failed", json!({"key": entry.key, "error": e})).await;
    }
}

async fn record(cluster: &Cluster, what: &str, details: serde_json::Value) {
    let record = admin_record(
        "cluster.applied",
        "cluster",
        json!({"what": what, "details": details}),
        SystemTime::now(),
    );
    if let Err(e) = cluster.auditor.record_admin(&record).await {
        warn!(error = %e, "cannot audit a change applied from the cluster");
    }
}

async fn apply_switch(cluster: &Cluster, entry: &Entry) -> Result<(), String> {
    let switch: Switch = parse(entry)?;
    let applied = switch.clone();
    let changed = blocking(&cluster.control, move |c| {
        c.apply_switch(&applied, SystemTime::now())
    })
    .await?;
    if changed {
        let state = if switch.ended.is_some() {
            "ended"
        } else {
            "engaged"
        };
        info!(id = switch.id, state, "cluster: kill switch applied");
        record(
            cluster,
            "kill_switch",
            json!({"id": switch.id, "state": state, "scope": switch.scope}),
        )
        .await;
    }
    Ok(())
}

/// The bundle `pointer` names, in this replica's store: fetched from etcd
/// and checked (hash, signature, tests, compilation) if it is not there yet.
async fn stored(cluster: &Cluster, pointer: &BundlePointer) -> Result<bool, String> {
    let digest = pointer.digest.clone();
    let present = blocking(&cluster.control, move |c| {
        Ok(c.store().bundle_record(&digest)?)
    })
    .await?
    .is_some();
    if present {
        return Ok(false);
    }
    let archive = cluster
        .etcd
        .get_blob(&cluster.keys.blob(&pointer.archive_sha256))
        .await
        .map_err(|e| e.to_string())?;
    if sha256_hex(&archive) != pointer.archive_sha256 {
        return Err(format!(
            "the archive of bundle `{}` does not match its SHA-256",
            pointer.digest
        ));
    }
    let record = blocking(&cluster.control, move |c| {
        c.put_bundle(archive, Target::Stored)
    })
    .await?;
    if record.digest != pointer.digest {
        return Err(format!(
            "the archive named as bundle `{}` is bundle `{}`",
            pointer.digest, record.digest
        ));
    }
    Ok(true)
}

async fn apply_bundle(cluster: &Cluster, entry: &Entry, target: Target) -> Result<(), String> {
    let pointer: BundlePointer = parse(entry)?;
    let current = cluster.control.generations().current();
    let serving = match target {
        Target::Shadow => current.shadow_policy().map(|p| p.digest.clone()),
        _ => Some(current.policy.digest.clone()),
    };
    if serving.as_deref() == Some(pointer.digest.as_str()) {
        return Ok(());
    }
    stored(cluster, &pointer).await?;
    let digest = pointer.digest.clone();
    blocking(&cluster.control, move |c| c.activate(&digest, target)).await?;
    info!(
        revision = pointer.revision,
        digest = pointer.digest,
        ?target,
        "cluster: bundle applied"
    );
    record(
        cluster,
        "bundle",
        json!({"digest": pointer.digest, "revision": pointer.revision, "target": format!("{target:?}").to_lowercase()}),
    )
    .await;
    Ok(())
}

async fn apply_snapshot(cluster: &Cluster, kind: &str, entry: &Entry) -> Result<(), String> {
    let pointer: SnapshotPointer = parse(entry)?;
    let Some(parsed_kind) = SnapshotKind::parse(kind) else {
        return Err(format!("`{kind}` is not a snapshot kind"));
    };
    if cluster
        .control
        .generations()
        .current()
        .snapshot(parsed_kind)
        .version
        == pointer.version
    {
        return Ok(());
    }
    let document = cluster
        .etcd
        .get_blob(&cluster.keys.blob(&pointer.sha256))
        .await
        .map_err(|e| e.to_string())?;
    if sha256_hex(&document) != pointer.sha256 {
        return Err(format!(
            "the {kind} snapshot `{}` does not match its SHA-256",
            pointer.version
        ));
    }
    let kind_name = kind.to_owned();
    match blocking(&cluster.control, move |c| {
        c.put_snapshot(&kind_name, document)
    })
    .await
    {
        Ok(snapshot) => {
            info!(%kind, version = snapshot.version, "cluster: snapshot applied");
            record(
                cluster,
                "snapshot",
                json!({"kind": kind, "version": snapshot.version}),
            )
            .await;
            Ok(())
        }
        Err(e) => Err(e),
    }
}
