//! Wire compatibility: messages encoded by an earlier build must decode to
//! the same values today. A renumbered or retyped field fails here.
//!
//! After adding a field on purpose, extend the samples and rewrite the files
//! with `WARDEN_BLESS_GOLDEN=1 cargo test -p warden-proto --test golden`;
//! existing bytes must never change.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::path::PathBuf;

use prost::Message;
use warden_proto::convert::to_struct;
use warden_proto::v1 as pb;

fn attributes(json: serde_json::Value) -> Option<prost_types::Struct> {
    json.as_object().cloned().map(to_struct)
}

fn check_request() -> pb::CheckRequest {
    pb::CheckRequest {
        platform: "copilot-studio".into(),
        agent: Some(pb::Agent {
            id: "expense-assistant".into(),
            attributes: attributes(serde_json::json!({"model": "gpt-5", "session": "s-1"})),
        }),
        principal: Some(pb::Principal {
            r#type: "user".into(),
            id: "amelia.hughes".into(),
            attributes: attributes(serde_json::json!({"mfa": true})),
        }),
        delegation_chain: vec!["client:chat-ui".into(), "agent:planner".into()],
        audience: Vec::new(),
        action: Some(pb::Action {
            name: "expenses.submit".into(),
            attributes: attributes(serde_json::json!({"amount": 129.5, "currency": "EUR"})),
        }),
        resource: Some(pb::Resource {
            r#type: "expense".into(),
            id: "exp-42".into(),
            attributes: attributes(serde_json::json!({"labels": ["travel", "q4"]})),
        }),
        context: attributes(serde_json::json!({"risk": {"score": 12}, "purpose": "month-end"})),
        request_id: "corr-7".into(),
        // The bytes of a request from before approvals existed.
        approval: None,
    }
}

fn check_response() -> pb::CheckResponse {
    pb::CheckResponse {
        decision: pb::Decision::Deny as i32,
        reasons: vec!["kill_switch:ks-1".into(), "incident".into()],
        decision_id: "01a2125c-cc74-720a-96dd-68dbd1343df1".into(),
        request_id: "corr-7".into(),
        policy_revision: "r-2026-11".into(),
        snapshot_versions: [
            ("identity".to_string(), "i-9".to_string()),
            ("entitlements".to_string(), "e-4".to_string()),
        ]
        .into_iter()
        .collect(),
        kill_switch: Some(pb::KillSwitchMatch {
            id: "ks-1".into(),
            scope: Some(pb::KillSwitchScope {
                platform: "copilot-studio".into(),
                agent_id: "expense-assistant".into(),
                principal_id: "amelia.hughes".into(),
                action: "expenses.*".into(),
                resource_type: "expense".into(),
                // The bytes of a scope from before session scopes existed.
                session_id: String::new(),
            }),
        }),
        // The bytes of a response from before approvals existed.
        ..Default::default()
    }
}

fn batch_response() -> pb::BatchCheckResponse {
    pb::BatchCheckResponse {
        results: vec![
            pb::BatchCheckResult {
                result: Some(pb::batch_check_result::Result::Response(check_response())),
            },
            pb::BatchCheckResult {
                result: Some(pb::batch_check_result::Result::Error(pb::BatchItemError {
                    code: 3,
                    message: "invalid agent.id: is required".into(),
                    field: "agent.id".into(),
                })),
            },
        ],
    }
}

fn golden<M: Message + Default + PartialEq + std::fmt::Debug>(name: &str, sample: M) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name);
    if std::env::var_os("WARDEN_BLESS_GOLDEN").is_some() && !path.exists() {
        std::fs::write(&path, sample.encode_to_vec()).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        M::decode(bytes.as_slice()).unwrap(),
        sample,
        "{name} decodes differently"
    );
    // Deterministic here: maps hold one or two entries in a sorted order.
    let mut reencoded = M::decode(bytes.as_slice()).unwrap().encode_to_vec();
    reencoded.sort_unstable();
    let mut original = bytes.clone();
    original.sort_unstable();
    assert_eq!(reencoded, original, "{name} re-encodes to other bytes");
}

#[test]
fn old_bytes_decode_to_the_same_messages() {
    golden("check_request.bin", check_request());
    golden("check_response.bin", check_response());
    golden(
        "batch_check_request.bin",
        pb::BatchCheckRequest {
            items: vec![check_request(), check_request()],
        },
    );
    golden("batch_check_response.bin", batch_response());
}
