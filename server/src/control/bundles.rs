//! Bundles: accepting a pushed one, serving a stored one as active or
//! shadow, rolling back, and the cache of compiled policies that makes a
//! rollback instant.

use std::sync::Arc;

use tracing::info;

use super::{
    Accepted, COMPILED_CACHE, Control, ControlConfig, ControlError, HeavyTurn, Target, invalid,
    now_rfc3339,
};
use crate::bundle::signature;
use crate::bundle::{Bundle, BundleError, Files, Limit, read_tar_gz};
use crate::generation::LoadedPolicy;
use crate::regotest;
use crate::store::{BundleRecord, ServingState, Store};

impl Control {
    /// Checks a bundle completely: signature, format, compilation, its own
    /// tests. Binding to snapshots is checked when its generation is built.
    pub(super) fn accept(
        config: &ControlConfig,
        store: &Store,
        files: Files,
        archive: Vec<u8>,
    ) -> Result<Accepted, ControlError> {
        let signed_by = signature::verify(&files, &config.keys, config.require_signed)
            .map_err(|e| invalid("bundle", format!("signature: {e}")))?;
        let bundle = Bundle::from_files(files).map_err(|e| invalid("bundle", e))?;
        let policy =
            LoadedPolicy::compile(&bundle, &config.engine).map_err(|e| invalid("bundle", e))?;
        let mut tests_passed = 0;
        if config.run_tests {
            let outcomes = regotest::run(&bundle).map_err(|e| invalid("bundle", e))?;
            let failures: Vec<String> = outcomes
                .iter()
                .filter(|o| !o.passed)
                .map(|o| format!("{} ({})", o.name, o.failure.as_deref().unwrap_or("failed")))
                .collect();
            if !failures.is_empty() {
                return Err(ControlError::FailedPrecondition(format!(
                    "the bundle's own tests fail: {}",
                    failures.join(", ")
                )));
            }
            tests_passed = u32::try_from(outcomes.len()).unwrap_or(u32::MAX);
        }
        let record = BundleRecord {
            revision: bundle.revision.clone(),
            digest: bundle.digest.clone(),
            entrypoint: bundle.entrypoint.clone(),
            engine: policy.engine().as_str().to_owned(),
            pushed_at: now_rfc3339(),
            size_bytes: archive.len() as u64,
            signed_by,
            tests_passed,
            seq: store.next_seq()?,
        };
        Ok(Accepted {
            record,
            archive,
            policy: Arc::new(policy),
        })
    }

    /// Checks a candidate bundle as a push is checked (size, safe reading,
    /// signature, format, compilation), without testing, storing or
    /// serving it: replay judges it.
    pub fn candidate(&self, archive: &[u8]) -> Result<Arc<LoadedPolicy>, ControlError> {
        self.check_push_size(archive)?;
        let files = read_tar_gz(archive, &self.config.archive).map_err(refused)?;
        signature::verify(&files, &self.config.keys, self.config.require_signed)
            .map_err(|e| invalid("bundle", format!("signature: {e}")))?;
        let bundle = Bundle::from_files(files).map_err(|e| invalid("bundle", e))?;
        let policy = LoadedPolicy::compile(&bundle, &self.config.engine)
            .map_err(|e| invalid("bundle", e))?;
        Ok(Arc::new(policy))
    }

