//! The AuthZEN Authorization API 1.0 wire format and its mapping onto
//! Warden's check: pure functions from JSON to `CheckRequest` and from
//! `CheckResponse` back to JSON, so that every rule of the mapping is
//! testable without a server.
//!
//! subject → principal, action → action, resource → resource, each
//! `properties` → `attributes`, context → context. The platform and agent,
//! which AuthZEN has no field for, come from headers, `context` keys or
//! defaults (`[authzen]`); the context keys used for them are taken out of
//! the context the policy sees.

use serde_json::{Map, Value as Json, json};
use warden_proto::convert::to_struct;
use warden_proto::v1 as pb;

use crate::http::config::AuthzenConfig;
use crate::search::{Candidate, Target};

/// A request the AuthZEN API refuses with 400: the JSON path of the field
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct BadRequest {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> BadRequest {
    BadRequest {
        field: field.into(),
        reason: reason.into(),
    }
}

/// How `/access/v1/evaluations` walks its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    ExecuteAll,
    /// Stop after the first item that is not permitted (AND).
    DenyOnFirstDeny,
    /// Stop after the first permitted item (OR).
    PermitOnFirstPermit,
}

impl Semantic {
    /// Whether an item with this permit flag ends the walk.
    pub fn stops_at(self, permitted: bool) -> bool {
        match self {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !permitted,
            Semantic::PermitOnFirstPermit => permitted,
        }
    }
}

/// What the HTTP request tells besides its body.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub platform_header: Option<String>,
    pub agent_header: Option<String>,
    /// The caller's platform when its credential names exactly one.
    pub caller_platform: Option<String>,
    pub request_id: Option<String>,
}

/// One evaluation in AuthZEN terms, before it becomes a check.
#[derive(Debug, Clone, Default, PartialEq)]
struct Parts {
    subject: Option<Map<String, Json>>,
    action: Option<Map<String, Json>>,
    resource: Option<Map<String, Json>>,
    context: Option<Map<String, Json>>,
}

/// The body as a JSON object.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Json>, BadRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("(body)", "is empty; expected a JSON object"));
    }
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(object)) => Ok(object),
        Ok(other) => Err(bad(
            "(body)",
            format!("is a JSON {}; expected an object", kind(&other)),
        )),
        Err(e) => Err(bad("(body)", format!("is not valid JSON: {e}"))),
    }
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// `object[key]` as an object; absent and `null` are `None`.
fn object(
    parent: &Map<String, Json>,
    key: &str,
    path: &str,
) -> Result<Option<Map<String, Json>>, BadRequest> {
    match parent.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Object(map)) => Ok(Some(map.clone())),
        Some(other) => Err(bad(
            path,
            format!("is a {}; expected an object", kind(other)),
        )),
    }
}

fn parts(body: &Map<String, Json>, prefix: &str) -> Result<Parts, BadRequest> {
    Ok(Parts {
        subject: object(body, "subject", &format!("{prefix}subject"))?,
        action: object(body, "action", &format!("{prefix}action"))?,
        resource: object(body, "resource", &format!("{prefix}resource"))?,
        context: object(body, "context", &format!("{prefix}context"))?,
    })
}

/// An item's entity: its own replaces the default whole, as the spec says,
/// except that a required identifier it leaves out (`type`, `id`, `name`)
/// is the default's, so that an item may name just a resource id under a
/// default type. Properties are never inherited: they describe the
/// default's entity, not the item's.
fn merged(
    item: Option<Map<String, Json>>,
    default: &Option<Map<String, Json>>,
    identifiers: &[&str],
) -> Option<Map<String, Json>> {
    match (item, default) {
        (None, default) => default.clone(),
        (Some(item), None) => Some(item),
        (Some(mut item), Some(default)) => {
            for key in identifiers {
                let missing = matches!(item.get(*key), None | Some(Json::Null));
                if missing && let Some(value) = default.get(*key) {
                    item.insert((*key).to_owned(), value.clone());
                }
            }
            Some(item)
        }
    }
}

/// How much an `/evaluations` body may expand to: each item becomes a
/// check holding its own copy of the defaults.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Items per call.
    pub max_items: usize,
    /// Encoded size of any one default (`subject`, `action`, `resource`,
    /// `context`), which every item may copy.
    pub max_default_bytes: usize,
}

