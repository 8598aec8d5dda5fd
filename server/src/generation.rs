//! Generations: one policy bundle and one snapshot of each kind, bound
//! together and published atomically.
//!
//! Every check loads the current generation once and uses only it, so no
//! check ever sees a new bundle with old snapshots or the reverse.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use regorus::Value;

use crate::bundle::{Bundle, BundleError, WasmModule};
use crate::engine::generators::{self, Generators, Target};
use crate::engine::native::NativePolicy;
use crate::engine::reads::InputReads;
use crate::engine::wasm::{WasmLimits, WasmPolicy};
use crate::engine::{BindError, BoundPolicy, CompiledPolicy, EngineKind, EngineOptions};
use crate::input::json_to_rego;
use crate::killswitch::Switch;
use crate::limits::RuleSet;
pub use crate::snapshot::MaxAge;
use crate::snapshot::{Snapshot, SnapshotKind};
use crate::wasm::{BuildError, build_module};

/// A bundle compiled for one engine, independent of any snapshot.
#[derive(Debug)]
pub struct LoadedPolicy {
    pub revision: String,
    pub digest: String,
    pub entrypoint: String,
    compiled: Box<dyn CompiledPolicy>,
    /// The bundle's own data, ready to merge with snapshots.
    data: Value,
    /// `data.warden.limits`, validated.
    pub limits: Arc<RuleSet>,
    /// `data.warden.search.*`, the bundle's search candidate generators.
    pub generators: Arc<Generators>,
    /// The `input` paths its Rego can read (`None`: cannot be told).
    pub reads: Option<InputReads>,
}

impl LoadedPolicy {
    /// Compiles `bundle` for the engine it asks for (manifest
    /// `metadata.engine`), else the configured one; a bundle that holds only
    /// a `policy.wasm` runs on the Wasm engine.
    pub fn compile(bundle: &Bundle, options: &EngineOptions) -> Result<Self, BundleError> {
        // Checked first: a bad rule is refused before any compiling.
        let limits = Arc::new(limit_rules(&bundle.data)?);
        let generators = Arc::new(Generators::compile(bundle, options.eval)?);
        let kind = match bundle.manifest.metadata.get("engine") {
            Some(name) => name
                .as_str()
                .ok_or_else(|| BundleError::Manifest("metadata.engine must be a string".into()))?
                .parse::<EngineKind>()
                .map_err(|e| BundleError::Manifest(format!("metadata.engine: {e}")))?,
            None if bundle.modules.is_empty() => EngineKind::Wasm,
            None => options.engine,
        };
        let shipped_wasm = bundle
            .wasm
            .iter()
            .any(|w| w.entrypoint.trim_matches('/') == bundle.entrypoint);
        let compiled: Box<dyn CompiledPolicy> = match kind {
            EngineKind::Native => {
                if bundle.modules.is_empty() {
                    return Err(BundleError::Manifest(
                        "the native engine needs Rego modules, and this bundle holds only Wasm"
                            .into(),
                    ));
                }
                Box::new(NativePolicy::compile(bundle, options.eval)?)
            }
            EngineKind::Wasm => {
                let shipped = bundle
                    .wasm
                    .iter()
                    .find(|w| w.entrypoint.trim_matches('/') == bundle.entrypoint);
                let module = match shipped {
                    Some(module) => module.clone(),
                    // A Rego-only bundle: compile it to Wasm here, as
                    // `warden build` would.
                    None => WasmModule {
                        path: "policy.wasm".into(),
                        entrypoint: bundle.entrypoint.clone(),
                        bytes: build_module(bundle).map_err(|e| match e {
                            BuildError::Bundle(e) => e,
                            other => BundleError::Module {
                                path: "policy.wasm".into(),
                                message: other.to_string(),
                            },
                        })?,
                    },
                };
                Box::new(WasmPolicy::load(
                    &module,
                    &bundle.entrypoint,
                    WasmLimits {
                        eval: options.eval,
                        max_memory_bytes: options.wasm_max_memory_bytes,
                    },
                )?)
            }
        };
        Ok(Self {
            revision: bundle.revision.clone(),
            digest: bundle.digest.clone(),
            entrypoint: bundle.entrypoint.clone(),
            compiled,
            // Shared with the bundle, not copied.
            data: bundle.data.clone(),
            limits,
            generators,
            // A shipped `policy.wasm` may not be built from the Rego beside
            // it: what that Rego reads says nothing of it.
            reads: match (kind, shipped_wasm) {
                (EngineKind::Wasm, true) => None,
                _ => InputReads::of(&bundle.modules),
            },
        })
    }

