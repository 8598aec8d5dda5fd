//! Kinds of state kept as small records by id, alike on every replica:
//! kill switches now; approvals and limit state next. A kind implements
//! `RecordKind` (its apply step) and is registered with the replication
//! backend; the backend's code (etcd keys, bootstrap, watch, resync) stays
//! the same for every kind.

use std::time::SystemTime;

use super::ControlError;

/// One record as replicated: its id and its serialised value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub value: Vec<u8>,
}

/// How one kind of record is held on a replica. Every method is
/// synchronous and may block (store writes): backends call it on a
/// blocking thread. Applying must be idempotent, since a record can reach a
/// replica more than once (its own write, then the watch).
pub trait RecordKind: Send + Sync + std::fmt::Debug + 'static {
    /// Names the kind in keys: etcd holds `{prefix}/{name}/{id}`.
    fn name(&self) -> &'static str;
    /// A record as people call it, in messages and audit records.
    fn noun(&self) -> &'static str;
    /// Every record this replica holds (ended ones included), to publish
    /// into a cluster that lacks them.
    fn local(&self) -> Result<Vec<Record>, ControlError>;
    /// Makes the records in force here exactly this replica's own updated
    /// with `shared` (the cluster's), all at once; clears a `fail`.
    fn resync(&self, shared: &[Vec<u8>], now: SystemTime) -> Result<(), ControlError>;
    /// Applies one record from the cluster: what changed, for the audit
    /// chain, or `None` when it changed nothing.
    fn apply(
        &self,
        value: &[u8],
        now: SystemTime,
    ) -> Result<Option<serde_json::Value>, ControlError>;
    /// A record could not be applied: fail closed (for kill switches,
    /// every check is denied) until `resync` succeeds.
    fn fail(&self, reason: String);
    /// Whether `fail` is in effect, and why.
    fn failed(&self) -> Option<String>;
}
