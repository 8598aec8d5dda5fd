//! `[audit]`: the section as written, and its validation into
//! `AuditConfig`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AuditConfig, Durability, OnFull};
use crate::settings::{ConfigError, duration, positive};

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAudit {
    /// `async` (group-committed every `flush_interval`), `sync` (a response
    /// waits until its record is on disk), or `off`.
    pub durability: String,
    /// Records waiting for the writer, at most.
    pub queue_capacity: u64,
    /// When the queue is full: `block` the check until there is room, or
    /// `deny` it (fail closed).
    pub on_full: String,
    /// In `async` mode, the longest a written record waits to be flushed.
    pub flush_interval: String,
    /// Delete records older than this (`0s`: keep forever).
    pub max_age: String,
    /// Keep at most this many records (0: no limit).
    pub max_records: u64,
    /// Keep at most this many bytes of stored entries (0: no limit).
    pub max_bytes: u64,
    /// How often retention runs.
    pub retention_interval: String,
    /// Input paths (`action.attributes.card`) removed from stored inputs.
    pub redact_drop: Vec<String>,
    /// Input paths whose values are stored as their SHA-256 instead.
    pub redact_hash: Vec<String>,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            durability: "async".into(),
            queue_capacity: 65_536,
            on_full: "block".into(),
            flush_interval: "5ms".into(),
            max_age: "0s".into(),
            max_records: 0,
            max_bytes: 0,
            retention_interval: "60s".into(),
            redact_drop: Vec::new(),
            redact_hash: Vec::new(),
        }
    }
}

pub fn audit_config(raw: &RawAudit) -> Result<AuditConfig, ConfigError> {
    let durability = match raw.durability.as_str() {
        "async" => Durability::Async,
        "sync" => Durability::Sync,
        "off" => Durability::Off,
        other => {
            return Err(ConfigError::Invalid {
                key: "audit.durability",
                message: format!("`{other}` is not `async`, `sync` or `off`"),
            });
        }
    };
    let on_full = match raw.on_full.as_str() {
        "block" => OnFull::Block,
        "deny" => OnFull::Deny,
        other => {
            return Err(ConfigError::Invalid {
                key: "audit.on_full",
                message: format!("`{other}` is not `block` or `deny`"),
            });
        }
    };
    let paths = |key: &'static str, list: &[String]| -> Result<Vec<Vec<String>>, ConfigError> {
        list.iter()
            .map(|path| {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(ConfigError::Invalid {
                        key,
                        message: format!("`{path}` is not a dotted path such as `context.prompt`"),
                    });
                }
                Ok(segments)
            })
            .collect()
    };
    let max_age = duration("audit.max_age", &raw.max_age)?;
    Ok(AuditConfig {
        durability,
        queue_capacity: positive("audit.queue_capacity", raw.queue_capacity)?,
        on_full,
        flush_interval: duration("audit.flush_interval", &raw.flush_interval)?,
        max_age: (!max_age.is_zero()).then_some(max_age),
        max_records: raw.max_records,
        max_bytes: raw.max_bytes,
        retention_interval: duration("audit.retention_interval", &raw.retention_interval)?
            .max(Duration::from_millis(10)),
        redact_drop: paths("audit.redact_drop", &raw.redact_drop)?,
        redact_hash: paths("audit.redact_hash", &raw.redact_hash)?,
        replica: None,
    })
}
