//! Incident kill switches: scoped denials that operators engage and release
//! at run time, checked before any policy.
//!
//! A switch is a record in the store; the set of engaged ones is compiled
//! into an immutable [`SwitchIndex`] and published with one pointer swap, so
//! a check pays a few hash lookups however many switches are engaged.

pub mod config;
mod index;
pub mod spec;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

pub use index::{Hit, SwitchIndex};
pub use spec::{EngageSpec, SpecError, ValidEngage, action_pattern_matches, validate_engage};

/// The checks a switch applies to; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// A dotted action name, `prefix.*`, or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// One agent session, read from each check at `[limits] session_path`;
    /// a check without one is never in the scope. Absent from records
    /// stored before sessions were scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl Scope {
    pub fn is_global(&self) -> bool {
        *self == Scope::default()
    }
}

/// Which matching checks a switch denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    DenyAll,
    /// Everything but actions whose last segment is a configured read verb.
    DenyMutating,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DenyAll => "deny_all",
            Mode::DenyMutating => "deny_mutating",
        }
    }
}

/// How a switch stopped applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    Released,
    Expired,
}

/// The end of a switch's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ended {
    pub kind: EndKind,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

/// One kill switch, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    pub id: String,
    pub scope: Scope,
    pub mode: Mode,
    pub reason: String,
    pub engaged_by: String,
    /// Milliseconds since the Unix epoch.
    pub engaged_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
}

impl Switch {
    /// Whether the switch applies at `now_ms`: engaged, not released, and not
    /// past its expiry (even before the expiry task has recorded it).
    pub fn in_force(&self, now_ms: u64) -> bool {
        self.ended.is_none() && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }

    /// The switch as policies see it under `data.killswitch.active`.
    pub fn to_policy_json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "id": self.id,
            "scope": self.scope,
            "mode": self.mode.as_str(),
            "reason": self.reason,
            "engaged_by": self.engaged_by,
            "engaged_at": rfc3339_ms(self.engaged_at_ms),
        });
        if let (Some(at), Some(object)) = (self.expires_at_ms, value.as_object_mut()) {
            object.insert("expires_at".into(), rfc3339_ms(at).into());
        }
        value
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn rfc3339_ms(ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms);
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The published switch set that every check reads, lock-free.
#[derive(Debug)]
pub struct KillSwitches {
    current: ArcSwap<SwitchIndex>,
}

impl KillSwitches {
    pub fn new(index: SwitchIndex) -> Self {
        Self {
            current: ArcSwap::from_pointee(index),
        }
    }

    /// The index new checks use.
    pub fn current(&self) -> Arc<SwitchIndex> {
        self.current.load_full()
    }

    pub fn publish(&self, index: SwitchIndex) {
        self.current.store(Arc::new(index));
    }

    pub fn publish_arc(&self, index: Arc<SwitchIndex>) {
        self.current.store(index);
    }
}
