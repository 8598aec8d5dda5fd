//! AuthZEN Authorization API 1.0 on the HTTP listener, end to end: the real
//! binary, plain HTTP/1.1 requests, the Todo interop scenario from
//! `examples/authzen-todo`, and the same kill switches, audit and
//! credentials as gRPC.

use serde_json::{Value, json};
use warden_client::ClientOptions;
use warden_client::admin::{EngageKillSwitchRequest, KillSwitchMode, KillSwitchScope};
use warden_client::audit::{AuditClient, AuditQueryRequest};
use warden_e2e::pki::Authority;
use warden_e2e::process::{Warden, WardenBuilder};
use warden_e2e::{Demo, HttpResponse, TlsClient, http_request, https_request, repo_root};

const RICK: &str = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const BETH: &str = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

/// The Todo example's bundle and directory, on `builder`'s configuration.
fn todo_data(builder: WardenBuilder) -> WardenBuilder {
    let example = repo_root().join("examples/authzen-todo");
    let path = |name: &str| example.join(name).display().to_string();
    builder
        .arg("--bundle")
        .arg(path("policy"))
        .arg("--identity")
        .arg(path("identity.json"))
        .arg("--entitlements")
        .arg(path("entitlements.json"))
}

/// The Todo example as its README runs it.
fn todo_server() -> WardenBuilder {
    let config = repo_root().join("examples/authzen-todo/warden.toml");
    todo_data(
        Warden::builder()
            .arg("--config")
            .arg(config.display().to_string()),
    )
}

fn post(warden: &Warden, path: &str, headers: &[(&str, &str)], body: &Value) -> HttpResponse {
    post_raw(warden, path, headers, body.to_string().as_bytes())
}

fn post_raw(warden: &Warden, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    http_request(http(warden), "POST", path, &all, Some(body))
}

fn http(warden: &Warden) -> std::net::SocketAddr {
    warden.http_addr.expect("the HTTP listener is on")
}

fn evaluation(subject: &str, action: &str, resource: Value) -> Value {
    json!({"subject": {"type": "user", "id": subject}, "action": {"name": action}, "resource": resource})
}

fn decisions(response: &HttpResponse) -> Vec<bool> {
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["evaluations"]
        .as_array()
        .unwrap_or_else(|| panic!("no evaluations: {}", response.body))
        .iter()
        .map(|d| d["decision"].as_bool().expect("a boolean decision"))
        .collect()
}

#[tokio::test]
async fn the_todo_interop_decisions_hold_one_by_one_and_boxcarred() {
    let warden = todo_server().start().await;
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("examples/authzen-todo/decisions.json")).unwrap(),
    )
    .unwrap();
    let cases = cases["evaluation"].as_array().unwrap();
    assert_eq!(cases.len(), 40);
    for case in cases {
        let response = post(&warden, "/access/v1/evaluation", &[], &case["request"]);
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(
            response.json()["decision"],
            case["expected"],
            "{} -> {}",
            case["request"],
            response.body
        );
    }
    // All forty as one boxcar, each item complete: same answers, in order.
    let items: Vec<Value> = cases.iter().map(|c| c["request"].clone()).collect();
    let response = post(
        &warden,
        "/access/v1/evaluations",
        &[],
        &json!({ "evaluations": items }),
    );
    let expected: Vec<bool> = cases
        .iter()
        .map(|c| c["expected"].as_bool().unwrap())
        .collect();
    assert_eq!(decisions(&response), expected);
}

