//! Property tests: every well-formed request converts, and the input
//! document carries exactly what the request said.

use proptest::prelude::*;
use prost_types::value::Kind;
use serde_json::{Map, Value as Json};
use warden_proto::convert::to_struct;
use warden_proto::v1 as pb;

use super::{Limits, validate};
use crate::input::{to_json, to_rego};

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

/// Ids: any printable unicode, 1 to 64 characters.
fn id() -> impl Strategy<Value = String> {
    "[^\\p{Cc}]{1,64}"
}

fn action_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_-]{1,12}", 1..5).prop_map(|segments| segments.join("."))
}

fn principal_type() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z][a-z0-9_-]{0,15}"]
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
        delegation_chain in prop::collection::vec(id(), 0..4),
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
            action: Some(pb::Action { name: action, attributes: action_attributes.map(to_struct) }),
            resource: Some(pb::Resource {
                r#type: resource_type,
                id: resource_id,
                attributes: resource_attributes.map(to_struct),
            }),
            context: context.map(to_struct),
            request_id,
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
        prop_assert_eq!(object.contains_key("request_id"), !request.request_id.is_empty());
        prop_assert_eq!(input["principal"].get("type").is_some(), !request.principal.as_ref().is_none_or(|p| p.r#type.is_empty()));
        prop_assert_eq!(input["resource"].get("id").is_some(), !request.resource.as_ref().is_none_or(|r| r.id.is_empty()));
    }

    /// The native engine's direct conversion equals regorus parsing the JSON
    /// document: no JSON round trip, same value.
    #[test]
    fn direct_rego_value_equals_parsed_json(request in request()) {
        let valid = validate(&request, &Limits::default()).unwrap_or_else(|e| unreachable!("{e}"));
        let parsed = regorus::Value::from_json_str(&to_json(&valid).to_string());
        prop_assert!(parsed.is_ok());
        prop_assert_eq!(to_rego(&valid), parsed.unwrap_or_else(|_| unreachable!()));
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