/// A required string field; empty strings are left to Warden's validator,
/// which names the field in its own terms.
fn string(entity: &Map<String, Json>, key: &str, path: &str) -> Result<String, BadRequest> {
    match entity.get(key) {
        Some(Json::String(text)) => Ok(text.clone()),
        None | Some(Json::Null) => Err(bad(format!("{path}.{key}"), "is required")),
        Some(other) => Err(bad(
            format!("{path}.{key}"),
            format!("is a {}; expected a string", kind(other)),
        )),
    }
}

fn properties(
    entity: &Map<String, Json>,
    path: &str,
) -> Result<Option<prost_types::Struct>, BadRequest> {
    Ok(object(entity, "properties", &format!("{path}.properties"))?.map(to_struct))
}

fn required(
    entity: Option<Map<String, Json>>,
    path: &str,
) -> Result<Map<String, Json>, BadRequest> {
    entity.ok_or_else(|| bad(path, "is required"))
}

/// Where the platform or agent came from, for the error that names them all.
fn missing(what: &str, header: &str, context_key: &str, default_key: &str) -> BadRequest {
    bad(
        format!("context.{context_key}"),
        format!(
            "the {what} is not given: send the `{header}` header or `context.{context_key}`, \
             or configure `authzen.{default_key}`"
        ),
    )
}