#[tokio::test]
async fn evaluations_honour_each_semantic_and_truncate_short_circuits() {
    let warden = todo_server().start().await;
    // Morty may update his own todos, not Rick's: allow, deny, allow.
    let body = |semantic: Option<&str>| {
        let mut body = json!({
            "subject": {"type": "user", "id": MORTY},
            "action": {"name": "can_update_todo"},
            "resource": {"type": "todo"},
            "evaluations": [
                {"resource": {"id": "1", "properties": {"ownerID": "morty@the-citadel.com"}}},
                {"resource": {"id": "2", "properties": {"ownerID": "rick@the-citadel.com"}}},
                {"resource": {"id": "3", "properties": {"ownerID": "morty@the-citadel.com"}}},
            ]
        });
        if let Some(semantic) = semantic {
            body["options"] = json!({ "evaluations_semantic": semantic });
        }
        body
    };
    let call = |semantic| {
        decisions(&post(
            &warden,
            "/access/v1/evaluations",
            &[],
            &body(semantic),
        ))
    };
    assert_eq!(call(None), [true, false, true]);
    assert_eq!(call(Some("execute_all")), [true, false, true]);
    assert_eq!(call(Some("deny_on_first_deny")), [true, false]);
    assert_eq!(call(Some("permit_on_first_permit")), [true]);

    // Beth (a viewer) may not update; the walk stops after the first deny,
    // or runs past it to the first permit.
    let mut beth_first = body(None);
    beth_first["evaluations"][0]["subject"] = json!({"id": BETH});
    let walk = |semantic: &str| {
        let mut body = beth_first.clone();
        body["options"] = json!({ "evaluations_semantic": semantic });
        decisions(&post(&warden, "/access/v1/evaluations", &[], &body))
    };
    assert_eq!(walk("execute_all"), [false, false, true]);
    assert_eq!(walk("deny_on_first_deny"), [false]);
    assert_eq!(walk("permit_on_first_permit"), [false, false, true]);
    let mut late_permit = beth_first.clone();
    late_permit["evaluations"][1]["resource"]["properties"]["ownerID"] =
        json!("morty@the-citadel.com");
    late_permit["options"] = json!({"evaluations_semantic": "permit_on_first_permit"});
    assert_eq!(
        decisions(&post(&warden, "/access/v1/evaluations", &[], &late_permit)),
        [false, true]
    );

    // A per-item subject and action override the defaults.
    let mut mixed = body(Some("execute_all"));
    mixed["evaluations"][1]["subject"] = json!({"id": RICK});
    mixed["evaluations"][2]["action"] = json!({"name": "can_read_todos"});
    mixed["evaluations"][2]["subject"] = json!({"id": BETH});
    assert_eq!(
        decisions(&post(&warden, "/access/v1/evaluations", &[], &mixed)),
        [true, true, true]
    );

    // Without items the body is one evaluation, answered as one.
    let single = post(
        &warden,
        "/access/v1/evaluations",
        &[],
        &evaluation(
            BETH,
            "can_create_todo",
            json!({"type": "todo", "id": "todo-1"}),
        ),
    );
    assert_eq!(single.status, 200, "{}", single.body);
    assert_eq!(single.json()["decision"], json!(false));
    assert!(single.json().get("evaluations").is_none());
}

#[tokio::test]
async fn items_after_a_short_circuit_are_neither_decided_nor_audited_nor_charged() {
    // Four checks' worth of tokens, refilled too slowly to matter here.
    let warden = todo_server()
        .env("WARDEN_AUDIT_DURABILITY", "sync")
        .env("WARDEN_LIMITS_PLATFORM_RATE", "0.001")
        .env("WARDEN_LIMITS_PLATFORM_BURST", "4")
        .start()
        .await;
    let mut audit = AuditClient::connect(warden.admin_endpoint(), ClientOptions::default())
        .await
        .unwrap();
    let query = AuditQueryRequest {
        platform: "todo".into(),
        r#type: "decision".into(),
        ..AuditQueryRequest::default()
    };
    assert_eq!(audit.query_all(query.clone(), 100).await.unwrap().len(), 0);
    let body = json!({
        "subject": {"type": "user", "id": MORTY},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "todo", "id": "1"},
        "options": {"evaluations_semantic": "permit_on_first_permit"},
        "evaluations": [{}, {}, {}, {}],
    });
    let response = post(&warden, "/access/v1/evaluations", &[], &body);
    assert_eq!(decisions(&response), [true]);
    assert_eq!(audit.query_all(query, 100).await.unwrap().len(), 1);

    // The call was admitted for four, made one: three are left.
    let one = evaluation(MORTY, "can_read_todos", json!({"type": "todo", "id": "1"}));
    for _ in 0..3 {
        let response = post(&warden, "/access/v1/evaluation", &[], &one);
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let over = post(&warden, "/access/v1/evaluation", &[], &one);
    assert_eq!(over.status, 429, "{}", over.body);
}

