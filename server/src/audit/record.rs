//! Building audit records. Records are JSON objects; their canonical
//! encoding is what the chain hashes.

use std::time::SystemTime;

use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};

use crate::decision::Decision;
use crate::generation::Generation;
use crate::request::CheckRequest;

/// Input paths removed, or replaced by their hash, before an input is
/// stored. `input_sha256` is computed before redaction.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    pub drop: Vec<Vec<String>>,
    pub hash: Vec<Vec<String>>,
}

impl Redaction {
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.hash.is_empty()
    }

    /// Redacts `input` in place; returns the paths that were present.
    pub fn apply(&self, input: &mut Json) -> Vec<String> {
        let mut applied = Vec::new();
        for path in &self.drop {
            if let Some((last, parent)) = path.split_last()
                && let Some(Json::Object(object)) = walk(input, parent)
                && object.remove(last).is_some()
            {
                applied.push(path.join("."));
            }
        }
        for path in &self.hash {
            if let Some((last, parent)) = path.split_last()
                && let Some(Json::Object(object)) = walk(input, parent)
                && let Some(value) = object.get_mut(last)
            {
                let digest = Sha256::digest(warden_audit::canonical(value).as_bytes());
                *value = Json::String(format!("sha256:{}", hex::encode(digest)));
                applied.push(path.join("."));
            }
        }
        applied
    }
}

fn walk<'a>(value: &'a mut Json, path: &[String]) -> Option<&'a mut Json> {
    path.iter().try_fold(value, |value, segment| {
        value.as_object_mut()?.get_mut(segment)
    })
}

pub fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What the decision path knows about one decided check.
pub struct DecisionFacts<'a> {
    pub request: &'a CheckRequest,
    pub decision: &'a Decision,
    pub decision_id: &'a str,
    pub generation: &'a Generation,
    pub time: SystemTime,
    pub latency_us: u64,
    pub caller: &'a str,
}

/// The record of one decision, as DESIGN lists its fields.
pub fn decision_record(facts: &DecisionFacts<'_>, redaction: &Redaction) -> Json {
    let request = facts.request;
    let decision = facts.decision;
    let mut input = crate::input::to_json(request);
    let input_sha256 = warden_audit::sha256_canonical(&input);
    let redacted = if redaction.is_empty() {
        Vec::new()
    } else {
        redaction.apply(&mut input)
    };
    let principal = match &request.principal.kind {
        Some(kind) => format!("{kind}:{}", request.principal.id),
        None => request.principal.id.clone(),
    };
    let resource = match &request.resource.id {
        Some(id) => format!("{}:{id}", request.resource.kind),
        None => request.resource.kind.clone(),
    };
    let mut record = Map::new();
    record.insert("type".into(), json!("decision"));
    record.insert("decision_id".into(), json!(facts.decision_id));
    record.insert("time".into(), json!(rfc3339(facts.time)));
    record.insert("platform".into(), json!(request.platform));
    record.insert("agent_id".into(), json!(request.agent.id));
    record.insert("principal".into(), json!(principal));
    record.insert("action".into(), json!(request.action.name));
    record.insert("resource".into(), json!(resource));
    record.insert("decision".into(), json!(decision.verdict.as_str()));
    record.insert("reasons".into(), json!(decision.reasons));
    record.insert(
        "kill_switch_id".into(),
        json!(decision.kill_switch.as_ref().map(|k| k.id.as_str())),
    );
    record.insert(
        "policy_revision".into(),
        json!(facts.generation.policy.revision),
    );
    record.insert(
        "snapshot_versions".into(),
        json!(facts.generation.snapshot_versions()),
    );
    record.insert("input_sha256".into(), json!(input_sha256));
    record.insert("input".into(), input);
    if !redacted.is_empty() {
        record.insert("redacted".into(), json!(redacted));
    }
    record.insert("latency_us".into(), json!(facts.latency_us));
    record.insert("caller".into(), json!(facts.caller));
    if let Some(request_id) = &request.request_id {
        record.insert("request_id".into(), json!(request_id));
    }
    if let Some(shadow) = &decision.shadow {
        record.insert(
            "shadow".into(),
            json!({
                "revision": shadow.revision,
                "decision": shadow.verdict.as_str(),
                "reasons": shadow.reasons,
                "diverged": shadow.diverged,
            }),
        );
    }
    Json::Object(record)
}

/// The record of an admin action (bundle pushed, switch engaged, …).
pub fn admin_record(event: &str, caller: &str, details: Json, time: SystemTime) -> Json {
    json!({
        "type": "admin",
        "event_id": format!("evt-{}", uuid::Uuid::now_v7()),
        "event": event,
        "time": rfc3339(time),
        "caller": caller,
        "details": details,
    })
}

/// Left at the head of the chain when retention removes old records: the
/// remaining chain starts after `anchor_hash`.
pub fn checkpoint_record(
    truncated_before: u64,
    anchor_hash: &str,
    removed: u64,
    time: SystemTime,
) -> Json {
    json!({
        "type": "checkpoint",
        "time": rfc3339(time),
        "truncated_before": truncated_before,
        "anchor_hash": anchor_hash,
        "removed": removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_and_hashes_only_present_paths() {
        let redaction = Redaction {
            drop: vec![vec!["context".into(), "prompt".into()]],
            hash: vec![
                vec!["action".into(), "attributes".into(), "card".into()],
                vec!["action".into(), "missing".into()],
            ],
        };
        let mut input = json!({
            "context": {"prompt": "secret", "ip": "10.0.0.1"},
            "action": {"name": "pay", "attributes": {"card": "4111"}},
        });
        let applied = redaction.apply(&mut input);
        assert_eq!(applied, ["context.prompt", "action.attributes.card"]);
        assert_eq!(input["context"], json!({"ip": "10.0.0.1"}));
        let hashed = input["action"]["attributes"]["card"].as_str().unwrap();
        assert!(hashed.starts_with("sha256:") && hashed.len() == 7 + 64);
        assert!(!input.to_string().contains("4111"));
    }
}
