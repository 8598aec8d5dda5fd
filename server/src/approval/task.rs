//! The approval record: one per task, holding the request as bound, its
//! state, and, once approved, the approval and its uses. One record per task
//! keeps every change a compare-and-swap on one key, locally and in etcd.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::approval_requirement::Requirement;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
        }
    }

    pub const ALL: [State; 5] = [
        State::Pending,
        State::Approved,
        State::Denied,
        State::Expired,
        State::Cancelled,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at_ms: u64,
    pub by: String,
    pub reason: String,
}

/// An approval given for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub approved_at: String,
    pub approved_until: String,
    pub approved_until_ms: u64,
    pub uses: u32,
    pub used: u32,
    /// The JWS handed to the platform.
    pub state: String,
    /// SHA-256 of `state`, hex: a presented state is accepted only if it is
    /// byte for byte the one issued.
    pub state_sha256: String,
    pub approver: String,
    pub revoked: Option<Revocation>,
    /// The decisions that used it.
    pub used_by: Vec<String>,
}

impl Grant {
    pub fn uses_left(&self) -> u32 {
        self.uses.saturating_sub(self.used)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    /// Increases with every change; replicas keep the highest.
    pub version: u64,
    pub state: State,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub evaluation_id: String,
    pub platform: String,
    pub agent_id: String,
    pub principal_type: String,
    pub principal_id: String,
    pub action: String,
    pub resource: String,
    /// The request as bound (`binding::bound`).
    pub request: Json,
    pub binding_hash: String,
    pub requirement: Requirement,
    pub policy_reasons: Vec<String>,
    pub justification: String,
    pub requested_by: String,
    pub decided_at_ms: Option<u64>,
    pub decided_by: Option<String>,
    pub note: String,
    pub grant: Option<Grant>,
}

impl Task {
    pub fn principal(&self) -> String {
        format!("{}:{}", self.principal_type, self.principal_id)
    }

    /// Whether `self` supersedes `other` (the same task): replicas can see
    /// one change twice or out of order, and keep the later one.
    pub fn newer_than(&self, other: &Task) -> bool {
        self.version > other.version
    }

    /// When the record may be dropped: an ended task after `retention`, an
    /// approved one once its approval has also ended.
    pub fn prunable_at_ms(&self, retention_ms: u64) -> Option<u64> {
        let ended = match (self.state, &self.grant) {
            (State::Pending, _) => return None,
            (State::Approved, Some(grant)) => grant.approved_until_ms,
            _ => self.decided_at_ms.unwrap_or(self.expires_at_ms),
        };
        Some(ended.saturating_add(retention_ms))
    }
}

/// The task id an approval id names: `apr_<task suffix><random hex>`.
pub fn task_of(approval_id: &str) -> Option<String> {
    let rest = approval_id.strip_prefix("apr_")?;
    let suffix = rest.get(..TASK_SUFFIX_LEN)?;
    Some(format!("arq_{suffix}"))
}

/// Length of a task id after `arq_`: 16 bytes of URL-safe base64.
pub const TASK_SUFFIX_LEN: usize = 22;