#[tokio::test]
async fn bodies_and_batches_past_the_limits_are_refused() {
    let warden = todo_server()
        .env("WARDEN_LIMITS_MAX_REQUEST_BYTES", "1024")
        .env("WARDEN_LIMITS_MAX_BATCH_ITEMS", "4")
        .start()
        .await;
    let item = evaluation(MORTY, "can_read_todos", json!({"type": "todo", "id": "1"}));
    let four = post(
        &warden,
        "/access/v1/evaluations",
        &[],
        &json!({"evaluations": [item, item, item, item]}),
    );
    assert_eq!(decisions(&four), [true; 4]);
    let five = post(
        &warden,
        "/access/v1/evaluations",
        &[],
        &json!({"evaluations": [item, item, item, item, item]}),
    );
    assert_eq!(five.status, 400, "{}", five.body);
    assert!(five.body.contains("evaluations"), "{}", five.body);
    // A default every item would copy may be no larger than one check.
    let large_default = post(
        &warden,
        "/access/v1/evaluations",
        &[],
        &json!({"context": {"blob": "x".repeat(2000)}, "evaluations": [item]}),
    );
    assert_eq!(large_default.status, 400, "{}", large_default.body);
    assert!(
        large_default.body.starts_with("context"),
        "{}",
        large_default.body
    );
    // The body limit: twice a full batch's protobuf, checked as it arrives.
    let huge = vec![b' '; 1024 * 1024];
    let too_large = post_raw(&warden, "/access/v1/evaluation", &[], &huge);
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    // One check over the size limit is Warden's validation: a 400.
    let mut big = item.clone();
    big["context"] = json!({"blob": "x".repeat(2000)});
    let one = post(&warden, "/access/v1/evaluation", &[], &big);
    assert_eq!(one.status, 400, "{}", one.body);
}

