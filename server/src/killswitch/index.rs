//! The engaged switches, indexed so that matching a check costs a handful of
//! hash lookups whatever the number of switches.
//!
//! Each switch is filed under one dimension of its scope — the most
//! selective it names — and a check looks up only its own values in each
//! dimension; candidates found that way are then matched in full.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Mode, Switch, action_pattern_matches};
use crate::request::{CheckRequest, InputPath};

/// What the kill-switch stage found for a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit<'a> {
    /// This switch denies the check (the earliest engaged, when several do).
    Switch(&'a Switch),
    /// The switch state could not be read; every check is denied.
    Unavailable(&'a str),
}

#[derive(Debug, Default)]
struct Postings {
    /// Keyed by session id; checked first, as a session is narrower than
    /// the agent that runs it.
    session: HashMap<Box<str>, Vec<u32>>,
    agent: HashMap<Box<str>, Vec<u32>>,
    principal: HashMap<Box<str>, Vec<u32>>,
    action: HashMap<Box<str>, Vec<u32>>,
    resource_type: HashMap<Box<str>, Vec<u32>>,
    platform: HashMap<Box<str>, Vec<u32>>,
    /// `documents.*` filed as `documents.`.
    action_prefix: HashMap<Box<str>, Vec<u32>>,
    /// Switches whose scope names nothing to look up: global ones, and those
    /// whose only constraint is the action `*`.
    everywhere: Vec<u32>,
}

/// An immutable set of engaged switches.
#[derive(Debug, Default)]
pub struct SwitchIndex {
    /// Engage order (ids are UUIDv7, so sorting by id is sorting by time).
    switches: Vec<Arc<Switch>>,
    postings: Postings,
    read_verbs: Arc<[String]>,
    /// Where a check's session id is read from (`[limits] session_path`).
    session_path: Arc<InputPath>,
    unavailable: Option<String>,
}

impl SwitchIndex {
    /// Indexes the switches among `switches` that have not ended.
    pub fn build(
        switches: impl IntoIterator<Item = Arc<Switch>>,
        read_verbs: Arc<[String]>,
        session_path: Arc<InputPath>,
    ) -> Self {
        let mut switches: Vec<Arc<Switch>> =
            switches.into_iter().filter(|s| s.ended.is_none()).collect();
        switches.sort_by(|a, b| a.id.cmp(&b.id));
        let mut postings = Postings::default();
        for (position, switch) in switches.iter().enumerate() {
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            let scope = &switch.scope;
            let action = scope.action.as_deref().filter(|a| *a != "*");
            let exact_action = action.filter(|a| !a.ends_with('*'));
            let prefix = action.and_then(|a| a.strip_suffix('*'));
            let (map, key) = if let Some(session) = &scope.session_id {
                (&mut postings.session, session.as_str())
            } else if let Some(agent) = &scope.agent_id {
                (&mut postings.agent, agent.as_str())
            } else if let Some(principal) = &scope.principal_id {
                (&mut postings.principal, principal.as_str())
            } else if let Some(action) = exact_action {
                (&mut postings.action, action)
            } else if let Some(kind) = &scope.resource_type {
                (&mut postings.resource_type, kind.as_str())
            } else if let Some(platform) = &scope.platform {
                (&mut postings.platform, platform.as_str())
            } else if let Some(prefix) = prefix {
                (&mut postings.action_prefix, prefix)
            } else {
                postings.everywhere.push(position);
                continue;
            };
            map.entry(key.into()).or_default().push(position);
        }
        Self {
            switches,
            postings,
            read_verbs,
            session_path,
            unavailable: None,
        }
    }

    /// An index that denies every check because the switch state is unknown.
    pub fn unavailable(reason: String) -> Self {
        Self {
            unavailable: Some(reason),
            ..Self::default()
        }
    }

    /// Why the switch state is unknown, when it is.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The switches in force at `now_ms`, in engage order.
    pub fn in_force(&self, now_ms: u64) -> impl Iterator<Item = &Arc<Switch>> {
        self.switches.iter().filter(move |s| s.in_force(now_ms))
    }

    /// Every indexed switch, expired or not.
    pub fn switches(&self) -> &[Arc<Switch>] {
        &self.switches
    }

    pub fn read_verbs(&self) -> &Arc<[String]> {
        &self.read_verbs
    }

    pub fn session_path(&self) -> &Arc<InputPath> {
        &self.session_path
    }

    /// The earliest expiry among the indexed switches.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.switches.iter().filter_map(|s| s.expires_at_ms).min()
    }

    /// The switch that stops `request` at `now_ms`, if any.
    pub fn check(&self, request: &CheckRequest, now_ms: u64) -> Option<Hit<'_>> {
        if let Some(reason) = &self.unavailable {
            return Some(Hit::Unavailable(reason));
        }
        if self.switches.is_empty() {
            return None;
        }
        let postings = &self.postings;
        let action = request.action.name.as_str();
        // Resolved once, and only when a session-scoped switch is engaged,
        // so that other checks pay nothing for sessions.
        let session = if postings.session.is_empty() {
            None
        } else {
            self.session_path.get(request).and_then(|v| v.as_text())
        };
        let mut best: Option<u32> = None;
        let mut consider = |positions: Option<&Vec<u32>>| {
            for &position in positions.into_iter().flatten() {
                if best.is_some_and(|b| b <= position) {
                    // Lists are in engage order: nothing later here can win.
                    break;
                }
                if self
                    .switches
                    .get(position as usize)
                    .is_some_and(|s| self.stops(s, request, session, now_ms))
                {
                    best = Some(position);
                    break;
                }
            }
        };
        if let Some(session) = session {
            consider(postings.session.get(session));
        }
        consider(postings.agent.get(request.agent.id.as_str()));
        consider(postings.principal.get(request.principal.id.as_str()));
        consider(postings.action.get(action));
        consider(postings.resource_type.get(request.resource.kind.as_str()));
        consider(postings.platform.get(request.platform.as_str()));
        if !postings.action_prefix.is_empty() {
            for (end, _) in action.match_indices('.') {
                consider(postings.action_prefix.get(&action[..=end]));
            }
        }
        consider(Some(&postings.everywhere));
        best.and_then(|p| self.switches.get(p as usize))
            .map(|s| Hit::Switch(s.as_ref()))
    }

    /// `session`: the check's session id, resolved only when some switch is
    /// scoped to a session (every such switch is filed under `session`, so
    /// a `None` here never meets one that names a session).
    fn stops(
        &self,
        switch: &Switch,
        request: &CheckRequest,
        session: Option<&str>,
        now_ms: u64,
    ) -> bool {
        let scope = &switch.scope;
        let field = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        switch.in_force(now_ms)
            && scope
                .session_id
                .as_deref()
                .is_none_or(|w| session == Some(w))
            && field(&scope.platform, &request.platform)
            && field(&scope.agent_id, &request.agent.id)
            && field(&scope.principal_id, &request.principal.id)
            && field(&scope.resource_type, &request.resource.kind)
            && scope
                .action
                .as_deref()
                .is_none_or(|p| action_pattern_matches(p, &request.action.name))
            && match switch.mode {
                Mode::DenyAll => true,
                Mode::DenyMutating => !self.is_read(&request.action.name),
            }
    }

    /// Whether an action only reads: its last segment is a read verb.
    fn is_read(&self, action: &str) -> bool {
        let verb = action.rsplit('.').next().unwrap_or(action);
        self.read_verbs.iter().any(|v| v == verb)
    }
}

#[cfg(test)]
mod tests;