    pub fn engine(&self) -> EngineKind {
        self.compiled.kind()
    }
}

/// The bundle's `data.warden.limits`; only that subtree is converted.
fn limit_rules(data: &Value) -> Result<RuleSet, BundleError> {
    let subtree = |value: &Value, key: &str| -> Option<Value> {
        value
            .as_object()
            .ok()
            .and_then(|object| object.get(&Value::from(key)).cloned())
    };
    let Some(document) = subtree(data, "warden").and_then(|w| subtree(&w, "limits")) else {
        return Ok(RuleSet::default());
    };
    let document = serde_json::to_value(&document).map_err(|e| BundleError::Data {
        path: "data.warden.limits".into(),
        reason: e.to_string(),
    })?;
    RuleSet::from_limits(&document).map_err(|e| BundleError::Data {
        path: e.path,
        reason: e.reason,
    })
}

/// Everything one decision needs, immutable once built.
#[derive(Debug)]
pub struct Generation {
    /// Increases with every publication; tells generations apart in logs.
    pub id: u64,
    pub policy: Arc<LoadedPolicy>,
    pub identity: Arc<Snapshot>,
    pub entitlements: Arc<Snapshot>,
    pub max_age: MaxAge,
    /// `data.killswitch`: the engaged kill switches, for policies to read.
    pub kill_switches: Value,
    bound: Arc<dyn BoundPolicy>,
    /// The data document the policy is bound to.
    data: Value,
    /// `data` with the search index, built by the first search that runs a
    /// generator on this generation.
    search_data: OnceLock<Value>,
    /// A bundle evaluated beside the active one, whose answers are only
    /// compared, never returned.
    shadow: Option<(Arc<LoadedPolicy>, Arc<dyn BoundPolicy>)>,
}

impl Generation {
    /// Binds `policy` to the snapshots. Fails when the data cannot be loaded
    /// into the policy (a rule and a data value at the same path).
    pub fn build(
        id: u64,
        policy: Arc<LoadedPolicy>,
        identity: Arc<Snapshot>,
        entitlements: Arc<Snapshot>,
        max_age: MaxAge,
    ) -> Result<Self, BindError> {
        Self::build_with_switches(
            id,
            policy,
            identity,
            entitlements,
            max_age,
            kill_switch_document(std::iter::empty()),
        )
    }

    /// Like `build`, with `kill_switches` (see [`kill_switch_document`]) at
    /// `data.killswitch`.
    pub fn build_with_switches(
        id: u64,
        policy: Arc<LoadedPolicy>,
        identity: Arc<Snapshot>,
        entitlements: Arc<Snapshot>,
        max_age: MaxAge,
        kill_switches: Value,
    ) -> Result<Self, BindError> {
        let data = data_document(&policy.data, &identity, &entitlements, &kill_switches)?;
        let bound = policy.compiled.bind(&data)?;
        Ok(Self {
            id,
            policy,
            identity,
            entitlements,
            max_age,
            kill_switches,
            bound,
            data,
            search_data: OnceLock::new(),
            shadow: None,
        })
    }

    /// The same generation with `shadow` evaluated beside the active policy,
    /// on the same snapshots.
    pub fn with_shadow(mut self, shadow: Option<Arc<LoadedPolicy>>) -> Result<Self, BindError> {
        self.shadow = match shadow {
            None => None,
            Some(policy) => {
                let data = data_document(
                    &policy.data,
                    &self.identity,
                    &self.entitlements,
                    &self.kill_switches,
                )?;
                let bound = policy.compiled.bind(&data)?;
                Some((policy, bound))
            }
        };
        Ok(self)
    }