/// A body whose `Content-Length` is over the limit is refused with 413 on
/// its headers, without waiting for (or reading) the body; a chunked body,
/// which declares no length, is still cut off as it arrives.
#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_before_the_body() {
    // Body limit: twice (1024 × 4 + 64 KiB) = 139,264 bytes.
    let warden = todo_server()
        .env("WARDEN_LIMITS_MAX_REQUEST_BYTES", "1024")
        .env("WARDEN_LIMITS_MAX_BATCH_ITEMS", "4")
        .start()
        .await;
    for length in ["139265", "10000000000"] {
        for path in ["/access/v1/evaluation", "/access/v1/evaluations"] {
            let started = std::time::Instant::now();
            // The body is never sent: the answer can come only from the headers.
            let response = http_request(
                http(&warden),
                "POST",
                path,
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Length", length),
                    ("X-Request-Id", "big-1"),
                ],
                None,
            );
            assert_eq!(response.status, 413, "{length} {path}: {}", response.body);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "413 took {:?}",
                started.elapsed()
            );
            assert_eq!(
                response.body.trim(),
                format!(
                    "the request body is {length} bytes (Content-Length), more than the limit of 139264 bytes"
                )
            );
            assert_eq!(response.header("x-request-id"), Some("big-1"));
        }
    }
    // Exactly at the limit is read and judged on its content.
    let at_limit = post_raw(&warden, "/access/v1/evaluation", &[], &[b' '; 139_264]);
    assert_eq!(at_limit.status, 400, "{}", at_limit.body);

    // Chunked: no length declared, so the body is read up to the limit.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http(&warden)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let chunk = vec![b' '; 150_000];
    let mut request = format!(
        "POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let _ = stream.write_all(&request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn malformed_requests_are_400_and_name_the_field() {
    let warden = todo_server().start().await;
    let refused = |response: HttpResponse, field: &str| {
        assert_eq!(response.status, 400, "{}", response.body);
        assert!(
            response.body.contains(field),
            "`{}` should name `{field}`",
            response.body
        );
    };
    let ok = evaluation(MORTY, "can_read_todos", json!({"type": "todo", "id": "1"}));
    for path in ["/access/v1/evaluation", "/access/v1/evaluations"] {
        refused(post_raw(&warden, path, &[], b""), "(body)");
        refused(post_raw(&warden, path, &[], b"{\"subject\": "), "(body)");
        refused(post_raw(&warden, path, &[], b"[]"), "(body)");
        let mut no_subject = ok.clone();
        no_subject.as_object_mut().unwrap().remove("subject");
        refused(post(&warden, path, &[], &no_subject), "subject");
        let mut no_id = ok.clone();
        no_id["subject"] = json!({"type": "user"});
        refused(post(&warden, path, &[], &no_id), "subject.id");
        let mut typed = ok.clone();
        typed["action"] = json!({"name": 123});
        refused(post(&warden, path, &[], &typed), "action.name");
        // Warden's own validation, in AuthZEN's field names.
        let mut spaced = ok.clone();
        spaced["action"] = json!({"name": "can read"});
        refused(post(&warden, path, &[], &spaced), "action.name");
        let mut long = ok.clone();
        long["subject"]["id"] = json!("x".repeat(300));
        refused(post(&warden, path, &[], &long), "subject.id");
        // Invisible format and separator characters in ids, as over gRPC.
        for (field, c) in [("subject.id", '\u{202E}'), ("resource.id", '\u{200B}')] {
            let mut hidden = ok.clone();
            let (object, key) = field.split_once('.').unwrap();
            hidden[object][key] = json!(format!("ab{c}cd"));
            let response = post(&warden, path, &[], &hidden);
            assert!(
                response.body.contains(&format!(
                    "must not contain invisible format or separator characters (found U+{:04X})",
                    u32::from(c)
                )),
                "{}",
                response.body
            );
            refused(response, field);
        }
        // Only JSON is accepted; AuthZEN wants 400 for anything else.
        let wrong_type = http_request(
            http(&warden),
            "POST",
            path,
            &[("Content-Type", "text/plain")],
            Some(ok.to_string().as_bytes()),
        );
        assert_eq!(wrong_type.status, 400, "{}", wrong_type.body);
    }
    // Header values must be visible ASCII.
    let accented = post(
        &warden,
        "/access/v1/evaluation",
        &[("X-Warden-Agent", "agént")],
        &ok,
    );
    assert_eq!(accented.status, 400, "{}", accented.body);
    assert!(
        accented.body.contains("x-warden-agent"),
        "{}",
        accented.body
    );
    // Unknown fields anywhere are ignored.
    let mut extra = ok.clone();
    extra["future"] = json!({"field": 1});
    extra["subject"]["also"] = json!("ignored");
    let response = post(&warden, "/access/v1/evaluation", &[], &extra);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["decision"], json!(true));

    let semantic = post(
        &warden,
        "/access/v1/evaluations",
        &[],
        &json!({"options": {"evaluations_semantic": "sometimes"}, "evaluations": [ok]}),
    );
    refused(semantic, "options.evaluations_semantic");
    let item = post(
        &warden,
        "/access/v1/evaluations",
        &[],
        &json!({"evaluations": [ok, {"subject": {"type": "user", "id": MORTY}}]}),
    );
    // An item missing a required field is answered in place, as a failed
    // evaluation that names the field; the others are decided.
    assert_eq!(decisions(&item), [true, false]);
    let failed = &item.json()["evaluations"][1];
    assert_eq!(
        failed["context"]["error"]["field"],
        json!("evaluations[1].action"),
        "{failed}"
    );
    // An item Warden's validator refuses is a denial that says why; the
    // others are answered.
    let mut invalid = ok.clone();
    invalid["resource"]["type"] = json!("");
    let partly = post(
        &warden,
        "/access/v1/evaluations",
        &[],
        &json!({"evaluations": [ok, invalid]}),
    );
    assert_eq!(decisions(&partly), [true, false]);
    let error = &partly.json()["evaluations"][1]["context"]["error"];
    assert_eq!(error["status"], json!(400));
    assert_eq!(error["field"], json!("resource.type"), "{error}");
}

