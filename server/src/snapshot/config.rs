//! `[snapshots]`: where the seed snapshots are, how old they may grow and
//! how many the store keeps, as written, and their validation into
//! `SnapshotConfig`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::MaxAge;
use crate::settings::{ConfigError, duration, nonempty_path, positive};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSnapshots {
    pub identity: String,
    pub entitlements: String,
    pub max_age: String,
    /// Overrides `max_age` for the identity snapshot; empty = `max_age`.
    pub identity_max_age: String,
    /// Overrides `max_age` for the entitlement snapshot; empty = `max_age`.
    pub entitlements_max_age: String,
    /// How many snapshots of each kind the store keeps.
    pub keep: u64,
}

impl Default for RawSnapshots {
    fn default() -> Self {
        Self {
            identity: "policies/demo/identity.json".into(),
            entitlements: "policies/demo/entitlements.json".into(),
            max_age: "0s".into(),
            identity_max_age: String::new(),
            entitlements_max_age: String::new(),
            keep: 10,
        }
    }
}

/// `[snapshots]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotConfig {
    pub identity: PathBuf,
    pub entitlements: PathBuf,
    pub max_age: MaxAge,
    pub keep: usize,
}

pub fn snapshot_config(raw: &RawSnapshots) -> Result<SnapshotConfig, ConfigError> {
    let max_age = duration("snapshots.max_age", &raw.max_age)?;
    let per_kind = |key: &'static str, value: &str| -> Result<Option<Duration>, ConfigError> {
        let age = if value.is_empty() {
            max_age
        } else {
            duration(key, value)?
        };
        Ok((!age.is_zero()).then_some(age))
    };
    let max_age = MaxAge {
        identity: per_kind("snapshots.identity_max_age", &raw.identity_max_age)?,
        entitlements: per_kind("snapshots.entitlements_max_age", &raw.entitlements_max_age)?,
    };
    Ok(SnapshotConfig {
        identity: nonempty_path("snapshots.identity", &raw.identity)?,
        entitlements: nonempty_path("snapshots.entitlements", &raw.entitlements)?,
        max_age,
        keep: positive("snapshots.keep", raw.keep)?,
    })
}
