//! The planes secured end to end: TLS and client certificates, tokens,
//! roles on every RPC, platform spoofing, per-platform rate limits,
//! connection limits, and the refusal to serve unauthenticated on a
//! non-loopback address.

use std::time::Duration;

use tonic::Code;
use warden_client::{
    AdminClient, AuditClient, CheckBuilder, CheckRequest, ClientError, ClientOptions, TlsOptions,
    Transport, WardenClient, connect_channel,
};
use warden_e2e::pki::{Authority, Pem};
use warden_e2e::process::Warden;
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_client::AdminServiceClient;
use warden_proto::v1::audit_service_client::AuditServiceClient;
use warden_proto::v1::decision_service_client::DecisionServiceClient;

const ROLES: [(&str, &str); 5] = [
    ("acme", "platform:acme"),
    ("throttled", "platform:throttled"),
    ("policy", "policy_admin"),
    ("responder", "incident_responder"),
    ("auditor", "auditor"),
];

fn token(name: &str) -> String {
    format!("test-token-{name}-0123456789abcdef")
}

/// A TLS server with a token per role and two certificate identities.
struct Secured {
    warden: Warden,
    ca: Authority,
    stranger: Authority,
    oncall: Pem,
    acme_cert: Pem,
    _dir: tempfile::TempDir,
}

impl Secured {
    async fn start() -> Secured {
        Self::start_with(|b| b).await
    }

    async fn start_with(
        extra: impl FnOnce(warden_e2e::process::WardenBuilder) -> warden_e2e::process::WardenBuilder,
    ) -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::new(dir.path(), "ca");
        let stranger = Authority::new(dir.path(), "stranger-ca");
        let server = ca.server("server");
        let oncall = ca.valid_client("oncall", "oncall", None);
        let acme_cert = ca.valid_client("acme-cert", "acme-agents", Some("spiffe://agents/acme"));
        let tokens: Vec<String> = ROLES
            .iter()
            .map(|(name, role)| {
                format!(
                    "{{ name = \"{name}\", sha256 = \"{}\", roles = [\"{role}\"] }}",
                    warden::auth::hash_token(&token(name))
                )
            })
            .collect();
        let config = format!(
            r#"
[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{ca}"

[auth]
tokens = [{tokens}]
clients = [
  {{ name = "oncall", cn = "oncall", roles = ["incident_responder"] }},
  {{ name = "acme-cert", san = "spiffe://agents/acme", roles = ["platform:acme"] }},
]

[[limits.platform]]
id = "throttled"
rate = 1
burst = 3
"#,
            cert = server.cert.display(),
            key = server.key.display(),
            ca = ca.cert_file.display(),
            tokens = tokens.join(", "),
        );
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, config).unwrap();
        let warden = extra(Warden::builder().env("WARDEN_CONFIG", path.display().to_string()))
            .start_listening();
        let secured = Secured {
            warden,
            ca,
            stranger,
            oncall,
            acme_cert,
            _dir: dir,
        };
        secured.wait_serving().await;
        secured
    }

    fn tls(&self, client: Option<&Pem>) -> TlsOptions {
        TlsOptions {
            ca_pem: Some(self.ca.ca_pem()),
            identity: client.map(|pem| (pem.cert_pem(), pem.key_pem())),
            server_name: None,
        }
    }

    fn options(&self, token_of: Option<&str>, client: Option<&Pem>) -> ClientOptions {
        ClientOptions {
            tls: Some(self.tls(client)),
            token: token_of.map(token),
            ..ClientOptions::default()
        }
    }

    fn decision(&self) -> String {
        format!("https://{}", self.warden.decision_addr)
    }

    fn admin(&self) -> String {
        format!("https://{}", self.warden.admin_addr)
    }

    async fn wait_serving(&self) {
        self.warden
            .wait_health(self.decision(), &self.options(None, None))
            .await;
    }

    async fn transport(&self, admin: bool, options: &ClientOptions) -> Transport {
        let endpoint = if admin { self.admin() } else { self.decision() };
        connect_channel(endpoint, options).await.unwrap()
    }
}

fn check(platform: &str) -> CheckRequest {
    CheckBuilder::new(
        platform,
        "agent-1",
        "amelia.hughes",
        "documents.read",
        "document",
    )
    .build()
}

