//! The control plane: every change to what Warden serves — a pushed or
//! re-activated bundle, a new snapshot, a shadow — goes through here.
//!
//! A change is validated and compiled completely, stored durably, and only
//! then published as a new generation with one pointer swap. A failure at any
//! step leaves the active generation exactly as it was. Changes are
//! serialised; checks never wait for them.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, warn};

use crate::bundle::signature::{self, VerificationKey};
use crate::bundle::{ArchiveLimits, Bundle, Files, read_dir, read_tar_gz, write_tar_gz};
use crate::engine::EngineOptions;
use crate::generation::{Generation, Generations, LoadedPolicy, MaxAge};
use crate::killswitch::{KillSwitches, unix_ms};
use crate::regotest;
use crate::snapshot::{Snapshot, SnapshotKind};
use crate::store::{BundleRecord, ServingState, Store, StoreError};

/// Why a change was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) | StoreError::Ambiguous(_) => {
                ControlError::NotFound(e.to_string())
            }
            other => ControlError::Store(other),
        }
    }
}

impl From<crate::killswitch::SpecError> for ControlError {
    fn from(e: crate::killswitch::SpecError) -> Self {
        ControlError::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

fn invalid(field: &'static str, reason: impl ToString) -> ControlError {
    ControlError::Invalid {
        field: field.to_owned(),
        reason: reason.to_string(),
    }
}

/// How bundles and snapshots are accepted.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub engine: EngineOptions,
    pub archive: ArchiveLimits,
    /// Largest pushed archive, compressed.
    pub max_push_bytes: usize,
    /// Run the bundle's own `test_*` rules before accepting it.
    pub run_tests: bool,
    pub keys: Vec<VerificationKey>,
    pub require_signed: bool,
    /// How many pushed bundles the store keeps (`bundles.keep`).
    pub bundle_keep: usize,
    /// How many versions of each snapshot kind the store keeps
    /// (`snapshots.keep`).
    pub snapshot_keep: usize,
    pub max_age: MaxAge,
    pub max_id_bytes: usize,
    /// Verbs that `deny_mutating` kill switches let through.
    pub read_verbs: Arc<[String]>,
}

/// Where the first generation comes from when the store is empty.
#[derive(Debug, Clone)]
pub struct Seed {
    pub bundle: std::path::PathBuf,
    pub identity: std::path::PathBuf,
    pub entitlements: std::path::PathBuf,
}

/// Where a bundle goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Active,
    Stored,
    Shadow,
}

/// A bundle that passed every check, ready to store and serve.
struct Accepted {
    record: BundleRecord,
    archive: Vec<u8>,
    policy: Arc<LoadedPolicy>,
}

/// The control plane; see the module documentation.
#[derive(Debug)]
pub struct Control {
    config: ControlConfig,
    store: Store,
    generations: Arc<Generations>,
    /// Serialises changes: each one reads the current generation and
    /// publishes its successor.
    writes: Mutex<()>,
    /// Recently compiled policies by digest, so a rollback is instant.
    compiled: Mutex<Vec<Arc<LoadedPolicy>>>,
    /// The engaged kill switches, published apart from generations so that
    /// an engage takes effect without rebinding the policy first.
    switches: Arc<KillSwitches>,
    /// Set when a switch this replica was told about could not be put in
    /// force: until `resync_switches` clears it, whatever is published
    /// for checks is the unavailable index (every check denied).
    switch_failure: Mutex<Option<String>>,
}

const COMPILED_CACHE: usize = 4;

mod switches;
pub use switches::SwitchList;

impl Control {
    /// Restores the generation that was active when the server last ran,
    /// or, on an empty store, builds the first one from `seed`.
    pub fn start(config: ControlConfig, store: Store, seed: &Seed) -> Result<Self, ControlError> {
        let serving = store.serving()?;
        let first = match &serving.active {
            Some(digest) => Self::restore(&config, &store, &serving, digest)?,
            None => Self::seed(&config, &store, seed)?,
        };
        let switches = Arc::new(KillSwitches::new(switches::load(&store, &config)));
        let control = Self {
            config,
            store,
            generations: Arc::new(Generations::new(first)),
            writes: Mutex::new(()),
            compiled: Mutex::new(Vec::new()),
            switches,
            switch_failure: Mutex::new(None),
        };
        let switches = control.switches.current();
        if switches
            .in_force(unix_ms(SystemTime::now()))
            .next()
            .is_some()
        {
            control.publish_switch_data(&switches, SystemTime::now());
        }
        Ok(control)
    }

