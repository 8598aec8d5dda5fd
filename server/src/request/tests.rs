//! Property tests: every well-formed request converts, and the input
//! document carries exactly what the request said; every rule and limit of
//! the validators refuses what breaks it, naming the field, and nothing else.

use proptest::prelude::*;
use prost::Message;
use prost_types::value::Kind;
use serde_json::{Map, Value as Json};
use warden_proto::convert::to_struct;
use warden_proto::v1 as pb;

use super::{Limits, validate};
use crate::input::{from_json, to_json, to_rego};

/// Any JSON value a Struct can carry: nested objects and lists, integers and
/// fractions of every size, unicode strings (control characters included:
/// attributes are free-form, only ids are restricted).
fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i32>().prop_map(|n| Json::from(i64::from(n))),
        (-9_007_199_254_740_992i64..=9_007_199_254_740_992).prop_map(Json::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        any::<String>().prop_map(Json::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Option<Map<String, Json>>> {
    prop::option::of(
        prop::collection::btree_map(any::<String>(), json_value(), 0..5)
            .prop_map(|m| m.into_iter().collect()),
    )
}

/// Ids: any printable, visible unicode (no control, format or separator
/// character), 1 to 64 characters.
fn id() -> impl Strategy<Value = String> {
    "[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]{1,64}"
}

/// One invisible character: a format (Cf), line separator (Zl) or
/// paragraph separator (Zp), by the regex engine's Unicode tables.
fn invisible() -> impl Strategy<Value = char> {
    prop_oneof![
        // The ones that disguise text in practice, drawn often.
        prop::sample::select(vec![
            '\u{202E}', '\u{202D}', '\u{200B}', '\u{200F}', '\u{2028}', '\u{2029}', '\u{FEFF}',
            '\u{2066}', '\u{2069}', '\u{00AD}',
        ]),
        "[\\p{Cf}\\p{Zl}\\p{Zp}]".prop_map(|s| s.chars().next().unwrap_or('\u{202E}')),
    ]
}

fn action_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_-]{1,12}", 1..5).prop_map(|segments| segments.join("."))
}

fn principal_type() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z][a-z0-9_-]{0,15}"]
}

/// A delegation chain entry: `kind:id`.
fn actor() -> impl Strategy<Value = String> {
    ("[a-z][a-z0-9_-]{0,15}", id()).prop_map(|(kind, id)| format!("{kind}:{id}"))
}

/// An audience entry.
fn audience_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        id().prop_map(|id| format!("user:{id}")),
        id().prop_map(|id| format!("group:{id}")),
        id().prop_map(|id| format!("external:{id}")),
        Just("public".to_owned()),
    ]
}

fn optional_id() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), id()]
}

prop_compose! {
    fn request()(
        platform in id(),
        agent_id in id(),
        agent_attributes in attributes(),
        principal_type in principal_type(),
        principal_id in id(),
        principal_attributes in attributes(),
        delegation_chain in prop::collection::vec(actor(), 0..4),
        audience in prop::collection::vec(audience_entry(), 0..4),
        action in action_name(),
        action_attributes in attributes(),
        resource_type in id(),
        resource_id in optional_id(),
        resource_attributes in attributes(),
        context in attributes(),
        request_id in optional_id(),
    ) -> pb::CheckRequest {
        pb::CheckRequest {
            platform,
            agent: Some(pb::Agent { id: agent_id, attributes: agent_attributes.map(to_struct) }),
            principal: Some(pb::Principal {
                r#type: principal_type,
                id: principal_id,
                attributes: principal_attributes.map(to_struct),
            }),
            delegation_chain,
            audience,
            action: Some(pb::Action { name: action, attributes: action_attributes.map(to_struct) }),
            resource: Some(pb::Resource {
                r#type: resource_type,
                id: resource_id,
                attributes: resource_attributes.map(to_struct),
            }),
            context: context.map(to_struct),
            request_id,
            approval: None,
        }
    }
}

/// Reads a request back out of its input document: the inverse mapping.
fn request_from_input(input: &Json) -> pb::CheckRequest {
    let text = |v: &Json| v.as_str().unwrap_or_default().to_owned();
    let object = |v: &Json| Some(to_struct(v.as_object().cloned().unwrap_or_default()));
    pb::CheckRequest {
        platform: text(&input["platform"]),
        agent: Some(pb::Agent {
            id: text(&input["agent"]["id"]),
            attributes: object(&input["agent"]["attributes"]),
        }),
        principal: Some(pb::Principal {
            r#type: text(&input["principal"]["type"]),
            id: text(&input["principal"]["id"]),
            attributes: object(&input["principal"]["attributes"]),
        }),
        delegation_chain: input["delegation_chain"]
            .as_array()
            .map(|items| items.iter().map(text).collect())
            .unwrap_or_default(),
        audience: input["audience"]
            .as_array()
            .map(|items| items.iter().map(text).collect())
            .unwrap_or_default(),
        action: Some(pb::Action {
            name: text(&input["action"]["name"]),
            attributes: object(&input["action"]["attributes"]),
        }),
        resource: Some(pb::Resource {
            r#type: text(&input["resource"]["type"]),
            id: text(&input["resource"]["id"]),
            attributes: object(&input["resource"]["attributes"]),
        }),
        context: object(&input["context"]),
        request_id: text(&input["request_id"]),
        approval: None,
    }
}

