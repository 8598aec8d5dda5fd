//! Building audit records. Records are JSON objects; their canonical
//! encoding is what the chain hashes.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use warden_audit::ObjectWriter;

use crate::decision::Decision;
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
    pub policy_revision: &'a str,
    pub snapshot_versions: BTreeMap<String, String>,
    pub time: SystemTime,
    pub latency_us: u64,
    pub caller: &'a str,
    /// In a cluster, the replica that decided.
    pub replica: Option<&'a str>,
    /// The approval the check carried, when Warden verified it.
    pub approval: Option<ApprovalIds<'a>>,
}

/// Names the approval a check used, so that its record joins the
/// approval's chain of events (`--chain <evaluation id>`).
#[derive(Debug, Clone, Copy)]
pub struct ApprovalIds<'a> {
    pub approval_id: &'a str,
    pub task_id: &'a str,
    pub evaluation_id: &'a str,
}

/// The record of one decision, as DESIGN lists its fields, in its
/// canonical encoding (what the chain hashes), written directly: this runs
/// on every check.
pub fn decision_record(facts: &DecisionFacts<'_>, redaction: &Redaction) -> String {
    let request = facts.request;
    let decision = facts.decision;
    let input = crate::input::to_json(request);
    let full_input = warden_audit::canonical(&input);
    let input_sha256 = hex::encode(Sha256::digest(full_input.as_bytes()));
    let (stored_input, redacted) = if redaction.is_empty() {
        (full_input, Vec::new())
    } else {
        let mut input = input;
        let redacted = redaction.apply(&mut input);
        (warden_audit::canonical(&input), redacted)
    };
    let principal = match &request.principal.kind {
        Some(kind) => format!("{kind}:{}", request.principal.id),
        None => request.principal.id.clone(),
    };
    let resource = match &request.resource.id {
        Some(id) => format!("{}:{id}", request.resource.kind),
        None => request.resource.kind.clone(),
    };
    let strings = |values: &[String]| Json::from(values.to_vec());

    let mut out = String::with_capacity(stored_input.len() + 768);
    let mut record = ObjectWriter::new(&mut out);
    // Keys in byte order: the encoding is canonical as written.
    record.string("action", &request.action.name);
    record.string("agent_id", &request.agent.id);
    if let Some(ids) = &facts.approval {
        record.string("approval_id", ids.approval_id);
    }
    if let Some(gap) = &decision.audience {
        record.value(
            "audience",
            &json!({
                "members": gap.members,
                "lacking_count": gap.lacking_count,
                "lacking": gap.lacking,
            }),
        );
    }
    record.string("caller", facts.caller);
    record.string("decision", decision.verdict.as_str());
    record.string("decision_id", facts.decision_id);
    if let Some(ids) = &facts.approval {
        record.string("evaluation_id", ids.evaluation_id);
    }
    record.raw("input", &stored_input);
    record.string("input_sha256", &input_sha256);
    match &decision.kill_switch {
        Some(hit) => record.string("kill_switch_id", &hit.id),
        None => record.raw("kill_switch_id", "null"),
    }
    record.raw("latency_us", &facts.latency_us.to_string());
    record.string("platform", &request.platform);
    record.string("policy_revision", facts.policy_revision);
    record.string("principal", &principal);
    record.value("reasons", &strings(&decision.reasons));
    if !redacted.is_empty() {
        record.value("redacted", &strings(&redacted));
    }
    if let Some(replica) = facts.replica {
        record.string("replica", replica);
    }
    if let Some(request_id) = &request.request_id {
        record.string("request_id", request_id);
    }
    record.string("resource", &resource);
    if let Some(shadow) = &decision.shadow {
        record.value(
            "shadow",
            &json!({
                "revision": shadow.revision,
                "decision": shadow.verdict.as_str(),
                "reasons": shadow.reasons,
                "diverged": shadow.diverged,
            }),
        );
    }
    record.value("snapshot_versions", &json!(facts.snapshot_versions));
    if let Some(ids) = &facts.approval {
        record.string("task_id", ids.task_id);
    }
    record.string("time", &rfc3339(facts.time));
    record.string("type", "decision");
    record.finish();
    out
}

/// What the search path knows about one search call.
pub struct SearchFacts<'a> {
    pub search_id: &'a str,
    /// `actions`, `resources` or `subjects`.
    pub target: &'a str,
    /// The checks' shared input, without the field searched for.
    pub query: Json,
    /// Candidates the caller named, if it named them.
    pub candidates: Option<usize>,
    pub results: usize,
    pub evaluated: usize,
    /// The candidate this page started at.
    pub page_start: usize,
    pub complete: bool,
    pub policy_revision: &'a str,
    pub snapshot_versions: BTreeMap<String, String>,
    pub time: SystemTime,
    pub caller: &'a str,
    pub replica: Option<&'a str>,
}

