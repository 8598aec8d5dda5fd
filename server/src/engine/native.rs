//! The native engine: the bundle's Rego compiled by regorus, run in-process.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use regorus::Value;
use serde_json::Value as Json;
use warden_rego::{Evaluator, Host, Limits, Mode, Policy};

use super::{BindError, BoundPolicy, CompiledPolicy, EngineKind, EvalError, EvalLimits};
use crate::bundle::{Bundle, BundleError};
use crate::input;
use crate::request::CheckRequest;

/// A bundle's Rego, compiled once for the decision entrypoint.
#[derive(Debug)]
pub struct NativePolicy {
    policy: Arc<Policy>,
    limits: EvalLimits,
}

impl NativePolicy {
    /// Parses every module, checks packages against the bundle's roots and
    /// compiles the entrypoint.
    pub fn compile(bundle: &Bundle, limits: EvalLimits) -> Result<Self, BundleError> {
        let policy = bundle
            .parse_modules()?
            .compile(&bundle.entrypoint_ref())
            .map_err(|e| BundleError::Module {
                path: bundle.entrypoint.clone(),
                message: e.to_string(),
            })?;
        if let Mode::Interpreter { reason } = policy.mode() {
            tracing::warn!(
                revision = bundle.revision,
                %reason,
                "the RVM cannot compile this policy; it runs on the interpreter"
            );
        }
        Ok(Self {
            policy: Arc::new(policy),
            limits,
        })
    }

    pub fn mode(&self) -> Mode {
        self.policy.mode()
    }
}

impl CompiledPolicy for NativePolicy {
    fn kind(&self) -> EngineKind {
        EngineKind::Native
    }

    fn bind(&self, data: &Value) -> Result<Arc<dyn BoundPolicy>, BindError> {
        let workers = std::thread::available_parallelism().map_or(4, usize::from);
        let host = Arc::new(Host::default());
        // A policy that calls Warden's builtins gets their index with the
        // generation, not on its first check with an audience.
        if self.policy.calls_host() {
            let started = std::time::Instant::now();
            host.warm(data);
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "audience index built"
            );
        }
        let bound = NativeBound {
            policy: self.policy.clone(),
            host,
            data: data.clone(),
            limits: Limits {
                timeout: Some(self.limits.timeout),
                max_instructions: self.limits.max_instructions,
            },
            idle: ArrayQueue::new(workers * 4),
        };
        // Building one evaluator now surfaces rule/data conflicts at load
        // time rather than on the first check.
        let evaluator = bound.evaluator()?;
        let _ = bound.idle.push(evaluator);
        Ok(Arc::new(bound))
    }
}

/// A policy bound to its data, with a pool of idle evaluators.
///
/// Readers never wait on each other: a check pops an idle evaluator (or
/// builds one) from a lock-free queue and pushes it back when done.
struct NativeBound {
    policy: Arc<Policy>,
    host: Arc<Host>,
    data: Value,
    limits: Limits,
    idle: ArrayQueue<Evaluator>,
}

impl std::fmt::Debug for NativeBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeBound")
            .field("idle_evaluators", &self.idle.len())
            .finish_non_exhaustive()
    }
}

impl NativeBound {
    fn evaluator(&self) -> Result<Evaluator, BindError> {
        self.policy
            .evaluator(&self.data, self.limits, self.host.clone())
            .map_err(|e| BindError(e.to_string()))
    }
}

impl BoundPolicy for NativeBound {
    fn evaluate(&self, request: &CheckRequest) -> Result<Option<Json>, EvalError> {
        let mut evaluator = match self.idle.pop() {
            Some(evaluator) => evaluator,
            None => self
                .evaluator()
                .map_err(|e| EvalError::Failed(e.to_string()))?,
        };
        // Only an evaluator that finished cleanly goes back to the pool; one
        // that failed half-way is dropped, whatever state it was left in.
        let value = match evaluator.eval(input::to_rego(request)) {
            Ok(value) => {
                let _ = self.idle.push(evaluator);
                value
            }
            Err(warden_rego::EvalError::Timeout) => {
                return Err(EvalError::Timeout(self.limits.timeout.unwrap_or_default()));
            }
            Err(warden_rego::EvalError::Failed(message)) => return Err(EvalError::Failed(message)),
        };
        if value == Value::Undefined {
            return Ok(None);
        }
        serde_json::to_value(&value)
            .map(Some)
            .map_err(|e| EvalError::Failed(format!("policy result is not JSON: {e}")))
    }
}