/// Absent attributes are the empty object in the input document.
fn with_empty_attributes(mut request: pb::CheckRequest) -> pb::CheckRequest {
    let fill = |s: &mut Option<prost_types::Struct>| {
        s.get_or_insert_with(prost_types::Struct::default);
    };
    if let Some(a) = request.agent.as_mut() {
        fill(&mut a.attributes);
    }
    if let Some(p) = request.principal.as_mut() {
        fill(&mut p.attributes);
    }
    if let Some(a) = request.action.as_mut() {
        fill(&mut a.attributes);
    }
    if let Some(r) = request.resource.as_mut() {
        fill(&mut r.attributes);
    }
    fill(&mut request.context);
    request
}

const KEYS: [&str; 10] = [
    "platform",
    "agent",
    "principal",
    "delegation_chain",
    "delegation",
    "audience",
    "action",
    "resource",
    "context",
    "request_id",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Total: every well-formed request within the limits converts.
    /// Faithful: reading the input document back gives the request again.
    #[test]
    fn mapping_is_total_and_faithful(request in request()) {
        let valid = validate(&request, &Limits::default());
        prop_assert!(valid.is_ok(), "{:?}", valid.err());
        let valid = valid.unwrap_or_else(|_| unreachable!());
        let input = to_json(&valid);

        prop_assert_eq!(request_from_input(&input), with_empty_attributes(request.clone()));

        // Exactly DESIGN's keys; optional ones present only when set.
        let object = input.as_object().cloned().unwrap_or_default();
        prop_assert!(object.keys().all(|k| KEYS.contains(&k.as_str())));
        prop_assert_eq!(object.contains_key("delegation_chain"), !request.delegation_chain.is_empty());
        prop_assert_eq!(object.contains_key("delegation"), !request.delegation_chain.is_empty());
        prop_assert_eq!(object.contains_key("audience"), !request.audience.is_empty());
        // The parsed chain is the chain, link for link.
        for (i, entry) in request.delegation_chain.iter().enumerate() {
            let link = &input["delegation"][i];
            prop_assert_eq!(format!("{}:{}", link["kind"].as_str().unwrap_or_default(), link["id"].as_str().unwrap_or_default()), entry.clone());
        }
        prop_assert_eq!(object.contains_key("request_id"), !request.request_id.is_empty());
        prop_assert_eq!(input["principal"].get("type").is_some(), !request.principal.as_ref().is_none_or(|p| p.r#type.is_empty()));
        prop_assert_eq!(input["resource"].get("id").is_some(), !request.resource.as_ref().is_none_or(|r| r.id.is_empty()));
    }

    /// The native engine's direct conversion equals regorus parsing the JSON
    /// document: no JSON round trip, same value.
    #[test]
    fn direct_rego_value_equals_parsed_json(request in request(), uses_left in 0u32..3) {
        let mut valid = validate(&request, &Limits::default()).unwrap_or_else(|e| unreachable!("{e}"));
        // A verified approval's facts, as the policy sees them, on some.
        if uses_left > 0 {
            valid.approval = Some(serde_json::json!({
                "id": "apr_x", "task_id": "arq_x", "approver": {"type": "user", "id": valid.principal.id},
                "uses": 2, "uses_left": uses_left, "approved_until": "2026-12-04T10:00:00Z",
            }));
        }
        let parsed = regorus::Value::from_json_str(&to_json(&valid).to_string());
        prop_assert!(parsed.is_ok());
        prop_assert_eq!(to_rego(&valid), parsed.unwrap_or_else(|_| unreachable!()));
        // What replay reads from an audit record is the request again.
        prop_assert_eq!(from_json(&to_json(&valid)), Ok(valid));
    }

    /// A non-finite number anywhere in attributes is refused, naming its path.
    #[test]
    fn non_finite_numbers_are_refused_with_their_path(
        key in "[a-z]{1,8}",
        index in 0usize..3,
        nan in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
    ) {
        let mut list: Vec<prost_types::Value> = (0..3)
            .map(|i| prost_types::Value { kind: Some(Kind::NumberValue(f64::from(i))) })
            .collect();
        list[index] = prost_types::Value { kind: Some(Kind::NumberValue(nan)) };
        let value = prost_types::Value {
            kind: Some(Kind::ListValue(prost_types::ListValue { values: list })),
        };
        let mut request = base();
        request.context = Some(prost_types::Struct { fields: [(key.clone(), value)].into_iter().collect() });
        let error = validate(&request, &Limits::default()).err();
        prop_assert_eq!(error.map(|e| e.field), Some(format!("context.{key}[{index}]")));
    }

    /// Ids with control characters or over the limit are refused, naming the field.
    #[test]
    fn bad_ids_name_their_field(
        field in 0usize..6,
        bad in prop_oneof!["[a-z]{0,5}[\\x00-\\x1f][a-z]{0,5}", "[a-z]{257,300}"],
    ) {
        let mut request = base();
        let name = match field {
            0 => { request.platform = bad; "platform" }
            1 => { if let Some(a) = request.agent.as_mut() { a.id = bad; } "agent.id" }
            2 => { if let Some(p) = request.principal.as_mut() { p.id = bad; } "principal.id" }
            3 => { if let Some(r) = request.resource.as_mut() { r.r#type = bad; } "resource.type" }
            4 => { if let Some(r) = request.resource.as_mut() { r.id = bad; } "resource.id" }
            _ => { request.request_id = bad; "request_id" }
        };
        let error = validate(&request, &Limits::default()).err();
        prop_assert_eq!(error.map(|e| e.field), Some(name.to_owned()));
    }
}

fn base() -> pb::CheckRequest {
    pb::CheckRequest {
        platform: "p".into(),
        agent: Some(pb::Agent {
            id: "a".into(),
            attributes: None,
        }),
        principal: Some(pb::Principal {
            r#type: "user".into(),
            id: "u".into(),
            attributes: None,
        }),
        delegation_chain: Vec::new(),
        audience: Vec::new(),
        action: Some(pb::Action {
            name: "documents.read".into(),
            attributes: None,
        }),
        resource: Some(pb::Resource {
            r#type: "document".into(),
            id: "d".into(),
            attributes: None,
        }),
        context: None,
        request_id: String::new(),
        approval: None,
    }
}

#[test]
fn the_design_example_maps_exactly() {
    let mut request = base();
    request.delegation_chain = vec!["client:chat-ui".into()];
    request.request_id = "r".into();
    let input =
        to_json(&validate(&request, &Limits::default()).unwrap_or_else(|e| unreachable!("{e}")));
    assert_eq!(
        input,
        serde_json::json!({
            "platform": "p",
            "agent":     {"id": "a", "attributes": {}},
            "principal": {"type": "user", "id": "u", "attributes": {}},
            "delegation_chain": ["client:chat-ui"],
            "delegation": [{"kind": "client", "id": "chat-ui"}],
            "action":    {"name": "documents.read", "attributes": {}},
            "resource":  {"type": "document", "id": "d", "attributes": {}},
            "context":   {},
            "request_id": "r"
        })
    );
}

#[test]
fn integral_numbers_stay_integers() {
    let mut request = base();
    request.context = Some(to_struct(
        serde_json::json!({"n": 3, "big": 1e300, "half": 0.5, "neg": -7})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    ));
    let input =
        to_json(&validate(&request, &Limits::default()).unwrap_or_else(|e| unreachable!("{e}")));
    assert_eq!(
        input["context"].to_string(),
        r#"{"big":1e+300,"half":0.5,"n":3,"neg":-7}"#
    );
}

// ---- The validators, rule by rule ----

/// The id fields, by the path an error names, and whether they may be empty.
const ID_FIELDS: [(&str, bool); 9] = [
    ("platform", false),
    ("agent.id", false),
    ("principal.type", true),
    ("principal.id", false),
    ("delegation_chain[0]", false),
    ("action.name", false),
    ("resource.type", false),
    ("resource.id", true),
    ("request_id", true),
];

/// A valid request whose ids are one byte each, with the id field `field`
/// (one of `ID_FIELDS`) set to `value`.
fn with_id(field: &str, value: String) -> pb::CheckRequest {
    let mut request = base();
    request.principal.as_mut().unwrap().r#type = "u".into();
    request.action.as_mut().unwrap().name = "r".into();
    request.resource.as_mut().unwrap().r#type = "t".into();
    let slot = match field {
        "platform" => &mut request.platform,
        "agent.id" => &mut request.agent.as_mut().unwrap().id,
        "principal.type" => &mut request.principal.as_mut().unwrap().r#type,
        "principal.id" => &mut request.principal.as_mut().unwrap().id,
        "delegation_chain[0]" => {
            request.delegation_chain = vec![String::new()];
            &mut request.delegation_chain[0]
        }
        "action.name" => &mut request.action.as_mut().unwrap().name,
        "resource.type" => &mut request.resource.as_mut().unwrap().r#type,
        "resource.id" => &mut request.resource.as_mut().unwrap().id,
        "request_id" => &mut request.request_id,
        _ => unreachable!("{field}"),
    };
    *slot = value;
    request
}

/// A value well-formed for `field`, of exactly `bytes` bytes (`bytes` ≥ 1):
/// free-form ids use two-byte characters too, so bytes and characters differ.
fn well_formed_id(field: &str, bytes: usize, seed: u64) -> String {
    let mut out = String::new();
    let mut seed = seed;
    while out.len() < bytes {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let room = bytes - out.len();
        let pick = (seed >> 33) as usize;
        let c = match field {
            "principal.type" if out.is_empty() => char::from(b'a' + (pick % 26) as u8),
            "principal.type" => char::from(b"abcz09_-"[pick % 8]),
            // `kind:id`: one letter of kind, then the id.
            "delegation_chain[0]" if out.is_empty() => 'a',
            "delegation_chain[0]" if out.len() == 1 => ':',
            "action.name" if out.is_empty() || out.ends_with('.') || room == 1 => {
                char::from(b"aZ09_-"[pick % 6])
            }
            "action.name" => char::from(b"aZ9_-."[pick % 6]),
            _ if room >= 2 && pick.is_multiple_of(3) => 'é',
            _ => char::from(b"aZ9:/ -."[pick % 8]),
        };
        out.push(c);
    }
    assert_eq!(out.len(), bytes);
    out
}

/// Limits drawn small, so that every limit is within reach.
fn small_limits() -> impl Strategy<Value = Limits> {
    (1usize..40, 0usize..6, 0usize..6).prop_map(|(id, chain, depth)| Limits {
        max_id_bytes: id,
        max_request_bytes: 64 * 1024,
        max_delegation_chain: chain,
        max_attribute_depth: depth,
        max_batch_items: 256,
        max_audience: chain,
        max_search_evaluations: 10_000,
    })
}

/// A Struct holding `key` → lists nested `depth` deep (`depth` 0: a string).
fn nested(key: &str, depth: usize) -> prost_types::Struct {
    let mut value = prost_types::Value {
        kind: Some(Kind::StringValue("leaf".into())),
    };
    for _ in 0..depth {
        value = prost_types::Value {
            kind: Some(Kind::ListValue(prost_types::ListValue {
                values: vec![value],
            })),
        };
    }
    prost_types::Struct {
        fields: [(key.to_owned(), value)].into_iter().collect(),
    }
}

/// Any protobuf value, including what the validator must refuse: no kind,
/// non-finite numbers, nulls of unknown enum numbers, deep nesting.
fn any_proto_value() -> impl Strategy<Value = prost_types::Value> {
    let leaf = prop_oneof![
        1 => Just(None),
        2 => any::<i32>().prop_map(|n| Some(Kind::NullValue(n))),
        2 => any::<bool>().prop_map(|b| Some(Kind::BoolValue(b))),
        3 => any::<f64>().prop_map(|n| Some(Kind::NumberValue(n))),
        1 => prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(9_007_199_254_740_993.0),
            Just(-9_007_199_254_740_992.0),
        ]
        .prop_map(|n| Some(Kind::NumberValue(n))),
        3 => any::<String>().prop_map(|s| Some(Kind::StringValue(s))),
    ]
    .prop_map(|kind| prost_types::Value { kind });
    leaf.prop_recursive(24, 96, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|values| prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue { values })),
            }),
            prop::collection::btree_map(any::<String>(), inner, 0..4).prop_map(|fields| {
                prost_types::Value {
                    kind: Some(Kind::StructValue(prost_types::Struct { fields })),
                }
            }),
        ]
    })
}