fn check_request(
    parts: Parts,
    prefix: &str,
    envelope: &Envelope,
    config: &AuthzenConfig,
) -> Result<pb::CheckRequest, BadRequest> {
    let subject = required(parts.subject, &format!("{prefix}subject"))?;
    let action = required(parts.action, &format!("{prefix}action"))?;
    let resource = required(parts.resource, &format!("{prefix}resource"))?;
    let subject_path = format!("{prefix}subject");
    let action_path = format!("{prefix}action");
    let resource_path = format!("{prefix}resource");
    let mut context = parts.context.unwrap_or_default();
    let context_path = format!("{prefix}context");

    let platform_in_context = match context.remove(&config.platform_context_key) {
        None | Some(Json::Null) => None,
        Some(Json::String(platform)) => Some(platform),
        Some(other) => {
            return Err(bad(
                format!("{context_path}.{}", config.platform_context_key),
                format!("is a {}; expected a string", kind(&other)),
            ));
        }
    };
    let platform = envelope
        .platform_header
        .clone()
        .or(platform_in_context)
        .or_else(|| envelope.caller_platform.clone())
        .or_else(|| config.default_platform.clone())
        .ok_or_else(|| {
            missing(
                "platform",
                config.platform_header.as_str(),
                &config.platform_context_key,
                "default_platform",
            )
        })?;

    let agent_path = format!("{context_path}.{}", config.agent_context_key);
    let agent_in_context = match context.remove(&config.agent_context_key) {
        None | Some(Json::Null) => None,
        Some(Json::String(id)) => Some(pb::Agent {
            id,
            attributes: None,
        }),
        Some(Json::Object(agent)) => Some(pb::Agent {
            id: string(&agent, "id", &agent_path)?,
            attributes: properties(&agent, &agent_path)?,
        }),
        Some(other) => {
            return Err(bad(
                agent_path,
                format!("is a {}; expected a string or an object", kind(&other)),
            ));
        }
    };
    let agent = match (&envelope.agent_header, agent_in_context) {
        (Some(id), _) => pb::Agent {
            id: id.clone(),
            attributes: None,
        },
        (None, Some(agent)) => agent,
        (None, None) => match &config.default_agent {
            Some(id) => pb::Agent {
                id: id.clone(),
                attributes: None,
            },
            None => {
                return Err(missing(
                    "agent",
                    config.agent_header.as_str(),
                    &config.agent_context_key,
                    "default_agent",
                ));
            }
        },
    };

    // ARAP: the approval travels as `context.approval`, exactly as issued.
    let approval = match context.remove("approval") {
        None | Some(Json::Null) => None,
        Some(Json::Object(approval)) => {
            let path = format!("{context_path}.approval");
            let field = |key: &str| match approval.get(key) {
                None | Some(Json::Null) => Ok(String::new()),
                Some(Json::String(text)) => Ok(text.clone()),
                Some(other) => Err(bad(
                    format!("{path}.{key}"),
                    format!("is a {}; expected a string", kind(other)),
                )),
            };
            Some(pb::ApprovalRef {
                id: string(&approval, "id", &path)?,
                approved_at: field("approved_at")?,
                approved_until: field("approved_until")?,
                state: string(&approval, "state", &path)?,
            })
        }
        Some(other) => {
            return Err(bad(
                format!("{context_path}.approval"),
                format!("is a {}; expected an object", kind(&other)),
            ));
        }
    };

    // Who will see the result travels as `context.audience`, a list of the
    // same entries as `CheckRequest.audience`.
    let audience = match context.remove("audience") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(entries)) => entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| match entry {
                Json::String(entry) => Ok(entry),
                other => Err(bad(
                    format!("{context_path}.audience[{i}]"),
                    format!("is a {}; expected a string", kind(&other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(bad(
                format!("{context_path}.audience"),
                format!("is a {}; expected a list of strings", kind(&other)),
            ));
        }
    };

    Ok(pb::CheckRequest {
        approval,
        audience,
        platform,
        agent: Some(agent),
        principal: Some(pb::Principal {
            r#type: string(&subject, "type", &subject_path)?,
            id: string(&subject, "id", &subject_path)?,
            attributes: properties(&subject, &subject_path)?,
        }),
        delegation_chain: Vec::new(),
        action: Some(pb::Action {
            name: string(&action, "name", &action_path)?,
            attributes: properties(&action, &action_path)?,
        }),
        resource: Some(pb::Resource {
            r#type: string(&resource, "type", &resource_path)?,
            id: string(&resource, "id", &resource_path)?,
            attributes: properties(&resource, &resource_path)?,
        }),
        context: (!context.is_empty()).then(|| to_struct(context)),
        request_id: envelope.request_id.clone().unwrap_or_default(),
    })
}

/// `POST /access/v1/evaluation`: the body as one check.
pub fn evaluation(
    body: &Map<String, Json>,
    envelope: &Envelope,
    config: &AuthzenConfig,
) -> Result<pb::CheckRequest, BadRequest> {
    check_request(parts(body, "")?, "", envelope, config)
}

/// One `/evaluations` item: a check, or why the item is not one.
pub type Item = Result<pb::CheckRequest, BadRequest>;

/// `POST /access/v1/evaluations`: the checks, and how to walk them. `None`
/// for the items means the body is a single evaluation (no or an empty
/// `evaluations` array), answered as `/access/v1/evaluation` would. An
/// item that is malformed (a required field missing, a wrong type) is its
/// own error, answered in place as a failed evaluation (`decision: false`);
/// the body as a whole is refused only for what is wrong outside the items.
pub fn evaluations(
    body: &Map<String, Json>,
    envelope: &Envelope,
    config: &AuthzenConfig,
    limits: BatchLimits,
) -> Result<(Option<Vec<Item>>, Semantic), BadRequest> {
    let semantic = match object(body, "options", "options")? {
        None => Semantic::ExecuteAll,
        Some(options) => match options.get("evaluations_semantic") {
            None | Some(Json::Null) => Semantic::ExecuteAll,
            Some(Json::String(name)) => match name.as_str() {
                "execute_all" => Semantic::ExecuteAll,
                "deny_on_first_deny" => Semantic::DenyOnFirstDeny,
                "permit_on_first_permit" => Semantic::PermitOnFirstPermit,
                other => {
                    return Err(bad(
                        "options.evaluations_semantic",
                        format!(
                            "`{other}` is not a semantic; expected `execute_all`, \
                             `deny_on_first_deny` or `permit_on_first_permit`"
                        ),
                    ));
                }
            },
            Some(other) => {
                return Err(bad(
                    "options.evaluations_semantic",
                    format!("is a {}; expected a string", kind(other)),
                ));
            }
        },
    };
    let items = match body.get("evaluations") {
        None | Some(Json::Null) => return Ok((None, semantic)),
        Some(Json::Array(items)) if items.is_empty() => return Ok((None, semantic)),
        Some(Json::Array(items)) => items,
        Some(other) => {
            return Err(bad(
                "evaluations",
                format!("is a {}; expected an array", kind(other)),
            ));
        }
    };
    // Before anything is copied: a body of many empty items under one large
    // default must not become that many copies of it.
    if items.len() > limits.max_items {
        return Err(bad(
            "evaluations",
            format!(
                "has {} items, more than the limit of {}",
                items.len(),
                limits.max_items
            ),
        ));
    }
    for key in ["subject", "action", "resource", "context"] {
        if let Some(default) = body.get(key) {
            let size = serde_json::to_vec(default).map_or(usize::MAX, |v| v.len());
            if size > limits.max_default_bytes {
                return Err(bad(
                    key,
                    format!(
                        "is {size} bytes as a default for every item, more than the limit of {}",
                        limits.max_default_bytes
                    ),
                ));
            }
        }
    }
    let defaults = parts(body, "")?;
    let mut requests = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("evaluations[{index}].");
        let request = (|| {
            let Json::Object(item) = item else {
                return Err(bad(
                    format!("evaluations[{index}]"),
                    format!("is a {}; expected an object", kind(item)),
                ));
            };
            let own = parts(item, &prefix)?;
            let parts = Parts {
                subject: merged(own.subject, &defaults.subject, &["type", "id"]),
                action: merged(own.action, &defaults.action, &["name"]),
                resource: merged(own.resource, &defaults.resource, &["type", "id"]),
                // A context is one value, not an entity: the item's
                // replaces the default.
                context: own.context.or_else(|| defaults.context.clone()),
            };
            check_request(parts, &prefix, envelope, config)
        })();
        requests.push(request);
    }
    Ok((Some(requests), semantic))
}

/// What a search body asks for: the checks' shared part, and paging.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchBody {
    pub request: pb::CheckRequest,
    pub token: String,
    pub limit: usize,
}