#[tokio::test]
async fn request_ids_are_echoed_and_metadata_names_the_endpoints() {
    let warden = todo_server().start().await;
    let ok = evaluation(MORTY, "can_read_todos", json!({"type": "todo", "id": "1"}));
    let answered = post(
        &warden,
        "/access/v1/evaluation",
        &[("X-Request-ID", "req-42")],
        &ok,
    );
    assert_eq!(answered.status, 200);
    assert_eq!(answered.header("x-request-id"), Some("req-42"));
    let refused = post_raw(
        &warden,
        "/access/v1/evaluations",
        &[("X-Request-ID", "req-43")],
        b"nope",
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("x-request-id"), Some("req-43"));
    let without = post(&warden, "/access/v1/evaluation", &[], &ok);
    assert_eq!(without.header("x-request-id"), None);

    let metadata = http_request(
        http(&warden),
        "GET",
        "/.well-known/authzen-configuration",
        &[],
        None,
    );
    assert_eq!(metadata.status, 200, "{}", metadata.body);
    assert_eq!(metadata.header("content-type"), Some("application/json"));
    assert_eq!(metadata.header("vary"), Some("host"));
    let base = format!("http://{}", http(&warden));
    assert_eq!(
        metadata.json(),
        json!({
            "policy_decision_point": base,
            "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
            "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
            "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
            "search_action_endpoint": format!("{base}/access/v1/search/action"),
            "access_request_endpoint": format!("{base}/access/v1/requests"),
            "jwks_uri": format!("{base}/access/v1/jwks"),
            "capabilities": ["urn:openid:authzen:capability:access-request"],
        })
    );
}