const DECISION_RPCS: [&str; 2] = ["Check", "BatchCheck"];
const ADMIN_RPCS: [&str; 16] = [
    "PutBundle",
    "ListBundles",
    "ActivateBundle",
    "Rollback",
    "ClearShadowBundle",
    "PutSnapshot",
    "GetStatus",
    "EngageKillSwitch",
    "ReleaseKillSwitch",
    "ListKillSwitches",
    "ListLimits",
    "ResetLimitKey",
    "Query",
    "Tail",
    "Export",
    "Verify",
];

/// Makes one call of `rpc` with a harmless request and returns its code
/// (a stream counts as OK once its first message or end arrives).
async fn call(rpc: &str, transport: Transport) -> Code {
    let mut decision = DecisionServiceClient::new(transport.clone());
    let mut admin = AdminServiceClient::new(transport.clone());
    let mut audit = AuditServiceClient::new(transport);
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    let result = match rpc {
        "Check" => decision.check(check("acme")).await.map(drop),
        "BatchCheck" => decision
            .batch_check(pb::BatchCheckRequest {
                items: vec![check("acme")],
            })
            .await
            .map(drop),
        "PutBundle" => admin
            .put_bundle(pb::PutBundleRequest::default())
            .await
            .map(drop),
        "ListBundles" => admin
            .list_bundles(pb::ListBundlesRequest::default())
            .await
            .map(drop),
        "ActivateBundle" => admin
            .activate_bundle(pb::ActivateBundleRequest {
                digest: "0000000000000000".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "Rollback" => admin
            .rollback(pb::RollbackRequest::default())
            .await
            .map(drop),
        "ClearShadowBundle" => admin
            .clear_shadow_bundle(pb::ClearShadowBundleRequest::default())
            .await
            .map(drop),
        "PutSnapshot" => admin
            .put_snapshot(pb::PutSnapshotRequest {
                kind: "neither".into(),
                document: Vec::new(),
            })
            .await
            .map(drop),
        "GetStatus" => admin
            .get_status(pb::GetStatusRequest::default())
            .await
            .map(drop),
        "EngageKillSwitch" => admin
            .engage_kill_switch(pb::EngageKillSwitchRequest::default())
            .await
            .map(drop),
        "ReleaseKillSwitch" => admin
            .release_kill_switch(pb::ReleaseKillSwitchRequest {
                id: "ks-none".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "ListKillSwitches" => admin
            .list_kill_switches(pb::ListKillSwitchesRequest::default())
            .await
            .map(drop),
        "ListLimits" => admin
            .list_limits(pb::ListLimitsRequest::default())
            .await
            .map(drop),
        "ResetLimitKey" => admin
            .reset_limit_key(pb::ResetLimitKeyRequest {
                rule: "no-such-rule".into(),
                reason: "role matrix".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "Query" => audit
            .query(pb::AuditQueryRequest::default())
            .await
            .map(drop),
        "Tail" => audit.tail(pb::AuditTailRequest::default()).await.map(drop),
        "Export" => match audit.export(pb::AuditExportRequest::default()).await {
            Ok(response) => response.into_inner().message().await.map(drop),
            Err(status) => Err(status),
        },
        "Verify" => audit
            .verify(pb::AuditVerifyRequest::default())
            .await
            .map(drop),
        other => panic!("no such rpc {other}"),
    };
    code(result)
}

/// Who may call what: `None` = allowed (any answer but an auth refusal),
/// `Some(code)` = refused with exactly that code.
fn expected(role: &str, rpc: &str) -> Option<Code> {
    let on_decision = DECISION_RPCS.contains(&rpc);
    let allowed = match role {
        "platform:acme" => on_decision,
        "policy_admin" => matches!(
            rpc,
            "PutBundle"
                | "ListBundles"
                | "ActivateBundle"
                | "Rollback"
                | "ClearShadowBundle"
                | "PutSnapshot"
                | "GetStatus"
        ),
        "incident_responder" => matches!(
            rpc,
            "GetStatus"
                | "EngageKillSwitch"
                | "ReleaseKillSwitch"
                | "ListKillSwitches"
                | "ListLimits"
                | "ResetLimitKey"
        ),
        "auditor" => matches!(
            rpc,
            "GetStatus"
                | "ListKillSwitches"
                | "ListLimits"
                | "Query"
                | "Tail"
                | "Export"
                | "Verify"
        ),
        "none" => return Some(Code::Unauthenticated),
        _ => unreachable!(),
    };
    (!allowed).then_some(Code::PermissionDenied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_against_every_rpc() {
    let secured = Secured::start().await;
    let callers = [
        ("platform:acme", Some("acme")),
        ("policy_admin", Some("policy")),
        ("incident_responder", Some("responder")),
        ("auditor", Some("auditor")),
        ("none", None),
    ];
    let mut failures = Vec::new();
    let mut cells = 0;
    for (role, token_of) in callers {
        let options = secured.options(token_of, None);
        for rpc in DECISION_RPCS.iter().chain(ADMIN_RPCS.iter()) {
            let admin = !DECISION_RPCS.contains(rpc);
            let got = call(rpc, secured.transport(admin, &options).await).await;
            cells += 1;
            let ok = match expected(role, rpc) {
                None => !matches!(got, Code::Unauthenticated | Code::PermissionDenied),
                Some(code) => got == code,
            };
            if !ok {
                failures.push(format!(
                    "{role} × {rpc}: got {got:?}, expected {:?}",
                    expected(role, rpc).map_or("allowed".to_owned(), |c| format!("{c:?}"))
                ));
            }
        }
    }
    assert_eq!(cells, 5 * 18);
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A listener serves only its own services, whatever the role.
    let options = secured.options(Some("acme"), None);
    assert_eq!(
        call("GetStatus", secured.transport(false, &options).await).await,
        Code::Unimplemented
    );
    let options = secured.options(Some("policy"), None);
    assert_eq!(
        call("Check", secured.transport(true, &options).await).await,
        Code::Unimplemented
    );
}

fn status_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> tonic::Status {
    match result {
        Err(ClientError::Status(status)) => status,
        other => panic!("expected a status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_that_do_not_verify_are_unauthenticated() {
    let secured = Secured::start().await;
    let expired = secured.ca.client(
        "expired",
        "oncall",
        None,
        time::Duration::days(-10),
        time::Duration::days(-1),
    );
    let not_yet = secured.ca.client(
        "not-yet",
        "oncall",
        None,
        time::Duration::days(1),
        time::Duration::days(10),
    );
    let foreign = secured.stranger.valid_client("foreign", "oncall", None);

    // The good certificate names the incident responder.
    let mut admin = AdminClient::connect(
        secured.admin(),
        secured.options(None, Some(&secured.oncall)),
    )
    .await
    .unwrap();
    admin.list_kill_switches(0).await.unwrap();

    let cases = [
        (
            "expired certificate",
            secured.options(None, Some(&expired)),
            "expired",
        ),
        (
            "certificate not yet valid",
            secured.options(None, Some(&not_yet)),
            "not valid",
        ),
        (
            "certificate from another CA",
            secured.options(None, Some(&foreign)),
            "issuer",
        ),
        // A bad certificate is refused even with a good token beside it.
        (
            "expired certificate and a good token",
            secured.options(Some("responder"), Some(&expired)),
            "expired",
        ),
        (
            "wrong token",
            ClientOptions {
                token: Some("test-token-responder-0123456789abcdeX".into()),
                ..secured.options(None, None)
            },
            "unknown bearer token",
        ),
        (
            "no credentials",
            secured.options(None, None),
            "no credentials",
        ),
    ];
    for (case, options, says) in cases {
        let mut admin = AdminClient::connect(secured.admin(), options)
            .await
            .unwrap();
        let status = status_of(admin.list_kill_switches(0).await);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
        assert!(
            status.message().to_lowercase().contains(says),
            "{case}: {status:?}"
        );
    }

    // A certificate and a token naming different callers.
    let mut admin = AdminClient::connect(
        secured.admin(),
        secured.options(Some("auditor"), Some(&secured.oncall)),
    )
    .await
    .unwrap();
    let status = status_of(admin.list_kill_switches(0).await);
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Without trusting Warden's CA the client will not talk to it at all,
    // and a plaintext client gets no gRPC answer from a TLS listener.
    let untrusting = ClientOptions {
        tls: Some(TlsOptions {
            ca_pem: Some(secured.stranger.ca_pem()),
            ..TlsOptions::default()
        }),
        token: Some(token("responder")),
        ..ClientOptions::default()
    };
    assert!(
        AdminClient::connect(secured.admin(), untrusting)
            .await
            .is_err()
    );
    let plaintext = ClientOptions {
        token: Some(token("responder")),
        ..ClientOptions::default()
    };
    let plain =
        AdminClient::connect(format!("http://{}", secured.warden.admin_addr), plaintext).await;
    if let Ok(mut plain) = plain {
        assert!(plain.list_kill_switches(0).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platforms_cannot_speak_for_other_platforms() {
    let secured = Secured::start().await;
    for options in [
        secured.options(Some("acme"), None),
        secured.options(None, Some(&secured.acme_cert)),
    ] {
        let mut client = WardenClient::connect(secured.decision(), options)
            .await
            .unwrap();
        let answer = client.check(check("acme")).await.unwrap();
        assert!(!answer.decision_id.is_empty());

        let status = status_of(client.check(check("globex")).await);
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("globex"), "{status:?}");

        // One spoofed item refuses the whole batch.
        let status = status_of(
            client
                .batch_check(vec![check("acme"), check("globex")])
                .await,
        );
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("items[1].platform"), "{status:?}");
    }

    // The platform's credential is refused on the admin plane outright.
    let mut admin = AdminClient::connect(secured.admin(), secured.options(Some("acme"), None))
        .await
        .unwrap();
    let status = status_of(admin.status().await);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("platform credential"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_are_audited_with_their_authenticated_caller() {
    let secured = Secured::start().await;
    let mut responder = AdminClient::connect(
        secured.admin(),
        secured.options(None, Some(&secured.oncall)),
    )
    .await
    .unwrap();
    let switch = responder
        .engage_kill_switch(pb::EngageKillSwitchRequest {
            scope: Some(pb::KillSwitchScope {
                platform: "acme".into(),
                ..Default::default()
            }),
            reason: "security test".into(),
            engaged_by: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(switch.engaged_by.contains("alice"), "{}", switch.engaged_by);
    assert!(
        switch.engaged_by.contains("oncall (certificate"),
        "{}",
        switch.engaged_by
    );

    let mut audit = AuditClient::connect(secured.admin(), secured.options(Some("auditor"), None))
        .await
        .unwrap();
    let (records, _) = audit
        .query(pb::AuditQueryRequest {
            r#type: "admin".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let engaged = records
        .iter()
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.json).ok())
        .map(|entry| entry["record"].clone())
        .find(|r| r["event"] == "kill_switch.engaged")
        .unwrap_or_else(|| panic!("the engage is not audited: {records:?}"));
    let caller = engaged["caller"].as_str().unwrap_or_default();
    assert!(
        caller.starts_with("oncall (certificate, 127.0.0.1:"),
        "{caller}"
    );

    // Decisions carry their platform caller too.
    let mut client = WardenClient::connect(secured.decision(), secured.options(Some("acme"), None))
        .await
        .unwrap();
    let answer = client.check(check("acme")).await.unwrap();
    // Records are written asynchronously; give the writer a moment.
    let mut record = None;
    for _ in 0..100 {
        let (records, _) = audit
            .query(pb::AuditQueryRequest {
                r#type: "decision".into(),
                platform: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        record = records
            .iter()
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.json).ok())
            .map(|entry| entry["record"].clone())
            .find(|r| r["decision_id"] == answer.decision_id.as_str());
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record = record.expect("the check is audited");
    assert!(
        record["caller"]
            .as_str()
            .unwrap_or_default()
            .starts_with("acme (token"),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_over_its_rate_is_refused_then_recovers() {
    let secured = Secured::start().await;
    let mut client =
        WardenClient::connect(secured.decision(), secured.options(Some("throttled"), None))
            .await
            .unwrap();
    // Burst 3 at 1/s: six checks in quick succession cannot all pass.
    let mut refused = Vec::new();
    for _ in 0..6 {
        match client.check(check("throttled")).await {
            Ok(_) => {}
            Err(e) => refused.push(status_of::<()>(Err(e))),
        }
    }
    assert!(!refused.is_empty(), "the rate limit never tripped");
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("limits.platform_rate"),
            "{status:?}"
        );
        use tonic_types::StatusExt;
        assert!(
            status.get_details_retry_info().is_some(),
            "no RetryInfo: {status:?}"
        );
    }
    // Other platforms are not affected.
    let mut acme = WardenClient::connect(secured.decision(), secured.options(Some("acme"), None))
        .await
        .unwrap();
    for _ in 0..10 {
        acme.check(check("acme")).await.unwrap();
    }
    // A token a second: after a pause the platform is served again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.check(check("throttled")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed() {
    let warden = Warden::builder()
        .env("WARDEN_LIMITS_MAX_CONNECTIONS", "2")
        .start()
        .await;
    // A connection that is served, retried while the server lets go of
    // closed ones (the start-up health probe's, then any freed below).
    let served = || async {
        for _ in 0..50 {
            if let Ok(mut client) =
                WardenClient::connect(warden.endpoint(), ClientOptions::default()).await
                && client.check(check("acme")).await.is_ok()
            {
                return Some(client);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    };
    let mut first = served().await.expect("a first connection");
    let mut second = served().await.expect("a second connection");
    // Both slots are held now, so a third connection is closed on accept.
    let third = WardenClient::connect(warden.endpoint(), ClientOptions::default()).await;
    let refused = match third {
        Err(_) => true,
        Ok(mut third) => third.check(check("acme")).await.is_err(),
    };
    assert!(refused, "a third connection was served");
    first.check(check("acme")).await.unwrap();
    second.check(check("acme")).await.unwrap();
    drop(first);
    // The freed slot is usable again.
    assert!(served().await.is_some(), "the freed slot was never reused");
}

#[test]
fn a_reachable_listener_needs_tls_and_credentials_or_an_explicit_insecure_flag() {
    let (status, stderr) = Warden::builder()
        .arg("--decision-addr")
        .arg("0.0.0.0:0")
        .start_expecting_failure();
    assert!(!status.success());
    assert!(
        stderr.contains("server.decision_addr") && stderr.contains("insecure"),
        "{stderr}"
    );
    let mut warden = Warden::builder()
        .arg("--decision-addr")
        .arg("0.0.0.0:0")
        .arg("--insecure")
        .start_listening();
    assert!(warden.decision_addr.ip().is_unspecified());
    assert!(warden.terminate_blocking().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_the_listener_allows_gets_deadline_exceeded() {
    let warden = Warden::builder()
        .env("WARDEN_LIMITS_ADMIN_TIMEOUT", "1ms")
        .start()
        .await;
    // Loading 200,000 users takes far longer than a millisecond.
    let users: serde_json::Map<String, serde_json::Value> = (0..200_000)
        .map(|i| {
            (
                format!("user-{i}"),
                serde_json::json!({"groups": ["g"], "attributes": {}}),
            )
        })
        .collect();
    let snapshot = serde_json::json!({
        "version": "identity-9-big",
        "users": users,
        "agents": {},
        "groups": {"g": {}},
    });
    let mut admin = warden.admin().await;
    let status = status_of(
        admin
            .put_snapshot("identity", serde_json::to_vec(&snapshot).unwrap())
            .await,
    );
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("limit"), "{status:?}");
}

/// `wardenctl` against the secured server: credentials from the
/// environment, from a config file, and refused without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wardenctl_takes_tls_and_tokens_from_env_and_config_file() {
    use std::process::Command;
    use warden_e2e::process::binaries;

    let secured = Secured::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", token("responder"))).unwrap();
    let run = |envs: &[(&str, String)], args: &[&str]| {
        let mut command = Command::new(&binaries().wardenctl);
        for name in [
            "WARDEN_ADDR",
            "WARDEN_ADMIN_ADDR",
            "WARDEN_TOKEN",
            "WARDEN_TOKEN_FILE",
            "WARDEN_CA",
            "WARDEN_CERT",
            "WARDEN_KEY",
            "WARDEN_CLIENT_CONFIG",
        ] {
            command.env_remove(name);
        }
        command.env("HOME", dir.path());
        for (name, value) in envs {
            command.env(name, value);
        }
        command.args(args).output().unwrap()
    };
    let admin = secured.admin();
    let ca = secured.ca.cert_file.display().to_string();

    // Environment: token and CA.
    let out = run(
        &[
            ("WARDEN_ADMIN_ADDR", admin.clone()),
            ("WARDEN_TOKEN", token("responder")),
            ("WARDEN_CA", ca.clone()),
        ],
        &["kill", "list"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The default config file: token file and mutual TLS; flags for the rest.
    let config_dir = dir.path().join(".config/warden");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("wardenctl.toml"),
        format!(
            "admin_addr = \"{admin}\"\nca = \"{ca}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            secured.oncall.cert.display(),
            secured.oncall.key.display()
        ),
    )
    .unwrap();
    let out = run(&[], &["kill", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An explicit config file replaces the default one.
    let plain_config = dir.path().join("tls-only.toml");
    std::fs::write(
        &plain_config,
        format!("admin_addr = \"{admin}\"\nca = \"{ca}\"\n"),
    )
    .unwrap();
    let plain_config = plain_config.display().to_string();
    let out = run(
        &[],
        &[
            "--config",
            &plain_config,
            "--token-file",
            &token_file.display().to_string(),
            "kill",
            "list",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An auditor's token is refused for kill switch changes, and says so.
    let out = run(
        &[("WARDEN_TOKEN", token("auditor"))],
        &[
            "--config",
            &plain_config,
            "kill",
            "release",
            "ks-none",
            "--reason",
            "x",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PermissionDenied"), "{stderr}");

    // A config file named explicitly must exist.
    let out = run(
        &[],
        &["--config", "/nonexistent/wardenctl.toml", "kill", "list"],
    );
    assert!(!out.status.success());
}

#[test]
fn warden_token_prints_only_entries_that_serve_accepts() {
    let warden = &warden_e2e::process::binaries().warden;
    let run = |args: &[&str]| {
        std::process::Command::new(warden)
            .arg("token")
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&["--name", "acme", "--role", "platform:acme"]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("roles = [\"platform:acme\"]"));
    for args in [
        &["--name", "nobody"][..],
        &[
            "--name",
            "mixed",
            "--role",
            "platform:acme",
            "--role",
            "auditor",
        ],
        &["--name", "", "--role", "auditor"],
    ] {
        let refused = run(args);
        assert!(!refused.status.success(), "{args:?} should be refused");
        assert!(refused.stdout.is_empty(), "{args:?} printed an entry");
    }
}

/// A message over a listener's limit is refused by the transport before it
/// is decoded, as `RESOURCE_EXHAUSTED` (the gRPC convention, not tonic's
/// `OUT_OF_RANGE`), naming the setting; the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_resource_exhausted_on_both_listeners() {
    // Decision limit: 1024 × 4 + 64 KiB = 69,632 bytes; admin: 1000 + 1 MiB.
    let warden = Warden::builder()
        .env("WARDEN_LIMITS_MAX_REQUEST_BYTES", "1024")
        .env("WARDEN_LIMITS_MAX_BATCH_ITEMS", "4")
        .env("WARDEN_BUNDLES_MAX_PUSH_BYTES", "1000")
        .start()
        .await;
    let mut client = warden.client().await;
    let big = CheckBuilder::new(
        "acme",
        "agent-1",
        "amelia.hughes",
        "documents.read",
        "document",
    )
    .context("blob", serde_json::json!("x".repeat(100_000)))
    .build();
    let expect_exhausted = |status: tonic::Status, setting: &str| {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .starts_with("the request message is larger than the limit set by "),
            "{status:?}"
        );
        assert!(status.message().contains(setting), "{status:?}");
        assert!(
            status.message().contains("the limit is: "),
            "the refusal should give the sizes: {status:?}"
        );
    };
    expect_exhausted(
        status_of(client.check(big.clone()).await),
        "limits.max_request_bytes × limits.max_batch_items",
    );
    expect_exhausted(
        status_of(client.batch_check(vec![big]).await),
        "limits.max_request_bytes × limits.max_batch_items",
    );
    // Under the transport limit, a check too large for validation is the
    // caller's invalid argument, as before.
    let over_item = CheckBuilder::new(
        "acme",
        "agent-1",
        "amelia.hughes",
        "documents.read",
        "document",
    )
    .context("blob", serde_json::json!("x".repeat(2_000)))
    .build();
    assert_eq!(
        status_of(client.check(over_item).await).code(),
        Code::InvalidArgument
    );

    let mut admin = warden.admin().await;
    let push = admin
        .put_bundle(
            vec![0u8; 1_100_000],
            warden_client::admin::BundleTarget::Active,
        )
        .await;
    expect_exhausted(status_of(push), "bundles.max_push_bytes");
    // Under it, the bundle's own limit refuses as invalid.
    let push = admin
        .put_bundle(vec![0u8; 2_000], warden_client::admin::BundleTarget::Active)
        .await;
    assert_eq!(status_of(push).code(), Code::InvalidArgument);
    assert!(admin.status().await.is_ok());
}

/// Invisible format and separator characters (bidi overrides, zero width
/// space, line separator, BOM, isolates, soft hyphen) are refused in every
/// id of a check and in kill switch scope ids, naming the field and the
/// character; attribute values keep them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_refuse_invisible_format_and_separator_characters() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let valid = || {
        CheckBuilder::new(
            "acme",
            "agent-1",
            "amelia.hughes",
            "documents.read",
            "document",
        )
    };
    type Set = fn(&mut pb::CheckRequest, String);
    let fields: [(&str, Set); 9] = [
        ("platform", |r, v| r.platform = v),
        ("agent.id", |r, v| {
            if let Some(a) = r.agent.as_mut() {
                a.id = v
            }
        }),
        ("principal.id", |r, v| {
            if let Some(p) = r.principal.as_mut() {
                p.id = v
            }
        }),
        ("principal.type", |r, v| {
            if let Some(p) = r.principal.as_mut() {
                p.r#type = v
            }
        }),
        ("delegation_chain[0]", |r, v| r.delegation_chain = vec![v]),
        ("action.name", |r, v| {
            if let Some(a) = r.action.as_mut() {
                a.name = v
            }
        }),
        ("resource.type", |r, v| {
            if let Some(res) = r.resource.as_mut() {
                res.r#type = v
            }
        }),
        ("resource.id", |r, v| {
            if let Some(res) = r.resource.as_mut() {
                res.id = v
            }
        }),
        ("request_id", |r, v| r.request_id = v),
    ];
    let invisible = [
        '\u{202E}', '\u{200B}', '\u{2028}', '\u{FEFF}', '\u{2066}', '\u{00AD}',
    ];
    for (field, set) in fields {
        for c in invisible {
            let mut request = valid().build();
            set(&mut request, format!("ab{c}cd"));
            let status = status_of(client.check(request).await);
            assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
            assert_eq!(
                status.message(),
                format!(
                    "invalid {field}: must not contain invisible format or separator characters (found U+{:04X})",
                    u32::from(c)
                ),
            );
            use tonic_types::StatusExt;
            let blamed = status
                .get_details_bad_request()
                .and_then(|bad| bad.field_violations.first().map(|v| v.field.clone()));
            assert_eq!(blamed.as_deref(), Some(field));
        }
    }
    // Attribute values and keys are free-form: the same characters pass.
    let attributes = valid()
        .agent_attribute(
            "note\u{200B}",
            serde_json::json!("r\u{202E}tl \u{2028} \u{FEFF}"),
        )
        .context("label", serde_json::json!("a\u{2066}b\u{2069}\u{00AD}"))
        .build();
    assert!(client.check(attributes).await.is_ok());

    // Kill switch scopes refuse them too, for the same reason.
    let mut admin = warden.admin().await;
    let engage = admin
        .engage_kill_switch(warden_client::admin::EngageKillSwitchRequest {
            scope: Some(warden_client::admin::KillSwitchScope {
                agent_id: "agent\u{202E}1".into(),
                ..Default::default()
            }),
            mode: warden_client::admin::KillSwitchMode::DenyAll as i32,
            reason: "incident 23".into(),
            engaged_by: "tests".into(),
            ..Default::default()
        })
        .await;
    let status = status_of(engage);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("scope.agent_id")
            && status
                .message()
                .contains("invisible format or separator characters (found U+202E)"),
        "{status:?}"
    );
    let switches = admin.list_kill_switches(10).await.unwrap();
    assert!(switches.active.is_empty(), "{switches:?}");
}