/// A search body (`/access/v1/search/{subject,resource,action}`) as the
/// check its results would pass. Every entity but the one searched for
/// must be fully identified; the searched one's `id` (or, for actions, the
/// whole `action`) may be left out and is ignored when present.
pub fn search(
    target: Target,
    body: &Map<String, Json>,
    envelope: &Envelope,
    config: &AuthzenConfig,
) -> Result<SearchBody, BadRequest> {
    let mut parts = parts(body, "")?;
    // The searched field gets a stand-in, so the rest is checked exactly
    // as an evaluation's would be; the search replaces it per candidate.
    match target {
        Target::Subjects => {
            if let Some(subject) = &mut parts.subject {
                subject.insert("id".into(), json!("-"));
            }
        }
        Target::Resources => {
            if let Some(resource) = &mut parts.resource {
                resource.insert("id".into(), json!(""));
            }
        }
        Target::Actions => {
            parts.action = Some(Map::from_iter([("name".to_owned(), json!("-"))]));
        }
    }
    let request = check_request(parts, "", envelope, config)?;
    let (token, limit) = match object(body, "page", "page")? {
        None => (String::new(), 0),
        Some(page) => {
            let token = match page.get("token") {
                None | Some(Json::Null) => String::new(),
                Some(Json::String(token)) => token.clone(),
                Some(other) => {
                    return Err(bad(
                        "page.token",
                        format!("is a {}; expected a string", kind(other)),
                    ));
                }
            };
            let limit = match page.get("limit") {
                None | Some(Json::Null) => 0,
                Some(Json::Number(n)) => match n.as_u64() {
                    Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                    None => return Err(bad("page.limit", "is not a whole number from 0")),
                },
                Some(other) => {
                    return Err(bad(
                        "page.limit",
                        format!("is a {}; expected a number", kind(other)),
                    ));
                }
            };
            (token, limit)
        }
    };
    Ok(SearchBody {
        request,
        token,
        limit,
    })
}

/// A page of search results in AuthZEN's shape. Warden's additions, in
/// each result's `properties`: `require_approval: true` for a result a
/// person must approve first, and `every_resource: true` (with `id` `*`)
/// for a grant on every resource of the type.
pub fn search_results(target: Target, kind: &str, searched: &crate::api::search::Searched) -> Json {
    let results: Vec<Json> = searched
        .found
        .iter()
        .map(|found| {
            let mut properties = Map::new();
            if found.decision.verdict == crate::decision::Verdict::RequireApproval {
                properties.insert("require_approval".into(), json!(true));
            }
            let value = match &found.candidate {
                Candidate::Every => {
                    properties.insert("every_resource".into(), json!(true));
                    "*"
                }
                Candidate::Value(value) => value.as_str(),
            };
            let mut entity = match target {
                Target::Actions => json!({ "name": value }),
                Target::Resources | Target::Subjects => json!({ "type": kind, "id": value }),
            };
            if !properties.is_empty() {
                entity["properties"] = Json::Object(properties);
            }
            entity
        })
        .collect();
    let mut page = json!({
        "next_token": searched.next_token,
        "count": searched.found.len(),
    });
    if let Some(total) = searched.total {
        page["total"] = json!(total);
    }
    json!({
        "results": results,
        "page": page,
        "context": {
            "search_id": searched.search_id,
            "policy_revision": searched.policy_revision,
            "evaluated": searched.evaluated,
        },
    })
}

/// Whether AuthZEN's boolean is `true`: only for ALLOW. REQUIRE_APPROVAL is
/// not a permit: the PEP must not proceed on its own.
pub fn permitted(response: &pb::CheckResponse) -> bool {
    response.decision() == pb::Decision::Allow
}

