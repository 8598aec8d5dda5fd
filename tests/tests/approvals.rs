//! Human approval end to end, on the real server: requestable decisions,
//! access requests and tasks, approvers, re-evaluation bound to the exact
//! request, single use, revocation, expiry, kill switches, restarts, and
//! the same loop over AuthZEN HTTP (ARAP).

use std::time::Duration;

use serde_json::{Value as Json, json};
use tonic::Code;
use warden_client::{CheckBuilder, ClientOptions, Transport, connect_channel};
use warden_e2e::process::{Warden, WardenBuilder};
use warden_e2e::{Demo, http_request};
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_client::AdminServiceClient;
use warden_proto::v1::approval_service_client::ApprovalServiceClient;
use warden_proto::v1::approver_service_client::ApproverServiceClient;
use warden_proto::v1::audit_service_client::AuditServiceClient;
use warden_proto::v1::decision_service_client::DecisionServiceClient;

fn token(name: &str) -> String {
    format!("approvals-test-token-{name}-0123456789")
}

/// People and credentials of one test server.
struct Setup {
    warden: Warden,
    /// An it-ops member: entitled to grant permissions, so the default
    /// policy asks for approval.
    principal: String,
    /// A security member: may approve access-control changes.
    security: String,
    _dir: tempfile::TempDir,
}

fn config(principal: &str, security: &str) -> String {
    let tokens = [
        ("desk", "platform:support-desk".to_owned()),
        ("studio", "platform:copilot-studio".to_owned()),
        ("sec", format!("approver:{security}")),
        ("self", format!("approver:{principal}")),
        ("agent", "approver:access-admin".to_owned()),
        ("responder", "incident_responder".to_owned()),
        ("auditor", "auditor".to_owned()),
        ("policy", "policy_admin".to_owned()),
    ];
    format!(
        "[auth]\ntokens = {}\n",
        warden_e2e::token_table(&tokens, token)
    )
}

async fn setup_with(extra: impl FnOnce(WardenBuilder) -> WardenBuilder) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::load();
    let principal = demo.member_of("it-ops");
    let security = demo.member_of("security");
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config(&principal, &security)).unwrap();
    let warden =
        extra(Warden::builder().env("WARDEN_CONFIG", path.display().to_string())).start_listening();
    wait_serving(&warden).await;
    Setup {
        warden,
        principal,
        security,
        _dir: dir,
    }
}

async fn wait_serving(warden: &Warden) {
    let options = ClientOptions {
        token: Some(token("desk")),
        ..ClientOptions::default()
    };
    warden.wait_health(warden.endpoint(), &options).await;
}

async fn setup() -> Setup {
    setup_with(|b| b).await
}

impl Setup {
    async fn transport(&self, admin: bool, who: &str) -> Transport {
        let endpoint = if admin {
            self.warden.admin_endpoint()
        } else {
            self.warden.endpoint()
        };
        let options = ClientOptions {
            token: Some(token(who)),
            ..ClientOptions::default()
        };
        connect_channel(endpoint, &options).await.unwrap()
    }

    async fn decisions(&self, who: &str) -> DecisionServiceClient<Transport> {
        DecisionServiceClient::new(self.transport(false, who).await)
    }

    async fn platform(&self, who: &str) -> ApprovalServiceClient<Transport> {
        ApprovalServiceClient::new(self.transport(false, who).await)
    }

    async fn approver(&self, who: &str) -> ApproverServiceClient<Transport> {
        ApproverServiceClient::new(self.transport(true, who).await)
    }

    /// The ACL change the tests ask approval for.
    fn grant(&self) -> pb::CheckRequest {
        CheckBuilder::new(
            "support-desk",
            "access-admin",
            &self.principal,
            "permissions.grant",
            "role",
        )
        .resource_id("finance-approver")
        .action_attribute("grantee", json!("bob"))
        .action_attribute("level", json!("read"))
        .context("purpose", json!("quarter close"))
        .context("time", json!("2026-12-04T10:00:00Z"))
        .request_id("first")
        .build()
    }

