//! Cluster mode: replicas that answer identically because they share, in
//! etcd, the kill switches, the bundles and which one is active, and the
//! snapshots. Audit chains stay local to each replica.
//!
//! etcd is the order of changes. A write made on any replica is checked
//! there first (nothing invalid reaches etcd), written to etcd, and then
//! applied by every replica — the writer included — as its watch reports
//! it, in etcd's order, so replicas converge on the same state. Kill
//! switches are also applied by the writer at once, before it answers:
//! an acknowledged engage is in force there already, and on the others as
//! soon as their watch delivers it. Bundle and snapshot contents travel as
//! blobs named by their SHA-256, verified before they are used.
//!
//! Without etcd a replica keeps serving what it last knew — its own store
//! holds every applied change — reports itself degraded, and refuses admin
//! writes: applying one locally only would make it answer differently from
//! the others.

mod collect;
pub mod config;
mod etcd;
mod sync;
pub(crate) mod tls;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tonic::Status;
use tracing::warn;

use crate::audit::Auditor;
use crate::control::{Control, ControlError, Target};
use crate::killswitch::{EngageSpec, Switch};
use crate::ops::Readiness;
use crate::snapshot::Snapshot;
use crate::store::BundleRecord;
use config::ClusterConfig;
pub use etcd::EtcdError;
use etcd::{Entry, Etcd, Listing};
pub use tls::{EtcdFile, EtcdTls};

/// Where the cluster's state lives under the prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn all(&self) -> String {
        format!("{}/", self.prefix)
    }
    fn switch(&self, id: &str) -> String {
        format!("{}/switches/{id}", self.prefix)
    }
    fn bundle(&self, target: Target) -> String {
        match target {
            Target::Active => format!("{}/bundle/active", self.prefix),
            Target::Shadow => format!("{}/bundle/shadow", self.prefix),
            Target::Stored => format!("{}/bundle/stored", self.prefix),
        }
    }
    fn stored_bundle(&self, digest: &str) -> String {
        format!("{}/bundle/stored/{digest}", self.prefix)
    }
    fn snapshot(&self, kind: &str) -> String {
        format!("{}/snapshot/{kind}", self.prefix)
    }
    /// Outside the listed and watched `{prefix}/`: contents are fetched
    /// when a pointer names them, never streamed to every replica.
    fn blob(&self, sha256: &str) -> String {
        format!("{}{sha256}", self.blobs())
    }
    fn blobs(&self) -> String {
        format!("{}-blobs/", self.prefix)
    }
}

/// A bundle named in etcd: which one, and the blob holding its archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BundlePointer {
    digest: String,
    revision: String,
    archive_sha256: String,
    /// Named by a rollback: replicas take it off their history, as a
    /// single node's rollback does, so that a second rollback goes further
    /// back instead of returning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rollback: bool,
}

/// A snapshot named in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SnapshotPointer {
    version: String,
    sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether this replica is in step with etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not yet in contact since start.
    Starting,
    Connected,
    Degraded(String),
}

/// The cluster side of one replica.
#[derive(Debug)]
pub struct Cluster {
    etcd: Etcd,
    keys: Keys,
    replica: String,
    timeout: Duration,
    /// How long an unnamed blob stays in etcd after it was last written.
    blob_grace: Duration,
    control: Arc<Control>,
    auditor: Arc<Auditor>,
    readiness: Arc<Readiness>,
    link: Mutex<Link>,
    /// Changes from etcd this replica could not apply, by key, with why;
    /// retried by the sync loop.
    failures: Mutex<std::collections::BTreeMap<String, String>>,
    /// One data change (bundle, snapshot) applied at a time, across
    /// sessions.
    data_order: Arc<Mutex<()>>,
    /// Which session may apply data changes: a change from an aborted
    /// session that starts late finds the epoch moved and does nothing.
    epoch: Arc<std::sync::atomic::AtomicU64>,
    /// The highest etcd revision this replica has applied.
    applied: watch::Sender<i64>,
}

