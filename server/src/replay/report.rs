//! Counting a replay's outcomes, and grouping its changes.

use std::collections::{BTreeMap, HashMap};

use warden_proto::v1 as pb;

use super::{Outcome, Recorded, Replayed};
use crate::decision::Decision;

/// One changed decision, as `ReplayBundle` streams it.
pub type Change = pb::ReplayChange;

/// Example decision ids kept per group.
const EXAMPLES: usize = 3;
/// Example unreadable records kept.
const UNREADABLE_EXAMPLES: usize = 5;

/// The change `record` shows: `old` became `new`.
pub(super) fn change(record: &Recorded, old: &Decision, new: Decision) -> Change {
    Change {
        seq: record.seq,
        decision_id: record.decision_id.clone(),
        time: crate::audit::record::rfc3339(record.time.into()),
        platform: record.platform.clone(),
        agent_id: record.agent_id.clone(),
        principal: record.principal.clone(),
        action: record.request.action.name.clone(),
        resource: record.resource.clone(),
        old_decision: old.verdict.as_str().to_owned(),
        old_reasons: old.reasons.clone(),
        new_decision: new.verdict.as_str().to_owned(),
        new_reasons: new.reasons,
    }
}

/// The action's family: `accounts.permissions.grant` → `accounts.permissions.*`.
pub fn action_pattern(action: &str) -> String {
    match action.rsplit_once('.') {
        Some((family, _)) => format!("{family}.*"),
        None => action.to_owned(),
    }
}

/// Changes alike: same old → new outcome, new reasons, agent and action
/// family.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GroupKey {
    old: String,
    new: String,
    reasons: Vec<String>,
    agent_id: String,
    action_pattern: String,
}

/// A group of changes, with its first examples.
pub type Group = pb::ReplayGroup;

/// Running totals of a replay.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Entries read in range, decisions or not.
    pub read: u64,
    /// Decision records the selection took.
    pub matched: u64,
    /// Stopped at the selection's limit.
    pub limited: bool,
    unchanged: u64,
    outcome_changed: u64,
    reasons_changed: u64,
    not_replayable: BTreeMap<String, u64>,
    outside_policy: BTreeMap<&'static str, u64>,
    unreadable: u64,
    unreadable_examples: Vec<String>,
    /// With a baseline: records the active bundle now decides otherwise
    /// than recorded (the data, or the bundle, changed since).
    data_changed: Option<u64>,
    groups: HashMap<GroupKey, (u64, Vec<String>)>,
    first_seq: Option<u64>,
    last_seq: u64,
}

impl Report {
    pub(super) fn new(baseline: bool) -> Self {
        Self {
            data_changed: baseline.then_some(0),
            ..Self::default()
        }
    }

    /// Records whose decision was evaluated and compared.
    pub fn replayed(&self) -> u64 {
        self.unchanged + self.changed()
    }

    pub fn changed(&self) -> u64 {
        self.outcome_changed + self.reasons_changed
    }

    pub fn not_replayable(&self) -> u64 {
        self.not_replayable.values().sum()
    }

    pub(super) fn unreadable(&mut self, example: String) {
        self.unreadable += 1;
        if self.unreadable_examples.len() < UNREADABLE_EXAMPLES {
            self.unreadable_examples.push(example);
        }
    }

    /// The last decision record counted.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub(super) fn add(&mut self, seq: u64, Replayed { outcome, drifted }: Replayed) {
        self.first_seq.get_or_insert(seq);
        self.last_seq = seq;
        match outcome {
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Changed(change) => {
                if change.old_decision == change.new_decision {
                    self.reasons_changed += 1;
                } else {
                    self.outcome_changed += 1;
                }
                let key = GroupKey {
                    old: change.old_decision,
                    new: change.new_decision,
                    reasons: change.new_reasons,
                    agent_id: change.agent_id,
                    action_pattern: action_pattern(&change.action),
                };
                let (count, examples) = self.groups.entry(key).or_default();
                *count += 1;
                if examples.len() < EXAMPLES {
                    examples.push(change.decision_id);
                }
            }
            Outcome::NotReplayable { path } => *self.not_replayable.entry(path).or_default() += 1,
            Outcome::OutsidePolicy(settled) => {
                *self.outside_policy.entry(settled.as_str()).or_default() += 1;
            }
        }
        if drifted && let Some(count) = &mut self.data_changed {
            *count += 1;
        }
    }

    /// The report as `ReplayBundle`'s last message: the `top` largest
    /// groups (ties by key), biggest first.
    pub fn summary(&self, top: usize) -> pb::ReplaySummary {
        let mut groups: Vec<(&GroupKey, &(u64, Vec<String>))> = self.groups.iter().collect();
        groups.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
        pb::ReplaySummary {
            read: self.read,
            replayed: self.replayed(),
            unchanged: self.unchanged,
            changed: self.changed(),
            outcome_changed: self.outcome_changed,
            reasons_changed: self.reasons_changed,
            not_replayable: self.not_replayable(),
            not_replayable_paths: self.not_replayable.clone().into_iter().collect(),
            outside_policy: self
                .outside_policy
                .iter()
                .map(|(kind, count)| ((*kind).to_owned(), *count))
                .collect(),
            unreadable: self.unreadable,
            unreadable_examples: self.unreadable_examples.clone(),
            as_recorded_policy: self.data_changed.is_some(),
            data_changed: self.data_changed.unwrap_or_default(),
            first_seq: self.first_seq.unwrap_or_default(),
            last_seq: self.last_seq,
            group_count: self.groups.len() as u64,
            groups: groups
                .into_iter()
                .take(top)
                .map(|(key, (count, examples))| Group {
                    old_decision: key.old.clone(),
                    new_decision: key.new.clone(),
                    new_reasons: key.reasons.clone(),
                    agent_id: key.agent_id.clone(),
                    action_pattern: key.action_pattern.clone(),
                    count: *count,
                    example_decision_ids: examples.clone(),
                })
                .collect(),
            limited: self.limited,
            ..pb::ReplaySummary::default()
        }
    }

    /// The progress message.
    pub fn progress(&self) -> pb::ReplayProgress {
        pb::ReplayProgress {
            read: self.read,
            replayed: self.replayed(),
            changed: self.changed(),
            not_replayable: self.not_replayable(),
            last_seq: self.last_seq,
        }
    }
}

/// Whether two decisions differ, in outcome or reasons.
pub(super) fn differ(a: &Decision, b: &Decision) -> bool {
    a.verdict != b.verdict || a.reasons != b.reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Verdict;

    #[test]
    fn action_families() {
        assert_eq!(
            action_pattern("accounts.permissions.grant"),
            "accounts.permissions.*"
        );
        assert_eq!(action_pattern("docs.read"), "docs.*");
        assert_eq!(action_pattern("ping"), "ping");
    }

    #[test]
    fn verdict_names_read_back() {
        for verdict in [Verdict::Allow, Verdict::Deny, Verdict::RequireApproval] {
            assert_eq!(Verdict::parse(verdict.as_str()), Some(verdict));
        }
        assert_eq!(Verdict::parse("maybe"), None);
    }
}
