//! Keeping a replica in step with etcd: read everything under the prefix,
//! apply it, then apply every change the watch reports, in etcd's order.
//!
//! Records (kill switches and every other `RecordKind`) are applied on the
//! watch loop itself, so that an engage never waits behind a bundle being
//! fetched and compiled; bundles and snapshots go, in order, to a worker. A change that cannot be applied
//! ends the session: the replica is degraded (refusing writes) and starts
//! over, re-reading the whole state, until it can. A switch that cannot be
//! applied also makes every check deny until it is, since the switch might
//! be the one that should stop an agent.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::bootstrap::{Unpublished, bootstrap, publish_pending};
use super::etcd::{Change, Entry, EtcdError};
use super::keys::{BundlePointer, SnapshotPointer, sha256_hex};
use super::{Cluster, Link};
use crate::audit::record::admin_record;
use crate::control::{self, Control, ControlError, HeavyTurn, Target, heavy};
use crate::snapshot::SnapshotKind;

const PROBE_EVERY: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("cannot apply `{key}` from etcd: {reason}")]
    Apply { key: String, reason: String },
}

impl From<Unpublished> for SessionError {
    fn from(e: Unpublished) -> Self {
        match e {
            Unpublished::Etcd(e) => SessionError::Etcd(e),
            Unpublished::Local(e) => SessionError::Apply {
                key: "(local state)".into(),
                reason: e.to_string(),
            },
        }
    }
}