    async fn check(&self, request: pb::CheckRequest) -> pb::CheckResponse {
        self.decisions("desk")
            .await
            .check(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// Checks `request`, submits its access request and returns the task.
    async fn request(&self, request: &pb::CheckRequest) -> (pb::CheckResponse, pb::ApprovalTask) {
        let denied = self.check(request.clone()).await;
        assert_eq!(denied.decision(), pb::Decision::RequireApproval);
        let access = denied.access_request.clone().expect("an access request");
        let task = self
            .platform("desk")
            .await
            .request_approval(pb::RequestApprovalRequest {
                request: Some(request.clone()),
                evaluation_id: access.evaluation_id,
                binding_token: access.binding_token,
                justification: "month-end access for the audit".into(),
            })
            .await
            .unwrap()
            .into_inner();
        (denied, task)
    }

    /// Requests approval of `request` and has the security member approve
    /// it; the approval to send back.
    async fn approved(&self, request: &pb::CheckRequest, valid_for: u64) -> pb::ApprovalRef {
        let (_, task) = self.request(request).await;
        self.approver("sec")
            .await
            .approve(pb::ApproveRequest {
                task_id: task.id.clone(),
                note: "ok for the close".into(),
                valid_for_seconds: valid_for,
            })
            .await
            .unwrap();
        let task = self
            .platform("desk")
            .await
            .get_approval_task(pb::GetApprovalTaskRequest { task_id: task.id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(task.state(), pb::ApprovalTaskState::Approved);
        task.approval
            .expect("an approved task carries its approval")
    }

    async fn check_with(
        &self,
        mut request: pb::CheckRequest,
        approval: &pb::ApprovalRef,
    ) -> pb::CheckResponse {
        request.approval = Some(approval.clone());
        self.check(request).await
    }
}

fn refused(response: &pb::CheckResponse, reason: &str, next_action: &str) {
    assert_eq!(response.decision(), pb::Decision::Deny, "{response:?}");
    assert_eq!(
        response.reasons.first().map(String::as_str),
        Some(reason),
        "{response:?}"
    );
    assert_eq!(response.next_action, next_action, "{response:?}");
}

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    let status = result.expect_err("the call should be refused");
    (status.code(), status.message().to_owned())
}

#[tokio::test]
async fn the_whole_loop_over_grpc_binds_the_exact_request() {
    let s = setup().await;
    let request = s.grant();

    // A requestable denial says who may approve and until when to ask.
    let denied = s.check(request.clone()).await;
    assert_eq!(denied.decision(), pb::Decision::RequireApproval);
    assert_eq!(denied.reasons, ["sensitive_action"]);
    let access = denied.access_request.clone().unwrap();
    assert_eq!(access.evaluation_id, denied.decision_id);
    assert!(access.expires_at > access.evaluated_at);
    let requirement = access.requirement.clone().unwrap();
    assert_eq!(requirement.approvers, ["group:security"]);
    assert!(!requirement.self_approval);
    assert_eq!(
        (requirement.uses, requirement.template.as_str()),
        (1, "acl_change")
    );

    // The submission must be for exactly the denied request.
    let mut platform = s.platform("desk").await;
    let submit = |request: pb::CheckRequest, token: String| pb::RequestApprovalRequest {
        request: Some(request),
        evaluation_id: access.evaluation_id.clone(),
        binding_token: token,
        justification: "month-end access for the audit".into(),
    };
    let mut other = request.clone();
    other
        .action
        .as_mut()
        .unwrap()
        .attributes
        .as_mut()
        .unwrap()
        .fields
        .insert(
            "level".into(),
            warden_proto::convert::to_value(json!("admin")),
        );
    let (c, message) = code(
        platform
            .request_approval(submit(other, access.binding_token.clone()))
            .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(message.contains("binding_token"), "{message}");
    let mut tampered = access.binding_token.clone().into_bytes();
    tampered[10] ^= 1;
    let (c, _) = code(
        platform
            .request_approval(submit(
                request.clone(),
                String::from_utf8(tampered).unwrap(),
            ))
            .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    // Volatile context (time, request id) does not bind.
    let mut later = request.clone();
    later.request_id = "second".into();
    let task = platform
        .request_approval(submit(later, access.binding_token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(task.state(), pb::ApprovalTaskState::Pending);
    assert_eq!(task.evaluation_id, access.evaluation_id);
    assert!(task.id.starts_with("arq_"));
    // Idempotent: the same submission is the same task; another
    // justification for it is a conflict.
    let again = platform
        .request_approval(submit(request.clone(), access.binding_token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, task.id);
    let mut escaping = submit(request.clone(), access.binding_token.clone());
    escaping.justification = "fine\u{1b}[2J\u{1b}[Hall approved".into();
    let (c, message) = code(platform.request_approval(escaping).await);
    assert_eq!(c, Code::InvalidArgument);
    assert!(message.contains("justification"), "{message}");
    let mut different = submit(request.clone(), access.binding_token.clone());
    different.justification = "something else".into();
    assert_eq!(
        code(platform.request_approval(different).await).0,
        Code::AlreadyExists
    );
    // Another platform does not see it.
    let get = |id: &str| pb::GetApprovalTaskRequest { task_id: id.into() };
    assert_eq!(
        code(
            s.platform("studio")
                .await
                .get_approval_task(get(&task.id))
                .await
        )
        .0,
        Code::NotFound
    );

    // A platform follows the task without polling.
    let mut watch = platform
        .watch_approval_task(get(&task.id))
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.state(), pb::ApprovalTaskState::Pending);

    // The approver sees it with the exact arguments.
    let mut sec = s.approver("sec").await;
    let listed = sec
        .list_approval_tasks(pb::ListApprovalTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    let shown = listed
        .tasks
        .iter()
        .find(|t| t.task.as_ref().unwrap().id == task.id)
        .unwrap();
    assert!(shown.can_decide);
    let bound = shown.request.as_ref().unwrap();
    let args = &bound.fields["action"];
    assert!(format!("{args:?}").contains("bob"), "{args:?}");
    assert_eq!(shown.justification, "month-end access for the audit");

    // Separation of duties: not the principal (self is false), not an
    // agent, not a platform credential; and no longer than max_ttl.
    let approve = |valid_for: u64| pb::ApproveRequest {
        task_id: task.id.clone(),
        note: "ok".into(),
        valid_for_seconds: valid_for,
    };
    assert_eq!(
        code(s.approver("self").await.approve(approve(0)).await).0,
        Code::PermissionDenied
    );
    assert_eq!(
        code(s.approver("agent").await.approve(approve(0)).await).0,
        Code::PermissionDenied
    );
    let platform_on_admin = ApproverServiceClient::new(s.transport(true, "desk").await)
        .approve(approve(0))
        .await;
    assert_eq!(code(platform_on_admin).0, Code::PermissionDenied);
    assert_eq!(
        code(s.approver("auditor").await.approve(approve(0)).await).0,
        Code::PermissionDenied
    );
    assert_eq!(
        code(sec.approve(approve(7200)).await).0,
        Code::InvalidArgument
    );
    sec.approve(approve(600)).await.unwrap();
    // Decided once: a second decision is refused.
    let deny = sec
        .deny(pb::DenyRequest {
            task_id: task.id.clone(),
            note: "late".into(),
        })
        .await;
    assert_eq!(code(deny).0, Code::FailedPrecondition);

    let approved = watch.message().await.unwrap().unwrap();
    assert_eq!(approved.state(), pb::ApprovalTaskState::Approved);
    assert_eq!(approved.note, "ok");
    assert!(
        watch.message().await.unwrap().is_none(),
        "the watch ends with the task"
    );
    let approval = approved.approval.unwrap();
    assert!(approval.id.starts_with("apr_"));

    // Any other request than the approved one is out of scope.
    let mut variants = Vec::new();
    let edit_args = |f: &dyn Fn(&mut prost_types::Struct)| {
        let mut r = request.clone();
        f(r.action.as_mut().unwrap().attributes.as_mut().unwrap());
        r
    };
    variants.push(edit_args(&|a| {
        a.fields.insert(
            "level".into(),
            warden_proto::convert::to_value(json!("admin")),
        );
    }));
    variants.push(edit_args(&|a| {
        a.fields.insert(
            "scope".into(),
            warden_proto::convert::to_value(json!("all")),
        );
    }));
    variants.push(edit_args(&|a| {
        a.fields.remove("level");
    }));
    let mut other_resource = request.clone();
    other_resource.resource.as_mut().unwrap().id = "payroll-admin".into();
    variants.push(other_resource);
    let mut other_agent = request.clone();
    other_agent.agent.as_mut().unwrap().id = "access-admin-01".into();
    variants.push(other_agent);
    let mut other_principal = request.clone();
    other_principal.principal.as_mut().unwrap().id = Demo::load().member_of("finance");
    variants.push(other_principal);
    let mut other_context = request.clone();
    other_context.context.as_mut().unwrap().fields.insert(
        "purpose".into(),
        warden_proto::convert::to_value(json!("curiosity")),
    );
    variants.push(other_context);
    for variant in variants {
        refused(
            &s.check_with(variant.clone(), &approval).await,
            "out_of_scope",
            "request",
        );
    }
    let mut other_platform = request.clone();
    other_platform.platform = "copilot-studio".into();
    other_platform.approval = Some(approval.clone());
    let answer = s
        .decisions("studio")
        .await
        .check(other_platform)
        .await
        .unwrap()
        .into_inner();
    refused(&answer, "out_of_scope", "request");

    // An altered state, or one signed by another key, is not Warden's.
    let mut altered = approval.clone();
    altered.state.push('x');
    refused(
        &s.check_with(request.clone(), &altered).await,
        "approval_unverifiable",
        "none",
    );
    let mut forged = approval.clone();
    forged.state = resign_with_another_key(&approval.state);
    refused(
        &s.check_with(request.clone(), &forged).await,
        "approval_unverifiable",
        "none",
    );
    let mut unknown = approval.clone();
    // Another last digit: an id Warden never issued.
    let last = if approval.id.ends_with('0') { '1' } else { '0' };
    unknown.id = format!("{}{last}", &approval.id[..approval.id.len() - 1]);
    assert_ne!(unknown.id, approval.id);
    refused(
        &s.check_with(request.clone(), &unknown).await,
        "approval_unverifiable",
        "none",
    );

    // The state verifies, independently, against the served JWKS.
    verify_with_jwks(&s.warden, &approval.state);

    // The exact request (volatile members aside) is allowed, once.
    let mut exact = request.clone();
    exact.request_id = "third".into();
    let allowed = s.check_with(exact.clone(), &approval).await;
    assert_eq!(allowed.decision(), pb::Decision::Allow, "{allowed:?}");
    assert_eq!(allowed.reasons, [format!("approved:{}", approval.id)]);
    assert_eq!(allowed.approval.as_ref().unwrap().uses_left, 0);
    refused(
        &s.check_with(exact, &approval).await,
        "approval_used_up",
        "request",
    );

    // One chain of audit events for the decision (records are written
    // asynchronously: wait for the last one).
    let mut audit = AuditServiceClient::new(s.transport(true, "auditor").await);
    let mut chain = Vec::new();
    for _ in 0..100 {
        chain = audit
            .query(pb::AuditQueryRequest {
                chain: access.evaluation_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        if chain.iter().any(|r| r.decision == "allow") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<&str> = chain.iter().map(|r| r.decision.as_str()).collect();
    assert!(kinds.contains(&"require_approval"), "{kinds:?}");
    assert!(kinds.contains(&"approval.requested"), "{kinds:?}");
    assert!(kinds.contains(&"approval.approved"), "{kinds:?}");
    let used = chain
        .iter()
        .find(|r| r.decision == "allow")
        .expect("the allowed check is in the chain");
    assert_eq!(used.approval_id, approval.id);
    assert_eq!(used.task_id, task.id);
}

/// Re-signs a state's header and claims with a fresh P-256 key (same `kid`).
fn resign_with_another_key(state: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = state.split('.');
    let header: Json = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims: Json = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    jwt_header.kid = header["kid"].as_str().map(str::to_owned);
    jwt_header.typ = header["typ"].as_str().map(str::to_owned);
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&jwt_header, &claims, &encoding).unwrap()
}

fn verify_with_jwks(warden: &Warden, state: &str) {
    let http = warden.http_addr.unwrap();
    let jwks = http_request(http, "GET", "/access/v1/jwks", &[], None).json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["warden"]);
    validation.set_issuer(&["warden"]);
    let decoded = jsonwebtoken::decode::<Json>(state, &decoding, &validation).unwrap();
    assert_eq!(decoded.header.kid.as_deref(), key["kid"].as_str());
    assert!(decoded.claims["wbh"].is_string());
}

#[tokio::test]
async fn kill_switches_revocation_expiry_and_self_confirmation() {
    let s = setup().await;
    let request = s.grant();

    // A kill switch beats an approval, which stays unused.
    let approval = s.approved(&request, 0).await;
    let mut admin = AdminServiceClient::new(s.transport(true, "responder").await);
    let engaged = admin
        .engage_kill_switch(pb::EngageKillSwitchRequest {
            scope: Some(pb::KillSwitchScope {
                agent_id: "access-admin".into(),
                ..Default::default()
            }),
            reason: "incident".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let blocked = s.check_with(request.clone(), &approval).await;
    assert_eq!(blocked.decision(), pb::Decision::Deny);
    assert!(
        blocked.reasons[0].starts_with("kill_switch:"),
        "{blocked:?}"
    );
    admin
        .release_kill_switch(pb::ReleaseKillSwitchRequest {
            id: engaged.kill_switch.unwrap().id,
            reason: "over".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let allowed = s.check_with(request.clone(), &approval).await;
    assert_eq!(allowed.decision(), pb::Decision::Allow, "{allowed:?}");

    // A revoked approval is refused; a responder may revoke.
    let approval = s.approved(&request, 0).await;
    let task_id = format!("arq_{}", &approval.id[4..26]);
    s.approver("responder")
        .await
        .revoke(pb::RevokeApprovalRequest {
            task_id: task_id.clone(),
            reason: "changed our mind".into(),
        })
        .await
        .unwrap();
    let answer = s.check_with(request.clone(), &approval).await;
    refused(&answer, "approval_expired", "request");
    assert_eq!(answer.reasons[1], "approval_revoked");
    // The refusal offers a fresh access request.
    assert!(answer.access_request.is_some());

    // An expired approval is refused.
    let approval = s.approved(&request, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    refused(
        &s.check_with(request.clone(), &approval).await,
        "approval_expired",
        "request",
    );

    // Sharing is confirmed by the principal themselves (`self: true`).
    let share = CheckBuilder::new(
        "support-desk",
        "access-admin",
        &s.principal,
        "accounts.share",
        "account",
    )
    .resource_id("acct-1")
    .audience(format!("user:{}", s.principal))
    .build();
    let answer = s.check(share.clone()).await;
    if answer.decision() == pb::Decision::RequireApproval {
        let (_, task) = s.request(&share).await;
        let detail = s
            .approver("self")
            .await
            .approve(pb::ApproveRequest {
                task_id: task.id.clone(),
                note: String::new(),
                valid_for_seconds: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(detail.decided_by, s.principal);
        assert_eq!(
            detail.task.unwrap().state(),
            pb::ApprovalTaskState::Approved
        );
        // The security member is not among this one's approvers.
        let (_, other) = s.request(&share).await;
        let (c, _) = code(
            s.approver("sec")
                .await
                .approve(pb::ApproveRequest {
                    task_id: other.id,
                    note: String::new(),
                    valid_for_seconds: 0,
                })
                .await,
        );
        assert_eq!(c, Code::PermissionDenied);
    } else {
        panic!("the default policy asks the principal to confirm a share: {answer:?}");
    }
    let _ = &s.security;
}

#[tokio::test]
async fn concurrent_checks_use_a_single_use_approval_exactly_once() {
    let s = setup().await;
    let request = s.grant();
    let approval = s.approved(&request, 0).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let mut client = s.decisions("desk").await;
        let mut r = request.clone();
        r.request_id = format!("race-{i}");
        r.approval = Some(approval.clone());
        tasks.push(tokio::spawn(async move {
            client.check(r).await.unwrap().into_inner()
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.decision() {
            pb::Decision::Allow => allowed += 1,
            _ => assert_eq!(answer.reasons[0], "approval_used_up", "{answer:?}"),
        }
    }
    assert_eq!(allowed, 1);
}

#[tokio::test]
async fn pending_tasks_and_unused_approvals_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let mut s = setup_with(|b| b.data_dir(&dir)).await;
    let request = s.grant();
    let (_, pending) = s.request(&request).await;
    let unused = s.approved(&request, 0).await;
    let used = s.approved(&request, 0).await;
    assert_eq!(
        s.check_with(request.clone(), &used).await.decision(),
        pb::Decision::Allow
    );
    s.warden.kill9();

    let principal = s.principal.clone();
    let security = s.security.clone();
    let config_dir = tempfile::tempdir().unwrap();
    let path = config_dir.path().join("warden.toml");
    std::fs::write(&path, config(&principal, &security)).unwrap();
    let warden = Warden::builder()
        .env("WARDEN_CONFIG", path.display().to_string())
        .data_dir(&dir)
        .start_listening();
    wait_serving(&warden).await;
    s.warden = warden;
    let task = s
        .platform("desk")
        .await
        .get_approval_task(pb::GetApprovalTaskRequest {
            task_id: pending.id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(task.state(), pb::ApprovalTaskState::Pending);
    // The same key signs after the restart: the approval still verifies.
    assert_eq!(
        s.check_with(request.clone(), &unused).await.decision(),
        pb::Decision::Allow
    );
    refused(
        &s.check_with(request.clone(), &used).await,
        "approval_used_up",
        "request",
    );
}

#[tokio::test]
async fn the_whole_loop_over_authzen_http() {
    let s = setup().await;
    let http = s.warden.http_addr.unwrap();
    let auth = format!("Bearer {}", token("desk"));
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
        ("X-Warden-Platform", "support-desk"),
        ("X-Warden-Agent", "access-admin"),
    ];
    let evaluation = json!({
        "subject": {"type": "user", "id": s.principal},
        "action": {"name": "permissions.grant", "properties": {"grantee": "bob", "level": "read"}},
        "resource": {"type": "role", "id": "finance-approver"},
        "context": {"purpose": "quarter close"},
    });
    let post = |path: &str, body: &Json| {
        http_request(
            http,
            "POST",
            path,
            &headers,
            Some(body.to_string().as_bytes()),
        )
    };

    // Metadata advertises the access request endpoint and the JWKS.
    let metadata =
        http_request(http, "GET", "/.well-known/authzen-configuration", &[], None).json();
    assert!(
        metadata["access_request_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/access/v1/requests")
    );
    assert!(
        metadata["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/access/v1/jwks")
    );
    assert_eq!(
        metadata["capabilities"],
        json!(["urn:openid:authzen:capability:access-request"])
    );

    // A requestable denial (ARAP): decision false, and how to ask.
    let denied = post("/access/v1/evaluation", &evaluation);
    assert_eq!(denied.status, 200);
    let denied = denied.json();
    assert_eq!(denied["decision"], false);
    let context = &denied["context"];
    assert_eq!(context["reason"], "approval_required");
    assert_eq!(context["evaluation_id"], context["decision_id"]);
    let access = &context["access_request"];
    assert!(access["binding_token"].is_string());
    assert_eq!(access["approvers"], json!(["group:security"]));

    // Submission: bound to the exact request.
    let mut submission = evaluation.clone();
    submission["denial"] = json!({
        "evaluation_id": context["evaluation_id"], "binding_token": access["binding_token"],
    });
    submission["context"]["justification"] = json!("month-end");
    let mut changed = submission.clone();
    changed["action"]["properties"]["level"] = json!("admin");
    let wrong = post("/access/v1/requests", &changed);
    assert_eq!(wrong.status, 400);
    assert_eq!(
        wrong.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        wrong.json()["type"],
        "urn:openid:authzen:access-request:error:invalid_denial_binding"
    );
    let created = post("/access/v1/requests", &submission);
    assert_eq!(created.status, 202, "{}", created.body);
    let created_json = created.json();
    let task = &created_json["task"];
    assert_eq!(task["status"], "pending");
    let id = task["id"].as_str().unwrap().to_owned();
    assert!(created.header("location").unwrap().ends_with(&id));
    let again = post("/access/v1/requests", &submission);
    assert_eq!(again.json()["task"]["id"], id.as_str());

    let status_path = format!("/access/v1/requests/{id}");
    let pending = http_request(http, "GET", &status_path, &headers[1..], None);
    assert_eq!(pending.status, 200);
    assert_eq!(pending.header("retry-after"), Some("5"));
    // Another platform's credential does not see it.
    let studio = format!("Bearer {}", token("studio"));
    let hidden = http_request(
        http,
        "GET",
        &status_path,
        &[("Authorization", studio.as_str())],
        None,
    );
    assert_eq!(hidden.status, 404);

    s.approver("sec")
        .await
        .approve(pb::ApproveRequest {
            task_id: id.clone(),
            note: "fine".into(),
            valid_for_seconds: 0,
        })
        .await
        .unwrap();
    let done = http_request(http, "GET", &status_path, &headers[1..], None).json();
    assert_eq!(done["task"]["status"], "approved");
    assert_eq!(done["result"]["mode"], "reevaluate");
    let approval = done["result"]["approval"].clone();
    assert!(approval["state"].is_string());

    // Re-evaluation with `context.approval`.
    let mut with_approval = evaluation.clone();
    with_approval["context"]["approval"] = approval.clone();
    let mut out_of_scope = with_approval.clone();
    out_of_scope["resource"]["id"] = json!("payroll-admin");
    let answer = post("/access/v1/evaluation", &out_of_scope).json();
    assert_eq!(answer["decision"], false);
    assert_eq!(answer["context"]["reason"], "out_of_scope");
    assert_eq!(answer["context"]["next_action"], "request");
    // A fresh access request comes with the refusal.
    assert!(answer["context"]["access_request"]["binding_token"].is_string());
    for edit in [
        json!({"level": "admin"}),
        json!({"grantee": "bob", "level": "read", "scope": "all"}),
        json!({"grantee": "bob"}),
    ] {
        let mut changed = with_approval.clone();
        changed["action"]["properties"] = edit;
        let answer = post("/access/v1/evaluation", &changed).json();
        assert_eq!(answer["context"]["reason"], "out_of_scope", "{answer}");
    }
    let mut altered = with_approval.clone();
    altered["context"]["approval"]["state"] =
        json!(format!("{}x", approval["state"].as_str().unwrap()));
    let answer = post("/access/v1/evaluation", &altered).json();
    assert_eq!(answer["context"]["reason"], "approval_unverifiable");
    assert_eq!(answer["context"]["next_action"], "none");
    let mut mistyped = with_approval.clone();
    mistyped["context"]["approval"] = json!("apr_x");
    assert_eq!(post("/access/v1/evaluation", &mistyped).status, 400);
    let mut other_key = with_approval.clone();
    other_key["context"]["approval"]["state"] =
        json!(resign_with_another_key(approval["state"].as_str().unwrap()));
    let answer = post("/access/v1/evaluation", &other_key).json();
    assert_eq!(answer["context"]["reason"], "approval_unverifiable");
    // Another principal, agent or platform is another request.
    let mut other_principal = with_approval.clone();
    other_principal["subject"]["id"] = json!(Demo::load().member_of("finance"));
    let answer = post("/access/v1/evaluation", &other_principal).json();
    assert_eq!(answer["context"]["reason"], "out_of_scope");
    let agent_headers = [
        headers[0],
        headers[1],
        headers[2],
        ("X-Warden-Agent", "access-admin-01"),
    ];
    let answer = http_request(
        http,
        "POST",
        "/access/v1/evaluation",
        &agent_headers,
        Some(with_approval.to_string().as_bytes()),
    )
    .json();
    assert_eq!(answer["context"]["reason"], "out_of_scope", "{answer}");
    let studio_auth = format!("Bearer {}", token("studio"));
    let studio_headers = [
        ("Content-Type", "application/json"),
        ("Authorization", studio_auth.as_str()),
        ("X-Warden-Platform", "copilot-studio"),
        ("X-Warden-Agent", "access-admin"),
    ];
    let answer = http_request(
        http,
        "POST",
        "/access/v1/evaluation",
        &studio_headers,
        Some(with_approval.to_string().as_bytes()),
    )
    .json();
    assert_eq!(answer["context"]["reason"], "out_of_scope", "{answer}");
    // A kill switch beats the approval, which stays unused.
    let mut responder = AdminServiceClient::new(s.transport(true, "responder").await);
    let switch = responder
        .engage_kill_switch(pb::EngageKillSwitchRequest {
            scope: Some(pb::KillSwitchScope {
                agent_id: "access-admin".into(),
                ..Default::default()
            }),
            reason: "incident".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kill_switch
        .unwrap();
    let answer = post("/access/v1/evaluation", &with_approval).json();
    assert_eq!(answer["decision"], false);
    assert_eq!(answer["context"]["kill_switch"], switch.id.as_str());
    responder
        .release_kill_switch(pb::ReleaseKillSwitchRequest {
            id: switch.id,
            reason: "over".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let answer = post("/access/v1/evaluation", &with_approval).json();
    assert_eq!(answer["decision"], true, "{answer}");
    assert_eq!(
        answer["context"]["reasons"],
        json!([format!("approved:{}", approval["id"].as_str().unwrap())])
    );
    assert_eq!(answer["context"]["approval"]["id"], approval["id"]);
    let replay = post("/access/v1/evaluation", &with_approval).json();
    assert_eq!(replay["decision"], false);
    assert_eq!(replay["context"]["reason"], "approval_used_up");

    // Approvals given for the same request over gRPC hold over HTTP, and
    // so do their revocation and expiry.
    let revoked = s.approved(&s.grant(), 0).await;
    s.approver("sec")
        .await
        .revoke(pb::RevokeApprovalRequest {
            task_id: format!("arq_{}", &revoked.id[4..26]),
            reason: "no".into(),
        })
        .await
        .unwrap();
    let as_json = |a: &pb::ApprovalRef| json!({"id": a.id, "approved_at": a.approved_at, "approved_until": a.approved_until, "state": a.state});
    let mut with_revoked = evaluation.clone();
    with_revoked["context"]["approval"] = as_json(&revoked);
    let answer = post("/access/v1/evaluation", &with_revoked).json();
    assert_eq!(answer["context"]["reason"], "approval_expired", "{answer}");
    assert_eq!(answer["context"]["reasons"][1], "approval_revoked");
    let short = s.approved(&s.grant(), 1).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut with_expired = evaluation.clone();
    with_expired["context"]["approval"] = as_json(&short);
    let answer = post("/access/v1/evaluation", &with_expired).json();
    assert_eq!(answer["context"]["reason"], "approval_expired", "{answer}");

    // Cancel: a pending task once, then never again.
    let denied = post("/access/v1/evaluation", &evaluation).json();
    let mut second = evaluation.clone();
    second["denial"] = json!({
        "evaluation_id": denied["context"]["evaluation_id"],
        "binding_token": denied["context"]["access_request"]["binding_token"],
    });
    let created = post("/access/v1/requests", &second).json();
    let cancel = format!(
        "/access/v1/requests/{}/cancel",
        created["task"]["id"].as_str().unwrap()
    );
    let cancelled = post(&cancel, &json!({"reason": "not needed"}));
    assert_eq!(cancelled.status, 200);
    assert_eq!(cancelled.json()["task"]["status"], "cancelled");
    let twice = post(&cancel, &json!({}));
    assert_eq!(twice.status, 409);
    assert_eq!(
        twice.json()["type"],
        "urn:openid:authzen:access-request:error:invalid_task_state"
    );
}

#[tokio::test]
async fn what_changed_since_the_approval_still_counts() {
    let s = setup_with(|b| b.env("WARDEN_APPROVALS_TASK_TTL", "1s")).await;
    let request = s.grant();
    let mut demo = Demo::load();

    // An approval whose approver has left the security group no longer
    // allows: the requirement is checked again at use.
    let approval = s.approved(&request, 0).await;
    let user = &mut demo.identity["users"][s.security.as_str()];
    user["groups"] = json!(["finance"]);
    let mut admin = AdminServiceClient::new(s.transport(true, "policy").await);
    let put = |document: &Json, kind: &str| pb::PutSnapshotRequest {
        kind: kind.into(),
        document: document.to_string().into_bytes(),
    };
    let mut identity = demo.identity.clone();
    identity["version"] = json!("identity-7-301");
    admin
        .put_snapshot(put(&identity, "identity"))
        .await
        .unwrap();
    let answer = s.check_with(request.clone(), &approval).await;
    refused(&answer, "approval_expired", "request");
    assert_eq!(answer.reasons[1], "approval_superseded");

    // A policy that now denies wins over the approval, which stays unused.
    let mut identity = Demo::load().identity;
    identity["version"] = json!("identity-7-302");
    admin
        .put_snapshot(put(&identity, "identity"))
        .await
        .unwrap();
    let mut entitlements = Demo::load().entitlements;
    entitlements["subjects"]["group:it-ops"]["role"] = json!({});
    entitlements["version"] = json!("entitlements-7-301");
    admin
        .put_snapshot(put(&entitlements, "entitlements"))
        .await
        .unwrap();
    let answer = s.check_with(request.clone(), &approval).await;
    refused(&answer, "policy_denied", "none");

    // A task nobody decides in time expires, once, and says so.
    let mut entitlements = Demo::load().entitlements;
    entitlements["version"] = json!("entitlements-7-302");
    admin
        .put_snapshot(put(&entitlements, "entitlements"))
        .await
        .unwrap();
    // A notifier bot hears of new tasks it may decide, as they come.
    let mut pending = s
        .approver("sec")
        .await
        .watch_pending_tasks(pb::WatchPendingTasksRequest {
            include_existing: false,
        })
        .await
        .unwrap()
        .into_inner();
    let (_, task) = s.request(&request).await;
    let heard = pending.message().await.unwrap().unwrap();
    assert_eq!(heard.task.as_ref().unwrap().id, task.id);
    assert!(heard.can_decide);
    // Auditors read every task, and decide none.
    let seen = s
        .approver("auditor")
        .await
        .list_approval_tasks(pb::ListApprovalTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        seen.tasks
            .iter()
            .any(|t| t.task.as_ref().unwrap().id == task.id && !t.can_decide)
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expired = s
        .platform("desk")
        .await
        .get_approval_task(pb::GetApprovalTaskRequest {
            task_id: task.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expired.state(), pb::ApprovalTaskState::Expired);
    let late = s
        .approver("sec")
        .await
        .approve(pb::ApproveRequest {
            task_id: task.id.clone(),
            note: String::new(),
            valid_for_seconds: 0,
        })
        .await;
    assert!(late.is_err());

    // Tasks by state on /metrics, and in status.
    let metrics = http_request(s.warden.ops_addr, "GET", "/metrics", &[], None).body;
    assert!(
        metrics.contains("warden_approval_tasks{state=\"expired\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warden_approval_tasks{state=\"approved\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warden_approval_time_to_decision_seconds_count{outcome=\"approved\"} 1"),
        "{metrics}"
    );
    let status = AdminServiceClient::new(s.transport(true, "auditor").await)
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.approvals.as_str(), status.pending_approval_tasks),
        ("enabled", 0)
    );
    let mut audit = AuditServiceClient::new(s.transport(true, "auditor").await);
    let mut events = Vec::new();
    for _ in 0..100 {
        events = audit
            .query(pb::AuditQueryRequest {
                chain: task.evaluation_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        if events.iter().any(|r| r.decision == "approval.expired") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        events
            .iter()
            .filter(|r| r.decision == "approval.expired")
            .count(),
        1
    );
}

#[tokio::test]
async fn with_approvals_off_nothing_can_be_approved() {
    let s = setup_with(|b| b.env("WARDEN_APPROVALS_ENABLED", "false")).await;
    let request = s.grant();
    let denied = s.check(request.clone()).await;
    assert_eq!(denied.decision(), pb::Decision::RequireApproval);
    assert!(denied.access_request.is_none());
    let (c, message) = code(
        s.platform("desk")
            .await
            .request_approval(pb::RequestApprovalRequest {
                request: Some(request.clone()),
                evaluation_id: denied.decision_id.clone(),
                binding_token: "wbt1.x.y".into(),
                justification: String::new(),
            })
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition);
    assert!(message.contains("disabled"), "{message}");
    let forged = pb::ApprovalRef {
        id: "apr_x".into(),
        approved_at: String::new(),
        approved_until: String::new(),
        state: "x.y.z".into(),
    };
    refused(
        &s.check_with(request, &forged).await,
        "approval_unverifiable",
        "none",
    );
    let metadata = http_request(
        s.warden.http_addr.unwrap(),
        "GET",
        "/.well-known/authzen-configuration",
        &[],
        None,
    )
    .json();
    assert!(metadata.get("access_request_endpoint").is_none());
    let status = AdminServiceClient::new(s.transport(true, "auditor").await)
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.approvals, "disabled: approvals.enabled is false");
}

#[tokio::test]
async fn ended_tasks_are_dropped_after_retention() {
    let s = setup_with(|b| {
        b.env("WARDEN_APPROVALS_TASK_TTL", "1s")
            .env("WARDEN_APPROVALS_RETENTION", "1s")
    })
    .await;
    let (_, task) = s.request(&s.grant()).await;
    let mut platform = s.platform("desk").await;
    let get = || pb::GetApprovalTaskRequest {
        task_id: task.id.clone(),
    };
    let mut states = Vec::new();
    for _ in 0..100 {
        match platform.get_approval_task(get()).await {
            Ok(task) => states.push(task.into_inner().state()),
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(states.first(), Some(&pb::ApprovalTaskState::Pending));
    assert_eq!(states.last(), Some(&pb::ApprovalTaskState::Expired));
    assert_eq!(
        code(platform.get_approval_task(get()).await).0,
        Code::NotFound
    );
}

/// People take minutes: a watch lasts as long as its task, not as long as a
/// check may.
#[tokio::test]
async fn a_watch_outlives_the_call_timeout() {
    let s = setup_with(|b| b.env("WARDEN_LIMITS_CHECK_TIMEOUT", "500ms")).await;
    let (_, task) = s.request(&s.grant()).await;
    let mut watch = s
        .platform("desk")
        .await
        .watch_approval_task(pb::GetApprovalTaskRequest {
            task_id: task.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().state(),
        pb::ApprovalTaskState::Pending
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.approver("sec")
        .await
        .deny(pb::DenyRequest {
            task_id: task.id,
            note: "no".into(),
        })
        .await
        .unwrap();
    let denied = watch.message().await.unwrap().unwrap();
    assert_eq!(denied.state(), pb::ApprovalTaskState::Denied);
    assert_eq!(denied.note, "no");
    assert!(denied.approval.is_none());
}

/// `examples/approval-loop`: its platform program against its
/// configuration, approved with `wardenctl` as its approver.
#[tokio::test]
async fn the_example_runs_the_loop() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let example = warden_e2e::repo_root().join("examples/approval-loop");
    let warden = Warden::builder()
        .env(
            "WARDEN_CONFIG",
            example.join("warden.toml").display().to_string(),
        )
        .start_listening();
    let platform_token = "example-platform-token-0123456789";
    let options = ClientOptions {
        token: Some(platform_token.into()),
        ..ClientOptions::default()
    };
    warden.wait_health(warden.endpoint(), &options).await;
    let mut platform = Command::new(env!("CARGO_BIN_EXE_e2e-approval-loop"))
        .env("WARDEN_DECISION", warden.endpoint())
        .env("WARDEN_TOKEN", platform_token)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = platform.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut output = Vec::new();
    let task = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the platform asks for approval");
        output.push(line.clone());
        if let Some(task) = line
            .strip_prefix("task: ")
            .and_then(|rest| rest.strip_suffix(" pending"))
        {
            break task.to_owned();
        }
    };
    let approved = Command::new(&warden_e2e::process::binaries().wardenctl)
        .args(["approvals", "approve", &task, "--note", "ok for the close"])
        .env("WARDEN_ADMIN_ADDR", warden.admin_endpoint())
        .env("WARDEN_TOKEN", "example-approver-token-0123456789")
        .output()
        .unwrap();
    assert!(approved.status.success(), "{approved:?}");
    let status = tokio::task::spawn_blocking(move || platform.wait().unwrap())
        .await
        .unwrap();
    output.extend(lines_rx.try_iter());
    let output = output.join("\n");
    assert!(status.success(), "{output}");
    assert!(
        output.contains("re-check: Allow [\"approved:apr_"),
        "{output}"
    );
    assert!(output.contains("approval_used_up"), "{output}");
}