/// A shadow cleared cluster-wide: its record, or, where this replica never
/// stored it (the clear repairs a shadow it could not apply), what etcd
/// named.
#[derive(Debug)]
pub enum ClearedShadow {
    Stored(BundleRecord),
    Named { digest: String, revision: String },
}

/// What `Cluster::settled_pointers` read: the guard for a write, and the
/// value of the pointer it writes (`None`: absent).
struct Settled {
    guard: Vec<(String, i64)>,
    writing: Option<Entry>,
}

/// A bundle pointer read from etcd.
fn bundle_pointer(entry: &Entry) -> Result<BundlePointer, Status> {
    serde_json::from_slice(&entry.value).map_err(|e| {
        Status::unavailable(format!(
            "cluster mode: `{}` in etcd is unreadable: {e}",
            entry.key
        ))
    })
}

/// A guarded write whose pointers moved before it reached etcd.
fn overtaken() -> Status {
    Status::aborted(
        "another bundle or snapshot change reached etcd meanwhile; check the state and retry",
    )
}

/// Why a cluster write was refused.
fn unavailable(link: &Link) -> Status {
    let why = match link {
        Link::Starting => "etcd has not been reached since this replica started".to_owned(),
        Link::Degraded(reason) => reason.clone(),
        Link::Connected => "etcd is unreachable".to_owned(),
    };
    Status::unavailable(format!(
        "cluster mode: {why}; admin writes are refused so that replicas do not diverge"
    ))
}

fn etcd_status(error: &EtcdError) -> Status {
    match error {
        // The write may have been committed just before the deadline.
        EtcdError::Timeout(_) => Status::unavailable(format!(
            "cluster mode: etcd did not confirm the change in time ({error}); it may or may not \
             have been applied: list the current state before retrying"
        )),
        _ => Status::unavailable(format!(
            "cluster mode: the change could not be written to etcd ({error}); nothing changed"
        )),
    }
}