pub(super) async fn run(cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
    // Not ready until the cluster's switches are applied, or until it is
    // clear that etcd cannot be reached and the last known state must do.
    cluster
        .readiness
        .set_pending(Some("cluster_sync_pending".into()));
    let deadline = cluster.timeout.saturating_mul(3);
    let waiting = cluster.clone();
    let give_up = tokio::spawn(async move {
        tokio::time::sleep(deadline).await;
        waiting.readiness.set_pending(None);
    });
    let mut backoff = Duration::from_millis(100);
    loop {
        let outcome = tokio::select! {
            outcome = session(&cluster) => outcome,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        if let Err(e) = outcome {
            let reason = e.to_string();
            match cluster.sync_link() {
                Link::Degraded(previous) if previous == reason => {}
                _ => warn!(
                    error = reason,
                    "cluster: degraded; serving the last applied state, refusing admin writes"
                ),
            }
            if cluster.sync_link() == Link::Connected {
                backoff = Duration::from_millis(100);
            }
            cluster.set_link(Link::Degraded(reason));
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    give_up.abort();
}

/// What the data worker is given, in etcd's order.
enum Work {
    Change(Entry),
    Delete(String),
    /// Everything up to this revision has been handed over.
    Reached(i64),
}

/// Aborts the task when dropped: a session that ends for any reason
/// (stop included) takes its worker with it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn session(cluster: &Arc<Cluster>) -> Result<(), SessionError> {
    let mut listing = cluster.listing().await?;
    let created = bootstrap(cluster, &listing).await?;
    if publish_pending(cluster).await? > 0 || created {
        listing = cluster.listing().await?;
    }
    // The records first (kill switches above all), each kind all at once:
    // what checks see goes from the last known state (or, after a
    // failure, from failing closed) straight to the cluster's.
    for kind in &cluster.kinds {
        let prefix = cluster.keys.records(kind.name());
        let shared: Vec<Vec<u8>> = listing
            .entries
            .iter()
            .filter(|e| e.key.starts_with(&prefix))
            .map(|e| e.value.clone())
            .collect();
        let outcome = blocking(kind, move |k| k.resync(&shared, SystemTime::now())).await;
        if let Err(reason) = outcome {
            kind.fail(format!(
                "the cluster's {} records could not be applied: {reason}",
                kind.noun()
            ));
            return Err(SessionError::Apply {
                key: kind.name().into(),
                reason,
            });
        }
    }
    cluster.readiness.set_pending(None);

    // Bundles and snapshots as they were changed, oldest first; the worker
    // then goes on with what the watch reports. Stored (not served) bundles
    // only as many as this replica keeps: older ones it has pruned on
    // purpose and must not fetch again.
    let all = cluster.keys.all();
    let stored_prefix = format!("{all}bundle/stored/");
    let keep = cluster.control.config().bundle_keep;
    let mut stored: Vec<&Entry> = listing
        .entries
        .iter()
        .filter(|e| e.key.starts_with(&stored_prefix))
        .collect();
    stored.sort_by_key(|e| std::cmp::Reverse(e.mod_revision));
    stored.truncate(keep);
    let mut data: Vec<&Entry> = listing
        .entries
        .iter()
        .filter(|e| cluster.kind_of(&e.key).is_none() && !e.key.starts_with(&stored_prefix))
        .chain(stored)
        .collect();
    data.sort_by_key(|e| e.mod_revision);
    cluster
        .epoch
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (work, queue) = mpsc::unbounded_channel();
    // A shadow cleared in etcd while this replica was away.
    let shadow_key = cluster.keys.bundle(Target::Shadow);
    if !listing.entries.iter().any(|e| e.key == shadow_key) {
        let _ = work.send(Work::Delete(shadow_key));
    }
    for entry in data {
        let _ = work.send(Work::Change(entry.clone()));
    }
    let _ = work.send(Work::Reached(listing.revision));
    let _worker = AbortOnDrop(tokio::spawn(apply_data(cluster.clone(), queue)));
    follow(cluster, listing.revision, &work).await
}

/// Applies the watch's changes until something fails.
async fn follow(
    cluster: &Arc<Cluster>,
    revision: i64,
    work: &mpsc::UnboundedSender<Work>,
) -> Result<(), SessionError> {
    let all = cluster.keys.all();
    let mut changes = cluster.etcd.watch(&all, revision + 1).await?;
    // Connected (writable, and reported so) once everything read at the
    // start is applied, bundles and snapshots included.
    let mut applied = cluster.applied.subscribe();
    let mut in_step = false;
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let health = format!("{}/health", cluster.keys.prefix);
    loop {
        tokio::select! {
            message = changes.recv() => match message {
                Some(Ok((batch, revision))) => {
                    for change in batch {
                        match change {
                            Change::Put(entry) if cluster.kind_of(&entry.key).is_some() => {
                                apply_record(cluster, &entry).await?;
                            }
                            Change::Put(entry) => {
                                let _ = work.send(Work::Change(entry));
                            }
                            Change::Delete { key } => {
                                let _ = work.send(Work::Delete(key));
                            }
                        }
                    }
                    let _ = work.send(Work::Reached(revision));
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(EtcdError::Data("the watch ended".into()).into()),
            },
            reached = async { applied.wait_for(|applied| *applied >= revision).await.map(|_| ()) }, if !in_step => {
                if reached.is_ok() {
                    in_step = true;
                    if cluster.sync_link() != Link::Connected {
                        info!(revision, replica = cluster.replica(), "cluster: in step with etcd");
                    }
                    cluster.set_link(Link::Connected);
                }
            }
            // A watch on a half-dead connection may just go quiet.
            _ = probe.tick() => {
                cluster.etcd.get(&health).await?;
                // A record that failed outside this loop (on the write
                // path) is re-read from etcd by a new session.
                for kind in &cluster.kinds {
                    if let Some(reason) = kind.failed() {
                        return Err(SessionError::Apply { key: kind.name().into(), reason });
                    }
                }
                if work.is_closed() {
                    return Err(EtcdError::Data("the apply worker stopped".into()).into());
                }
                // A record made here while a write to etcd failed (the
                // link may not have noticed yet).
                publish_pending(cluster).await?;
            }
        }
    }
}

/// The data worker: bundles and snapshots, one at a time, in order; the
/// applied revision moves past a change once it has been tried. A change
/// that could not be applied is kept as a failure (the replica reports
/// itself degraded) and retried until it applies or a later change of the
/// same key replaces it.
async fn apply_data(cluster: Arc<Cluster>, mut queue: mpsc::UnboundedReceiver<Work>) {
    const RETRY_EVERY: Duration = Duration::from_secs(2);
    let mut retry =
        tokio::time::interval_at(tokio::time::Instant::now() + RETRY_EVERY, RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let item = tokio::select! {
            // Queued changes first, in order: a retry reads the latest value
            // of its key, which must not overtake older changes still queued.
            biased;
            item = queue.recv() => match item {
                Some(item) => item,
                None => return,
            },
            _ = retry.tick(), if queue.is_empty() => {
                retry_failures(&cluster).await;
                continue;
            }
        };
        match item {
            Work::Reached(revision) => {
                cluster.applied.send_if_modified(|applied| {
                    let newer = revision > *applied;
                    if newer {
                        *applied = revision;
                    }
                    newer
                });
            }
            Work::Delete(key) => {
                if key == cluster.keys.bundle(Target::Shadow) {
                    let outcome = clear_shadow(&cluster).await;
                    settle(&cluster, &key, outcome).await;
                }
            }
            Work::Change(entry) => {
                let outcome = apply_entry(&cluster, &entry).await;
                settle(&cluster, &entry.key, outcome).await;
            }
        }
    }
}

/// Records how applying `key` went: a failure is kept (and audited once),
/// a success clears an earlier one.
async fn settle(cluster: &Cluster, key: &str, outcome: Result<bool, String>) {
    // A stored (not served) bundle changes no decision; its failure is
    // logged and audited but does not degrade the replica.
    let stored = key.starts_with(&format!("{}bundle/stored/", cluster.keys.all()));
    match outcome {
        Ok(_) => cluster.clear_failure(key),
        Err(reason) if stored => {
            warn!(
                key,
                error = reason,
                "cluster: a stored bundle from etcd could not be stored here"
            );
            record(cluster, "failed", json!({"key": key, "error": reason})).await;
        }
        Err(reason) => {
            if cluster.record_failure(key, &reason) {
                error!(
                    key,
                    error = reason,
                    "cluster: a change from etcd could not be applied; degraded until it is"
                );
                record(cluster, "failed", json!({"key": key, "error": reason})).await;
            }
        }
    }
}

async fn retry_failures(cluster: &Cluster) {
    for key in cluster.failed_keys() {
        let outcome = match cluster.etcd.get(&key).await {
            Ok(Some(entry)) => apply_entry(cluster, &entry).await,
            // A shadow gone from etcd is one to clear here.
            Ok(None) if key == cluster.keys.bundle(Target::Shadow) => clear_shadow(cluster).await,
            Ok(None) => Ok(false),
            Err(e) => Err(e.to_string()),
        };
        settle(cluster, &key, outcome).await;
    }
}

/// Runs a data change on a blocking thread, one at a time across sessions,
/// and only if its session is still the current one: a change of an
/// aborted session that runs late does nothing, so an older activation
/// cannot commit after a newer one. `work` decides under that turn, from
/// the state it finds then. It also has the control plane's heavy turn
/// (taken first, so the order is the same everywhere).
async fn serial<T: Send + 'static>(
    cluster: &Cluster,
    work: impl FnOnce(&Control, &HeavyTurn) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, String> {
    let order = cluster.data_order.clone();
    let epoch = cluster.epoch.clone();
    let mine = epoch.load(std::sync::atomic::Ordering::SeqCst);
    heavy(&cluster.control, move |c, held| {
        let _turn = order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if epoch.load(std::sync::atomic::Ordering::SeqCst) != mine {
            return Err(ControlError::FailedPrecondition(
                "superseded by a newer cluster session".into(),
            ));
        }
        work(c, held)
    })
    .await
    .map_err(|e| e.to_string())
}

async fn clear_shadow(cluster: &Cluster) -> Result<bool, String> {
    let cleared = serial(cluster, |c, _| {
        if c.generations().current().shadow_policy().is_none() {
            return Ok(false);
        }
        c.clear_shadow().map(|_| true)
    })
    .await?;
    if cleared {
        record(cluster, "shadow", json!({"cleared": true})).await;
    }
    Ok(cleared)
}

fn parse<T: DeserializeOwned>(entry: &Entry) -> Result<T, String> {
    serde_json::from_slice(&entry.value).map_err(|e| format!("`{}` is not valid: {e}", entry.key))
}

async fn blocking<S, T>(
    state: &Arc<S>,
    work: impl FnOnce(&S) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, String>
where
    S: ?Sized + Send + Sync + 'static,
    T: Send + 'static,
{
    control::blocking(state, work)
        .await
        .map_err(|e| e.to_string())
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

/// Applies a record from etcd; on failure its kind fails closed (for kill
/// switches, every check is denied) until a later session applies it.
async fn apply_record(cluster: &Cluster, entry: &Entry) -> Result<(), SessionError> {
    let Some(kind) = cluster.kind_of(&entry.key) else {
        return Ok(());
    };
    let value = entry.value.clone();
    let outcome = blocking(kind, move |k| k.apply(&value, SystemTime::now())).await;
    match outcome {
        Ok(Some(details)) => {
            info!(
                key = entry.key,
                kind = kind.noun(),
                "cluster: record applied"
            );
            record(cluster, &kind.noun().replace(' ', "_"), details).await;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(reason) => {
            kind.fail(format!("`{}` could not be applied: {reason}", entry.key));
            Err(SessionError::Apply {
                key: entry.key.clone(),
                reason,
            })
        }
    }
}

/// A bundle or snapshot pointer, applied; whether anything changed.
async fn apply_entry(cluster: &Cluster, entry: &Entry) -> Result<bool, String> {
    let rest = entry
        .key
        .strip_prefix(&cluster.keys.all())
        .unwrap_or(&entry.key)
        .to_owned();
    if let Some(kind) = rest.strip_prefix("snapshot/") {
        apply_snapshot(cluster, kind, entry).await
    } else if rest.starts_with("bundle/stored/") {
        stored(cluster, &parse::<BundlePointer>(entry)?).await
    } else if rest == "bundle/active" {
        apply_bundle(cluster, entry, Target::Active).await
    } else if rest == "bundle/shadow" {
        apply_bundle(cluster, entry, Target::Shadow).await
    } else {
        Ok(false)
    }
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
    let archive = verified_blob(cluster, &pointer.archive_sha256, || {
        format!("the archive of bundle `{}`", pointer.digest)
    })
    .await?;
    let record = serial(cluster, move |c, turn| {
        c.put_bundle(archive, Target::Stored, turn)
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

async fn apply_bundle(cluster: &Cluster, entry: &Entry, target: Target) -> Result<bool, String> {
    let pointer: BundlePointer = parse(entry)?;
    stored(cluster, &pointer).await?;
    let digest = pointer.digest.clone();
    let rollback = pointer.rollback && target == Target::Active;
    // Whether it is served already is decided in its turn, after any
    // earlier activation has committed.
    let activated = serial(cluster, move |c, turn| {
        let current = c.generations().current();
        let serving = match target {
            Target::Shadow => current.shadow_policy().map(|p| p.digest.clone()),
            _ => Some(current.policy.digest.clone()),
        };
        if serving.as_deref() == Some(digest.as_str()) {
            return Ok(false);
        }
        if rollback {
            c.roll_back_to(&digest, turn).map(|_| true)
        } else {
            c.activate(&digest, target, turn).map(|_| true)
        }
    })
    .await?;
    if activated {
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
    }
    Ok(activated)
}

/// The blob named `sha256`, fetched and checked against its name; `what`
/// says what it holds, for the error.
async fn verified_blob(
    cluster: &Cluster,
    sha256: &str,
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, String> {
    let bytes = cluster
        .etcd
        .get_blob(&cluster.keys.blob(sha256))
        .await
        .map_err(|e| e.to_string())?;
    if sha256_hex(&bytes) != sha256 {
        return Err(format!("{} does not match its SHA-256", what()));
    }
    Ok(bytes)
}

async fn apply_snapshot(cluster: &Cluster, kind: &str, entry: &Entry) -> Result<bool, String> {
    let pointer: SnapshotPointer = parse(entry)?;
    let Some(parsed_kind) = SnapshotKind::parse(kind) else {
        return Err(format!("`{kind}` is not a snapshot kind"));
    };
    if !newer(cluster, parsed_kind, &pointer.version) {
        return Ok(false);
    }
    let document = verified_blob(cluster, &pointer.sha256, || {
        format!("the {kind} snapshot `{}`", pointer.version)
    })
    .await?;
    let kind_name = kind.to_owned();
    let version = pointer.version.clone();
    // Decided again in its turn: an earlier change may have loaded it.
    let loaded = serial(cluster, move |c, turn| {
        let current = c.generations().current();
        let serving = &current.snapshot(parsed_kind).version;
        if *serving == version
            || crate::control::compare_versions(&version, serving) == std::cmp::Ordering::Less
        {
            return Ok(None);
        }
        c.put_snapshot(&kind_name, document, turn).map(Some)
    })
    .await?;
    let Some(snapshot) = loaded else {
        return Ok(false);
    };
    info!(%kind, version = snapshot.version, "cluster: snapshot applied");
    record(
        cluster,
        "snapshot",
        json!({"kind": kind, "version": snapshot.version}),
    )
    .await;
    Ok(true)
}

/// Whether etcd's `version` is newer than the one this replica serves.
/// Versions only move forward: etcd naming an older one (this replica's
/// own seed, say) is not a change to apply.
fn newer(cluster: &Cluster, kind: SnapshotKind, version: &str) -> bool {
    let current = cluster.control.generations().current();
    let serving = &current.snapshot(kind).version;
    if *serving == version {
        return false;
    }
    if crate::control::compare_versions(version, serving) == std::cmp::Ordering::Less {
        warn!(%kind, etcd = version, serving, "cluster: etcd names an older snapshot; keeping the newer one");
        return false;
    }
    true
}