/// One decision in AuthZEN's shape, Warden's details in `context`.
pub fn decision(response: &pb::CheckResponse) -> Json {
    let outcome = match response.decision() {
        pb::Decision::Allow => "allow",
        pb::Decision::RequireApproval => "require_approval",
        pb::Decision::Deny | pb::Decision::Unspecified => "deny",
    };
    let mut context = Map::new();
    context.insert("decision_id".into(), json!(response.decision_id));
    context.insert("outcome".into(), json!(outcome));
    context.insert("reasons".into(), json!(response.reasons));
    if response.decision() == pb::Decision::RequireApproval {
        context.insert("require_approval".into(), json!(true));
        context.insert(
            "reason_user".into(),
            json!({"en": "a person must approve this action before it proceeds"}),
        );
    }
    if !response.policy_revision.is_empty() {
        context.insert("policy_revision".into(), json!(response.policy_revision));
    }
    if let Some(switch) = &response.kill_switch {
        context.insert("kill_switch".into(), json!(switch.id));
    }
    // ARAP: a requestable denial, the approval an ALLOW used, or why a
    // presented approval was refused and what to do next.
    if let Some(request) = &response.access_request {
        context.insert("evaluation_id".into(), json!(request.evaluation_id));
        context.insert("evaluated_at".into(), json!(request.evaluated_at));
        if response.next_action.is_empty() {
            context.insert("reason".into(), json!("approval_required"));
        }
        let requirement = request.requirement.clone().unwrap_or_default();
        context.insert(
            "access_request".into(),
            json!({
                "expires_at": request.expires_at,
                "binding_token": request.binding_token,
                "template": requirement.template,
                "approvers": requirement.approvers,
                "self": requirement.self_approval,
                "max_ttl": requirement.max_ttl_seconds,
                "uses": requirement.uses,
            }),
        );
    }
    if let Some(approval) = &response.approval {
        context.insert(
            "approval".into(),
            json!({"id": approval.id, "approved_until": approval.approved_until, "uses_left": approval.uses_left}),
        );
    }
    if let Some(limit) = &response.limit {
        context.insert(
            "limit".into(),
            json!({"rule": limit.rule, "used": limit.used, "max": limit.max, "retry_after_ms": limit.retry_after_ms}),
        );
    }
    if let Some(gap) = &response.audience {
        context.insert(
            "audience".into(),
            json!({"members": gap.members, "lacking_count": gap.lacking_count, "lacking": gap.lacking}),
        );
    }
    if !response.budgets.is_empty() {
        let budgets: Vec<Json> = response
            .budgets
            .iter()
            .map(|b| json!({"rule": b.rule, "used": b.used, "max": b.max, "remaining": b.remaining, "window_seconds": b.window_seconds}))
            .collect();
        context.insert("budgets".into(), json!(budgets));
    }
    if !response.next_action.is_empty() {
        if let Some(reason) = response.reasons.first() {
            context.insert("reason".into(), json!(reason));
        }
        context.insert("next_action".into(), json!(response.next_action));
        if response.retry_after_seconds > 0 {
            context.insert("retry_after".into(), json!(response.retry_after_seconds));
        }
    }
    json!({"decision": permitted(response), "context": context})
}

/// An item Warden's validator refused, answered as a denial that says why
/// (the evaluations endpoint answers the other items).
pub fn item_error(field: &str, message: &str) -> Json {
    json!({
        "decision": false,
        "context": {"error": {"status": 400, "message": message, "field": field}},
    })
}

/// Warden's field names in AuthZEN's terms, for error messages.
pub fn authzen_field(field: &str) -> String {
    let field = field
        .replace("principal", "subject")
        .replace(".attributes", ".properties");
    match field.as_str() {
        "platform" => "platform (header or context)".into(),
        other if other.starts_with("agent") => format!("{other} (header or context)"),
        _ => field,
    }
}

/// The PDP metadata document for a PDP reachable at `base` (scheme and
/// authority, no trailing slash).
pub fn metadata(base: &str, approvals: bool) -> Json {
    let mut document = json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    });
    if approvals {
        document["access_request_endpoint"] = json!(format!("{base}/access/v1/requests"));
        document["jwks_uri"] = json!(format!("{base}/access/v1/jwks"));
        document["capabilities"] = json!(["urn:openid:authzen:capability:access-request"]);
    }
    document
}

#[cfg(test)]
mod tests;
