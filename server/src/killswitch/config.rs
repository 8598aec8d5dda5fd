//! `[killswitch]`: as written, and its validation.

use serde::{Deserialize, Serialize};

use crate::settings::ConfigError;

/// `[killswitch]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKillSwitch {
    /// Last action segments that `deny_mutating` switches let through.
    pub read_verbs: Vec<String>,
}

impl Default for RawKillSwitch {
    fn default() -> Self {
        Self {
            read_verbs: ["read", "get", "list", "search"]
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }
}

/// `killswitch.read_verbs`, validated: each one action segment.
pub fn read_verbs(raw: &RawKillSwitch) -> Result<Vec<String>, ConfigError> {
    if let Some(bad) = raw
        .read_verbs
        .iter()
        .find(|v| v.is_empty() || v.contains('.') || v.contains('*'))
    {
        return Err(ConfigError::Invalid {
            key: "killswitch.read_verbs",
            message: format!("`{bad}` is not a verb: one action segment, without `.` or `*`"),
        });
    }
    Ok(raw.read_verbs.clone())
}
