//! A check request is untrusted protobuf. Decoded as `Check` and
//! `BatchCheck` decode it, it goes through the server's own path: `validate`
//! with the default limits, then the policy input built both ways (`to_json`
//! for the audit hash and the Wasm engine, `to_rego` for the native engine).
//!
//! Beyond never panicking:
//! * validation is deterministic, and accepts exactly the requests an
//!   independent reading of DESIGN's rules accepts (written out below);
//! * a refusal blames a field that really breaks a rule;
//! * an accepted request's ids, chain, size and nesting are within the limits;
//! * the input document carries exactly the request's values, with only
//!   DESIGN's keys, optional ones present only when set;
//! * `to_rego` equals `json_to_rego(to_json)` and regorus parsing the JSON
//!   text, so both engines see one document;
//! * the document's JSON text and its canonical audit encoding parse back to
//!   the document, so the audit hash of the input can be recomputed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use prost_types::value::Kind;
use serde_json::{Map, Value as Json};
use warden::input::{json_to_rego, to_json, to_rego};
use warden::request::{CheckRequest, Limits, validate};
use warden_proto::v1 as pb;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(request) = pb::CheckRequest::decode(data) {
        check(&request, &limits);
    }
    // As `BatchCheck` does: an empty or oversized batch is refused whole,
    // otherwise every item is validated on its own.
    if let Ok(batch) = pb::BatchCheckRequest::decode(data)
        && !batch.items.is_empty()
        && batch.items.len() <= limits.max_batch_items
    {
        for item in &batch.items {
            check(item, &limits);
        }
    }
});

fn check(request: &pb::CheckRequest, limits: &Limits) {
    let result = validate(request, limits);
    assert_eq!(
        validate(request, limits),
        result,
        "validation is not deterministic"
    );
    let expected = acceptable(request, limits);
    match result {
        Ok(valid) => {
            assert!(
                expected,
                "accepted a request that breaks a rule: {request:?}"
            );
            accepted(request, &valid, limits);
        }
        Err(invalid) => {
            assert!(
                !expected,
                "refused a valid request ({invalid}): {request:?}"
            );
            assert!(
                blamed_field_is_bad(request, &invalid.field, limits),
                "blamed {} ({}), which is fine: {request:?}",
                invalid.field,
                invalid.reason
            );
        }
    }
}

// ---- The rules, read independently of `validate` ----

