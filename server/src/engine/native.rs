//! The native engine: Rego compiled by regorus to RVM bytecode.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use regorus::Value;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value as Json;

use super::{BindError, BoundPolicy, CompiledPolicy, EngineKind, EvalError, EvalLimits};
use crate::bundle::{Bundle, BundleError};
use crate::input;
use crate::request::CheckRequest;

/// Work units between clock reads; reading the clock on every instruction
/// would cost more than most policies.
const TIMER_CHECK_INTERVAL: u32 = 256;

/// A bundle's Rego, compiled to one RVM program with the decision
/// entrypoint.
#[derive(Debug)]
pub struct NativePolicy {
    program: Arc<Program>,
    limits: EvalLimits,
}

impl NativePolicy {
    /// Parses every module, checks packages against the bundle's roots and
    /// compiles the entrypoint.
    pub fn compile(bundle: &Bundle, limits: EvalLimits) -> Result<Self, BundleError> {
        let engine = parse_modules(bundle)?;
        let mut engine = engine;
        let entrypoint = bundle.entrypoint_ref();
        let rule: regorus::Rc<str> = entrypoint.as_str().into();
        let compiled = engine
            .compile_with_entrypoint(&rule)
            .map_err(|e| BundleError::Module {
                path: bundle.entrypoint.clone(),
                message: format!("cannot compile entrypoint `{entrypoint}`: {e}"),
            })?;
        let program =
            Compiler::compile_from_policy(&compiled, &[entrypoint.as_str()]).map_err(|e| {
                BundleError::Module {
                    path: bundle.entrypoint.clone(),
                    message: format!("cannot compile entrypoint `{entrypoint}` to bytecode: {e}"),
                }
            })?;
        Ok(Self { program, limits })
    }
}

/// Parses a bundle's modules into an interpreter, checking each package
/// against the bundle's roots.
pub fn parse_modules(bundle: &Bundle) -> Result<regorus::Engine, BundleError> {
    let mut engine = regorus::Engine::new();
    for module in &bundle.modules {
        engine.set_rego_v0(module.rego_v0);
        engine
            .add_policy(module.path.clone(), module.source.clone())
            .map_err(|e| BundleError::Module {
                path: module.path.clone(),
                message: e.to_string(),
            })?;
    }
    let packages = engine
        .get_policy_package_components()
        .map_err(|e| BundleError::Module {
            path: String::new(),
            message: e.to_string(),
        })?;
    for package in packages {
        bundle.check_package(&package.source_file, &package.components)?;
    }
    Ok(engine)
}

impl CompiledPolicy for NativePolicy {
    fn kind(&self) -> EngineKind {
        EngineKind::Native
    }

    fn bind(&self, data: &Value) -> Result<Arc<dyn BoundPolicy>, BindError> {
        let workers = std::thread::available_parallelism().map_or(4, usize::from);
        let bound = NativeBound {
            program: self.program.clone(),
            data: data.clone(),
            limits: self.limits,
            idle: ArrayQueue::new(workers * 4),
        };
        // Building one VM now surfaces rule/data conflicts at load time
        // rather than on the first check.
        let vm = bound.new_vm()?;
        let _ = bound.idle.push(vm);
        Ok(Arc::new(bound))
    }
}

/// A program bound to its data, with a pool of idle VMs.
///
/// Readers never wait on each other: a check pops an idle VM (or builds one)
/// from a lock-free queue and pushes it back when done.
struct NativeBound {
    program: Arc<Program>,
    data: Value,
    limits: EvalLimits,
    idle: ArrayQueue<RegoVM>,
}

impl std::fmt::Debug for NativeBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeBound")
            .field("idle_vms", &self.idle.len())
            .finish_non_exhaustive()
    }
}

impl NativeBound {
    fn new_vm(&self) -> Result<RegoVM, BindError> {
        let mut vm = RegoVM::new();
        vm.load_program(self.program.clone());
        vm.set_max_instructions(self.limits.max_instructions);
        vm.set_execution_timer_config(Some(ExecutionTimerConfig {
            limit: self.limits.timeout,
            check_interval: std::num::NonZeroU32::MIN.saturating_add(TIMER_CHECK_INTERVAL - 1),
        }));
        vm.set_data(self.data.clone())
            .map_err(|e| BindError(e.to_string()))?;
        Ok(vm)
    }
}

impl BoundPolicy for NativeBound {
    fn evaluate(&self, request: &CheckRequest) -> Result<Option<Json>, EvalError> {
        let mut vm = match self.idle.pop() {
            Some(vm) => vm,
            None => self
                .new_vm()
                .map_err(|e| EvalError::Failed(e.to_string()))?,
        };
        vm.set_input(input::to_rego(request));
        let result = vm.execute_entry_point_by_index(0);
        // Only a VM that finished cleanly goes back to the pool; one that
        // failed half-way is dropped, whatever state it was left in.
        let value = match result {
            Ok(value) => {
                let _ = self.idle.push(vm);
                value
            }
            Err(regorus::rvm::vm::VmError::TimeLimitExceeded { .. }) => {
                return Err(EvalError::Timeout(self.limits.timeout));
            }
            Err(e) => return Err(EvalError::Failed(e.to_string())),
        };
        if value == Value::Undefined {
            return Ok(None);
        }
        serde_json::to_value(&value)
            .map(Some)
            .map_err(|e| EvalError::Failed(format!("policy result is not JSON: {e}")))
    }
}
