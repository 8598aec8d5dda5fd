//! An AuthZEN request body is untrusted JSON from any PEP. It goes through
//! the HTTP listener's own path: `parse_body`, the `/evaluation` and
//! `/evaluations` mappings with the default `[authzen]` settings, then
//! Warden's validation of every check they produce.
//!
//! Beyond never panicking:
//! * the mappings are deterministic;
//! * a check built from a body carries the body's subject, action and
//!   resource strings unchanged, and the platform and agent from where the
//!   rules say (here: the headers, since the envelope names them);
//! * the context keys that named the platform and agent are gone from the
//!   check's context, and nothing else is;
//! * `/evaluations` yields one check per item, or none (a single
//!   evaluation) exactly when `evaluations` is absent, null or empty;
//!   an item's identifiers fall back to the defaults', nothing else does;
//!   a malformed item is its own error, naming it;
//! * a search body keeps every field but the one searched for.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};
use warden::config::{AuthzenConfig, Config, RawConfig};
use warden::http::authzen::{
    BatchLimits, Envelope, evaluation, evaluations, parse_body, search,
};
use warden::search::Target;
use warden::request::{Limits, validate};
use warden_proto::v1 as pb;

fn config() -> &'static AuthzenConfig {
    static CONFIG: OnceLock<AuthzenConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::try_from(RawConfig::default())
            .map(|c| c.authzen)
            .unwrap_or_else(|e| panic!("default config: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = parse_body(data) else {
        return;
    };
    let envelope = Envelope {
        platform_header: Some("fuzz-platform".into()),
        agent_header: Some("fuzz-agent".into()),
        caller_platform: None,
        request_id: Some("fuzz-request".into()),
    };
    let limits = Limits::default();

    let single = evaluation(&body, &envelope, config());
    assert_eq!(
        single,
        evaluation(&body, &envelope, config()),
        "not deterministic"
    );
    if let Ok(check) = &single {
        faithful(check, &body, &body);
        let _ = validate(check, &limits);
    }

    // A search body maps as an evaluation would, but for the searched
    // field, which the search fills in per candidate.
    for target in [Target::Actions, Target::Resources, Target::Subjects] {
        let searched = search(target, &body, &envelope, config());
        assert_eq!(
            searched,
            search(target, &body, &envelope, config()),
            "not deterministic"
        );
        if let Ok(searched) = &searched {
            let check = &searched.request;
            assert_eq!(check.platform, "fuzz-platform");
            let principal = check.principal.as_ref().expect("a principal");
            assert_eq!(principal.r#type, string(&body, &body, "subject", "type"));
            let resource = check.resource.as_ref().expect("a resource");
            assert_eq!(resource.r#type, string(&body, &body, "resource", "type"));
            if target != Target::Actions {
                let action = check.action.as_ref().expect("an action");
                assert_eq!(action.name, string(&body, &body, "action", "name"));
            }
            if target != Target::Subjects {
                assert_eq!(principal.id, string(&body, &body, "subject", "id"));
            }
            if target != Target::Resources {
                assert_eq!(resource.id, string(&body, &body, "resource", "id"));
            }
            let _ = validate(check, &limits);
        }
    }

    // The server's defaults: 256 items, defaults of at most 64 KiB each.
    let batch = BatchLimits {
        max_items: limits.max_batch_items,
        max_default_bytes: limits.max_request_bytes,
    };
    let many = evaluations(&body, &envelope, config(), batch);
    assert_eq!(
        many,
        evaluations(&body, &envelope, config(), batch),
        "not deterministic"
    );
    if let Ok((items, _)) = &many {
        let listed = match body.get("evaluations") {
            Some(Json::Array(list)) if !list.is_empty() => Some(list),
            _ => None,
        };
        match (items, listed) {
            (None, None) => {}
            (Some(items), Some(list)) => {
                assert_eq!(items.len(), list.len());
                for (index, (mapped, item)) in items.iter().zip(list).enumerate() {
                    match mapped {
                        Ok(check) => {
                            let Json::Object(item) = item else {
                                panic!("a non-object item was accepted: {item}");
                            };
                            faithful(check, item, &body);
                            let _ = validate(check, &limits);
                        }
                        // An item's own error names the item.
                        Err(bad) => assert!(
                            bad.field.starts_with(&format!("evaluations[{index}]")),
                            "{bad:?}"
                        ),
                    }
                }
            }
            (items, list) => panic!("items {items:?} for evaluations {list:?}"),
        }
    }
});

/// `key.field` of the item, else of the defaults (`None`/null: absent).
fn field<'a>(
    item: &'a Map<String, Json>,
    defaults: &'a Map<String, Json>,
    key: &str,
    name: &str,
) -> Option<&'a Json> {
    let own = item.get(key).and_then(Json::as_object);
    let default = defaults.get(key).and_then(Json::as_object);
    own.and_then(|o| o.get(name))
        .filter(|v| !v.is_null())
        .or_else(|| default.and_then(|d| d.get(name)).filter(|v| !v.is_null()))
}

fn string<'a>(
    item: &'a Map<String, Json>,
    defaults: &'a Map<String, Json>,
    key: &str,
    name: &str,
) -> &'a str {
    match field(item, defaults, key, name) {
        Some(Json::String(text)) => text,
        other => panic!("a check was built with {key}.{name} = {other:?}"),
    }
}

fn faithful(check: &pb::CheckRequest, item: &Map<String, Json>, defaults: &Map<String, Json>) {
    assert_eq!(check.platform, "fuzz-platform");
    assert_eq!(
        check.agent.as_ref().map(|a| a.id.as_str()),
        Some("fuzz-agent")
    );
    assert_eq!(check.request_id, "fuzz-request");
    let principal = check.principal.as_ref().expect("a principal");
    assert_eq!(principal.r#type, string(item, defaults, "subject", "type"));
    assert_eq!(principal.id, string(item, defaults, "subject", "id"));
    let action = check.action.as_ref().expect("an action");
    assert_eq!(action.name, string(item, defaults, "action", "name"));
    let resource = check.resource.as_ref().expect("a resource");
    assert_eq!(resource.r#type, string(item, defaults, "resource", "type"));
    assert_eq!(resource.id, string(item, defaults, "resource", "id"));

    // The context: the item's, else the defaults', less the two keys.
    let sent = item
        .get("context")
        .filter(|c| !c.is_null())
        .or_else(|| defaults.get("context").filter(|c| !c.is_null()))
        .and_then(Json::as_object);
    let expected: Vec<&String> = sent
        .map(|c| {
            c.keys()
                .filter(|k| *k != "platform" && *k != "agent")
                .collect()
        })
        .unwrap_or_default();
    let got: Vec<&String> = check
        .context
        .as_ref()
        .map(|c| c.fields.keys().collect())
        .unwrap_or_default();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, expected_sorted, "context keys");
}
