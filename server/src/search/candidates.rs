//! Candidates for a bundle that declares no generator, read from the
//! snapshots: every identity user (or entitlement subject of the type) for
//! subjects, every resource id of the type in the entitlements for
//! resources, the action names the entitlements and agent grants spell out
//! for actions. Complete for what the snapshots name, and therefore a scan;
//! bundles with many users should declare generators.

use std::collections::BTreeSet;

use regorus::Value;

use super::{Candidate, Target};
use crate::request::CheckRequest;

/// The fallback candidates for `target`, sorted, without repeats.
pub fn from_snapshots(
    target: Target,
    query: &CheckRequest,
    identity: &Value,
    entitlements: &Value,
) -> Vec<Candidate> {
    let subjects = entitlements["subjects"].as_object().ok();
    let mut found = BTreeSet::new();
    let mut every = false;
    match target {
        Target::Subjects => {
            let kind = query.principal.kind.as_deref().unwrap_or("user");
            if kind == "user"
                && let Ok(users) = identity["users"].as_object()
            {
                found.extend(users.keys().filter_map(text));
            }
            let prefix = format!("{kind}:");
            for subject in subjects.into_iter().flat_map(|s| s.keys()) {
                if let Some(id) =
                    text(subject).and_then(|s| s.strip_prefix(&prefix).map(str::to_owned))
                {
                    found.insert(id);
                }
            }
        }
        Target::Resources => {
            let kind = Value::from(query.resource.kind.as_str());
            for types in subjects.into_iter().flat_map(|s| s.values()) {
                if let Ok(keys) = types[&kind].as_object() {
                    for key in keys.keys().filter_map(text) {
                        if key == "*" {
                            every = true;
                        } else {
                            found.insert(key);
                        }
                    }
                }
            }
        }
        Target::Actions => {
            let names = |patterns: &Value, found: &mut BTreeSet<String>| {
                if let Ok(patterns) = patterns.as_array() {
                    found.extend(
                        patterns
                            .iter()
                            .filter_map(text)
                            .filter(|name| !name.contains('*')),
                    );
                }
            };
            for types in subjects.into_iter().flat_map(|s| s.values()) {
                for keys in types.as_object().into_iter().flat_map(|t| t.values()) {
                    for patterns in keys.as_object().into_iter().flat_map(|k| k.values()) {
                        names(patterns, &mut found);
                    }
                }
            }
            if let Ok(agents) = identity["agents"].as_object() {
                for agent in agents.values() {
                    names(&agent["grants"], &mut found);
                }
            }
        }
    }
    every
        .then_some(Candidate::Every)
        .into_iter()
        .chain(found.into_iter().map(Candidate::Value))
        .collect()
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string()),
        _ => None,
    }
}
