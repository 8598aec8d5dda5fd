//! The `[limits]` keys for budgets and tripwires, validated.

use std::time::Duration;

use crate::settings::{ConfigError, nonzero_duration, positive};

/// What a check gets when it needs a new key and the table is full of
/// live ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Refused (`limit_state_full:<rule>`): fail closed.
    Deny,
    /// Admitted without counting.
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Counter keys held at most (every rule's keys together).
    pub max_keys: usize,
    pub on_full: OnFull,
    /// How often counters are written to the store: the most usage a
    /// crash can forget.
    pub snapshot_interval: Duration,
    /// Cluster mode: how often a replica publishes its usage to the others.
    pub publish_interval: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_keys: 1_000_000,
            on_full: OnFull::Deny,
            snapshot_interval: Duration::from_secs(1),
            publish_interval: Duration::from_millis(250),
        }
    }
}

pub fn limits_config(
    max_keys: u64,
    on_full: &str,
    snapshot_interval: &str,
    publish_interval: &str,
) -> Result<LimitsConfig, ConfigError> {
    Ok(LimitsConfig {
        max_keys: positive("limits.max_keys", max_keys)?,
        on_full: match on_full {
            "deny" => OnFull::Deny,
            "allow" => OnFull::Allow,
            other => {
                return Err(ConfigError::Invalid {
                    key: "limits.on_full",
                    message: format!("`{other}`: expected `deny` or `allow`"),
                });
            }
        },
        snapshot_interval: nonzero_duration("limits.counter_snapshot_interval", snapshot_interval)?,
        publish_interval: nonzero_duration("limits.usage_publish_interval", publish_interval)?,
    })
}