impl Cluster {
    pub fn new(
        config: &ClusterConfig,
        replica: String,
        control: Arc<Control>,
        auditor: Arc<Auditor>,
        readiness: Arc<Readiness>,
    ) -> Result<Arc<Self>, EtcdError> {
        let (applied, _) = watch::channel(0);
        Ok(Arc::new(Self {
            etcd: Etcd::new(
                &config.etcd_endpoints,
                config.etcd_tls.as_ref(),
                config.etcd_timeout,
            )?,
            keys: Keys {
                prefix: config.prefix.clone(),
            },
            replica,
            timeout: config.etcd_timeout,
            blob_grace: config.blob_grace,
            control,
            auditor,
            readiness,
            link: Mutex::new(Link::Starting),
            failures: Mutex::new(std::collections::BTreeMap::new()),
            data_order: Arc::new(Mutex::new(())),
            epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            applied,
        }))
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// How this replica stands with the cluster: degraded while etcd is
    /// out of reach, and also while a change from etcd is not applied.
    pub fn link(&self) -> Link {
        let link = self.sync_link();
        if link == Link::Connected
            && let Some((key, reason)) = self.failed().iter().next()
        {
            return Link::Degraded(format!("cannot apply `{key}` from etcd: {reason}"));
        }
        link
    }

    /// Whether the sync loop is in step with etcd (writes are possible).
    fn sync_link(&self) -> Link {
        self.link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_link(&self, link: Link) {
        *self
            .link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = link;
        self.refresh_readiness();
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `key` could not be applied; whether that is news.
    fn record_failure(&self, key: &str, reason: &str) -> bool {
        let new = self
            .failed()
            .insert(key.to_owned(), reason.to_owned())
            .as_deref()
            != Some(reason);
        self.refresh_readiness();
        new
    }

    fn clear_failure(&self, key: &str) {
        if self.failed().remove(key).is_some() {
            self.refresh_readiness();
        }
    }

    fn failed_keys(&self) -> Vec<String> {
        self.failed().keys().cloned().collect()
    }

    fn refresh_readiness(&self) {
        match self.link() {
            Link::Connected => self.readiness.set_degraded(None),
            Link::Degraded(reason) => self
                .readiness
                .set_degraded(Some(format!("cluster: {reason}"))),
            Link::Starting => {}
        }
    }

    /// The etcd revision applied here.
    pub fn applied_revision(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Writes need etcd; a change this replica failed to apply does not
    /// stop them (a new push may be what repairs it).
    fn writable(&self) -> Result<(), Status> {
        match self.sync_link() {
            Link::Connected => Ok(()),
            other => Err(unavailable(&other)),
        }
    }

    /// Waits until this replica has applied etcd's revision `revision`.
    async fn caught_up(&self, revision: i64) -> Result<(), Status> {
        let mut applied = self.applied.subscribe();
        let wait = applied.wait_for(|applied| *applied >= revision);
        match tokio::time::timeout(self.timeout.saturating_mul(5), wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Status::unavailable(format!(
                "cluster mode: the change is in etcd (revision {revision}) but this replica has not applied it yet; \
                 it will, once its watch catches up"
            ))),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Control) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, Status> {
        let control = self.control.clone();
        tokio::task::spawn_blocking(move || work(&control))
            .await
            .map_err(|e| Status::internal(format!("admin task failed: {e}")))?
            .map_err(|e| crate::api::admin::status(&e))
    }

    /// Engages a switch cluster-wide: written to etcd, then in force here
    /// before this returns, and on every replica as its watch delivers it.
    pub async fn engage(&self, spec: EngageSpec) -> Result<Switch, Status> {
        self.writable()?;
        let now = SystemTime::now();
        let switch = self.blocking(move |c| c.prepare_engage(spec, now)).await?;
        self.share_switch(switch, 0).await
    }

    /// Releases a switch cluster-wide, as `engage` engages one. Of two
    /// releases racing on different replicas, the second is refused, as
    /// on a single node.
    pub async fn release(&self, id: String, reason: String, by: String) -> Result<Switch, Status> {
        self.writable()?;
        let key = self.keys.switch(&id);
        let shared = self.etcd.get(&key).await.map_err(|e| etcd_status(&e))?;
        if let Some(entry) = &shared
            && let Ok(stored) = serde_json::from_slice::<Switch>(&entry.value)
            && stored.ended.is_some()
        {
            return Err(Status::failed_precondition(format!(
                "kill switch `{id}` has already ended"
            )));
        }
        let now = SystemTime::now();
        let switch = self
            .blocking(move |c| c.prepare_release(&id, reason, by, now))
            .await?;
        self.share_switch(switch, shared.map_or(0, |e| e.mod_revision))
            .await
    }

    /// Writes `switch` if its key is still at `mod_revision` (0: absent),
    /// then applies it here.
    async fn share_switch(&self, switch: Switch, mod_revision: i64) -> Result<Switch, Status> {
        let value = serde_json::to_vec(&switch)
            .map_err(|e| Status::internal(format!("cannot encode the switch: {e}")))?;
        let written = self
            .etcd
            .put_if(&self.keys.switch(&switch.id), value, mod_revision)
            .await
            .map_err(|e| etcd_status(&e))?;
        if written.is_none() {
            return Err(Status::failed_precondition(format!(
                "kill switch `{}` was changed on another replica meanwhile; list the switches and retry",
                switch.id
            )));
        }
        let applied = switch.clone();
        match self
            .blocking(move |c| c.apply_switch(&applied, SystemTime::now()))
            .await
        {
            Ok(_) => Ok(switch),
            Err(status) => {
                // In force on the other replicas; here every check is denied
                // until the sync loop reloads and applies it again.
                self.control.fail_switches(format!(
                    "kill switch `{}` is in etcd but could not be applied here: {}",
                    switch.id,
                    status.message()
                ));
                Err(Status::unavailable(format!(
                    "kill switch `{}` was written to etcd and applies on the other replicas, but not \
                     on this one ({}); this replica denies every check until it has caught up",
                    switch.id,
                    status.message()
                )))
            }
        }
    }

    /// Pushes a bundle cluster-wide: checked and stored here, its archive
    /// shared, then served (per `target`) by every replica.
    pub async fn put_bundle(
        &self,
        archive: Vec<u8>,
        target: Target,
    ) -> Result<BundleRecord, Status> {
        self.writable()?;
        let shared = archive.clone();
        let record = self
            .blocking(move |c| c.put_bundle(archive, Target::Stored))
            .await?;
        if target == Target::Stored {
            let key = self.keys.stored_bundle(&record.digest);
            return self
                .share_bundle(&record, &shared, &key, target, None, false)
                .await;
        }
        let pointers = self
            .settled_pointers(&self.keys.bundle(target))
            .await?
            .guard;
        let digest = record.digest.clone();
        self.blocking(move |c| c.check_activation(&digest, target))
            .await?;
        self.share_bundle(
            &record,
            &shared,
            &self.keys.bundle(target),
            target,
            Some(&pointers),
            false,
        )
        .await
    }

    /// Uploads a checked bundle's archive, names it under `key`, and waits
    /// until this replica has applied that (and serves it, per `target`).
    async fn share_bundle(
        &self,
        record: &BundleRecord,
        archive: &[u8],
        key: &str,
        target: Target,
        guard: Option<&[(String, i64)]>,
        rollback: bool,
    ) -> Result<BundleRecord, Status> {
        let archive_sha256 = sha256_hex(archive);
        let base = self.keys.blob(&archive_sha256);
        let pointer = BundlePointer {
            digest: record.digest.clone(),
            revision: record.revision.clone(),
            archive_sha256,
            rollback,
        };
        let revision = self
            .name_blob(key, &pointer, &base, archive, guard.unwrap_or_default())
            .await?;
        self.caught_up(revision).await?;
        self.served(&record.digest, target)?;
        self.current_record(&record.digest)
    }

    /// Whether this replica, having applied a change, serves `digest` as
    /// `target`; it may not if the change could not be applied here.
    fn served(&self, digest: &str, target: Target) -> Result<(), Status> {
        let current = self.control.generations().current();
        let serving = match target {
            Target::Stored => return Ok(()),
            Target::Active => Some(current.policy.digest.clone()),
            Target::Shadow => current.shadow_policy().map(|p| p.digest.clone()),
        };
        if serving.as_deref() == Some(digest) {
            return Ok(());
        }
        match self.failed().get(&self.keys.bundle(target)) {
            Some(reason) => Err(Status::unavailable(format!(
                "bundle `{digest}` is named in etcd, but this replica could not serve it ({reason}); \
                 it reports itself degraded and retries"
            ))),
            None => Err(Status::aborted(format!(
                "bundle `{digest}` was named in etcd, but another change overtook it before this replica applied it"
            ))),
        }
    }

    /// Serves a stored bundle cluster-wide.
    pub async fn activate(
        &self,
        digest_prefix: String,
        target: Target,
    ) -> Result<BundleRecord, Status> {
        self.writable()?;
        let pointers = self
            .settled_pointers(&self.keys.bundle(target))
            .await?
            .guard;
        let record = self
            .blocking(move |c| {
                if digest_prefix.len() < 8
                    || !digest_prefix.chars().all(|ch| ch.is_ascii_hexdigit())
                {
                    return Err(ControlError::Invalid {
                        field: "digest".into(),
                        reason: "must be at least 8 hex digits of a stored bundle's digest".into(),
                    });
                }
                Ok(c.store().find_bundle(&digest_prefix.to_ascii_lowercase())?)
            })
            .await?;
        self.point_at(record, target, false, pointers).await
    }

    /// Serves, cluster-wide, the bundle this replica served before the
    /// active one (every replica applied the same activations, in order).
    pub async fn rollback(&self) -> Result<BundleRecord, Status> {
        self.writable()?;
        // Which bundle is previous is read once this replica has applied
        // the cluster's pointers: a rollback just made elsewhere may not
        // have reached its history yet.
        let settled = self
            .settled_pointers(&self.keys.bundle(Target::Active))
            .await?;
        // "Previous" is read from this replica's history, which is the
        // cluster's only if this replica applied the current active bundle;
        // one that could not would roll everybody back a step too far.
        let named = settled.writing.as_ref().map(bundle_pointer).transpose()?;
        let serving = self.control.generations().current().policy.digest.clone();
        if named.is_some_and(|named| named.digest != serving) {
            return Err(Status::unavailable(
                "cluster mode: this replica does not serve the cluster's active bundle, so its \
                 history is not the cluster's; roll back from another replica",
            ));
        }
        let record = self
            .blocking(|c| {
                let serving = c.store().serving()?;
                let previous = serving.history.last().cloned().ok_or_else(|| {
                    ControlError::FailedPrecondition(
                        "there is no previous bundle to roll back to".into(),
                    )
                })?;
                c.store().bundle_record(&previous)?.ok_or_else(|| {
                    ControlError::FailedPrecondition(format!(
                        "the previous bundle `{previous}` is no longer stored"
                    ))
                })
            })
            .await?;
        self.point_at(record, Target::Active, true, settled.guard)
            .await
    }

    /// Names a stored bundle as `target`, guarded by `pointers` (as
    /// `settled_pointers` read them before `record` was chosen).
    async fn point_at(
        &self,
        record: BundleRecord,
        target: Target,
        rollback: bool,
        pointers: Vec<(String, i64)>,
    ) -> Result<BundleRecord, Status> {
        let digest = record.digest.clone();
        self.blocking(move |c| c.check_activation(&digest, target))
            .await?;
        let digest = record.digest.clone();
        let archive = self
            .blocking(move |c| {
                c.store().bundle_archive(&digest)?.ok_or_else(|| {
                    ControlError::NotFound(format!("bundle `{digest}` is not stored"))
                })
            })
            .await?;
        self.share_bundle(
            &record,
            &archive,
            &self.keys.bundle(target),
            target,
            Some(&pointers),
            rollback,
        )
        .await
    }

    fn current_record(&self, digest: &str) -> Result<BundleRecord, Status> {
        self.control
            .store()
            .bundle_record(digest)
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(|| Status::internal(format!("bundle `{digest}` vanished")))
    }

    /// Stops evaluating the shadow bundle cluster-wide: its pointer leaves
    /// etcd, and every replica clears its shadow as the watch reports that.
    /// Returns the bundle etcd named (it may be pruned from stores later,
    /// being no longer served).
    pub async fn clear_shadow(&self) -> Result<Option<ClearedShadow>, Status> {
        self.writable()?;
        let key = self.keys.bundle(Target::Shadow);
        let Settled { guard, writing } = self.settled_pointers(&key).await?;
        let Some(entry) = writing else {
            return Ok(None);
        };
        let pointer = bundle_pointer(&entry)?;
        // Read before the clear: once no longer served, it may be pruned.
        let record = self
            .control
            .store()
            .bundle_record(&pointer.digest)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let revision = self
            .etcd
            .delete_if_all(&key, &guard)
            .await
            .map_err(|e| etcd_status(&e))?
            .ok_or_else(overtaken)?;
        // Done cluster-wide from here on, so answered (and audited) as
        // done; a replica that cannot apply it, this one included, reports
        // itself degraded and retries. A shadow only ever compares.
        if let Err(status) = self.caught_up(revision).await {
            warn!(error = %status.message(), "cluster: the shadow was cleared in etcd, but not yet here");
        }
        Ok(Some(match record {
            Some(record) => ClearedShadow::Stored(record),
            None => ClearedShadow::Named {
                digest: pointer.digest,
                revision: pointer.revision,
            },
        }))
    }

    /// Replaces a snapshot cluster-wide: checked here (newer, well formed,
    /// binds to the policy), shared, then loaded by every replica.
    pub async fn put_snapshot(
        &self,
        kind: String,
        document: Vec<u8>,
    ) -> Result<Arc<Snapshot>, Status> {
        self.writable()?;
        // Checked against the cluster's current pointers, and written only
        // if none moved meanwhile: etcd never goes back to an older version,
        // nor names a snapshot checked against a bundle no longer active.
        let key = self.keys.snapshot(&kind);
        let pointers = self.settled_pointers(&key).await?.guard;
        let checked_document = document.clone();
        let checked_kind = kind.clone();
        let snapshot = self
            .blocking(move |c| c.check_snapshot(&checked_kind, &checked_document))
            .await?;
        let sha256 = sha256_hex(&document);
        let base = self.keys.blob(&sha256);
        let pointer = SnapshotPointer {
            version: snapshot.version.clone(),
            sha256,
        };
        let revision = self
            .name_blob(&key, &pointer, &base, &document, &pointers)
            .await?;
        self.caught_up(revision).await?;
        let loaded = self
            .control
            .generations()
            .current()
            .snapshot(snapshot.kind)
            .clone();
        if loaded.version != snapshot.version {
            return Err(Status::failed_precondition(format!(
                "{kind} snapshot `{}` was shared, but replicas now serve `{}` (another push overtook it)",
                snapshot.version, loaded.version
            )));
        }
        Ok(Arc::new(loaded))
    }

    /// The bundle and snapshot pointers as etcd has them now, once this
    /// replica has applied them: a change checked against this replica's
    /// state is then checked against the cluster's, and written only if
    /// none of them moved meanwhile (`name_blob`). Also the value of
    /// `writing` as read then.
    ///
    /// Refused while this replica failed to apply one of the other
    /// pointers: its state is not the cluster's, so a check here proves
    /// nothing. A change of the failed pointer itself is allowed: it may be
    /// the repair.
    async fn settled_pointers(&self, writing: &str) -> Result<Settled, Status> {
        let keys = [
            self.keys.bundle(Target::Active),
            self.keys.bundle(Target::Shadow),
            self.keys.snapshot("identity"),
            self.keys.snapshot("entitlements"),
        ];
        let mut pointers = Vec::with_capacity(keys.len());
        let mut revision = 0;
        let mut written = None;
        for key in keys {
            let entry = self.etcd.get(&key).await.map_err(|e| etcd_status(&e))?;
            let mod_revision = entry.as_ref().map_or(0, |e| e.mod_revision);
            revision = revision.max(mod_revision);
            if key == writing {
                written = entry;
            }
            pointers.push((key, mod_revision));
        }
        self.caught_up(revision).await?;
        if let Some((key, reason)) = self
            .failed()
            .iter()
            .find(|(key, _)| key.as_str() != writing && pointers.iter().any(|(p, _)| p == *key))
        {
            return Err(Status::unavailable(format!(
                "cluster mode: this replica could not apply `{key}` ({reason}), so it cannot check \
                 this change against the cluster's state; push from another replica, or repair `{key}` first"
            )));
        }
        Ok(Settled {
            guard: pointers,
            writing: written,
        })
    }

    /// Uploads (or renews) the blob `bytes` under `base`, then writes
    /// `value`, which names it, under `key`: only if no pointer in
    /// `pointers` moved and the blob's meta is still as this writer left
    /// it. Two writers naming the same content renew the same meta, so a
    /// moved meta alone is tried once more.
    async fn name_blob(
        &self,
        key: &str,
        value: &impl Serialize,
        base: &str,
        bytes: &[u8],
        pointers: &[(String, i64)],
    ) -> Result<i64, Status> {
        let encoded = serde_json::to_vec(value)
            .map_err(|e| Status::internal(format!("cannot encode `{key}`: {e}")))?;
        for _ in 0..2 {
            let blob = self
                .etcd
                .put_blob(base, bytes)
                .await
                .map_err(|e| etcd_status(&e))?;
            let mut unchanged = pointers.to_vec();
            unchanged.push(blob);
            if let Some(revision) = self
                .etcd
                .put_if_all(key, encoded.clone(), &unchanged)
                .await
                .map_err(|e| etcd_status(&e))?
            {
                return Ok(revision);
            }
        }
        Err(overtaken())
    }

    /// Keeps this replica in step with etcd until `stop` (see `sync`), and
    /// etcd free of what no pointer needs (see `collect`).
    pub fn spawn(self: &Arc<Self>, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let (sync, collect) = (
            sync::run(self.clone(), stop.clone()),
            collect::run(self.clone(), stop),
        );
        tokio::spawn(async move {
            tokio::join!(sync, collect);
        })
    }

    async fn listing(&self) -> Result<Listing, EtcdError> {
        self.etcd.range(&self.keys.all()).await
    }
}