    fn restore(
        config: &ControlConfig,
        store: &Store,
        serving: &ServingState,
        digest: &str,
    ) -> Result<Generation, ControlError> {
        let corrupt = |what: String| ControlError::Store(StoreError::Corrupt(what));
        let load = |digest: &str| -> Result<Arc<LoadedPolicy>, ControlError> {
            let archive = store.bundle_archive(digest)?.ok_or_else(|| {
                corrupt(format!(
                    "bundle `{digest}` is marked serving but not stored"
                ))
            })?;
            let files = read_tar_gz(&archive, &config.archive)
                .map_err(|e| corrupt(format!("bundle `{digest}`: {e}")))?;
            let bundle = Bundle::from_files(files)
                .map_err(|e| corrupt(format!("bundle `{digest}`: {e}")))?;
            let policy = LoadedPolicy::compile(&bundle, &config.engine)
                .map_err(|e| corrupt(format!("bundle `{digest}`: {e}")))?;
            Ok(Arc::new(policy))
        };
        let snapshot = |kind: SnapshotKind| -> Result<Arc<Snapshot>, ControlError> {
            let bytes = store
                .snapshot(kind)?
                .ok_or_else(|| corrupt(format!("no {kind} snapshot is stored")))?;
            Snapshot::parse(kind, &bytes, config.max_id_bytes)
                .map(Arc::new)
                .map_err(|e| corrupt(e.to_string()))
        };
        let generation = Generation::build(
            1,
            load(digest)?,
            snapshot(SnapshotKind::Identity)?,
            snapshot(SnapshotKind::Entitlements)?,
            config.max_age,
        )
        .map_err(|e| corrupt(e.to_string()))?
        .with_shadow(serving.shadow.as_deref().map(load).transpose()?)
        .map_err(|e| corrupt(e.to_string()))?;
        info!(revision = generation.policy.revision, %digest, "restored the serving bundle and snapshots from the store");
        Ok(generation)
    }

    fn seed(
        config: &ControlConfig,
        store: &Store,
        seed: &Seed,
    ) -> Result<Generation, ControlError> {
        let files = if seed.bundle.is_dir() {
            read_dir(&seed.bundle, &config.archive)
        } else {
            std::fs::read(&seed.bundle)
                .map_err(|e| {
                    crate::bundle::BundleError::Io(format!("`{}`: {e}", seed.bundle.display()))
                })
                .and_then(|bytes| read_tar_gz(&bytes, &config.archive))
        }
        .map_err(|e| invalid("bundle", format!("`{}`: {e}", seed.bundle.display())))?;
        let archive = write_tar_gz(&files).map_err(|e| invalid("bundle", e))?;
        let accepted = Self::accept(config, store, files, archive)?;
        let read = |kind: SnapshotKind,
                    path: &std::path::Path|
         -> Result<(Vec<u8>, Arc<Snapshot>), ControlError> {
            let bytes = std::fs::read(path).map_err(|e| {
                invalid("snapshot", format!("cannot read `{}`: {e}", path.display()))
            })?;
            let snapshot = Snapshot::parse(kind, &bytes, config.max_id_bytes)
                .map_err(|e| invalid("snapshot", e))?;
            Ok((bytes, Arc::new(snapshot)))
        };
        let (identity_bytes, identity) = read(SnapshotKind::Identity, &seed.identity)?;
        let (entitlements_bytes, entitlements) =
            read(SnapshotKind::Entitlements, &seed.entitlements)?;
        let generation = Generation::build(
            1,
            accepted.policy.clone(),
            identity,
            entitlements,
            config.max_age,
        )
        .map_err(|e| invalid("bundle", e))?;
        store.put_bundle(&accepted.record, &accepted.archive)?;
        store.put_snapshot(
            SnapshotKind::Identity,
            store.next_seq()?,
            &identity_bytes,
            config.snapshot_keep,
        )?;
        store.put_snapshot(
            SnapshotKind::Entitlements,
            store.next_seq()?,
            &entitlements_bytes,
            config.snapshot_keep,
        )?;
        store.set_serving(&ServingState {
            active: Some(accepted.record.digest.clone()),
            shadow: None,
            history: Vec::new(),
        })?;
        info!(
            revision = accepted.record.revision,
            "seeded the store from the configured bundle and snapshots"
        );
        Ok(generation)
    }

