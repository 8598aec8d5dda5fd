//! Policy engines behind one interface.
//!
//! A bundle is compiled once into a `CompiledPolicy`; binding it to a data
//! document (bundle data plus snapshots) gives a `BoundPolicy`, which
//! evaluates checks. Both are immutable and shared by every worker thread.

pub mod config;
pub mod generators;
pub mod native;
pub mod reads;
pub mod wasm;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use crate::request::CheckRequest;

/// Which engine evaluates a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// Rego source, compiled by regorus to RVM bytecode (or interpreted where
    /// the RVM compiler falls short).
    Native,
    /// A `policy.wasm` implementing OPA's Wasm ABI, on wasmtime.
    Wasm,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Native => "native",
            EngineKind::Wasm => "wasm",
        }
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "native" => Ok(EngineKind::Native),
            "wasm" => Ok(EngineKind::Wasm),
            other => Err(format!(
                "`{other}` is not an engine; expected `native` or `wasm`"
            )),
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds on one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalLimits {
    /// Wall-clock budget per evaluation.
    pub timeout: Duration,
    /// Instruction budget per evaluation, a second line of defence that does
    /// not depend on the clock.
    pub max_instructions: usize,
}

impl Default for EvalLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(50),
            max_instructions: 10_000_000,
        }
    }
}

/// How bundles are compiled and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// The engine for bundles that do not name one.
    pub engine: EngineKind,
    pub eval: EvalLimits,
    /// Memory cap of one Wasm instance, data included.
    pub wasm_max_memory_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            engine: EngineKind::Native,
            eval: EvalLimits::default(),
            wasm_max_memory_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Why an evaluation gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("evaluation exceeded its time limit of {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Failed(String),
}

/// Why a data document cannot be bound to a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot load data into the policy: {0}")]
pub struct BindError(pub String);

/// A bundle's policy, compiled.
pub trait CompiledPolicy: Send + Sync + fmt::Debug {
    fn kind(&self) -> EngineKind;
    /// Prepares evaluation against `data`, the whole data document.
    fn bind(&self, data: &regorus::Value) -> Result<Arc<dyn BoundPolicy>, BindError>;
}

/// A compiled policy with its data, ready to evaluate checks from any thread.
pub trait BoundPolicy: Send + Sync + fmt::Debug {
    /// The entrypoint's value for this request, `None` when undefined.
    fn evaluate(&self, request: &CheckRequest) -> Result<Option<Json>, EvalError>;
}
