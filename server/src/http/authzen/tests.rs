use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::config::RawConfig;

fn config() -> AuthzenConfig {
    crate::config::Config::try_from(RawConfig::default())
        .map(|c| c.authzen)
        .unwrap_or_else(|e| panic!("default config: {e}"))
}

fn body(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

const LIMITS: BatchLimits = BatchLimits {
    max_items: 256,
    max_default_bytes: 65536,
};

fn with_agent() -> Envelope {
    Envelope {
        platform_header: Some("todo-app".into()),
        agent_header: Some("todo-backend".into()),
        ..Envelope::default()
    }
}

fn field(result: Result<impl std::fmt::Debug, BadRequest>) -> String {
    match result {
        Err(e) => e.field,
        Ok(v) => panic!("expected a bad request, got {v:?}"),
    }
}

#[test]
fn an_evaluation_maps_onto_a_check() {
    let request = evaluation(
        &body(json!({
            "subject": {"type": "user", "id": "alice", "properties": {"department": "finance"}},
            "action": {"name": "can_read", "properties": {"method": "GET"}},
            "resource": {"type": "todo", "id": "1", "properties": {"ownerID": "bob"}},
            "context": {"time": "2026-12-01T10:00:00Z"},
            "unknown": {"ignored": true}
        })),
        &Envelope {
            request_id: Some("req-1".into()),
            ..with_agent()
        },
        &config(),
    )
    .unwrap();
    assert_eq!(request.platform, "todo-app");
    assert_eq!(request.agent.as_ref().unwrap().id, "todo-backend");
    let principal = request.principal.unwrap();
    assert_eq!(
        (principal.r#type.as_str(), principal.id.as_str()),
        ("user", "alice")
    );
    assert!(
        principal
            .attributes
            .unwrap()
            .fields
            .contains_key("department")
    );
    let action = request.action.unwrap();
    assert_eq!(action.name, "can_read");
    assert!(action.attributes.unwrap().fields.contains_key("method"));
    let resource = request.resource.unwrap();
    assert_eq!(
        (resource.r#type.as_str(), resource.id.as_str()),
        ("todo", "1")
    );
    assert!(resource.attributes.unwrap().fields.contains_key("ownerID"));
    assert!(request.context.unwrap().fields.contains_key("time"));
    assert_eq!(request.request_id, "req-1");
}

#[test]
fn platform_and_agent_come_from_headers_then_context_then_defaults() {
    let request = |context: Json, envelope: &Envelope, config: &AuthzenConfig| {
        evaluation(
            &body(json!({
                "subject": {"type": "user", "id": "a"},
                "action": {"name": "x"},
                "resource": {"type": "t", "id": "1"},
                "context": context,
            })),
            envelope,
            config,
        )
    };
    let context = json!({"platform": "from-context", "agent": {"id": "ctx-agent", "properties": {"model": "m"}}, "purpose": "p"});
    // Headers win, and the context keys are consumed either way.
    let from_headers = request(context.clone(), &with_agent(), &config()).unwrap();
    assert_eq!(from_headers.platform, "todo-app");
    assert_eq!(from_headers.agent.unwrap().id, "todo-backend");
    let left = from_headers.context.unwrap();
    assert!(left.fields.contains_key("purpose"));
    assert!(!left.fields.contains_key("platform") && !left.fields.contains_key("agent"));

    let from_context = request(context, &Envelope::default(), &config()).unwrap();
    assert_eq!(from_context.platform, "from-context");
    let agent = from_context.agent.unwrap();
    assert_eq!(agent.id, "ctx-agent");
    assert!(agent.attributes.unwrap().fields.contains_key("model"));

    // A credential for one platform names it; the default comes last.
    let mut defaults = config();
    defaults.default_platform = Some("default-platform".into());
    defaults.default_agent = Some("default-agent".into());
    let caller = Envelope {
        caller_platform: Some("caller-platform".into()),
        ..Envelope::default()
    };
    let from_caller = request(json!({}), &caller, &defaults).unwrap();
    assert_eq!(from_caller.platform, "caller-platform");
    assert_eq!(from_caller.agent.unwrap().id, "default-agent");
    let from_defaults = request(json!({}), &Envelope::default(), &defaults).unwrap();
    assert_eq!(from_defaults.platform, "default-platform");
    assert!(from_defaults.context.is_none());

    // Nothing anywhere: a 400 that says where it could have come from.
    let err = request(json!({}), &Envelope::default(), &config()).unwrap_err();
    assert_eq!(err.field, "context.platform");
    assert!(err.reason.contains("x-warden-platform"), "{err}");
    let err = request(json!({"platform": "p"}), &Envelope::default(), &config()).unwrap_err();
    assert_eq!(err.field, "context.agent");
    let err = request(json!({"agent": 7}), &with_agent(), &config()).unwrap_err();
    assert_eq!(err.field, "context.agent");
}

#[test]
fn missing_or_mistyped_fields_are_named() {
    let cfg = config();
    let envelope = with_agent();
    let case = |value: Json| field(evaluation(&body(value), &envelope, &cfg));
    let ok = json!({"subject": {"type": "user", "id": "a"}, "action": {"name": "x"}, "resource": {"type": "t", "id": "1"}});
    assert!(evaluation(&body(ok.clone()), &envelope, &cfg).is_ok());
    for (path, broken) in [
        ("subject", json!(null)),
        ("subject", json!("alice")),
        ("subject.type", json!({"id": "a"})),
        ("subject.id", json!({"type": "user", "id": 7})),
        (
            "subject.properties",
            json!({"type": "user", "id": "a", "properties": []}),
        ),
    ] {
        let mut value = ok.clone();
        value["subject"] = broken;
        assert_eq!(case(value), path);
    }
    let mut value = ok.clone();
    value["action"] = json!({"name": 123});
    assert_eq!(case(value), "action.name");
    let mut value = ok.clone();
    value.as_object_mut().unwrap().remove("resource");
    assert_eq!(case(value), "resource");
    let mut value = ok.clone();
    value["resource"] = json!({"type": "t"});
    assert_eq!(case(value), "resource.id");
    let mut value = ok;
    value["context"] = json!([1]);
    assert_eq!(case(value), "context");
}

#[test]
fn bodies_that_are_not_json_objects_are_refused() {
    assert_eq!(field(parse_body(b"")), "(body)");
    assert_eq!(field(parse_body(b"  \n")), "(body)");
    assert_eq!(field(parse_body(b"{\"subject\":")), "(body)");
    assert_eq!(field(parse_body(b"[1,2]")), "(body)");
    assert!(parse_body(b"{}").is_ok());
}

#[test]
fn evaluations_take_top_level_defaults_and_item_overrides() {
    let (items, semantic) = evaluations(
        &body(json!({
            "subject": {"type": "user", "id": "morty"},
            "action": {"name": "can_update_todo"},
            "resource": {"type": "todo"},
            "context": {"k": "top"},
            "evaluations": [
                {"resource": {"id": "1", "properties": {"ownerID": "rick"}}},
                {"resource": {"type": "user", "id": "2"}, "context": {"k": "item"}},
                {"subject": {"id": "summer"}, "action": {"name": "can_delete_todo"}, "resource": {"id": "3"}}
            ]
        })),
        &with_agent(),
        &config(),
        LIMITS,
    )
    .unwrap();
    assert_eq!(semantic, Semantic::ExecuteAll);
    let items: Vec<_> = items.unwrap().into_iter().map(Result::unwrap).collect();
    let resource = |i: usize| {
        let r = items[i].resource.clone().unwrap();
        (r.r#type, r.id)
    };
    assert_eq!(resource(0), ("todo".into(), "1".into()));
    assert_eq!(resource(1), ("user".into(), "2".into()));
    assert_eq!(resource(2), ("todo".into(), "3".into()));
    let context = |i: usize| items[i].context.clone().unwrap().fields["k"].clone();
    assert_eq!(context(0), warden_proto::convert::to_value(json!("top")));
    assert_eq!(context(1), warden_proto::convert::to_value(json!("item")));
    let subject = items[2].principal.clone().unwrap();
    assert_eq!(
        (subject.r#type.as_str(), subject.id.as_str()),
        ("user", "summer")
    );
    assert_eq!(items[2].action.clone().unwrap().name, "can_delete_todo");
    assert_eq!(items[0].action.clone().unwrap().name, "can_update_todo");
}

#[test]
fn evaluations_semantics_and_their_errors() {
    let cfg = config();
    let envelope = with_agent();
    let semantic = |options: Json| {
        evaluations(
            &body(json!({"options": options, "evaluations": []})),
            &envelope,
            &cfg,
            LIMITS,
        )
        .map(|(items, semantic)| {
            assert!(items.is_none(), "an empty list is a single evaluation");
            semantic
        })
    };
    assert_eq!(semantic(json!({})).unwrap(), Semantic::ExecuteAll);
    assert_eq!(
        semantic(json!({"evaluations_semantic": "execute_all"})).unwrap(),
        Semantic::ExecuteAll
    );
    assert_eq!(
        semantic(json!({"evaluations_semantic": "deny_on_first_deny"})).unwrap(),
        Semantic::DenyOnFirstDeny
    );
    assert_eq!(
        semantic(json!({"evaluations_semantic": "permit_on_first_permit"})).unwrap(),
        Semantic::PermitOnFirstPermit
    );
    assert_eq!(
        field(semantic(json!({"evaluations_semantic": "first_come"}))),
        "options.evaluations_semantic"
    );
    assert_eq!(field(semantic(json!("fast"))), "options");
    assert!(Semantic::DenyOnFirstDeny.stops_at(false));
    assert!(!Semantic::DenyOnFirstDeny.stops_at(true));
    assert!(Semantic::PermitOnFirstPermit.stops_at(true));
    assert!(!Semantic::ExecuteAll.stops_at(false));

    let bad_items = |items: Json| {
        field(evaluations(
            &body(json!({"evaluations": items})),
            &envelope,
            &cfg,
            LIMITS,
        ))
    };
    assert_eq!(bad_items(json!({"a": 1})), "evaluations");
    // A malformed item is its own error, in place; the others still map.
    let items = |items: Json| {
        evaluations(
            &body(json!({"evaluations": items})),
            &envelope,
            &cfg,
            LIMITS,
        )
        .unwrap()
        .0
        .unwrap()
    };
    let good = json!({"subject": {"type": "u", "id": "a"}, "action": {"name": "x"}, "resource": {"type": "t", "id": "1"}});
    let mapped = items(json!([1, good.clone()]));
    assert_eq!(field(mapped[0].clone()), "evaluations[0]");
    assert!(mapped[1].is_ok());
    let mapped = items(json!([
        good,
        {"subject": {"type": "u", "id": "a"}, "action": {"name": "x"}},
        {"subject": {"type": "u", "id": "a"}, "action": {"name": 123}, "resource": {"type": "t", "id": "1"}}
    ]));
    assert!(mapped[0].is_ok());
    assert_eq!(field(mapped[1].clone()), "evaluations[1].resource");
    assert_eq!(field(mapped[2].clone()), "evaluations[2].action.name");
}

#[test]
fn decisions_say_true_only_for_allow() {
    let response = |decision: pb::Decision| pb::CheckResponse {
        decision: decision as i32,
        reasons: vec!["r".into()],
        decision_id: "id-1".into(),
        policy_revision: "rev".into(),
        ..pb::CheckResponse::default()
    };
    let allow = decision(&response(pb::Decision::Allow));
    assert_eq!(allow["decision"], json!(true));
    assert_eq!(allow["context"]["decision_id"], json!("id-1"));
    assert_eq!(allow["context"]["policy_revision"], json!("rev"));
    let deny = decision(&response(pb::Decision::Deny));
    assert_eq!(deny["decision"], json!(false));
    assert_eq!(deny["context"]["reasons"], json!(["r"]));
    let approval = decision(&response(pb::Decision::RequireApproval));
    assert_eq!(approval["decision"], json!(false));
    assert_eq!(approval["context"]["outcome"], json!("require_approval"));
    assert_eq!(approval["context"]["require_approval"], json!(true));
}

#[test]
fn warden_field_names_read_in_authzen_terms() {
    assert_eq!(authzen_field("principal.id"), "subject.id");
    assert_eq!(authzen_field("resource.attributes"), "resource.properties");
    assert_eq!(authzen_field("action.name"), "action.name");
    assert_eq!(authzen_field("agent.id"), "agent.id (header or context)");
}

proptest! {
    #[test]
    fn any_bytes_parse_or_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let cfg = config();
        if let Ok(body) = parse_body(&bytes) {
            let _ = evaluation(&body, &with_agent(), &cfg);
            let _ = evaluations(&body, &with_agent(), &cfg, LIMITS);
        }
    }

    #[test]
    fn entity_strings_reach_the_check_unchanged(
        kind in "\\PC{0,12}", id in "\\PC{0,12}", name in "\\PC{0,12}", rtype in "\\PC{0,12}", rid in "\\PC{0,12}",
    ) {
        let request = evaluation(
            &body(json!({
                "subject": {"type": kind, "id": id},
                "action": {"name": name},
                "resource": {"type": rtype, "id": rid},
            })),
            &with_agent(),
            &config(),
        ).unwrap();
        let principal = request.principal.unwrap();
        prop_assert_eq!(principal.r#type, kind);
        prop_assert_eq!(principal.id, id);
        prop_assert_eq!(request.action.unwrap().name, name);
        let resource = request.resource.unwrap();
        prop_assert_eq!(resource.r#type, rtype);
        prop_assert_eq!(resource.id, rid);
    }
}

#[test]
fn an_item_entity_replaces_the_default_but_for_missing_identifiers() {
    let (items, _) = evaluations(
        &body(json!({
            "subject": {"type": "user", "id": "alice", "properties": {"role": "admin"}},
            "action": {"name": "read", "properties": {"why": "default"}},
            "resource": {"type": "doc", "id": "1", "properties": {"owner": "alice"}},
            "evaluations": [
                {"subject": {"type": "user", "id": "bob"}},
                {"subject": {"id": "carol"}, "resource": {"id": "2"}},
                {"action": {"name": "write"}},
                {}
            ]
        })),
        &with_agent(),
        &config(),
        LIMITS,
    )
    .unwrap();
    let items: Vec<_> = items.unwrap().into_iter().map(Result::unwrap).collect();
    let principal = |i: usize| items[i].principal.clone().unwrap();
    // Bob does not inherit Alice's properties.
    assert_eq!(principal(0).id, "bob");
    assert!(principal(0).attributes.is_none());
    assert_eq!(
        (principal(1).r#type.as_str(), principal(1).id.as_str()),
        ("user", "carol")
    );
    assert!(principal(1).attributes.is_none());
    let resource = items[1].resource.clone().unwrap();
    assert_eq!(
        (resource.r#type.as_str(), resource.id.as_str()),
        ("doc", "2")
    );
    assert!(resource.attributes.is_none());
    assert!(items[2].action.clone().unwrap().attributes.is_none());
    // An item that names nothing takes every default whole.
    assert!(principal(3).attributes.is_some());
    assert!(items[3].resource.clone().unwrap().attributes.is_some());
}

#[test]
fn evaluations_are_bounded_before_they_are_expanded() {
    let limits = BatchLimits {
        max_items: 3,
        max_default_bytes: 64,
    };
    let items = |n: usize| Json::Array(vec![json!({}); n]);
    let ok = json!({
        "subject": {"type": "user", "id": "a"},
        "action": {"name": "x"},
        "resource": {"type": "t", "id": "1"},
        "evaluations": items(3),
    });
    assert!(evaluations(&body(ok.clone()), &with_agent(), &config(), limits).is_ok());
    let mut many = ok.clone();
    many["evaluations"] = items(4);
    assert_eq!(
        field(evaluations(&body(many), &with_agent(), &config(), limits)),
        "evaluations"
    );
    let mut large = ok;
    large["context"] = json!({"blob": "x".repeat(100)});
    assert_eq!(
        field(evaluations(&body(large), &with_agent(), &config(), limits)),
        "context"
    );
}
