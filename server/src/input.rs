//! The policy's `input` document, built from a validated request.
//!
//! Two builders produce the same document: `to_json` for the audit hash and
//! the Wasm engine, which take bytes, and `to_rego` for the native engine,
//! which takes values directly and so skips a JSON round trip per check.
//! A property test holds them equal.
//!
//! Besides what the caller sent, the document carries `delegation`, the
//! delegation chain parsed into `{kind, id}` links, so policies need not
//! split strings.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regorus::Value;
use serde_json::{Map, Value as Json};

use crate::request::{Attributes, CheckRequest};

/// The input document as JSON. Absent optional fields are omitted;
/// attributes and context are always objects, empty when the caller sent none.
pub fn to_json(request: &CheckRequest) -> Json {
    let mut input = Map::new();
    input.insert("platform".into(), Json::String(request.platform.clone()));
    input.insert(
        "agent".into(),
        json_object([
            ("id", Some(Json::String(request.agent.id.clone()))),
            (
                "attributes",
                Some(Json::Object(request.agent.attributes.clone())),
            ),
        ]),
    );
    input.insert(
        "principal".into(),
        json_object([
            ("type", request.principal.kind.clone().map(Json::String)),
            ("id", Some(Json::String(request.principal.id.clone()))),
            (
                "attributes",
                Some(Json::Object(request.principal.attributes.clone())),
            ),
        ]),
    );
    if !request.delegation_chain.is_empty() {
        input.insert(
            "delegation_chain".into(),
            Json::Array(
                request
                    .delegation_chain
                    .iter()
                    .cloned()
                    .map(Json::String)
                    .collect(),
            ),
        );
        input.insert(
            "delegation".into(),
            Json::Array(
                request
                    .delegation_chain
                    .iter()
                    .map(|entry| {
                        let (kind, id) = crate::request::split_actor(entry);
                        let mut link = Map::new();
                        link.insert("id".into(), Json::String(id.to_owned()));
                        link.insert("kind".into(), Json::String(kind.to_owned()));
                        Json::Object(link)
                    })
                    .collect(),
            ),
        );
    }
    if !request.audience.is_empty() {
        input.insert(
            "audience".into(),
            Json::Array(request.audience.iter().cloned().map(Json::String).collect()),
        );
    }
    input.insert(
        "action".into(),
        json_object([
            ("name", Some(Json::String(request.action.name.clone()))),
            (
                "attributes",
                Some(Json::Object(request.action.attributes.clone())),
            ),
        ]),
    );
    input.insert(
        "resource".into(),
        json_object([
            ("type", Some(Json::String(request.resource.kind.clone()))),
            ("id", request.resource.id.clone().map(Json::String)),
            (
                "attributes",
                Some(Json::Object(request.resource.attributes.clone())),
            ),
        ]),
    );
    input.insert("context".into(), Json::Object(request.context.clone()));
    if let Some(request_id) = &request.request_id {
        input.insert("request_id".into(), Json::String(request_id.clone()));
    }
    if let Some(approval) = &request.approval {
        input.insert("approval".into(), approval.clone());
    }
    Json::Object(input)
}

fn json_object<const N: usize>(fields: [(&str, Option<Json>); N]) -> Json {
    Json::Object(
        fields
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
            .collect(),
    )
}

/// The input document's own field names, made once: every check would
/// otherwise allocate each of them anew.
struct Keys {
    platform: Value,
    agent: Value,
    principal: Value,
    delegation_chain: Value,
    delegation: Value,
    audience: Value,
    action: Value,
    resource: Value,
    context: Value,
    request_id: Value,
    id: Value,
    kind: Value,
    link_kind: Value,
    name: Value,
    attributes: Value,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    platform: Value::from("platform"),
    agent: Value::from("agent"),
    principal: Value::from("principal"),
    delegation_chain: Value::from("delegation_chain"),
    delegation: Value::from("delegation"),
    audience: Value::from("audience"),
    action: Value::from("action"),
    resource: Value::from("resource"),
    context: Value::from("context"),
    request_id: Value::from("request_id"),
    id: Value::from("id"),
    kind: Value::from("type"),
    link_kind: Value::from("kind"),
    name: Value::from("name"),
    attributes: Value::from("attributes"),
});

