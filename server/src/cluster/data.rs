//! Bundle and snapshot writes: checked on this replica, their contents
//! uploaded as blobs, named by a pointer written only if no other pointer
//! moved meanwhile, and answered once this replica has applied the change.

use std::sync::Arc;

use serde::Serialize;
use tracing::warn;

use super::etcd::Entry;
use super::keys::{BundlePointer, SnapshotPointer, sha256_hex};
use super::{Cluster, etcd_error};
use crate::control::{ControlError, Target, blocking, heavy};
use crate::snapshot::Snapshot;
use crate::store::BundleRecord;

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
fn bundle_pointer(entry: &Entry) -> Result<BundlePointer, ControlError> {
    serde_json::from_slice(&entry.value).map_err(|e| {
        ControlError::Unavailable(format!(
            "cluster mode: `{}` in etcd is unreadable: {e}",
            entry.key
        ))
    })
}

/// A guarded write whose pointers moved before it reached etcd.
fn overtaken() -> ControlError {
    ControlError::Aborted(
        "another bundle or snapshot change reached etcd meanwhile; check the state and retry"
            .to_owned(),
    )
}

impl Cluster {
    /// Pushes a bundle cluster-wide: checked and stored here, its archive
    /// shared, then served (per `target`) by every replica.
    pub async fn put_bundle(
        &self,
        archive: Vec<u8>,
        target: Target,
    ) -> Result<BundleRecord, ControlError> {
        self.writable()?;
        let shared = archive.clone();
        let record = heavy(&self.control, move |c, turn| {
            c.put_bundle(archive, Target::Stored, turn)
        })
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
        heavy(&self.control, move |c, turn| {
            c.check_activation(&digest, target, turn)
        })
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
    ) -> Result<BundleRecord, ControlError> {
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
    fn served(&self, digest: &str, target: Target) -> Result<(), ControlError> {
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
            Some(reason) => Err(ControlError::Unavailable(format!(
                "bundle `{digest}` is named in etcd, but this replica could not serve it ({reason}); \
                 it reports itself degraded and retries"
            ))),
            None => Err(ControlError::Aborted(format!(
                "bundle `{digest}` was named in etcd, but another change overtook it before this replica applied it"
            ))),
        }
    }

    /// Serves a stored bundle cluster-wide.
    pub async fn activate(
        &self,
        digest_prefix: String,
        target: Target,
    ) -> Result<BundleRecord, ControlError> {
        self.writable()?;
        let pointers = self
            .settled_pointers(&self.keys.bundle(target))
            .await?
            .guard;
        let record = blocking(&self.control, move |c| {
            if digest_prefix.len() < 8 || !digest_prefix.chars().all(|ch| ch.is_ascii_hexdigit()) {
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
    pub async fn rollback(&self) -> Result<BundleRecord, ControlError> {
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
            return Err(ControlError::Unavailable(
                "cluster mode: this replica does not serve the cluster's active bundle, so its \
                 history is not the cluster's; roll back from another replica"
                    .to_owned(),
            ));
        }
        let record = blocking(&self.control, |c| {
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
    ) -> Result<BundleRecord, ControlError> {
        let digest = record.digest.clone();
        heavy(&self.control, move |c, turn| {
            c.check_activation(&digest, target, turn)
        })
        .await?;
        let digest = record.digest.clone();
        let archive = blocking(&self.control, move |c| {
            c.store()
                .bundle_archive(&digest)?
                .ok_or_else(|| ControlError::NotFound(format!("bundle `{digest}` is not stored")))
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

    fn current_record(&self, digest: &str) -> Result<BundleRecord, ControlError> {
        self.control
            .store()
            .bundle_record(digest)
            .map_err(|e| ControlError::Unavailable(e.to_string()))?
            .ok_or_else(|| ControlError::Internal(format!("bundle `{digest}` vanished")))
    }

    /// Stops evaluating the shadow bundle cluster-wide: its pointer leaves
    /// etcd, and every replica clears its shadow as the watch reports that.
    /// Returns the bundle etcd named (it may be pruned from stores later,
    /// being no longer served).
    pub async fn clear_shadow(&self) -> Result<Option<ClearedShadow>, ControlError> {
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
            .map_err(|e| ControlError::Unavailable(e.to_string()))?;
        let revision = self
            .etcd
            .delete_if_all(&key, &guard)
            .await
            .map_err(|e| etcd_error(&e))?
            .ok_or_else(overtaken)?;
        // Done cluster-wide from here on, so answered (and audited) as
        // done; a replica that cannot apply it, this one included, reports
        // itself degraded and retries. A shadow only ever compares.
        if let Err(e) = self.caught_up(revision).await {
            warn!(error = %e, "cluster: the shadow was cleared in etcd, but not yet here");
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
    ) -> Result<Arc<Snapshot>, ControlError> {
        self.writable()?;
        // Checked against the cluster's current pointers, and written only
        // if none moved meanwhile: etcd never goes back to an older version,
        // nor names a snapshot checked against a bundle no longer active.
        let key = self.keys.snapshot(&kind);
        let pointers = self.settled_pointers(&key).await?.guard;
        let checked_document = document.clone();
        let checked_kind = kind.clone();
        let snapshot = heavy(&self.control, move |c, turn| {
            c.check_snapshot(&checked_kind, &checked_document, turn)
        })
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
            return Err(ControlError::FailedPrecondition(format!(
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
    async fn settled_pointers(&self, writing: &str) -> Result<Settled, ControlError> {
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
            let entry = self.etcd.get(&key).await.map_err(|e| etcd_error(&e))?;
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
            return Err(ControlError::Unavailable(format!(
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
    ) -> Result<i64, ControlError> {
        let encoded = serde_json::to_vec(value)
            .map_err(|e| ControlError::Internal(format!("cannot encode `{key}`: {e}")))?;
        for _ in 0..2 {
            let blob = self
                .etcd
                .put_blob(base, bytes)
                .await
                .map_err(|e| etcd_error(&e))?;
            let mut unchanged = pointers.to_vec();
            unchanged.push(blob);
            if let Some(revision) = self
                .etcd
                .put_if_all(key, encoded.clone(), &unchanged)
                .await
                .map_err(|e| etcd_error(&e))?
            {
                return Ok(revision);
            }
        }
        Err(overtaken())
    }
}