/// The record of one search call: one per call, not one per candidate,
/// in canonical encoding.
pub fn search_record(facts: SearchFacts<'_>, redaction: &Redaction) -> String {
    let query = &facts.query;
    let text = |value: &Json| value.as_str().unwrap_or_default().to_owned();
    let entity = |name: &str| {
        let kind = text(&query[name]["type"]);
        match query[name]["id"].as_str() {
            Some(id) => format!("{kind}:{id}"),
            None => kind,
        }
    };
    let (platform, agent, action) = (
        text(&query["platform"]),
        text(&query["agent"]["id"]),
        text(&query["action"]["name"]),
    );
    let (principal, resource) = (entity("principal"), entity("resource"));
    let mut query = facts.query;
    let redacted = redaction.apply(&mut query);
    let mut record = json!({
        "type": "search",
        "search_id": facts.search_id,
        "target": facts.target,
        "time": rfc3339(facts.time),
        "caller": facts.caller,
        "platform": platform,
        "agent_id": agent,
        "principal": principal,
        "action": action,
        "resource": resource,
        "query": query,
        "results": facts.results,
        "evaluated": facts.evaluated,
        "page_start": facts.page_start,
        "complete": facts.complete,
        "policy_revision": facts.policy_revision,
        "snapshot_versions": facts.snapshot_versions,
    });
    if let Some(count) = facts.candidates {
        record["candidates"] = json!(count);
    }
    if !redacted.is_empty() {
        record["redacted"] = json!(redacted);
    }
    if let Some(replica) = facts.replica {
        record["replica"] = json!(replica);
    }
    warden_audit::canonical(&record)
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
    use crate::decision::{ShadowOutcome, Stage, SwitchMatch, Verdict};
    use crate::request::{Action, Agent, CheckRequest, Principal, Resource};

    fn request(request_id: Option<&str>) -> CheckRequest {
        CheckRequest {
            platform: "p1".into(),
            agent: Agent {
                id: "a\"1".into(),
                attributes: json!({"z": 1, "a": [true, null]})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            principal: Principal {
                kind: Some("user".into()),
                id: "u1".into(),
                attributes: Default::default(),
            },
            delegation_chain: vec!["x".into()],
            audience: Vec::new(),
            action: Action {
                name: "docs.read".into(),
                attributes: json!({"card": "4111"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            resource: Resource {
                kind: "doc".into(),
                id: None,
                attributes: Default::default(),
            },
            context: json!({"prompt": "héllo\n"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            request_id: request_id.map(str::to_owned),
            approval: None,
        }
    }

    /// The record is written key by key; it must be exactly the canonical
    /// encoding of itself, whichever optional members it has.
    #[test]
    fn decision_records_are_canonical_as_written() {
        let plain = Decision {
            verdict: Verdict::Allow,
            reasons: Vec::new(),
            stage: Stage::Policy,
            shadow: None,
            kill_switch: None,
            approval: None,
            audience: None,
        };
        let full = Decision {
            verdict: Verdict::Deny,
            reasons: vec!["kill_switch:ks-1".into(), "incident".into()],
            stage: Stage::KillSwitch,
            shadow: Some(ShadowOutcome {
                revision: "r2".into(),
                verdict: Verdict::Deny,
                reasons: vec!["x".into()],
                diverged: true,
            }),
            kill_switch: Some(SwitchMatch {
                id: "ks-1".into(),
                scope: Default::default(),
            }),
            approval: None,
            audience: Some(crate::decision::AudienceGap {
                members: 3,
                lacking_count: 2,
                lacking: vec!["user:a".into(), "user:b".into()],
            }),
        };
        let redaction = Redaction {
            drop: vec![vec!["context".into(), "prompt".into()]],
            hash: vec![vec!["action".into(), "attributes".into(), "card".into()]],
        };
        for (decision, request_id, redaction) in [
            (&plain, None, Redaction::default()),
            (&full, Some("req-9"), redaction),
        ] {
            let request = request(request_id);
            let facts = DecisionFacts {
                request: &request,
                decision,
                decision_id: "d-1",
                policy_revision: "r1",
                snapshot_versions: [("identity".to_owned(), "v1".to_owned())].into(),
                time: SystemTime::UNIX_EPOCH,
                latency_us: 12,
                caller: "127.0.0.1:1",
                // Written in its place among the sorted keys.
                replica: request_id.map(|_| "replica-a"),
                approval: request_id.map(|_| ApprovalIds {
                    approval_id: "apr_1",
                    task_id: "arq_1",
                    evaluation_id: "e-1",
                }),
            };
            let written = decision_record(&facts, &redaction);
            let parsed: Json = serde_json::from_str(&written).unwrap_or_default();
            assert_eq!(warden_audit::canonical(&parsed), written);
            assert_eq!(parsed["decision_id"], "d-1");
            assert_eq!(parsed["principal"], "user:u1");
            assert_eq!(parsed["resource"], "doc");
        }
    }

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
