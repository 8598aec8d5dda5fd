//! What an approval is bound to: the request, exactly, minus volatile
//! context members. Two requests bind equal only if everything the policy
//! could read about the action is equal (platform, agent, principal,
//! delegation chain, action and its arguments, resource, bound context), so
//! an approval for "grant read on doc A to Bob" never allows "grant admin
//! to Bob".

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::request::CheckRequest;

/// Context members left out of the binding by default: per-call facts
/// that differ between the denied check and its repetition.
pub const DEFAULT_EXCLUDED_CONTEXT: &[&str] = &[
    "time",
    "timestamp",
    "request_id",
    "trace_id",
    "span_id",
    "nonce",
];

/// The bound request as a JSON object: the policy's input minus
/// `request_id`, any approval, and the excluded context members.
pub fn bound(request: &CheckRequest, excluded_context: &[String]) -> Json {
    let mut input = match crate::input::to_json(request) {
        Json::Object(map) => map,
        _ => Map::new(),
    };
    input.remove("request_id");
    input.remove("approval");
    // Derived from `delegation_chain`, which is bound already.
    input.remove("delegation");
    if let Some(Json::Object(context)) = input.get_mut("context") {
        context.retain(|key, _| !excluded_context.iter().any(|e| e == key));
    }
    input.insert("v".into(), Json::from(1));
    Json::Object(input)
}

