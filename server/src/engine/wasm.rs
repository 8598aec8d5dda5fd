//! The Wasm engine: a `policy.wasm` implementing OPA's Wasm ABI — compiled
//! by `opa build -t wasm` or by `warden build` — run through the `opa-wasm`
//! crate on wasmtime.
//!
//! Each instance holds the generation's data, loaded once when the instance
//! is made; instances are pooled so concurrent checks never share one. Every
//! evaluation has a deadline (wasmtime epoch interruption) and every
//! instance a memory cap; an instance that hit either, or failed in any way,
//! is dropped and replaced.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use opa_wasm::{DefaultContext, Policy as OpaPolicy, Runtime};
use serde_json::Value as Json;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};

use super::{BindError, BoundPolicy, CompiledPolicy, EngineKind, EvalError, EvalLimits};
use crate::bundle::{BundleError, WasmModule};
use crate::input;
use crate::request::CheckRequest;
use crate::wasm::inspect;

/// How often the shared epoch advances; deadlines are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(2);

const PAGE: u64 = 65536;

/// One wasmtime engine for the process, with a thread that advances its
/// epoch: what lets a deadline interrupt a policy that never returns.
fn wasmtime_engine() -> Result<&'static wasmtime::Engine, String> {
    static ENGINE: OnceLock<Result<wasmtime::Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config.epoch_interruption(true);
            let engine = wasmtime::Engine::new(&config).map_err(|e| e.to_string())?;
            let ticking = engine.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(EPOCH_TICK);
                        ticking.increment_epoch();
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Bounds on a Wasm instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmLimits {
    pub eval: EvalLimits,
    /// Most linear memory one instance may use, data included.
    pub max_memory_bytes: u64,
}

/// A compiled `policy.wasm` and the entrypoint Warden asks for.
#[derive(Debug, Clone)]
pub struct WasmPolicy {
    module: wasmtime::Module,
    entrypoint: String,
    limits: WasmLimits,
}

impl WasmPolicy {
    /// Checks the module against the ABI, compiles it, and makes sure it
    /// serves `entrypoint`.
    pub fn load(
        wasm: &WasmModule,
        entrypoint: &str,
        limits: WasmLimits,
    ) -> Result<Self, BundleError> {
        let refuse = |message: String| BundleError::Module {
            path: wasm.path.clone(),
            message,
        };
        inspect(&wasm.bytes, limits.max_memory_bytes / PAGE).map_err(|e| refuse(e.to_string()))?;
        let engine =
            wasmtime_engine().map_err(|e| refuse(format!("cannot start wasmtime: {e}")))?;
        let module =
            wasmtime::Module::new(engine, &wasm.bytes).map_err(|e| refuse(format!("{e:#}")))?;
        let policy = Self {
            module,
            entrypoint: entrypoint.to_owned(),
            limits,
        };
        // Instantiate once now: a module whose start-up fails, or that lacks
        // the entrypoint, is refused at load rather than on the first check.
        let (mut store, runtime) = policy
            .runtime()
            .map_err(|e| refuse(format!("cannot instantiate: {e:#}")))?;
        store.set_epoch_deadline(policy.deadline_ticks());
        if !runtime.entrypoints().contains(entrypoint) {
            let mut declared: Vec<&str> = runtime.entrypoints().into_iter().collect();
            declared.sort_unstable();
            return Err(refuse(format!(
                "does not declare the entrypoint `{entrypoint}` (it declares {})",
                declared.join(", ")
            )));
        }
        Ok(policy)
    }

    fn deadline_ticks(&self) -> u64 {
        let ticks = self.limits.eval.timeout.as_nanos() / EPOCH_TICK.as_nanos();
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }

    fn store(&self) -> Store<StoreLimits> {
        let memory = usize::try_from(self.limits.max_memory_bytes).unwrap_or(usize::MAX);
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory)
            .trap_on_grow_failure(true)
            .instances(1)
            .build();
        let mut store = Store::new(self.module.engine(), limits);
        store.limiter(|limits| limits);
        // Start-up (instantiation, loading data) gets a generous deadline of
        // its own; evaluations get the configured one.
        store.set_epoch_deadline(u64::MAX / 2);
        store
    }

    fn runtime(&self) -> anyhow::Result<(Store<StoreLimits>, Runtime<DefaultContext>)> {
        let mut store = self.store();
        let runtime = futures::executor::block_on(Runtime::new(&mut store, &self.module))?;
        Ok((store, runtime))
    }
}

impl CompiledPolicy for WasmPolicy {
    fn kind(&self) -> EngineKind {
        EngineKind::Wasm
    }

    fn bind(&self, data: &regorus::Value) -> Result<Arc<dyn BoundPolicy>, BindError> {
        let workers = std::thread::available_parallelism().map_or(4, usize::from);
        let bound = WasmBound {
            policy: self.clone(),
            data: data.clone(),
            idle: ArrayQueue::new(workers * 2),
        };
        // One instance now, so that data the module cannot load is refused
        // at load time.
        let instance = bound.instance().map_err(|e| BindError(format!("{e:#}")))?;
        let _ = bound.idle.push(instance);
        Ok(Arc::new(bound))
    }
}

/// An instance with the generation's data loaded.
struct Instance {
    store: Store<StoreLimits>,
    policy: OpaPolicy<DefaultContext>,
}

struct WasmBound {
    policy: WasmPolicy,
    data: regorus::Value,
    idle: ArrayQueue<Instance>,
}

impl std::fmt::Debug for WasmBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmBound")
            .field("entrypoint", &self.policy.entrypoint)
            .field("idle_instances", &self.idle.len())
            .finish_non_exhaustive()
    }
}

impl WasmBound {
    fn instance(&self) -> anyhow::Result<Instance> {
        let (mut store, runtime) = self.policy.runtime()?;
        let policy = futures::executor::block_on(runtime.with_data(&mut store, &self.data))?;
        Ok(Instance { store, policy })
    }
}

impl BoundPolicy for WasmBound {
    fn evaluate(&self, request: &CheckRequest) -> Result<Option<Json>, EvalError> {
        let mut instance = match self.idle.pop() {
            Some(instance) => instance,
            None => self.instance().map_err(|e| {
                EvalError::Failed(format!("cannot start a Wasm instance: {}", root_cause(&e)))
            })?,
        };
        let input = input::to_json(request);
        instance
            .store
            .set_epoch_deadline(self.policy.deadline_ticks());
        let result: anyhow::Result<Json> = futures::executor::block_on(instance.policy.evaluate(
            &mut instance.store,
            &self.policy.entrypoint,
            &input,
        ));
        // Only an instance that finished cleanly goes back; a trapped one
        // (deadline, memory cap, abort) may be in any state.
        let results = match result {
            Ok(results) => {
                let _ = self.idle.push(instance);
                results
            }
            Err(e) => {
                let interrupted = e.chain().any(|cause| {
                    matches!(
                        cause.downcast_ref::<wasmtime::Trap>(),
                        Some(wasmtime::Trap::Interrupt)
                    )
                });
                return Err(if interrupted {
                    EvalError::Timeout(self.policy.limits.eval.timeout)
                } else {
                    EvalError::Failed(format!("wasm: {}", root_cause(&e)))
                });
            }
        };
        // A result set: `[{"result": value}]`, or `[]` when undefined.
        match results {
            Json::Array(rows) if rows.is_empty() => Ok(None),
            Json::Array(mut rows) if rows.len() == 1 => match rows.pop() {
                Some(Json::Object(mut row)) => Ok(row.remove("result")),
                _ => Err(EvalError::Failed("wasm: malformed result set".into())),
            },
            _ => Err(EvalError::Failed(
                "wasm: the entrypoint produced several results".into(),
            )),
        }
    }
}

fn root_cause(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        message.push_str(": ");
        message.push_str(&cause.to_string());
    }
    message
}
