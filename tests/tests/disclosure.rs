//! Disclosure and delegation end to end: the incident the default policy is
//! shaped by, over gRPC and AuthZEN HTTP, against the real binary.
//!
//! Elena, an engineer, owns a restricted post-mortem; a summarising agent
//! acting for her is asked to post a summary to the all-staff channel.
//! Warden refuses, naming who could not read the document, and allows the
//! same post back to Elena alone.

use serde_json::{Value, json};
use warden_client::audit::{AuditClient, AuditQueryRequest};
use warden_client::{CheckBuilder as CheckRequestBuilder, ClientError, ClientOptions, Decision};
use warden_e2e::http_request;
use warden_e2e::process::Warden;

const DOC: &str = "pm-2026-11";

fn identity(staff: usize) -> Value {
    let mut users = serde_json::Map::new();
    users.insert(
        "elena".into(),
        json!({"groups": ["engineering", "all-staff"], "attributes": {}}),
    );
    for i in 0..staff {
        let mut groups = vec!["all-staff"];
        if i % 4 == 0 {
            groups.push("security");
        }
        users.insert(
            format!("staff{i:03}"),
            json!({"groups": groups, "attributes": {}}),
        );
    }
    json!({
        "version": format!("v{staff}"),
        "generated_at": "2026-12-01T00:00:00Z",
        "users": users,
        "groups": {"engineering": {}, "all-staff": {}, "security": {}},
        "agents": {
            "summarizer": {"owner": "elena", "platform": "internal-chat",
                "grants": ["documents.read", "documents.post"], "attributes": {}},
            "planner": {"owner": "elena", "platform": "internal-chat",
                "grants": ["documents.*"], "attributes": {}},
            "reader": {"owner": "elena", "platform": "internal-chat",
                "grants": ["documents.read"], "attributes": {}},
        },
    })
}

/// The post-mortem is Elena's and the security team's to read.
fn entitlements() -> Value {
    json!({
        "version": "e1",
        "generated_at": "2026-12-01T00:00:00Z",
        "subjects": {
            "user:elena": {"document": {DOC: ["documents.*"]}},
            "group:security": {"document": {DOC: ["documents.read"]}},
        },
    })
}

async fn server(staff: usize) -> (Warden, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        path.display().to_string()
    };
    let warden = Warden::builder()
        .arg("--identity")
        .arg(write("identity.json", identity(staff)))
        .arg("--entitlements")
        .arg(write("entitlements.json", entitlements()))
        .without_demo_limits(dir.path())
        .start()
        .await;
    (warden, dir)
}

fn post(audience: &[&str]) -> CheckRequestBuilder {
    let mut request = CheckRequestBuilder::new(
        "internal-chat",
        "summarizer",
        "elena",
        "documents.post",
        "document",
    )
    .resource_id(DOC);
    for entry in audience {
        request = request.audience(*entry);
    }
    request
}

#[tokio::test]
async fn the_incident_over_grpc_names_who_lacks_access() {
    let (warden, _dir) = server(40).await;
    let mut client = warden.client().await;

    let to_all = client
        .check(post(&["group:all-staff"]).build())
        .await
        .unwrap();
    assert_eq!(to_all.decision(), Decision::Deny, "{to_all:?}");
    assert_eq!(to_all.reasons, ["audience_not_entitled"]);
    let gap = to_all.audience.clone().expect("the gap is named");
    // 41 people; Elena and the 10 security members may read it.
    assert_eq!((gap.members, gap.lacking_count), (41, 30));
    let expected: Vec<String> = (0..40)
        .filter(|i| i % 4 != 0)
        .take(10)
        .map(|i| format!("user:staff{i:03}"))
        .collect();
    assert_eq!(gap.lacking, expected);

    let to_elena = client.check(post(&["user:elena"]).build()).await.unwrap();
    assert_eq!(to_elena.decision(), Decision::Allow, "{to_elena:?}");
    assert!(to_elena.audience.is_none());

    let to_security = client
        .check(post(&["group:security", "user:elena"]).build())
        .await
        .unwrap();
    assert_eq!(to_security.decision(), Decision::Allow, "{to_security:?}");

    for (audience, reason) in [
        (vec![], "audience_missing"),
        (vec!["user:nobody"], "audience_unknown"),
        (vec!["group:contractors"], "audience_unknown"),
        (vec!["public"], "audience_external"),
        (
            vec!["external:partner.example", "user:elena"],
            "audience_external",
        ),
    ] {
        let answer = client.check(post(&audience).build()).await.unwrap();
        assert_eq!(answer.decision(), Decision::Deny, "{audience:?}");
        assert_eq!(answer.reasons, [reason], "{audience:?}");
    }

    // The audit record names the gap too.
    let mut audit = AuditClient::connect(warden.admin_endpoint(), ClientOptions::default())
        .await
        .unwrap();
    let query = AuditQueryRequest {
        r#type: "decision".into(),
        ..AuditQueryRequest::default()
    };
    let records = audit.query_all(query, 100).await.unwrap();
    let entry = records
        .iter()
        .find(|r| r.id == to_all.decision_id)
        .expect("the denial's record");
    let entry: Value = serde_json::from_str(&entry.json).unwrap();
    let record = &entry["record"];
    assert_eq!(record["audience"]["lacking_count"], 30, "{record}");
    assert_eq!(record["audience"]["lacking"].as_array().unwrap().len(), 10);
    assert_eq!(record["input"]["audience"], json!(["group:all-staff"]));
}