#[tokio::test]
async fn the_agent_model_applies_over_http_require_approval_is_not_a_permit() {
    // The default policy and demo data: the platform and agent come from
    // headers, or from the context.
    let warden = Warden::start().await;
    let demo = Demo::load();
    let admin = demo.member_of("it-ops");
    let grant = json!({
        "subject": {"type": "user", "id": admin},
        "action": {"name": "permissions.grant"},
        "resource": {"type": "role", "id": "finance-approver"},
    });
    let headers = [
        ("X-Warden-Platform", "support-desk"),
        ("X-Warden-Agent", "access-admin"),
    ];
    let approval = post(&warden, "/access/v1/evaluation", &headers, &grant);
    assert_eq!(approval.status, 200, "{}", approval.body);
    let body = approval.json();
    assert_eq!(body["decision"], json!(false));
    assert_eq!(body["context"]["outcome"], json!("require_approval"));
    assert_eq!(body["context"]["require_approval"], json!(true));
    assert_eq!(body["context"]["reasons"], json!(["sensitive_action"]));

    let mut in_context = grant.clone();
    in_context["context"] = json!({"platform": "support-desk", "agent": "access-admin"});
    let same = post(&warden, "/access/v1/evaluation", &[], &in_context).json();
    assert_eq!(same["context"]["outcome"], json!("require_approval"));

    // Another platform's agent is refused by the policy, not the transport.
    let mismatch = post(
        &warden,
        "/access/v1/evaluation",
        &[
            ("X-Warden-Platform", "copilot-studio"),
            ("X-Warden-Agent", "access-admin"),
        ],
        &grant,
    )
    .json();
    assert_eq!(mismatch["decision"], json!(false));
    assert!(
        mismatch["context"]["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("platform_mismatch")),
        "{mismatch}"
    );
    // No platform or agent anywhere: a 400 that says where to put them.
    let missing = post(&warden, "/access/v1/evaluation", &[], &grant);
    assert_eq!(missing.status, 400);
    assert!(
        missing.body.contains("x-warden-platform"),
        "{}",
        missing.body
    );
}

#[tokio::test]
async fn kill_switches_and_audit_cover_http_decisions() {
    let warden = todo_server()
        .env("WARDEN_AUDIT_DURABILITY", "sync")
        .start()
        .await;
    let request = evaluation(MORTY, "can_read_todos", json!({"type": "todo", "id": "1"}));
    let allowed = post(&warden, "/access/v1/evaluation", &[], &request).json();
    assert_eq!(allowed["decision"], json!(true));

    let mut admin = warden.admin().await;
    let switch = admin
        .engage_kill_switch(EngageKillSwitchRequest {
            scope: Some(KillSwitchScope {
                platform: "todo".into(),
                ..KillSwitchScope::default()
            }),
            mode: KillSwitchMode::DenyAll as i32,
            reason: "incident 9".into(),
            engaged_by: "tests".into(),
            ..EngageKillSwitchRequest::default()
        })
        .await
        .unwrap();
    let stopped = post(&warden, "/access/v1/evaluation", &[], &request).json();
    assert_eq!(stopped["decision"], json!(false));
    assert_eq!(stopped["context"]["kill_switch"], json!(switch.id));
    assert_eq!(
        stopped["context"]["reasons"][0],
        json!(format!("kill_switch:{}", switch.id))
    );

    // Both decisions are in the audit chain under their decision ids, with
    // the platform and agent the defaults named.
    let mut audit = AuditClient::connect(warden.admin_endpoint(), ClientOptions::default())
        .await
        .unwrap();
    let records = audit
        .query_all(
            AuditQueryRequest {
                platform: "todo".into(),
                ..AuditQueryRequest::default()
            },
            100,
        )
        .await
        .unwrap();
    for (answer, decision) in [(&allowed, "allow"), (&stopped, "deny")] {
        let id = answer["context"]["decision_id"].as_str().unwrap();
        let record = records
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no audit record {id} in {records:?}"));
        assert_eq!(record.decision, decision);
        assert_eq!(record.agent_id, "todo-backend");
    }
    // Both are counted under their own entry point.
    let metrics = http_request(warden.ops_addr, "GET", "/metrics", &[], None).body;
    for sample in [
        r#"warden_check_duration_seconds_count{api="authzen_evaluation"} 2"#,
        r#"warden_decisions_total{outcome="allow",reason="none"} 1"#,
        r#"warden_decisions_total{outcome="deny",reason="kill_switch"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == sample),
            "no `{sample}` in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn http_callers_need_a_platform_credential_for_the_platform_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let token = |role: &str| format!("test-token-{role}-0123456789abcdef");
    let entry = |name: &str, role: &str| {
        format!(
            "{{ name = \"{name}\", sha256 = \"{}\", roles = [\"{role}\"] }}",
            warden::auth::hash_token(&token(name))
        )
    };
    let config = format!(
        "[auth]\ntokens = [{}, {}]\n[authzen]\ndefault_agent = \"todo-backend\"\n",
        entry("todo", "platform:todo"),
        entry("auditor", "auditor"),
    );
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config).unwrap();
    let warden = todo_data(Warden::builder().env("WARDEN_CONFIG", path.display().to_string()))
        .start_listening();
    // The default readiness probe speaks gRPC without credentials (health
    // is public); wait on it as usual.
    warden.wait_serving().await;
    let request = evaluation(MORTY, "can_read_todos", json!({"type": "todo", "id": "1"}));

    let anonymous = post(&warden, "/access/v1/evaluation", &[], &request);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{:?}",
        anonymous.headers
    );
    let bearer = |name: &str| format!("Bearer {}", token(name));
    let wrong = post(
        &warden,
        "/access/v1/evaluation",
        &[("Authorization", "Bearer not-a-token")],
        &request,
    );
    assert_eq!(wrong.status, 401);
    let operator = post(
        &warden,
        "/access/v1/evaluation",
        &[("Authorization", &bearer("auditor"))],
        &request,
    );
    assert_eq!(operator.status, 403, "{}", operator.body);
    // The platform credential names its platform; naming another is refused.
    let todo = bearer("todo");
    let allowed = post(
        &warden,
        "/access/v1/evaluation",
        &[("Authorization", &todo)],
        &request,
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.json()["decision"], json!(true));
    let spoofed = post(
        &warden,
        "/access/v1/evaluations",
        &[("Authorization", &todo), ("X-Warden-Platform", "payments")],
        &json!({"evaluations": [request]}),
    );
    assert_eq!(spoofed.status, 403, "{}", spoofed.body);
    // Through the context, and in one item of several: the whole call.
    let mut in_context = request.clone();
    in_context["context"] = json!({"platform": "payments"});
    let spoofed = post(
        &warden,
        "/access/v1/evaluation",
        &[("Authorization", &todo)],
        &in_context,
    );
    assert_eq!(spoofed.status, 403, "{}", spoofed.body);
    let spoofed = post(
        &warden,
        "/access/v1/evaluations",
        &[("Authorization", &todo)],
        &json!({"evaluations": [request, in_context, request]}),
    );
    assert_eq!(spoofed.status, 403, "{}", spoofed.body);
    assert!(
        spoofed.body.contains("evaluations[1].platform"),
        "{}",
        spoofed.body
    );
    // The metadata document needs no credential: it is what a PEP reads
    // before it has one.
    let metadata = http_request(
        http(&warden),
        "GET",
        "/.well-known/authzen-configuration",
        &[],
        None,
    );
    assert_eq!(metadata.status, 200);
}