/// The input document as a regorus value; equal to `to_json`'s document.
pub fn to_rego(request: &CheckRequest) -> Value {
    let k = &*KEYS;
    let mut input = BTreeMap::new();
    input.insert(k.platform.clone(), string(&request.platform));
    input.insert(
        k.agent.clone(),
        rego_object([
            (&k.id, Some(string(&request.agent.id))),
            (&k.attributes, Some(attributes(&request.agent.attributes))),
        ]),
    );
    input.insert(
        k.principal.clone(),
        rego_object([
            (&k.kind, request.principal.kind.as_deref().map(string)),
            (&k.id, Some(string(&request.principal.id))),
            (
                &k.attributes,
                Some(attributes(&request.principal.attributes)),
            ),
        ]),
    );
    if !request.delegation_chain.is_empty() {
        input.insert(
            k.delegation_chain.clone(),
            Value::from(
                request
                    .delegation_chain
                    .iter()
                    .map(|a| string(a))
                    .collect::<Vec<_>>(),
            ),
        );
        input.insert(
            k.delegation.clone(),
            Value::from(
                request
                    .delegation_chain
                    .iter()
                    .map(|entry| {
                        let (kind, id) = crate::request::split_actor(entry);
                        rego_object([
                            (&k.id, Some(string(id))),
                            (&k.link_kind, Some(string(kind))),
                        ])
                    })
                    .collect::<Vec<_>>(),
            ),
        );
    }
    if !request.audience.is_empty() {
        input.insert(
            k.audience.clone(),
            Value::from(
                request
                    .audience
                    .iter()
                    .map(|a| string(a))
                    .collect::<Vec<_>>(),
            ),
        );
    }
    input.insert(
        k.action.clone(),
        rego_object([
            (&k.name, Some(string(&request.action.name))),
            (&k.attributes, Some(attributes(&request.action.attributes))),
        ]),
    );
    input.insert(
        k.resource.clone(),
        rego_object([
            (&k.kind, Some(string(&request.resource.kind))),
            (&k.id, request.resource.id.as_deref().map(string)),
            (
                &k.attributes,
                Some(attributes(&request.resource.attributes)),
            ),
        ]),
    );
    input.insert(k.context.clone(), attributes(&request.context));
    if let Some(request_id) = &request.request_id {
        input.insert(k.request_id.clone(), string(request_id));
    }
    if let Some(approval) = &request.approval {
        input.insert(key("approval"), json_to_rego(approval));
    }
    Value::from(input)
}

fn key(name: &str) -> Value {
    Value::from(name)
}

fn string(value: &str) -> Value {
    Value::from(value)
}

fn rego_object<const N: usize>(fields: [(&Value, Option<Value>); N]) -> Value {
    Value::from(
        fields
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| (name.clone(), value)))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn attributes(attributes: &Attributes) -> Value {
    Value::from(
        attributes
            .iter()
            .map(|(name, value)| (key(name), json_to_rego(value)))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// Converts any JSON value into the equal regorus value.
pub fn json_to_rego(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                // serde_json numbers are i64, u64 or finite f64.
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(json_to_rego).collect::<Vec<_>>()),
        Json::Object(fields) => attributes(fields),
    }
}

/// Why a stored input document is not one `to_json` could have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{field}` {reason}")]
pub struct NotAnInput {
    pub field: String,
    pub reason: &'static str,
}

/// Reads a request back out of its input document (an audit record's
/// `input`): the inverse of `to_json`. `delegation` is derived, so it is
/// not read; `approval` is taken as stored.
pub fn from_json(input: &Json) -> Result<CheckRequest, NotAnInput> {
    use crate::request::{Action, Agent, Principal, Resource};
    let wrong = |field: &str, reason| NotAnInput {
        field: field.to_owned(),
        reason,
    };
    let object = |field: &str| -> Result<&Map<String, Json>, NotAnInput> {
        pointer(input, field)
            .and_then(Json::as_object)
            .ok_or_else(|| wrong(field, "is not an object"))
    };
    let text = |field: &str| -> Result<String, NotAnInput> {
        pointer(input, field)
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| wrong(field, "is not a string"))
    };
    let optional = |field: &str| -> Result<Option<String>, NotAnInput> {
        match pointer(input, field) {
            None => Ok(None),
            Some(Json::String(value)) => Ok(Some(value.clone())),
            Some(_) => Err(wrong(field, "is not a string")),
        }
    };
    let strings = |field: &str| -> Result<Vec<String>, NotAnInput> {
        match pointer(input, field) {
            None => Ok(Vec::new()),
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| wrong(field, "holds a value that is not a string")),
            Some(_) => Err(wrong(field, "is not a list")),
        }
    };
    object("")?;
    Ok(CheckRequest {
        platform: text("platform")?,
        agent: Agent {
            id: text("agent.id")?,
            attributes: object("agent.attributes")?.clone(),
        },
        principal: Principal {
            kind: optional("principal.type")?,
            id: text("principal.id")?,
            attributes: object("principal.attributes")?.clone(),
        },
        delegation_chain: strings("delegation_chain")?,
        audience: strings("audience")?,
        action: Action {
            name: text("action.name")?,
            attributes: object("action.attributes")?.clone(),
        },
        resource: Resource {
            kind: text("resource.type")?,
            id: optional("resource.id")?,
            attributes: object("resource.attributes")?.clone(),
        },
        context: object("context")?.clone(),
        request_id: optional("request_id")?,
        approval: input.get("approval").cloned(),
    })
}

/// The value at a dotted path (`""` is the document itself).
fn pointer<'a>(value: &'a Json, path: &str) -> Option<&'a Json> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |value, key| value.get(key))
}
