//! Host builtins through each way of running a policy: the RVM suspends at
//! the call and the host answers; the interpreter calls an extension. The
//! index is built once per data document, not once per check.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::Arc;

use regorus::Value;
use warden_rego::{Host, Limits, Mode, Module};

const POLICY: &str = r#"
package t

gaps := warden.audience_gaps(input.audience, input.resource, "documents.read", data.identity, data.entitlements)

plain := input.n + 1
"#;

fn data() -> Value {
    Value::from(serde_json::json!({
        "identity": {"users": {
            "ann": {"groups": ["eng"]},
            "bob": {"groups": ["eng"]},
            "cy": {"groups": []},
        }},
        "entitlements": {"subjects": {
            "group:eng": {"document": {"*": ["documents.read"]}},
        }},
    }))
}

fn input() -> Value {
    Value::from(serde_json::json!({
        "audience": ["group:eng", "user:cy"],
        "resource": {"type": "document", "id": "d1"},
    }))
}

fn expected() -> Value {
    Value::from(serde_json::json!({"members": 3, "lacking_count": 1, "lacking": ["user:cy"]}))
}

fn limits() -> Limits {
    Limits {
        timeout: None,
        max_instructions: 1_000_000,
    }
}

fn parsed() -> warden_rego::Parsed {
    warden_rego::parse(&[Module {
        path: "t.rego".into(),
        source: POLICY.into(),
        rego_v0: false,
    }])
    .unwrap()
}

#[test]
fn the_rvm_asks_the_host_and_reuses_its_index() {
    let policy = parsed().compile("data.t.gaps").unwrap();
    assert_eq!(policy.mode(), Mode::Rvm);
    assert!(policy.calls_host());
    let data = data();
    let host = Arc::new(Host::default());
    host.warm(&data);
    assert_eq!(host.builds(), 1);
    for _ in 0..3 {
        let mut evaluator = policy.evaluator(&data, limits(), host.clone()).unwrap();
        assert_eq!(evaluator.eval(input()).unwrap(), expected());
    }
    // The policy passes the generation's own documents, so the warm index
    // served every call.
    assert_eq!(host.builds(), 1);
}

#[test]
fn checks_that_never_call_the_host_run_to_completion() {
    let policy = parsed().compile("data.t.plain").unwrap();
    assert!(!policy.calls_host());
    let host = Arc::new(Host::default());
    let mut evaluator = policy.evaluator(&data(), limits(), host.clone()).unwrap();
    let out = evaluator
        .eval(Value::from(serde_json::json!({"n": 1})))
        .unwrap();
    assert_eq!(out, Value::from(2));
    assert_eq!(host.builds(), 0);
}

/// Without an audience the call is undefined, as Rego makes a call with an
/// undefined argument; run to completion, the unanswered call reads the same.
#[test]
fn without_an_audience_the_call_is_undefined() {
    let policy = parsed().compile("data.t.gaps").unwrap();
    let host = Arc::new(Host::default());
    let mut evaluator = policy.evaluator(&data(), limits(), host.clone()).unwrap();
    let bare = Value::from(serde_json::json!({"resource": {"type": "document"}}));
    assert_eq!(evaluator.eval(bare.clone()).unwrap(), Value::Undefined);
    // And the evaluator still answers the next check that has one.
    assert_eq!(evaluator.eval(input()).unwrap(), expected());

    let mut engine = parsed().into_engine();
    engine.add_data(data()).unwrap();
    engine.set_input(bare);
    assert_eq!(
        engine.eval_rule("data.t.gaps".into()).unwrap(),
        Value::Undefined
    );
}

/// Only `input.audience` may come first: another argument could be defined
/// without an audience, where only suspendable runs can answer.
#[test]
fn calls_not_gated_on_the_audience_are_refused() {
    for call in [
        "warden.audience_gaps(input.who, input.resource, \"r\", data.identity, data.entitlements)",
        "warden.audience_gaps(input.audience[0], input.resource, \"r\", data.identity, data.entitlements)",
        "warden.audience_gaps ( [\"user:x\"], input.resource, \"r\", data.identity, data.entitlements)",
    ] {
        let source = format!("package t\n\nx := {call}\n");
        let error = warden_rego::parse(&[Module {
            path: "t.rego".into(),
            source,
            rego_v0: false,
        }])
        .unwrap_err();
        assert!(
            error.to_string().contains("input.audience"),
            "{call}: {error}"
        );
    }
    // In a comment or a string it is no call.
    let source =
        "package t\n\n# warden.audience_gaps(input.who)\nx := \"warden.audience_gaps(1)\"\n";
    warden_rego::parse(&[Module {
        path: "t.rego".into(),
        source: source.into(),
        rego_v0: false,
    }])
    .unwrap();
}

#[test]
fn the_interpreter_calls_the_extension() {
    let mut engine = parsed().into_engine();
    engine.add_data(data()).unwrap();
    engine.set_input(input());
    assert_eq!(engine.eval_rule("data.t.gaps".into()).unwrap(), expected());
}

#[test]
fn bad_arguments_fail_the_evaluation() {
    let policy = parsed().compile("data.t.gaps").unwrap();
    let mut evaluator = policy
        .evaluator(&data(), limits(), Arc::new(Host::default()))
        .unwrap();
    let input =
        Value::from(serde_json::json!({"audience": "group:eng", "resource": {"type": "document"}}));
    let error = evaluator.eval(input).unwrap_err();
    assert!(
        error.to_string().contains("audience must be a list"),
        "{error}"
    );
}
