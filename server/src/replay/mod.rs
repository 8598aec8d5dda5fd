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
                report.unreadable(format!("the entry after {}: {message}", report.last_seq()));
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
                // A redaction can take what a request cannot do without (a
                // whole `context`, `principal.id`): not replayable, by path.
                match record::first_redacted(&entry.record) {
                    Some(path) => {
                        report.matched += 1;
                        let outcome = Outcome::NotReplayable { path };
                        report.add(
                            entry.seq,
                            Replayed {
                                outcome,
                                drifted: false,
                            },
                        );
                    }
                    None => report.unreadable(format!("entry {}: {message}", entry.seq)),
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Bundle;
    use crate::engine::EngineOptions;
    use crate::snapshot::SnapshotKind;
    use serde_json::json;

    struct Quiet;

    impl Progress for Quiet {
        fn progress(&mut self, _: &Report) -> Result<(), ReplayError> {
            Ok(())
        }
        fn changed(&mut self, _: &Change) -> Result<(), ReplayError> {
            Ok(())
        }
    }

    fn replayer(rego: &str) -> Replayer {
        let files = [
            (".manifest".to_owned(), br#"{"roots": ["warden"]}"#.to_vec()),
            ("warden/authz/p.rego".to_owned(), rego.as_bytes().to_vec()),
        ]
        .into_iter()
        .collect();
        let bundle = Bundle::from_files(files).unwrap_or_else(|e| unreachable!("{e}"));
        let policy = LoadedPolicy::compile(&bundle, &EngineOptions::default())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/demo");
        let snapshot = |kind, name: &str| {
            let bytes = std::fs::read(demo.join(name)).unwrap_or_default();
            Arc::new(Snapshot::parse(kind, &bytes, 256).unwrap_or_else(|e| unreachable!("{e}")))
        };
        Replayer::new(
            Arc::new(policy),
            None,
            snapshot(SnapshotKind::Identity, "identity.json"),
            snapshot(SnapshotKind::Entitlements, "entitlements.json"),
        )
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn line(seq: u64, record: serde_json::Value) -> Result<String, String> {
        let canonical = warden_audit::canonical(&record);
        Ok(Entry::seal_line(seq, warden_audit::GENESIS, &canonical).0)
    }

    fn decision(input: serde_json::Value, redacted: &[&str]) -> serde_json::Value {
        json!({
            "type": "decision", "decision_id": "d", "time": "2026-12-04T10:00:00Z",
            "platform": "p", "agent_id": "a", "principal": "u", "resource": "doc",
            "decision": "deny", "reasons": ["denied_by_policy"], "kill_switch_id": null,
            "input": input, "redacted": redacted,
        })
    }

    #[test]
    fn a_record_redaction_left_unreadable_is_not_replayable_by_path() {
        let input = json!({
            "platform": "p", "agent": {"id": "a", "attributes": {}},
            "principal": {"id": "u", "attributes": {}},
            "action": {"name": "docs.read", "attributes": {}},
            "resource": {"type": "doc", "attributes": {}},
        });
        let mut whole = input.clone();
        whole["context"] = json!({});
        let lines = vec![
            // `context` dropped whole: no request can be read back.
            line(1, decision(input.clone(), &["context"])),
            // Not redacted, and broken: unreadable.
            line(2, decision(input, &[])),
            // Whole, and decided otherwise now.
            line(3, decision(whole, &[])),
            Ok("not an entry".to_owned()),
        ];
        let report = run(
            lines.into_iter(),
            &Selection::default(),
            &replayer("package warden.authz\n\ndecision := true\n"),
            None,
            &AtomicBool::new(false),
            &mut Quiet,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let summary = report.summary(10);
        assert_eq!(
            summary.not_replayable_paths,
            [("context".to_owned(), 1)].into()
        );
        assert_eq!((summary.replayed, summary.changed), (1, 1));
        assert_eq!(summary.unreadable, 2, "{:?}", summary.unreadable_examples);
        assert!(summary.unreadable_examples[0].starts_with("entry 2: input `context`"));
        assert!(summary.unreadable_examples[1].starts_with("the entry after 3"));
    }

    #[test]
    fn a_cancelled_replay_stops() {
        let lines = vec![line(1, decision(json!({}), &[]))];
        let cancelled = AtomicBool::new(true);
        let result = run(
            lines.into_iter(),
            &Selection::default(),
            &replayer("package warden.authz\n\ndecision := true\n"),
            None,
            &cancelled,
            &mut Quiet,
        );
        assert_eq!(result.err(), Some(ReplayError::Cancelled));
    }
}