fn any_struct() -> impl Strategy<Value = Option<prost_types::Struct>> {
    prop::option::of(
        prop::collection::btree_map(any::<String>(), any_proto_value(), 0..4)
            .prop_map(|fields| prost_types::Struct { fields }),
    )
}

/// Strings a validator must sort out: empty, control characters, long,
/// near-valid types and action names, anything.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        any::<String>(),
        "[a-z][a-z0-9_-]{0,8}",
        "[A-Za-z0-9_.*-]{0,12}",
        // A control, format or separator character: all refused in ids.
        "[a-z]{0,3}[\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}][a-z]{0,3}",
        "[a-zé]{250,260}",
    ]
}

prop_compose! {
    fn any_request()(
        platform in any_text(),
        agent in prop::option::of((any_text(), any_struct())),
        principal in prop::option::of((any_text(), any_text(), any_struct())),
        delegation_chain in prop::collection::vec(any_text(), 0..18),
        audience in prop::collection::vec(any_text(), 0..6),
        action in prop::option::of((any_text(), any_struct())),
        resource in prop::option::of((any_text(), any_text(), any_struct())),
        context in any_struct(),
        request_id in any_text(),
    ) -> pb::CheckRequest {
        pb::CheckRequest {
            platform,
            agent: agent.map(|(id, attributes)| pb::Agent { id, attributes }),
            principal: principal.map(|(r#type, id, attributes)| pb::Principal { r#type, id, attributes }),
            delegation_chain,
            audience,
            action: action.map(|(name, attributes)| pb::Action { name, attributes }),
            resource: resource.map(|(r#type, id, attributes)| pb::Resource { r#type, id, attributes }),
            context,
            request_id,
            approval: None,
        }
    }
}

prop_compose! {
    /// A well-formed request (`request()`) whose attributes and context are
    /// any value trees: accepted often, so the accepted path is exercised.
    fn valid_ids_any_attributes()(
        request in request(),
        agent in any_struct(),
        principal in any_struct(),
        action in any_struct(),
        resource in any_struct(),
        context in any_struct(),
    ) -> pb::CheckRequest {
        let mut request = request;
        request.agent.as_mut().unwrap().attributes = agent;
        request.principal.as_mut().unwrap().attributes = principal;
        request.action.as_mut().unwrap().attributes = action;
        request.resource.as_mut().unwrap().attributes = resource;
        request.context = context;
        request
    }
}

/// Requests of every kind: anything, or well-formed ids with any attributes.
fn mixed_request() -> impl Strategy<Value = pb::CheckRequest> {
    prop_oneof![any_request(), valid_ids_any_attributes()]
}

/// The paths an error may name, before any path inside attributes.
const FIELD_ROOTS: [&str; 23] = [
    "request",
    "platform",
    "agent",
    "agent.id",
    "agent.attributes",
    "principal",
    "principal.type",
    "principal.id",
    "principal.attributes",
    "delegation_chain",
    "delegation_chain[",
    "audience",
    "audience[",
    "action",
    "action.name",
    "action.attributes",
    "resource",
    "resource.type",
    "resource.id",
    "resource.attributes",
    "context",
    "context.",
    "request_id",
];

/// The least limits under which `request` (accepted as `valid`) passes.
fn needs(request: &pb::CheckRequest, valid: &super::CheckRequest) -> Limits {
    fn nesting(value: &Json) -> usize {
        match value {
            Json::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
            Json::Object(fields) => 1 + fields.values().map(nesting).max().unwrap_or(0),
            _ => 0,
        }
    }
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
    let attributes = [
        &valid.agent.attributes,
        &valid.principal.attributes,
        &valid.action.attributes,
        &valid.resource.attributes,
        &valid.context,
    ];
    Limits {
        max_id_bytes: ids
            .into_iter()
            .flatten()
            .chain(&valid.delegation_chain)
            .chain(&valid.audience)
            .map(String::len)
            .max()
            .unwrap_or(0),
        max_request_bytes: request.encoded_len(),
        max_delegation_chain: valid.delegation_chain.len(),
        max_audience: valid.audience.len(),
        max_attribute_depth: attributes
            .into_iter()
            .flat_map(|a| a.values())
            .map(nesting)
            .max()
            .unwrap_or(0),
        max_batch_items: 1,
        max_search_evaluations: 1,
    }
}

/// Nulls of any enum number are JSON's null: read back, they are `0`.
fn with_plain_nulls(mut request: pb::CheckRequest) -> pb::CheckRequest {
    fn value(v: &mut prost_types::Value) {
        match &mut v.kind {
            Some(Kind::NullValue(n)) => *n = 0,
            Some(Kind::StructValue(s)) => fields(s),
            Some(Kind::ListValue(l)) => l.values.iter_mut().for_each(value),
            _ => {}
        }
    }
    fn fields(s: &mut prost_types::Struct) {
        s.fields.values_mut().for_each(value);
    }
    let structs = [
        request.agent.as_mut().and_then(|a| a.attributes.as_mut()),
        request
            .principal
            .as_mut()
            .and_then(|p| p.attributes.as_mut()),
        request.action.as_mut().and_then(|a| a.attributes.as_mut()),
        request
            .resource
            .as_mut()
            .and_then(|r| r.attributes.as_mut()),
        request.context.as_mut(),
    ];
    structs.into_iter().flatten().for_each(fields);
    request
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every id field refuses a value one byte or more over its limit,
    /// naming exactly that field, and takes one exactly at the limit —
    /// counted in bytes, whatever the limit.
    #[test]
    fn every_id_over_its_limit_is_refused_naming_it(
        field in 0..ID_FIELDS.len(),
        limit in 1usize..300,
        over in 1usize..40,
        seed in any::<u64>(),
    ) {
        let (name, _) = ID_FIELDS[field];
        // The shortest chain entry is `k:i`.
        prop_assume!(name != "delegation_chain[0]" || limit >= 3);
        let limits = Limits { max_id_bytes: limit, ..Limits::default() };
        let at = with_id(name, well_formed_id(name, limit, seed));
        let valid = validate(&at, &limits);
        prop_assert!(valid.is_ok(), "{name} at {limit} bytes: {:?}", valid.err());

        let error = validate(&with_id(name, well_formed_id(name, limit + over, seed)), &limits)
            .err()
            .unwrap();
        prop_assert_eq!(&error.field, name);
        prop_assert!(error.reason.contains(&format!("limit of {limit} bytes")), "{}", error.reason);
    }

    /// A control character (C0, DEL or C1) anywhere in any id is refused,
    /// naming the field; so is an empty required id. Optional ids may be
    /// empty, and then are absent.
    #[test]
    fn ids_with_control_characters_or_empty_are_refused(
        field in 0..ID_FIELDS.len(),
        control in prop_oneof![
            prop::char::range('\u{0}', '\u{1f}'),
            Just('\u{7f}'),
            prop::char::range('\u{80}', '\u{9f}'),
        ],
        at in 0usize..8,
        seed in any::<u64>(),
    ) {
        let (name, optional) = ID_FIELDS[field];
        let mut value = well_formed_id(name, 8, seed);
        let at = value.char_indices().nth(at).map_or(value.len(), |(i, _)| i);
        value.insert(at, control);
        let error = validate(&with_id(name, value), &Limits::default()).err().unwrap();
        prop_assert_eq!(&error.field, name);

        let empty = validate(&with_id(name, String::new()), &Limits::default());
        if optional {
            let valid = empty.unwrap();
            let input = to_json(&valid);
            let absent = match name {
                "principal.type" => valid.principal.kind.is_none() && input["principal"].get("type").is_none(),
                "resource.id" => valid.resource.id.is_none() && input["resource"].get("id").is_none(),
                _ => valid.request_id.is_none() && input.get("request_id").is_none(),
            };
            prop_assert!(absent, "{name} is not absent: {input}");
        } else {
            let error = empty.err().unwrap();
            prop_assert_eq!(&error.field, name);
            prop_assert_eq!(error.reason, "is required");
        }
    }

    /// An invisible format or separator character (U+202E, U+200B, U+2028,
    /// a BOM, …) anywhere in any id is refused, naming the field and the
    /// character; the same id without it is accepted.
    #[test]
    fn ids_with_invisible_characters_are_refused(
        field in 0..ID_FIELDS.len(),
        c in invisible(),
        at in 0usize..8,
        seed in any::<u64>(),
    ) {
        let (name, _) = ID_FIELDS[field];
        let clean = well_formed_id(name, 8, seed);
        prop_assert!(validate(&with_id(name, clean.clone()), &Limits::default()).is_ok());
        let mut value = clean;
        let at = value.char_indices().nth(at).map_or(value.len(), |(i, _)| i);
        value.insert(at, c);
        let error = validate(&with_id(name, value), &Limits::default()).err().unwrap();
        prop_assert_eq!(&error.field, name);
        prop_assert_eq!(
            error.reason,
            format!("must not contain invisible format or separator characters (found U+{:04X})", u32::from(c))
        );
    }

    /// Attribute values and keys are free-form: the same characters are
    /// accepted there, in every attribute object and the context, and reach
    /// the input document unchanged.
    #[test]
    fn attributes_keep_invisible_characters(
        which in 0usize..5,
        c in invisible(),
        key in "[a-z]{1,6}",
    ) {
        let text = format!("a{c}b");
        let attributes = Some(prost_types::Struct {
            fields: [(format!("{key}{c}"), prost_types::Value {
                kind: Some(Kind::StringValue(text.clone())),
            })].into_iter().collect(),
        });
        let mut request = base();
        match which {
            0 => request.agent.as_mut().unwrap().attributes = attributes,
            1 => request.principal.as_mut().unwrap().attributes = attributes,
            2 => request.action.as_mut().unwrap().attributes = attributes,
            3 => request.resource.as_mut().unwrap().attributes = attributes,
            _ => request.context = attributes,
        }
        let valid = validate(&request, &Limits::default());
        prop_assert!(valid.is_ok(), "{:?}", valid.err());
        let input = valid.map(|v| to_json(&v)).unwrap();
        let holder = match which {
            0 => &input["agent"]["attributes"],
            1 => &input["principal"]["attributes"],
            2 => &input["action"]["attributes"],
            3 => &input["resource"]["attributes"],
            _ => &input["context"],
        };
        prop_assert_eq!(&holder[format!("{key}{c}").as_str()], &Json::String(text));
    }

    /// Types are `[a-z][a-z0-9_-]*`, action names dotted segments of
    /// `[A-Za-z0-9_-]`: anything else is refused naming the field, and what
    /// matches is accepted.
    #[test]
    fn types_and_action_names_follow_their_grammar(
        kind in "[a-zA-Z0-9_:*. -]{1,10}",
        action in "[a-zA-Z0-9_:*. -]{1,14}",
    ) {
        let kind_ok = kind.starts_with(|c: char| c.is_ascii_lowercase())
            && kind.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        let result = validate(&with_id("principal.type", kind.clone()), &Limits::default());
        prop_assert_eq!(result.is_ok(), kind_ok, "{}", kind);
        if let Err(error) = result {
            prop_assert_eq!(error.field, "principal.type");
        }

        let action_ok = action.split('.').all(|s| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        let result = validate(&with_id("action.name", action.clone()), &Limits::default());
        prop_assert_eq!(result.is_ok(), action_ok, "{}", action);
        if let Err(error) = result {
            prop_assert_eq!(error.field, "action.name");
        }
    }

    /// The chain takes up to its limit of entries and refuses one more,
    /// naming `delegation_chain`; a bad entry is named by its index.
    #[test]
    fn delegation_chain_limit_and_entries(limit in 0usize..20, bad in 0usize..20) {
        let limits = Limits { max_delegation_chain: limit, ..Limits::default() };
        let mut request = base();
        request.delegation_chain = (0..limit).map(|i| format!("agent:{i}")).collect();
        prop_assert!(validate(&request, &limits).is_ok());
        if limit > 0 {
            let bad = bad % limit;
            request.delegation_chain[bad] = String::new();
            let error = validate(&request, &limits).err().unwrap();
            prop_assert_eq!(error.field, format!("delegation_chain[{bad}]"));
            request.delegation_chain[bad] = "ok".into();
        }
        request.delegation_chain.push("one-more".into());
        let error = validate(&request, &limits).err().unwrap();
        prop_assert_eq!(error.field, "delegation_chain");
    }

    /// A request larger than `max_request_bytes` is refused as `request`;
    /// one exactly at the limit is accepted.
    #[test]
    fn request_size_limit(padding in 0usize..2000, over in 1usize..64) {
        let mut request = base();
        let with_padding = |request: &mut pb::CheckRequest, bytes: usize| {
            request.context = Some(prost_types::Struct {
                fields: [("pad".to_owned(), prost_types::Value {
                    kind: Some(Kind::StringValue("x".repeat(bytes))),
                })].into_iter().collect(),
            });
        };
        with_padding(&mut request, padding);
        let size = request.encoded_len();
        let limits = Limits { max_request_bytes: size, ..Limits::default() };
        prop_assert!(validate(&request, &limits).is_ok());
        with_padding(&mut request, padding + over);
        let error = validate(&request, &limits).err().unwrap();
        prop_assert_eq!(error.field, "request");
    }

    /// Attributes nest up to `max_attribute_depth` containers below their
    /// top-level object; one more is refused, the error naming the path to
    /// the container that went too deep, in every Struct of the request.
    #[test]
    fn attribute_depth_limit_names_the_path(
        limit in 0usize..20,
        which in 0usize..5,
        key in "[a-z]{1,6}",
    ) {
        let limits = Limits { max_attribute_depth: limit, ..Limits::default() };
        let place = |depth: usize| {
            let mut request = base();
            let value = Some(nested(&key, depth));
            let name = match which {
                0 => { request.agent.as_mut().unwrap().attributes = value; "agent.attributes" }
                1 => { request.principal.as_mut().unwrap().attributes = value; "principal.attributes" }
                2 => { request.action.as_mut().unwrap().attributes = value; "action.attributes" }
                3 => { request.resource.as_mut().unwrap().attributes = value; "resource.attributes" }
                _ => { request.context = value; "context" }
            };
            (request, name)
        };
        let (request, _) = place(limit);
        prop_assert!(validate(&request, &limits).is_ok());
        let (request, name) = place(limit + 1);
        let error = validate(&request, &limits).err().unwrap();
        // The outermost list is `key`; each list below it is item 0.
        let expected = format!("{name}.{key}{}", "[0]".repeat(limit));
        prop_assert_eq!(error.field, expected);
        prop_assert_eq!(error.reason, "nested too deeply");
    }

    /// Whatever strings and value trees a request holds, validation does not
    /// panic, gives the same answer twice, and blames a known field; what it
    /// accepts is within the limits and converts to an input document that
    /// holds exactly the request's values.
    #[test]
    fn validation_is_deterministic_total_and_faithful(
        request in mixed_request(),
        limits in prop_oneof![Just(Limits::default()), small_limits()],
    ) {
        let result = validate(&request, &limits);
        prop_assert_eq!(&validate(&request, &limits), &result);
        match result {
            Err(error) => {
                prop_assert!(
                    FIELD_ROOTS.iter().any(|root| error.field == *root
                        || (error.field.starts_with(root)
                            && (root.ends_with(['.', '['])
                                || error.field[root.len()..].starts_with(['.', '['])))),
                    "unknown field {}", error.field
                );
                prop_assert_eq!(error.to_string(), format!("invalid {}: {}", error.field, error.reason));
            }
            Ok(valid) => {
                let ids = [
                    Some(&valid.platform), Some(&valid.agent.id), valid.principal.kind.as_ref(),
                    Some(&valid.principal.id), Some(&valid.action.name), Some(&valid.resource.kind),
                    valid.resource.id.as_ref(), valid.request_id.as_ref(),
                ];
                for id in ids.into_iter().flatten().chain(&valid.delegation_chain) {
                    prop_assert!(!id.is_empty() && id.len() <= limits.max_id_bytes);
                    prop_assert!(!id.chars().any(char::is_control));
                    prop_assert_eq!(crate::request::first_invisible(id), None);
                }
                prop_assert!(valid.delegation_chain.len() <= limits.max_delegation_chain);
                let input = to_json(&valid);
                prop_assert_eq!(
                    request_from_input(&input),
                    with_empty_attributes(with_plain_nulls(request.clone()))
                );
                let parsed = regorus::Value::from_json_str(&input.to_string()).unwrap();
                prop_assert_eq!(to_rego(&valid), parsed);
            }
        }
    }

    /// Limits are exact and monotone: an accepted request is accepted, the
    /// same, with limits exactly at what it needs and with any higher ones;
    /// lowering any one limit below its need refuses it, naming a field that
    /// limit governs.
    #[test]
    fn limits_are_exact_and_monotone(
        request in valid_ids_any_attributes(),
        more in (0usize..300, 0usize..20, 0usize..20, 0usize..1000),
    ) {
        let Ok(valid) = validate(&request, &Limits::default()) else {
            return Ok(());
        };
        let needs = needs(&request, &valid);
        prop_assert_eq!(validate(&request, &needs), Ok(valid.clone()));
        let higher = Limits {
            max_id_bytes: needs.max_id_bytes + more.0,
            max_delegation_chain: needs.max_delegation_chain + more.1,
            max_attribute_depth: needs.max_attribute_depth + more.2,
            max_request_bytes: needs.max_request_bytes + more.3,
            ..needs.clone()
        };
        prop_assert_eq!(validate(&request, &higher), Ok(valid.clone()));

        let below = |limits: Limits| validate(&request, &limits).err().map(|e| e.field);
        let field = below(Limits { max_request_bytes: needs.max_request_bytes - 1, ..needs.clone() });
        prop_assert_eq!(field.as_deref(), Some("request"));
        let field = below(Limits { max_id_bytes: needs.max_id_bytes - 1, ..needs.clone() });
        prop_assert!(
            field.as_deref().is_some_and(|f| ID_FIELDS.iter().any(|(name, _)| {
                f == *name
                || (name.starts_with("delegation_chain") && f.starts_with("delegation_chain["))
                || f.starts_with("audience[")
            })),
            "{:?}", field
        );
        if needs.max_delegation_chain > 0 {
            let field = below(Limits { max_delegation_chain: needs.max_delegation_chain - 1, ..needs.clone() });
            prop_assert_eq!(field.as_deref(), Some("delegation_chain"));
        }
        if needs.max_attribute_depth > 0 {
            let field = below(Limits { max_attribute_depth: needs.max_attribute_depth - 1, ..needs.clone() });
            prop_assert!(
                field.as_deref().is_some_and(|f| {
                    ["agent.attributes.", "principal.attributes.", "action.attributes.", "resource.attributes.", "context."]
                        .iter()
                        .any(|root| f.starts_with(root))
                }),
                "{:?}", field
            );
        }
    }

    /// Arbitrary bytes, decoded as `Check` decodes them, never make
    /// validation panic (the `request_input` fuzz target does this at scale).
    #[test]
    fn arbitrary_wire_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = pb::CheckRequest::decode(bytes.as_slice())
            && let Ok(valid) = validate(&request, &Limits::default())
        {
            prop_assert_eq!(to_rego(&valid), crate::input::json_to_rego(&to_json(&valid)));
        }
    }
}

#[test]
fn missing_messages_are_required() {
    for (name, strip) in [
        (
            "agent",
            (|r: &mut pb::CheckRequest| r.agent = None) as fn(&mut pb::CheckRequest),
        ),
        ("principal", |r| r.principal = None),
        ("action", |r| r.action = None),
        ("resource", |r| r.resource = None),
    ] {
        let mut request = base();
        strip(&mut request);
        let error = validate(&request, &Limits::default()).unwrap_err();
        assert_eq!(
            (error.field.as_str(), error.reason.as_str()),
            (name, "is required")
        );
    }
}

/// A Value without a kind, anywhere, is refused with its path.
#[test]
fn values_without_a_kind_are_refused() {
    let mut request = base();
    request.resource.as_mut().unwrap().attributes = Some(prost_types::Struct {
        fields: [(
            "tags".to_owned(),
            prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue {
                    values: vec![
                        prost_types::Value {
                            kind: Some(Kind::BoolValue(true)),
                        },
                        prost_types::Value { kind: None },
                    ],
                })),
            },
        )]
        .into_iter()
        .collect(),
    });
    let error = validate(&request, &Limits::default()).unwrap_err();
    assert_eq!(error.field, "resource.attributes.tags[1]");
    assert_eq!(error.reason, "value has no kind");
}

// ---- The `request_input` fuzz target's seeds ----

/// Requests the fuzz target starts from: valid ones (minimal, full, nested
/// to the depth limit), a batch, and a few refused ones.
fn fuzz_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let json = |value: Json| Some(to_struct(value.as_object().cloned().unwrap_or_default()));
    let mut full = base();
    full.platform = "copilot-studio".into();
    full.agent.as_mut().unwrap().attributes =
        json(serde_json::json!({"model": "gpt-5", "session": "s-1"}));
    full.principal.as_mut().unwrap().attributes =
        json(serde_json::json!({"mfa": true, "groups": ["finance", "eu"]}));
    full.delegation_chain = vec!["client:chat-ui".into(), "agent:planner".into()];
    full.action.as_mut().unwrap().attributes =
        json(serde_json::json!({"amount": 129.5, "count": 3, "big": 1e300, "none": null}));
    full.resource.as_mut().unwrap().attributes =
        json(serde_json::json!({"labels": ["travel", "q4"], "owner": {"id": "u-1"}}));
    full.context = json(serde_json::json!({"risk": {"score": 12}, "purpose": "month-end"}));
    full.request_id = "corr-7".into();

    let depth = Limits::default().max_attribute_depth;
    let mut deepest = base();
    deepest.context = Some(nested("deep", depth));
    let mut too_deep = base();
    too_deep.context = Some(nested("deep", depth + 1));
    let mut control = base();
    control.agent.as_mut().unwrap().id = "a\nforged".into();
    let mut nan = base();
    nan.context = Some(prost_types::Struct {
        fields: [(
            "n".to_owned(),
            prost_types::Value {
                kind: Some(Kind::NumberValue(f64::NAN)),
            },
        )]
        .into_iter()
        .collect(),
    });
    let batch = pb::BatchCheckRequest {
        items: vec![full.clone(), control.clone()],
    };
    vec![
        ("check_minimal.bin", base().encode_to_vec()),
        ("check_full.bin", full.encode_to_vec()),
        ("check_deepest.bin", deepest.encode_to_vec()),
        ("check_too_deep.bin", too_deep.encode_to_vec()),
        ("check_control_character.bin", control.encode_to_vec()),
        ("check_nan.bin", nan.encode_to_vec()),
        ("batch_two.bin", batch.encode_to_vec()),
    ]
}