fn acceptable(request: &pb::CheckRequest, limits: &Limits) -> bool {
    let depth = limits.max_attribute_depth;
    let attributes =
        |s: &Option<prost_types::Struct>| s.as_ref().is_none_or(|s| good_struct(s, depth));
    request.encoded_len() <= limits.max_request_bytes
        && good_id(&request.platform, limits)
        && request
            .agent
            .as_ref()
            .is_some_and(|a| good_id(&a.id, limits) && attributes(&a.attributes))
        && request.principal.as_ref().is_some_and(|p| {
            (p.r#type.is_empty() || good_kind(&p.r#type, limits))
                && good_id(&p.id, limits)
                && attributes(&p.attributes)
        })
        && request.delegation_chain.len() <= limits.max_delegation_chain
        && request.delegation_chain.iter().all(|a| good_id(a, limits))
        && request
            .action
            .as_ref()
            .is_some_and(|a| good_action(&a.name, limits) && attributes(&a.attributes))
        && request.resource.as_ref().is_some_and(|r| {
            good_id(&r.r#type, limits)
                && (r.id.is_empty() || good_id(&r.id, limits))
                && attributes(&r.attributes)
        })
        && attributes(&request.context)
        && (request.request_id.is_empty() || good_id(&request.request_id, limits))
}

/// Non-empty, within the limit, no control characters.
fn good_id(value: &str, limits: &Limits) -> bool {
    !value.is_empty() && value.len() <= limits.max_id_bytes && !value.chars().any(char::is_control)
}

/// `[a-z][a-z0-9_-]*`.
fn good_kind(value: &str, limits: &Limits) -> bool {
    good_id(value, limits)
        && value.as_bytes()[0].is_ascii_lowercase()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Dotted, non-empty segments of `[A-Za-z0-9_-]`.
fn good_action(value: &str, limits: &Limits) -> bool {
    good_id(value, limits)
        && value.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// Every value has a kind, numbers are finite, containers nest at most
/// `depth` deep below the top-level object.
fn good_struct(value: &prost_types::Struct, depth: usize) -> bool {
    value.fields.values().all(|v| good_value(v, depth))
}

fn good_value(value: &prost_types::Value, depth: usize) -> bool {
    match &value.kind {
        None => false,
        Some(Kind::NumberValue(n)) => n.is_finite(),
        Some(Kind::NullValue(_) | Kind::BoolValue(_) | Kind::StringValue(_)) => true,
        Some(Kind::StructValue(s)) => depth > 0 && good_struct(s, depth - 1),
        Some(Kind::ListValue(l)) => depth > 0 && l.values.iter().all(|v| good_value(v, depth - 1)),
    }
}

/// Whether the field a refusal names does break a rule.
fn blamed_field_is_bad(request: &pb::CheckRequest, field: &str, limits: &Limits) -> bool {
    let depth = limits.max_attribute_depth;
    let bad_struct = |s: Option<&prost_types::Struct>| s.is_some_and(|s| !good_struct(s, depth));
    let agent = request.agent.as_ref();
    let principal = request.principal.as_ref();
    let action = request.action.as_ref();
    let resource = request.resource.as_ref();
    // Attribute errors append the path inside the Struct to its field name.
    for (name, value) in [
        (
            "agent.attributes",
            agent.and_then(|a| a.attributes.as_ref()),
        ),
        (
            "principal.attributes",
            principal.and_then(|p| p.attributes.as_ref()),
        ),
        (
            "action.attributes",
            action.and_then(|a| a.attributes.as_ref()),
        ),
        (
            "resource.attributes",
            resource.and_then(|r| r.attributes.as_ref()),
        ),
        ("context", request.context.as_ref()),
    ] {
        if let Some(rest) = field.strip_prefix(name)
            && (rest.starts_with('.') || rest.starts_with('['))
        {
            return bad_struct(value);
        }
    }
    match field {
        "request" => request.encoded_len() > limits.max_request_bytes,
        "platform" => !good_id(&request.platform, limits),
        "agent" => agent.is_none(),
        "agent.id" => agent.is_some_and(|a| !good_id(&a.id, limits)),
        "principal" => principal.is_none(),
        "principal.type" => {
            principal.is_some_and(|p| !p.r#type.is_empty() && !good_kind(&p.r#type, limits))
        }
        "principal.id" => principal.is_some_and(|p| !good_id(&p.id, limits)),
        "delegation_chain" => request.delegation_chain.len() > limits.max_delegation_chain,
        "action" => action.is_none(),
        "action.name" => action.is_some_and(|a| !good_action(&a.name, limits)),
        "resource" => resource.is_none(),
        "resource.type" => resource.is_some_and(|r| !good_id(&r.r#type, limits)),
        "resource.id" => resource.is_some_and(|r| !r.id.is_empty() && !good_id(&r.id, limits)),
        "request_id" => !request.request_id.is_empty() && !good_id(&request.request_id, limits),
        _ => field
            .strip_prefix("delegation_chain[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|index| index.parse::<usize>().ok())
            .and_then(|index| request.delegation_chain.get(index))
            .is_some_and(|actor| !good_id(actor, limits)),
    }
}

// ---- What an accepted request becomes ----

const KEYS: [&str; 8] = [
    "platform",
    "agent",
    "principal",
    "delegation_chain",
    "action",
    "resource",
    "context",
    "request_id",
];

fn accepted(request: &pb::CheckRequest, valid: &CheckRequest, limits: &Limits) {
    assert!(request.encoded_len() <= limits.max_request_bytes);
    let ids = [
        Some(&valid.platform),
        Some(&valid.agent.id),
        valid.principal.kind.as_ref(),
        Some(&valid.principal.id),
        Some(&valid.action.name),
        Some(&valid.resource.kind),
        valid.resource.id.as_ref(),
        valid.request_id.as_ref(),
    ];
    for id in ids.into_iter().flatten().chain(&valid.delegation_chain) {
        assert!(good_id(id, limits), "accepted id {id:?}");
    }
    assert!(valid.delegation_chain.len() <= limits.max_delegation_chain);
    for attributes in [
        &valid.agent.attributes,
        &valid.principal.attributes,
        &valid.action.attributes,
        &valid.resource.attributes,
        &valid.context,
    ] {
        for value in attributes.values() {
            assert!(
                nesting(value) <= limits.max_attribute_depth,
                "accepted {value}"
            );
        }
    }

    let input = to_json(valid);
    let object = input.as_object().expect("the input document is an object");
    assert!(object.keys().all(|k| KEYS.contains(&k.as_str())), "{input}");
    faithful(request, &input);

    // Both engines see the same document.
    let rego = to_rego(valid);
    assert_eq!(
        rego,
        json_to_rego(&input),
        "to_rego differs from to_json: {input}"
    );
    let text = input.to_string();
    let parsed = regorus::Value::from_json_str(&text).expect("regorus reads the input JSON");
    assert_eq!(rego, parsed, "to_rego differs from the parsed JSON: {text}");

    // The JSON text, and the audit record's canonical encoding of it, read
    // back as the same document.
    let reread: Json = serde_json::from_str(&text).expect("the input JSON parses");
    assert_eq!(reread, input, "the input JSON does not round-trip: {text}");
    let canonical = warden_audit::canonical(&input);
    let reread: Json = serde_json::from_str(&canonical).expect("the canonical input parses");
    assert_eq!(
        reread, input,
        "the canonical input does not round-trip: {canonical}"
    );
    assert_eq!(warden_audit::canonical(&reread), canonical);
}

/// Containers below a top-level attribute: 0 for a scalar.
fn nesting(value: &Json) -> usize {
    match value {
        Json::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Json::Object(fields) => 1 + fields.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// The input document holds exactly what the request said.
fn faithful(request: &pb::CheckRequest, input: &Json) {
    let (Some(agent), Some(principal), Some(action), Some(resource)) = (
        &request.agent,
        &request.principal,
        &request.action,
        &request.resource,
    ) else {
        panic!("accepted a request without agent, principal, action or resource");
    };
    let optional = |s: &str| (!s.is_empty()).then(|| Json::from(s));
    assert_eq!(input["platform"], Json::from(request.platform.as_str()));
    assert_eq!(input["agent"]["id"], Json::from(agent.id.as_str()));
    assert_eq!(
        input["principal"].get("type"),
        optional(&principal.r#type).as_ref()
    );
    assert_eq!(input["principal"]["id"], Json::from(principal.id.as_str()));
    assert_eq!(
        input.get("delegation_chain"),
        (!request.delegation_chain.is_empty())
            .then(|| Json::from(request.delegation_chain.clone()))
            .as_ref()
    );
    assert_eq!(input["action"]["name"], Json::from(action.name.as_str()));
    assert_eq!(
        input["resource"]["type"],
        Json::from(resource.r#type.as_str())
    );
    assert_eq!(input["resource"].get("id"), optional(&resource.id).as_ref());
    assert_eq!(
        input.get("request_id"),
        optional(&request.request_id).as_ref()
    );
    // agent {id, attributes}, principal {type?, id, attributes},
    // action {name, attributes}, resource {type, id?, attributes}.
    for (path, document, sent, keys) in [
        ("agent", &input["agent"], &agent.attributes, 2),
        (
            "principal",
            &input["principal"],
            &principal.attributes,
            2 + usize::from(!principal.r#type.is_empty()),
        ),
        ("action", &input["action"], &action.attributes, 2),
        (
            "resource",
            &input["resource"],
            &resource.attributes,
            2 + usize::from(!resource.id.is_empty()),
        ),
    ] {
        let found = document.as_object().map(Map::len).unwrap_or_default();
        assert_eq!(found, keys, "{path} has other keys: {document}");
        same_struct(&document["attributes"], sent.as_ref(), path);
    }
    same_struct(&input["context"], request.context.as_ref(), "context");
}

/// `document` is the object `sent` says (an absent Struct is `{}`).
fn same_struct(document: &Json, sent: Option<&prost_types::Struct>, path: &str) {
    let Some(object) = document.as_object() else {
        panic!("{path}: {document} is not an object");
    };
    let empty = prost_types::Struct::default();
    let sent = sent.unwrap_or(&empty);
    assert_eq!(object.len(), sent.fields.len(), "{path}: other keys");
    for (key, value) in &sent.fields {
        let Some(converted) = object.get(key) else {
            panic!("{path}: {key} is missing");
        };
        assert!(
            same(converted, value),
            "{path}.{key}: {converted} is not {value:?}"
        );
    }
}

/// The JSON value equals the protobuf value: numbers by value (integral ones
/// within ±2^53 written as integers), nulls of any enum number.
fn same(json: &Json, value: &prost_types::Value) -> bool {
    match (json, &value.kind) {
        (Json::Null, Some(Kind::NullValue(_))) => true,
        (Json::Bool(a), Some(Kind::BoolValue(b))) => a == b,
        (Json::String(a), Some(Kind::StringValue(b))) => a == b,
        (Json::Number(a), Some(Kind::NumberValue(b))) => {
            let exact_integer = b.fract() == 0.0 && b.abs() <= 9_007_199_254_740_992.0;
            a.as_f64() == Some(*b) && (a.is_i64() || a.is_u64()) == exact_integer
        }
        (Json::Array(items), Some(Kind::ListValue(list))) => {
            items.len() == list.values.len()
                && items.iter().zip(&list.values).all(|(a, b)| same(a, b))
        }
        (Json::Object(fields), Some(Kind::StructValue(s))) => {
            fields.len() == s.fields.len()
                && s.fields
                    .iter()
                    .all(|(k, v)| fields.get(k).is_some_and(|a| same(a, v)))
        }
        _ => false,
    }
}
