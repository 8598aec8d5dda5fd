//! Replay: what a candidate bundle would have decided on recorded checks.
//!
//! Each decision record in range is read back into its request and the
//! candidate's policy evaluated on it, bound to a given pair of snapshots
//! (the active generation's, online; files, offline). Kill switches, stale
//! data, limits and approvals are not policy and are not applied. The same
//! code runs on a server (`ReplayBundle`) and in `wardenctl bundle replay
//! --audit-file`, so the two agree.

mod record;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use record::{Recorded, Settled};
use report::differ;
pub use report::{Change, Group, Report, action_pattern};

use crate::decision::{Decision, policy_decision};
use crate::engine::BindError;
use crate::generation::{Generation, LoadedPolicy, MaxAge};
use crate::giveway::GiveWay;
use crate::snapshot::Snapshot;
use warden_audit::Entry;
use warden_proto::v1 as pb;

/// Which records a replay reads.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// First sequence number (0: the first stored).
    pub from_seq: u64,
    /// Last sequence number (0: the head).
    pub to_seq: u64,
    /// Only records at or after this time.
    pub since: Option<time::OffsetDateTime>,
    pub platform: Option<String>,
    pub agent: Option<String>,
    /// Most decision records taken (0: no limit); later ones are not read.
    pub limit: u64,
}

impl Selection {
    fn wants(&self, record: &Recorded) -> bool {
        self.platform
            .as_ref()
            .is_none_or(|platform| *platform == record.platform)
            && self
                .agent
                .as_ref()
                .is_none_or(|agent| *agent == record.agent_id)
            && self.since.is_none_or(|since| record.time >= since)
    }
}

/// The candidate (and, for `--as-recorded-policy`, the active bundle),
/// bound to the snapshots decisions are replayed with.
#[derive(Debug)]
pub struct Replayer {
    candidate: Generation,
    baseline: Option<Generation>,
}

/// What replaying one record found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The candidate decides as the baseline did.
    Unchanged,
    /// It decides otherwise.
    Changed(Box<Change>),
    /// The record's input was redacted at a path the policy may read.
    NotReplayable { path: String },
    /// A kill switch, stale data, a limit or an approval settled the
    /// recorded decision, so it says nothing of the policy (compared only
    /// with a baseline).
    OutsidePolicy(Settled),
}

impl Replayer {
    /// Binds `candidate` (and `baseline`) to the snapshots. No kill switch
    /// is in `data.killswitch` and no snapshot goes stale.
    pub fn new(
        candidate: Arc<LoadedPolicy>,
        baseline: Option<Arc<LoadedPolicy>>,
        identity: Arc<Snapshot>,
        entitlements: Arc<Snapshot>,
    ) -> Result<Self, BindError> {
        let bind = |policy: Arc<LoadedPolicy>| {
            Generation::build(
                0,
                policy,
                identity.clone(),
                entitlements.clone(),
                MaxAge::default(),
            )
        };
        Ok(Self {
            candidate: bind(candidate)?,
            baseline: baseline.map(bind).transpose()?,
        })
    }

    pub fn candidate(&self) -> &LoadedPolicy {
        &self.candidate.policy
    }

    /// `report` as `ReplayBundle`'s last message, naming what was replayed
    /// against (`active_revision`: the bundle serving, if any).
    pub fn summary(&self, report: &Report, top: usize, active_revision: &str) -> pb::ReplaySummary {
        let mut summary = report.summary(top);
        summary.candidate_revision = self.candidate.policy.revision.clone();
        summary.candidate_digest = self.candidate.policy.digest.clone();
        summary.active_revision = active_revision.to_owned();
        summary.snapshot_versions = [
            ("identity", &self.candidate.identity),
            ("entitlements", &self.candidate.entitlements),
        ]
        .into_iter()
        .map(|(kind, snapshot)| (kind.to_owned(), snapshot.version.clone()))
        .collect();
        summary
    }