#[tokio::test]
async fn the_incident_over_authzen_http() {
    let (warden, _dir) = server(40).await;
    let addr = warden.http_addr.expect("the HTTP listener is on");
    let evaluate = |audience: Value| {
        let body = json!({
            "subject": {"type": "user", "id": "elena"},
            "action": {"name": "documents.post"},
            "resource": {"type": "document", "id": DOC},
            "context": {"audience": audience},
        });
        let response = http_request(
            addr,
            "POST",
            "/access/v1/evaluation",
            &[
                ("Content-Type", "application/json"),
                ("X-Warden-Platform", "internal-chat"),
                ("X-Warden-Agent", "summarizer"),
            ],
            Some(body.to_string().as_bytes()),
        );
        (response.status, response.body)
    };
    let evaluate = |audience: Value| {
        let (status, body) = evaluate(audience);
        let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, json)
    };
    let (status, denied) = evaluate(json!(["group:all-staff"]));
    assert_eq!(status, 200, "{denied}");
    assert_eq!(denied["decision"], false, "{denied}");
    assert_eq!(
        denied["context"]["audience"]["lacking_count"], 30,
        "{denied}"
    );
    assert_eq!(denied["context"]["audience"]["members"], 41, "{denied}");
    let (_, allowed) = evaluate(json!(["user:elena"]));
    assert_eq!(allowed["decision"], true, "{allowed}");
    let (status, bad) = evaluate(json!(["user:elena", 7]));
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("context.audience[1]"), "{bad}");
}

#[tokio::test]
async fn audience_and_chain_are_validated() {
    let (warden, _dir) = server(4).await;
    let mut client = warden.client().await;
    let entries: Vec<String> = (0..65).map(|i| format!("user:staff{i:03}")).collect();
    let mut too_many = post(&[]);
    for entry in &entries {
        too_many = too_many.audience(entry.clone());
    }
    let status = match client.check(too_many.build()).await {
        Err(ClientError::Status(status)) => status,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("audience"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("64"), "{}", status.message());

    for (request, field) in [
        (post(&["staff001"]).build(), "audience[0]"),
        (post(&["user:elena", "team:x"]).build(), "audience[1]"),
        (
            post(&["user:elena"]).delegated_by("planner").build(),
            "delegation_chain[0]",
        ),
        (
            post(&["user:elena"]).delegated_by("agent:").build(),
            "delegation_chain[0]",
        ),
    ] {
        match client.check(request).await {
            Err(ClientError::Status(status)) => {
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
                assert!(
                    status.message().contains(field),
                    "{field}: {}",
                    status.message()
                );
            }
            other => panic!("{field}: expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn delegation_chains_are_judged() {
    let (warden, _dir) = server(4).await;
    let mut client = warden.client().await;
    let through = |chain: &[&str]| {
        let mut request = post(&["user:elena"]);
        for link in chain {
            request = request.delegated_by(*link);
        }
        request.build()
    };
    let cases: [(&[&str], Decision, &[&str]); 4] = [
        (&["client:chat-ui", "agent:planner"], Decision::Allow, &[]),
        (
            &["agent:reader"],
            Decision::Deny,
            &["delegate_not_granted:reader"],
        ),
        (
            &["agent:ghost", "user:elena"],
            Decision::Deny,
            &["delegate_unknown:ghost"],
        ),
        (&["client:chat-ui", "user:someone"], Decision::Allow, &[]),
    ];
    for (chain, decision, reasons) in cases {
        let answer = client.check(through(chain)).await.unwrap();
        assert_eq!(answer.decision(), decision, "{chain:?}: {answer:?}");
        assert_eq!(answer.reasons, reasons, "{chain:?}");
    }
}

/// Group membership comes from the identity snapshot in force: a push that
/// adds people to all-staff changes who lacks access at once.
#[tokio::test]
async fn group_expansion_follows_the_identity_snapshot() {
    let (warden, _dir) = server(0).await;
    let mut client = warden.client().await;
    let before = client
        .check(post(&["group:all-staff"]).build())
        .await
        .unwrap();
    assert_eq!(before.decision(), Decision::Allow, "{before:?}");

    let mut admin = warden.admin().await;
    admin
        .put_snapshot("identity", serde_json::to_vec(&identity(8)).unwrap())
        .await
        .unwrap();
    let after = client
        .check(post(&["group:all-staff"]).build())
        .await
        .unwrap();
    assert_eq!(after.decision(), Decision::Deny, "{after:?}");
    let gap = after.audience.unwrap();
    assert_eq!((gap.members, gap.lacking_count), (9, 6));
    assert_eq!(gap.lacking[0], "user:staff001");
}
