//! Audit records: one per decision and per admin event, chained by SHA-256
//! (format in the `warden-audit` crate) and stored in sled.
//!
//! The decision path builds a record and hands it to a bounded queue; one
//! writer thread seals records into the chain in queue order, writes them in
//! groups, and flushes per the durability mode.

pub mod config;
pub mod log;
pub mod record;
mod writer;

use std::time::Duration;

pub use log::{AuditLog, VerifyReport};
pub use record::Redaction;
pub use writer::{AuditError, Auditor, CommitObserver, Counters, Waiter};

/// When a record is on disk relative to the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed within `flush_interval` of being written; the response does
    /// not wait.
    Async,
    /// The response waits until its record is flushed (group commit).
    Sync,
    /// No records (benchmarks, tests).
    Off,
}

/// What a check does when the writer's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Wait for room.
    Block,
    /// Deny the check (`audit_queue_full`), counted as refused.
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub durability: Durability,
    pub queue_capacity: usize,
    pub on_full: OnFull,
    pub flush_interval: Duration,
    pub max_age: Option<Duration>,
    /// 0: no limit.
    pub max_records: u64,
    /// Bytes of stored entries; 0: no limit.
    pub max_bytes: u64,
    pub retention_interval: Duration,
    pub redact_drop: Vec<Vec<String>>,
    pub redact_hash: Vec<Vec<String>>,
    /// In a cluster, this replica's id, carried by every record so that
    /// merged exports say where each decision was made.
    pub replica: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Async,
            queue_capacity: 65_536,
            on_full: OnFull::Block,
            flush_interval: Duration::from_millis(5),
            max_age: None,
            max_records: 0,
            max_bytes: 0,
            retention_interval: Duration::from_secs(60),
            replica: None,
            redact_drop: Vec::new(),
            redact_hash: Vec::new(),
        }
    }
}
