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

use crate::bundle::signature::VerificationKey;
use crate::bundle::{ArchiveLimits, Bundle, read_dir, read_tar_gz, write_tar_gz};
use crate::engine::EngineOptions;
use crate::generation::{Generation, Generations, LoadedPolicy, MaxAge};
use crate::killswitch::{KillSwitches, Switch, unix_ms};
use crate::request::InputPath;
use crate::snapshot::{Snapshot, SnapshotKind};
use crate::store::{BundleRecord, ServingState, Store, StoreError};

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
    /// Where session-scoped kill switches read a check's session id
    /// (`[limits] session_path`).
    pub session_path: Arc<InputPath>,
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

/// The turn to run a change's heavy phase: unpacking, parsing, compiling
/// and testing a bundle, or parsing a snapshot. That phase needs several
/// times the unpacked size in memory, so one change at a time may be in it
/// and concurrent pushes cannot multiply the peak (docs/configuration.md,
/// "Memory"). Methods with a heavy phase take it as a parameter, so no
/// caller can skip the queue. Kill switches never wait for it.
///
/// A push waits for its turn rather than being refused: pushes are rare,
/// deliberate changes (often the fix for a bad policy), and a refusal would
/// only make operators retry in a race. The wait is on the caller's task,
/// so it is bounded by the admin timeout and a caller that gives up never
/// runs: a push its caller saw fail is never applied later.
#[derive(Debug)]
pub struct HeavyTurn {
    _turn: tokio::sync::OwnedMutexGuard<()>,
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
    /// The heavy phase of a bundle or snapshot change (see [`HeavyTurn`]).
    heavy: Arc<tokio::sync::Mutex<()>>,
    /// The engaged kill switches, published apart from generations so that
    /// an engage takes effect without rebinding the policy first.
    switches: Arc<KillSwitches>,
    /// Set when a switch this replica was told about could not be put in
    /// force: until `resync_switches` clears it, whatever is published
    /// for checks is the unavailable index (every check denied).
    switch_failure: Mutex<Option<String>>,
    /// In cluster mode, while `cluster.on_partition` is in force: the
    /// global switch this replica adds to whatever it publishes for checks.
    partition: Mutex<Option<Arc<Switch>>>,
}

const COMPILED_CACHE: usize = 4;

mod bundles;
mod error;
mod limit_records;
mod partition;
pub mod records;
mod snapshots;
mod switch_records;
mod switches;

pub use error::ControlError;
pub(crate) use error::invalid;
pub use limit_records::{LIMIT_USAGE, LimitUsageRecords};
pub use partition::PARTITION_SWITCH;
pub use snapshots::compare_versions;
pub use switch_records::SwitchRecords;
pub use switches::{Engaged, SwitchList, already_engaged};

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
            heavy: Arc::new(tokio::sync::Mutex::new(())),
            switches,
            switch_failure: Mutex::new(None),
            partition: Mutex::new(None),
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

    /// Waits for the heavy phase, first come first served. A caller that
    /// gives up while waiting (its call timed out or was cancelled) leaves
    /// the queue, and its change never starts.
    pub async fn heavy_turn(&self) -> HeavyTurn {
        HeavyTurn {
            _turn: self.heavy.clone().lock_owned().await,
        }
    }

    /// `heavy_turn`, blocking the thread: for callers outside the async
    /// runtime (benches, tests), never on one of its workers.
    pub fn heavy_turn_blocking(&self) -> HeavyTurn {
        futures::executor::block_on(self.heavy_turn())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
}

/// Runs a change on a blocking thread: compiling a bundle or flushing the
/// store must not hold up the async workers that answer checks.
/// `state` is the control plane itself or one of its record kinds.
pub async fn blocking<S, T>(
    state: &Arc<S>,
    work: impl FnOnce(&S) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ControlError>
where
    S: ?Sized + Send + Sync + 'static,
    T: Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(|e| ControlError::Internal(format!("admin task failed: {e}")))?
}

/// Runs a change that has a heavy phase, like `blocking`, once it is this
/// change's turn (see [`HeavyTurn`]). The wait is on the caller's task, so it
/// ends with the call (the admin timeout bounds it); once started, the
/// change runs to the end and keeps the turn until then.
pub async fn heavy<T>(
    control: &Arc<Control>,
    work: impl FnOnce(&Control, &HeavyTurn) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ControlError>
where
    T: Send + 'static,
{
    let turn = control.heavy_turn().await;
    blocking(control, move |c| work(c, &turn)).await
}

fn now_rfc3339() -> String {
    OffsetDateTime::from(SystemTime::now())
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