#[tokio::test]
async fn the_http_listener_speaks_http1_over_tls_and_knows_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "ca");
    let server = ca.server("server");
    let todo_cert = ca.valid_client("todo-cert", "todo-backend", None);
    let config = format!(
        r#"
[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{ca}"

[auth]
clients = [{{ name = "todo-backend", cn = "todo-backend", roles = ["platform:todo"] }}]

[authzen]
default_agent = "todo-backend"
"#,
        cert = server.cert.display(),
        key = server.key.display(),
        ca = ca.cert_file.display(),
    );
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config).unwrap();
    let warden = todo_data(Warden::builder().env("WARDEN_CONFIG", path.display().to_string()))
        .start_listening();
    let ca_pem = ca.ca_pem();
    let (cert, key) = (todo_cert.cert_pem(), todo_cert.key_pem());
    let body = evaluation(MORTY, "can_read_todos", json!({"type": "todo", "id": "1"})).to_string();
    let call = |identity: Option<(&[u8], &[u8])>, alpn: &[&[u8]]| {
        let tls = TlsClient {
            ca_pem: &ca_pem,
            identity,
            alpn,
        };
        // The listener comes up with the others; retry until it answers.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match https_request(
                http(&warden),
                &tls,
                "POST",
                "/access/v1/evaluation",
                &[("Content-Type", "application/json")],
                Some(body.as_bytes()),
            ) {
                Ok(response) if response.status != 0 => return response,
                other => {
                    assert!(std::time::Instant::now() < deadline, "{other:?}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    };
    let identity = Some((cert.as_slice(), key.as_slice()));
    // Whatever the client offers, HTTP/1.1 is what it gets.
    let offers: [&[&[u8]]; 3] = [&[], &[b"http/1.1"], &[b"h2", b"http/1.1"]];
    for alpn in offers {
        let response = call(identity, alpn);
        assert_eq!(response.status, 200, "{alpn:?}: {}", response.body);
        assert_eq!(response.json()["decision"], json!(true));
    }
    // Without the certificate there is no credential.
    let anonymous = call(None, &[b"http/1.1"]);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
}