    /// Replays one record.
    pub fn replay(&self, record: &Recorded) -> Replayed {
        let outcome = |outcome| Replayed {
            outcome,
            drifted: false,
        };
        // A redacted input is replayed only where no policy that decides
        // here could read what was taken out.
        let policies = std::iter::once(&self.candidate).chain(&self.baseline);
        for generation in policies {
            if let Some(path) = record.redacted.iter().find(|path| {
                generation
                    .policy
                    .reads
                    .as_ref()
                    .is_none_or(|reads| reads.reads(path))
            }) {
                return outcome(Outcome::NotReplayable { path: path.clone() });
            }
        }
        let recorded = Decision::recorded(record.verdict, record.reasons.clone());
        let (baseline, drifted) = match &self.baseline {
            Some(baseline) => {
                let now = policy_decision(&record.request, baseline);
                let drifted = record.settled.is_none() && differ(&recorded, &now);
                (now, drifted)
            }
            None => match record.settled {
                Some(settled) => return outcome(Outcome::OutsidePolicy(settled)),
                None => (recorded, false),
            },
        };
        let new = policy_decision(&record.request, &self.candidate);
        let outcome = if differ(&baseline, &new) {
            Outcome::Changed(Box::new(report::change(record, &baseline, new)))
        } else {
            Outcome::Unchanged
        };
        Replayed { outcome, drifted }
    }
}

/// One record replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub outcome: Outcome,
    /// With a baseline: the active bundle now decides otherwise than was
    /// recorded (the snapshots, or the bundle, changed since).
    pub drifted: bool,
}

/// Why a replay stopped before its range ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("the replay was cancelled")]
    Cancelled,
    #[error("reading the audit records: {0}")]
    Source(String),
}

/// What the caller hears of a running replay.
pub trait Progress {
    /// After every `every` records read (and at the end).
    fn progress(&mut self, report: &Report) -> Result<(), ReplayError>;
    /// Every changed decision, as it is found.
    fn changed(&mut self, change: &Change) -> Result<(), ReplayError>;
}

/// How often `Progress::progress` is told, in records read.
pub const PROGRESS_EVERY: u64 = 10_000;

/// Replays the decision records among `lines` (audit entries, in chain
/// order) that `selection` wants. A cancelled replay is `Cancelled`.
pub fn run<E: std::fmt::Display>(
    lines: impl Iterator<Item = Result<String, E>>,
    selection: &Selection,
    replayer: &Replayer,
    mut give_way: Option<GiveWay>,
    cancel: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<Report, ReplayError> {
    let mut report = Report::new(replayer.baseline.is_some());
    let to = if selection.to_seq == 0 {
        u64::MAX
    } else {
        selection.to_seq
    };
    // Told at once, so a caller knows the replay started.
    progress.progress(&report)?;
    for line in lines {
        if cancel.load(Ordering::Relaxed) {
            return Err(ReplayError::Cancelled);
        }
        if let Some(give_way) = &mut give_way {
            give_way.tick();
        }
        let line = line.map_err(|e| ReplayError::Source(e.to_string()))?;
        if line.is_empty() {
            continue;
        }
        let entry = match Entry::parse(&line) {
            Ok(entry) => entry,
            Err(message) => {
                report.unreadable(report.read + 1, message);
                continue;
            }
        };
        if entry.seq < selection.from_seq {
            continue;
        }
        if entry.seq > to {
            break;
        }
        if selection.limit > 0 && report.matched >= selection.limit {
            report.limited = true;
            break;
        }
        report.read += 1;
        if report.read.is_multiple_of(PROGRESS_EVERY) {
            progress.progress(&report)?;
        }
        let recorded = match Recorded::from_record(entry.seq, &entry.record) {
            Ok(Some(recorded)) => recorded,
            Ok(None) => continue,
            Err(message) => {
                report.unreadable(entry.seq, message);
                continue;
            }
        };
        if !selection.wants(&recorded) {
            continue;
        }
        report.matched += 1;
        let replayed = replayer.replay(&recorded);
        if let Outcome::Changed(change) = &replayed.outcome {
            progress.changed(change)?;
        }
        report.add(entry.seq, replayed);
    }
    progress.progress(&report)?;
    Ok(report)
}