/// The seed files in `fuzz/seeds/request_input/` are these requests. After
/// changing the seeds, rewrite the files with
/// `WARDEN_BLESS_FUZZ_SEEDS=1 cargo test -p warden --lib request::tests::fuzz_seeds`.
#[test]
fn fuzz_seeds_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/request_input");
    let seeds = fuzz_seeds();
    if std::env::var_os("WARDEN_BLESS_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in &seeds {
        let path = dir.join(name);
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            &stored, bytes,
            "{name} is stale: rewrite with WARDEN_BLESS_FUZZ_SEEDS=1"
        );
    }
    let valid = |name: &str| {
        let bytes = &seeds.iter().find(|(n, _)| *n == name).unwrap().1;
        validate(
            &pb::CheckRequest::decode(bytes.as_slice()).unwrap(),
            &Limits::default(),
        )
    };
    assert!(valid("check_minimal.bin").is_ok());
    assert!(valid("check_full.bin").is_ok());
    assert!(valid("check_deepest.bin").is_ok());
    assert_eq!(
        valid("check_too_deep.bin").unwrap_err().reason,
        "nested too deeply"
    );
    assert_eq!(
        valid("check_control_character.bin").unwrap_err().field,
        "agent.id"
    );
    assert_eq!(valid("check_nan.bin").unwrap_err().field, "context.n");
}