    fn check_push_size(&self, archive: &[u8]) -> Result<(), ControlError> {
        if archive.is_empty() {
            return Err(invalid("bundle", "is required"));
        }
        if archive.len() > self.config.max_push_bytes {
            return Err(invalid(
                "bundle",
                format!(
                    "is {} bytes, more than the limit of {} bytes (bundles.max_push_bytes)",
                    archive.len(),
                    self.config.max_push_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Validates, stores and (per `target`) serves a pushed bundle.
    pub fn put_bundle(
        &self,
        archive: Vec<u8>,
        target: Target,
        _turn: &HeavyTurn,
    ) -> Result<BundleRecord, ControlError> {
        self.check_push_size(&archive)?;
        let files = read_tar_gz(&archive, &self.config.archive).map_err(refused)?;
        // Compiling and testing take long; other changes (a kill switch
        // arriving from the cluster) must not wait for them.
        let accepted = Self::accept(&self.config, &self.store, files, archive)?;
        let _guard = self.lock();
        let current = self.generations.current();
        let mut serving = self.store.serving()?;
        // Built before anything is stored: data that cannot be bound to the
        // policy refuses the push.
        let next = match target {
            Target::Active => {
                Some(self.successor(&current, Some(accepted.policy.clone()), None)?)
            }
            Target::Shadow => {
                Some(self.successor(&current, None, Some(Some(accepted.policy.clone())))?)
            }
            Target::Stored => None,
        };
        self.store.put_bundle(&accepted.record, &accepted.archive)?;
        self.remember(accepted.policy.clone());
        if let Some(next) = next {
            match target {
                Target::Active => {
                    serving.history.extend(serving.active.take());
                    serving.active = Some(accepted.record.digest.clone());
                }
                _ => serving.shadow = Some(accepted.record.digest.clone()),
            }
            self.commit(&serving, next)?;
        } else {
            self.store.flush()?;
        }
        info!(
            revision = accepted.record.revision,
            digest = accepted.record.digest,
            ?target,
            "bundle accepted"
        );
        Ok(accepted.record)
    }

    /// Serves a stored bundle (as active or shadow).
    pub fn activate(
        &self,
        digest_prefix: &str,
        target: Target,
        turn: &HeavyTurn,
    ) -> Result<BundleRecord, ControlError> {
        if digest_prefix.len() < 8 || !digest_prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(
                "digest",
                "must be at least 8 hex digits of a stored bundle's digest",
            ));
        }
        let record = self
            .store
            .find_bundle(&digest_prefix.to_ascii_lowercase())?;
        // Compiled before the lock, for the same reason as in `put_bundle`.
        let policy = self.load_stored(&record.digest, turn)?;
        let _guard = self.lock();
        // A change that committed meanwhile may have pruned it.
        if self.store.bundle_record(&record.digest)?.is_none() {
            return Err(ControlError::NotFound(format!(
                "bundle `{}` is no longer stored",
                record.digest
            )));
        }
        let current = self.generations.current();
        let mut serving = self.store.serving()?;
        let next = match target {
            Target::Shadow => {
                serving.shadow = Some(record.digest.clone());
                self.successor(&current, None, Some(Some(policy)))?
            }
            _ => {
                if serving.active.as_deref() == Some(record.digest.as_str()) {
                    return Ok(record);
                }
                serving.history.extend(serving.active.take());
                serving.active = Some(record.digest.clone());
                self.successor(&current, Some(policy), None)?
            }
        };
        self.commit(&serving, next)?;
        info!(
            revision = record.revision,
            digest = record.digest,
            ?target,
            "bundle activated"
        );
        Ok(record)
    }

    /// Whether the stored bundle `digest` could be served as `target` now
    /// (it compiles and binds to the snapshots), without changing anything.
    pub fn check_activation(
        &self,
        digest: &str,
        target: Target,
        turn: &HeavyTurn,
    ) -> Result<(), ControlError> {
        let policy = self.load_stored(digest, turn)?;
        let _guard = self.lock();
        let current = self.generations.current();
        match target {
            Target::Shadow => self.successor(&current, None, Some(Some(policy))),
            _ => self.successor(&current, Some(policy), None),
        }
        .map(|_| ())
    }

    /// Serves the previously active bundle again.
    pub fn rollback(&self, turn: &HeavyTurn) -> Result<BundleRecord, ControlError> {
        let _guard = self.lock();
        self.restore_previous(self.store.serving()?, turn)
    }

    /// A rollback to `digest` made elsewhere (a cluster's): taken off the
    /// history as `rollback` does when it is the previous bundle here too,
    /// else activated as usual, so that this replica serves it either way.
    pub fn roll_back_to(
        &self,
        digest: &str,
        turn: &HeavyTurn,
    ) -> Result<BundleRecord, ControlError> {
        // The check and the fallback take the lock separately; nothing can
        // change the serving state between them, since a cluster applies
        // its data changes one at a time and refuses local writes.
        {
            let _guard = self.lock();
            let serving = self.store.serving()?;
            if serving.history.last().map(String::as_str) == Some(digest) {
                return self.restore_previous(serving, turn);
            }
        }
        self.activate(digest, Target::Active, turn)
    }

    /// Makes the last bundle of `serving`'s history active again; the
    /// caller holds the write lock.
    pub(super) fn restore_previous(
        &self,
        mut serving: ServingState,
        turn: &HeavyTurn,
    ) -> Result<BundleRecord, ControlError> {
        let previous = serving.history.pop().ok_or_else(|| {
            ControlError::FailedPrecondition("there is no previous bundle to roll back to".into())
        })?;
        let record = self.store.bundle_record(&previous)?.ok_or_else(|| {
            ControlError::FailedPrecondition(format!(
                "the previous bundle `{previous}` is no longer stored"
            ))
        })?;
        let policy = self.load_stored(&record.digest, turn)?;
        let next = self.successor(&self.generations.current(), Some(policy), None)?;
        serving.active = Some(record.digest.clone());
        self.commit(&serving, next)?;
        info!(
            revision = record.revision,
            digest = record.digest,
            "rolled back"
        );
        Ok(record)
    }

    /// Stops evaluating the shadow bundle; returns the one it was, if any
    /// (it stays stored until `bundles.keep` prunes it).
    pub fn clear_shadow(&self) -> Result<Option<BundleRecord>, ControlError> {
        let _guard = self.lock();
        let mut serving = self.store.serving()?;
        let Some(digest) = serving.shadow.take() else {
            return Ok(None);
        };
        let record = self.store.bundle_record(&digest)?;
        let next = self.successor(&self.generations.current(), None, Some(None))?;
        self.commit(&serving, next)?;
        info!(digest, "shadow bundle cleared");
        Ok(record)
    }

    pub(super) fn remember(&self, policy: Arc<LoadedPolicy>) {
        let mut cache = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|p| p.digest != policy.digest);
        cache.push(policy);
        if cache.len() > COMPILED_CACHE {
            cache.remove(0);
        }
    }

    pub(super) fn cached(&self, digest: &str) -> Option<Arc<LoadedPolicy>> {
        let cache = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.generations.current();
        cache
            .iter()
            .find(|p| p.digest == digest)
            .cloned()
            .or_else(|| (current.policy.digest == digest).then(|| current.policy.clone()))
            .or_else(|| current.shadow_policy().filter(|p| p.digest == digest))
    }

    /// A stored bundle's compiled policy, from the cache or compiled anew.
    pub(super) fn load_stored(
        &self,
        digest: &str,
        _turn: &HeavyTurn,
    ) -> Result<Arc<LoadedPolicy>, ControlError> {
        if let Some(policy) = self.cached(digest) {
            return Ok(policy);
        }
        let archive = self
            .store
            .bundle_archive(digest)?
            .ok_or_else(|| ControlError::NotFound(format!("bundle `{digest}` is not stored")))?;
        let files = read_tar_gz(&archive, &self.config.archive).map_err(refused)?;
        drop(archive);
        let bundle = Bundle::from_files(files).map_err(|e| invalid("bundle", e))?;
        let policy = Arc::new(
            LoadedPolicy::compile(&bundle, &self.config.engine)
                .map_err(|e| invalid("bundle", e))?,
        );
        self.remember(policy.clone());
        Ok(policy)
    }
}

/// A bundle refused while unpacking; one over a limit names the setting.
pub(super) fn refused(e: BundleError) -> ControlError {
    let setting = match e.limit() {
        Some(Limit::Files) => "limits.max_bundle_files",
        Some(Limit::FileBytes | Limit::TotalBytes) => "limits.max_bundle_bytes",
        None => return invalid("bundle", e),
    };
    invalid("bundle", format!("{e} ({setting})"))
}