/// The binding hash of a bound request: URL-safe base64 of SHA-256 over a
/// domain label and its canonical JSON.
pub fn hash(bound: &Json) -> String {
    let mut digest = Sha256::new();
    digest.update(b"warden-approval-binding-v1\n");
    digest.update(warden_audit::canonical(bound).as_bytes());
    b64(&digest.finalize())
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Limits, validate};
    use proptest::prelude::*;
    use warden_proto::v1 as pb;

    /// A wire request from its JSON form (the shape the input document has).
    fn pb_from_json(json: &serde_json::Value) -> Result<pb::CheckRequest, ()> {
        use warden_proto::convert::to_struct;
        let text = |v: &serde_json::Value, k: &str| -> Result<String, ()> {
            match v.get(k) {
                None => Ok(String::new()),
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(()),
            }
        };
        let object = |v: &serde_json::Value, k: &str| -> Result<Option<prost_types::Struct>, ()> {
            match v.get(k) {
                None => Ok(None),
                Some(serde_json::Value::Object(m)) => Ok(Some(to_struct(m.clone()))),
                Some(_) => Err(()),
            }
        };
        let part = |k: &str| json.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let (agent, principal, action, resource) = (
            part("agent"),
            part("principal"),
            part("action"),
            part("resource"),
        );
        let chain = match json.get("delegation_chain") {
            None => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(String::from).ok_or(()))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(()),
        };
        Ok(pb::CheckRequest {
            platform: text(json, "platform")?,
            agent: Some(pb::Agent {
                id: text(&agent, "id")?,
                attributes: object(&agent, "attributes")?,
            }),
            principal: Some(pb::Principal {
                r#type: text(&principal, "type")?,
                id: text(&principal, "id")?,
                attributes: object(&principal, "attributes")?,
            }),
            delegation_chain: chain,
            audience: Vec::new(),
            action: Some(pb::Action {
                name: text(&action, "name")?,
                attributes: object(&action, "attributes")?,
            }),
            resource: Some(pb::Resource {
                r#type: text(&resource, "type")?,
                id: text(&resource, "id")?,
                attributes: object(&resource, "attributes")?,
            }),
            context: object(json, "context")?,
            request_id: text(json, "request_id")?,
            approval: None,
        })
    }

    fn request(context: serde_json::Value, args: serde_json::Value) -> CheckRequest {
        let json = serde_json::json!({
            "platform": "p", "agent": {"id": "a", "attributes": {"model": "m"}},
            "principal": {"type": "user", "id": "u", "attributes": {"dept": "x"}},
            "delegation_chain": ["client:ui"],
            "action": {"name": "permissions.grant", "attributes": args},
            "resource": {"type": "document", "id": "d1", "attributes": {"owner": "u"}},
            "context": context, "request_id": "r1"
        });
        let pb: pb::CheckRequest = pb_from_json(&json).expect("a valid request");
        validate(&pb, &Limits::default()).expect("valid")
    }

    fn h(r: &CheckRequest) -> String {
        hash(&bound(
            r,
            &DEFAULT_EXCLUDED_CONTEXT
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ))
    }

    /// An approval to show something to some people is not one to show it
    /// to others; the parsed chain adds nothing the chain did not bind.
    #[test]
    fn the_audience_binds() {
        let to_one = {
            let mut r = request(serde_json::json!({}), serde_json::json!({}));
            r.audience = vec!["user:u".into()];
            r
        };
        let mut to_all = to_one.clone();
        to_all.audience = vec!["group:all-staff".into()];
        let mut to_none = to_one.clone();
        to_none.audience.clear();
        assert_ne!(h(&to_one), h(&to_all));
        assert_ne!(h(&to_one), h(&to_none));
        let bound = bound(&to_one, &[]);
        assert!(bound.get("delegation").is_none(), "{bound}");
        assert_eq!(bound["delegation_chain"], serde_json::json!(["client:ui"]));
    }

    #[test]
    fn volatile_members_do_not_bind() {
        let a = request(
            serde_json::json!({"purpose": "x", "time": "t1", "request_id": "1"}),
            serde_json::json!({"role": "reader"}),
        );
        let mut b = request(
            serde_json::json!({"purpose": "x", "time": "t2", "nonce": "n"}),
            serde_json::json!({"role": "reader"}),
        );
        b.request_id = Some("other".into());
        assert_eq!(h(&a), h(&b));
    }

    /// One path into the request's JSON form and a change at it.
    #[derive(Debug, Clone)]
    enum Edit {
        Set(Vec<String>, serde_json::Value),
        Remove(Vec<String>),
    }

    fn edits() -> impl Strategy<Value = Edit> {
        let value = prop_oneof![
            Just(serde_json::json!("admin")),
            Just(serde_json::json!(2)),
            Just(serde_json::json!(true)),
            Just(serde_json::json!(null)),
            Just(serde_json::json!({"nested": "y"})),
            Just(serde_json::json!(["z"])),
        ];
        let path = prop_oneof![
            Just(vec!["platform"]),
            Just(vec!["agent", "id"]),
            Just(vec!["agent", "attributes", "model"]),
            Just(vec!["agent", "attributes", "session"]),
            Just(vec!["principal", "id"]),
            Just(vec!["principal", "type"]),
            Just(vec!["principal", "attributes", "dept"]),
            Just(vec!["principal", "attributes", "added"]),
            Just(vec!["action", "name"]),
            Just(vec!["action", "attributes", "role"]),
            Just(vec!["action", "attributes", "grantee"]),
            Just(vec!["action", "attributes", "nested", "deep"]),
            Just(vec!["action", "attributes", "added"]),
            Just(vec!["resource", "type"]),
            Just(vec!["resource", "id"]),
            Just(vec!["resource", "attributes", "owner"]),
            Just(vec!["resource", "attributes", "added"]),
            Just(vec!["context", "purpose"]),
            Just(vec!["context", "added"]),
            Just(vec!["delegation_chain"]),
        ]
        .prop_map(|p| p.into_iter().map(String::from).collect::<Vec<_>>());
        prop_oneof![
            (path.clone(), value).prop_map(|(p, v)| Edit::Set(p, v)),
            path.prop_map(Edit::Remove),
        ]
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "platform": "p", "agent": {"id": "a", "attributes": {"model": "m"}},
            "principal": {"type": "user", "id": "u", "attributes": {"dept": "x"}},
            "delegation_chain": ["client:ui"],
            "action": {"name": "permissions.grant", "attributes": {"role": "reader", "grantee": "bob",
                "nested": {"deep": 1}}},
            "resource": {"type": "document", "id": "d1", "attributes": {"owner": "u"}},
            "context": {"purpose": "p", "time": "t"}, "request_id": "r1"
        })
    }

    fn apply(mut json: serde_json::Value, edit: &Edit) -> serde_json::Value {
        let (path, value) = match edit {
            Edit::Set(p, v) => (p, Some(v.clone())),
            Edit::Remove(p) => (p, None),
        };
        let mut at = &mut json;
        for key in &path[..path.len() - 1] {
            if at.get(key).is_none() {
                at[key.as_str()] = serde_json::json!({});
            }
            at = &mut at[key.as_str()];
        }
        let last = &path[path.len() - 1];
        if let Some(object) = at.as_object_mut() {
            match value {
                Some(v) => {
                    object.insert(last.clone(), v);
                }
                None => {
                    object.remove(last);
                }
            }
        }
        json
    }

    fn hash_of(json: &serde_json::Value) -> Option<String> {
        let pb = pb_from_json(json).ok()?;
        let valid = validate(&pb, &Limits::default()).ok()?;
        Some(h(&valid))
    }

    proptest! {
        /// Any single change to a bound member (changed, added or removed,
        /// at any depth) is out of scope; the request itself is in scope.
        #[test]
        fn any_single_change_is_out_of_scope(edit in edits()) {
            let original = base();
            let Some(expected) = hash_of(&original) else {
                return Err(TestCaseError::fail("the base request is invalid"));
            };
            prop_assert_eq!(hash_of(&original), Some(expected.clone()));
            let edited = apply(original.clone(), &edit);
            // An edit that leaves the request invalid cannot be checked, so
            // cannot use an approval; an edit that changes nothing (setting
            // what is there) must keep the hash.
            if let Some(changed) = hash_of(&edited) {
                let same = {
                    let a = validate(&pb_from_json(&original).unwrap(), &Limits::default()).unwrap();
                    let b = validate(&pb_from_json(&edited).unwrap(), &Limits::default()).unwrap();
                    crate::input::to_json(&a) == crate::input::to_json(&b)
                };
                prop_assert_eq!(changed == expected, same, "edit {:?}", edit);
            }
        }
    }
}
