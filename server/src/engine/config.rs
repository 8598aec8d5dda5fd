//! `[policy]`: the bundle to start with and the engine that evaluates it,
//! as written, and their validation into `PolicyConfig`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{EngineKind, EngineOptions, EvalLimits};
use crate::settings::{ConfigError, nonempty_path, positive};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    pub bundle: String,
    pub engine: String,
    pub eval_timeout_ms: u64,
    pub max_instructions: u64,
    /// Memory cap of one Wasm instance, in MiB.
    pub wasm_max_memory_mb: u64,
}

impl Default for RawPolicy {
    fn default() -> Self {
        let limits = EvalLimits::default();
        Self {
            bundle: "policies".into(),
            engine: "native".into(),
            eval_timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(50),
            max_instructions: limits.max_instructions as u64,
            wasm_max_memory_mb: EngineOptions::default().wasm_max_memory_bytes / (1024 * 1024),
        }
    }
}

/// `[policy]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub bundle: PathBuf,
    pub engine: EngineOptions,
}

pub fn policy_config(raw: &RawPolicy) -> Result<PolicyConfig, ConfigError> {
    let engine = raw
        .engine
        .parse::<EngineKind>()
        .map_err(|message| ConfigError::Invalid {
            key: "policy.engine",
            message,
        })?;
    let eval_timeout_ms = positive("policy.eval_timeout_ms", raw.eval_timeout_ms)?;
    Ok(PolicyConfig {
        bundle: nonempty_path("policy.bundle", &raw.bundle)?,
        engine: EngineOptions {
            engine,
            eval: EvalLimits {
                timeout: Duration::from_millis(eval_timeout_ms as u64),
                max_instructions: positive("policy.max_instructions", raw.max_instructions)?,
            },
            wasm_max_memory_bytes: (positive("policy.wasm_max_memory_mb", raw.wasm_max_memory_mb)?
                as u64)
                .saturating_mul(1024 * 1024),
        },
    })
}