    /// The shadow's compiled policy, shared.
    pub fn shadow_policy(&self) -> Option<Arc<LoadedPolicy>> {
        self.shadow.as_ref().map(|(policy, _)| policy.clone())
    }

    /// The shadow policy, if one is set.
    pub fn shadow(&self) -> Option<(&LoadedPolicy, &dyn BoundPolicy)> {
        self.shadow
            .as_ref()
            .map(|(policy, bound)| (policy.as_ref(), bound.as_ref()))
    }

    pub fn snapshot(&self, kind: SnapshotKind) -> &Snapshot {
        match kind {
            SnapshotKind::Identity => &self.identity,
            SnapshotKind::Entitlements => &self.entitlements,
        }
    }

    pub fn policy(&self) -> &dyn BoundPolicy {
        self.bound.as_ref()
    }

    /// The bundle's generator's candidates for a search with `input`;
    /// `None` when the bundle declares none for `target`.
    pub fn generated(
        &self,
        target: Target,
        input: &serde_json::Value,
    ) -> Option<Result<Vec<String>, String>> {
        let generators = &self.policy.generators;
        if !generators.declares(target) {
            return None;
        }
        let data = self.search_data.get_or_init(|| {
            let started = std::time::Instant::now();
            let data = generators::with_index(&self.data);
            tracing::debug!(
                generation = self.id,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "search index built"
            );
            data
        });
        generators.candidates(target, data, json_to_rego(input))
    }

    /// Snapshot versions by kind, as responses report them.
    pub fn snapshot_versions(&self) -> BTreeMap<String, String> {
        SnapshotKind::ALL
            .into_iter()
            .map(|kind| {
                (
                    kind.as_str().to_owned(),
                    self.snapshot(kind).version.clone(),
                )
            })
            .collect()
    }
}

/// `data.killswitch` for a set of switches: `{"active": [switch, ...]}`, in
/// engage order, each as `Switch::to_policy_json` shows it.
pub fn kill_switch_document<'a>(switches: impl Iterator<Item = &'a Switch>) -> Value {
    let active: Vec<serde_json::Value> = switches.map(Switch::to_policy_json).collect();
    json_to_rego(&serde_json::json!({ "active": active }))
}

/// The data document: the bundle's data with each snapshot at `data.<kind>`
/// and the kill switches at `data.killswitch`. Bundles cannot write to those
/// paths (see `bundle::RESERVED_ROOTS`).
fn data_document(
    bundle_data: &Value,
    identity: &Snapshot,
    entitlements: &Snapshot,
    kill_switches: &Value,
) -> Result<Value, BindError> {
    let mut data = match bundle_data {
        Value::Object(_) => bundle_data.clone(),
        _ => Value::new_object(),
    };
    let object = data
        .as_object_mut()
        .map_err(|e| BindError(format!("bundle data is not an object: {e}")))?;
    object.insert(Value::from("identity"), identity.document.clone());
    object.insert(Value::from("entitlements"), entitlements.document.clone());
    object.insert(Value::from("killswitch"), kill_switches.clone());
    Ok(data)
}

/// The published generation. Readers don't take a lock — they load the
/// `ArcSwap`; a publication is one pointer swap.
#[derive(Debug)]
pub struct Generations {
    current: ArcSwap<Generation>,
    next_id: AtomicU64,
}

impl Generations {
    pub fn new(first: Generation) -> Self {
        let next_id = first.id + 1;
        Self {
            current: ArcSwap::from_pointee(first),
            next_id: AtomicU64::new(next_id),
        }
    }

    /// The generation new checks use.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// An id for the next generation to build.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes `generation` the one new checks use; checks in flight finish on
    /// the one they loaded.
    pub fn publish(&self, generation: Generation) {
        self.current.store(Arc::new(generation));
    }
}