proptest! {
    /// An audience is refused when it has more entries than the limit
    /// (naming `audience`), else at its first entry that is not `user:ID`,
    /// `group:ID`, `public` or `external:DOMAIN` with a valid id (naming
    /// `audience[i]`); otherwise it reaches the input as sent.
    #[test]
    fn audience_entries_are_checked_and_counted(
        entries in prop::collection::vec(prop_oneof![audience_entry(), any_text()], 0..8),
        limit in 0usize..8,
    ) {
        let mut request = base();
        request.audience = entries.clone();
        let limits = Limits { max_audience: limit, ..Limits::default() };
        let result = validate(&request, &limits);
        let well_formed = |entry: &str| {
            let shaped = entry == "public"
                || ["user:", "group:", "external:"].iter().any(|p| entry.len() > p.len() && entry.starts_with(p));
            shaped
                && entry.len() <= 256
                && !entry.chars().any(char::is_control)
                && super::first_invisible(entry).is_none()
        };
        if entries.len() > limit {
            prop_assert_eq!(result.err().map(|e| e.field), Some("audience".to_owned()));
        } else if let Some(bad) = entries.iter().position(|e| !well_formed(e)) {
            prop_assert_eq!(result.err().map(|e| e.field), Some(format!("audience[{bad}]")));
        } else {
            let valid = result.unwrap_or_else(|e| unreachable!("{e}"));
            let input = to_json(&valid);
            prop_assert_eq!(&valid.audience, &entries);
            if entries.is_empty() {
                prop_assert!(input.get("audience").is_none());
            } else {
                prop_assert_eq!(&input["audience"], &serde_json::json!(entries));
            }
        }
    }
}