    /// The published generations, shared with the decision plane.
    pub fn generations(&self) -> Arc<Generations> {
        self.generations.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &ControlConfig {
        &self.config
    }

    /// Checks a bundle completely: signature, format, compilation, its own
    /// tests. Binding to snapshots is checked when its generation is built.
    fn accept(
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

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Validates, stores and (per `target`) serves a pushed bundle.
    pub fn put_bundle(
        &self,
        archive: Vec<u8>,
        target: Target,
    ) -> Result<BundleRecord, ControlError> {
        if archive.is_empty() {
            return Err(invalid("bundle", "is required"));
        }
        if archive.len() > self.config.max_push_bytes {
            return Err(invalid(
                "bundle",
                format!(
                    "is {} bytes, more than the limit of {} bytes",
                    archive.len(),
                    self.config.max_push_bytes
                ),
            ));
        }
        let files =
            read_tar_gz(&archive, &self.config.archive).map_err(|e| invalid("bundle", e))?;
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
        let policy = self.load_stored(&record.digest)?;
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
    pub fn check_activation(&self, digest: &str, target: Target) -> Result<(), ControlError> {
        let policy = self.load_stored(digest)?;
        let _guard = self.lock();
        let current = self.generations.current();
        match target {
            Target::Shadow => self.successor(&current, None, Some(Some(policy))),
            _ => self.successor(&current, Some(policy), None),
        }
        .map(|_| ())
    }

    /// Serves the previously active bundle again.
    pub fn rollback(&self) -> Result<BundleRecord, ControlError> {
        let _guard = self.lock();
        self.restore_previous(self.store.serving()?)
    }

    /// A rollback to `digest` made elsewhere (a cluster's): taken off the
    /// history as `rollback` does when it is the previous bundle here too,
    /// else activated as usual, so that this replica serves it either way.
    pub fn roll_back_to(&self, digest: &str) -> Result<BundleRecord, ControlError> {
        // The check and the fallback take the lock separately; nothing can
        // change the serving state between them, since a cluster applies
        // its data changes one at a time and refuses local writes.
        {
            let _guard = self.lock();
            let serving = self.store.serving()?;
            if serving.history.last().map(String::as_str) == Some(digest) {
                return self.restore_previous(serving);
            }
        }
        self.activate(digest, Target::Active)
    }

    /// Makes the last bundle of `serving`'s history active again; the
    /// caller holds the write lock.
    fn restore_previous(&self, mut serving: ServingState) -> Result<BundleRecord, ControlError> {
        let previous = serving.history.pop().ok_or_else(|| {
            ControlError::FailedPrecondition("there is no previous bundle to roll back to".into())
        })?;
        let record = self.store.bundle_record(&previous)?.ok_or_else(|| {
            ControlError::FailedPrecondition(format!(
                "the previous bundle `{previous}` is no longer stored"
            ))
        })?;
        let policy = self.load_stored(&record.digest)?;
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

    /// Replaces one snapshot; its version must be newer than the current one.
    pub fn put_snapshot(
        &self,
        kind: &str,
        document: Vec<u8>,
    ) -> Result<Arc<Snapshot>, ControlError> {
        let snapshot = self.parse_snapshot(kind, &document)?;
        let _guard = self.lock();
        let (snapshot, next) = self.snapshot_successor(snapshot)?;
        self.store.put_snapshot(
            snapshot.kind,
            self.store.next_seq()?,
            &document,
            self.config.snapshot_keep,
        )?;
        self.generations.publish(next);
        info!(kind = %snapshot.kind, version = snapshot.version, "snapshot loaded");
        Ok(snapshot)
    }

    /// Whether `put_snapshot` would accept `document` now, without changing
    /// anything: in a cluster a snapshot is checked here before it is
    /// shared, and applied when it comes back from etcd.
    pub fn check_snapshot(
        &self,
        kind: &str,
        document: &[u8],
    ) -> Result<Arc<Snapshot>, ControlError> {
        let snapshot = self.parse_snapshot(kind, document)?;
        let _guard = self.lock();
        self.snapshot_successor(snapshot)
            .map(|(snapshot, _)| snapshot)
    }

    fn parse_snapshot(&self, kind: &str, document: &[u8]) -> Result<Arc<Snapshot>, ControlError> {
        let kind = SnapshotKind::parse(kind).ok_or_else(|| {
            invalid(
                "kind",
                format!("`{kind}` is not a snapshot kind; expected `identity` or `entitlements`"),
            )
        })?;
        if document.is_empty() {
            return Err(invalid("document", "is required"));
        }
        Ok(Arc::new(
            Snapshot::parse(kind, document, self.config.max_id_bytes)
                .map_err(|e| invalid("document", e))?,
        ))
    }

    /// The generation serving `snapshot`, if it is newer than the current
    /// one of its kind and binds to the policy. Called under the lock.
    fn snapshot_successor(
        &self,
        snapshot: Arc<Snapshot>,
    ) -> Result<(Arc<Snapshot>, Generation), ControlError> {
        let kind = snapshot.kind;
        let current = self.generations.current();
        let existing = current.snapshot(kind);
        if compare_versions(&snapshot.version, &existing.version) != std::cmp::Ordering::Greater {
            return Err(ControlError::FailedPrecondition(format!(
                "{kind} snapshot version `{}` is not newer than the current `{}`",
                snapshot.version, existing.version
            )));
        }
        let (identity, entitlements) = match kind {
            SnapshotKind::Identity => (snapshot.clone(), current.entitlements.clone()),
            SnapshotKind::Entitlements => (current.identity.clone(), snapshot.clone()),
        };
        let shadow = current.shadow_policy();
        let next = Generation::build_with_switches(
            self.generations.next_id(),
            current.policy.clone(),
            identity,
            entitlements,
            current.max_age,
            current.kill_switches.clone(),
        )
        .and_then(|g| g.with_shadow(shadow))
        .map_err(|e| invalid("document", e))?;
        Ok((snapshot, next))
    }

    /// The next generation: `policy` replaces the active policy when given;
    /// `shadow` replaces the shadow when given (`Some(None)` clears it).
    fn successor(
        &self,
        current: &Generation,
        policy: Option<Arc<LoadedPolicy>>,
        shadow: Option<Option<Arc<LoadedPolicy>>>,
    ) -> Result<Generation, ControlError> {
        let policy = policy.unwrap_or_else(|| current.policy.clone());
        let shadow = match shadow {
            Some(shadow) => shadow,
            None => current.shadow_policy(),
        };
        Generation::build_with_switches(
            self.generations.next_id(),
            policy,
            current.identity.clone(),
            current.entitlements.clone(),
            current.max_age,
            current.kill_switches.clone(),
        )
        .and_then(|g| g.with_shadow(shadow))
        .map_err(|e| invalid("bundle", e))
    }

    /// Makes `serving` durable, then publishes `next`, and prunes the store.
    fn commit(&self, serving: &ServingState, next: Generation) -> Result<(), ControlError> {
        let mut serving = serving.clone();
        let keep = self.config.bundle_keep.max(1);
        if serving.history.len() > keep {
            serving.history.drain(..serving.history.len() - keep);
        }
        self.store.set_serving(&serving)?;
        self.generations.publish(next);
        let mut protected: Vec<&str> = serving.history.iter().map(String::as_str).collect();
        protected.extend(serving.active.as_deref());
        protected.extend(serving.shadow.as_deref());
        if let Err(e) = self.store.prune_bundles(keep, &protected) {
            warn!(error = %e, "could not prune old bundles");
        }
        Ok(())
    }

    fn remember(&self, policy: Arc<LoadedPolicy>) {
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

    fn cached(&self, digest: &str) -> Option<Arc<LoadedPolicy>> {
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
    fn load_stored(&self, digest: &str) -> Result<Arc<LoadedPolicy>, ControlError> {
        if let Some(policy) = self.cached(digest) {
            return Ok(policy);
        }
        let archive = self
            .store
            .bundle_archive(digest)?
            .ok_or_else(|| ControlError::NotFound(format!("bundle `{digest}` is not stored")))?;
        let files =
            read_tar_gz(&archive, &self.config.archive).map_err(|e| invalid("bundle", e))?;
        let bundle = Bundle::from_files(files).map_err(|e| invalid("bundle", e))?;
        let policy = Arc::new(
            LoadedPolicy::compile(&bundle, &self.config.engine)
                .map_err(|e| invalid("bundle", e))?,
        );
        self.remember(policy.clone());
        Ok(policy)
    }
}

/// Orders snapshot versions naturally: runs of digits compare as numbers,
/// so `v10` is newer than `v9` and `2026-11-25.2` than `2026-11-25.1`.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let chunks = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, chunk)) if *d == digit => chunk.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    };
    let (a, b) = (chunks(a), chunks(b));
    for (x, y) in a.iter().zip(&b) {
        let order = match (x.0, y.0) {
            (true, true) => {
                let (xs, ys) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys))
            }
            _ => x.1.cmp(&y.1),
        };
        if order != std::cmp::Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

fn now_rfc3339() -> String {
    OffsetDateTime::from(SystemTime::now())
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::compare_versions;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_naturally() {
        assert_eq!(compare_versions("v10", "v9"), Greater);
        assert_eq!(compare_versions("2026-11-25.2", "2026-11-25.10"), Less);
        assert_eq!(compare_versions("7", "7"), Equal);
        assert_eq!(compare_versions("007", "7"), Equal);
        assert_eq!(compare_versions("a", "b"), Less);
        assert_eq!(compare_versions("identity-7-300", "identity-7-301"), Less);
        assert_eq!(compare_versions("1.2", "1.2.1"), Less);
    }
}
