//! The server's life: configuration, start-up refusals, health, reflection,
//! the ops listener and graceful shutdown.

use std::net::TcpStream;
use std::time::Duration;

use tokio_stream::StreamExt;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use warden_client::{CheckBuilder, Decision};
use warden_e2e::http_get;
use warden_e2e::process::Warden;
use warden_e2e::{Demo, repo_root};

fn allowed_request() -> warden_client::CheckRequest {
    CheckBuilder::new(
        "copilot-studio",
        "expense-assistant",
        Demo::load().member_of("finance"),
        "expenses.read",
        "expense",
    )
    .resource_id("exp-9")
    .build()
}

#[tokio::test]
async fn serves_health_reflection_and_ops_endpoints() {
    let warden = Warden::start().await;

    let mut reflection = ServerReflectionClient::new(warden.client().await.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let services = match responses.next().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    };
    for expected in ["warden.v1.DecisionService", "grpc.health.v1.Health"] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} missing from {services:?}"
        );
    }

    assert_eq!(http_get(warden.ops_addr, "/healthz"), (200, "ok\n".into()));
    assert_eq!(
        http_get(warden.ops_addr, "/readyz"),
        (200, "ready\n".into())
    );
}

#[tokio::test]
async fn shutdown_lets_checks_in_flight_finish() {
    // Each check takes seconds: long enough to still be running when
    // SIGTERM arrives.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slow.rego"),
        "package warden.authz\n\ndecision if {\n\tr := numbers.range(1, 100)\n\tcount([1 | some a in r; some b in r; some c in r; a == -1]) == 0\n}\n",
    )
    .unwrap();
    let mut warden = Warden::builder()
        .arg("--bundle")
        .arg(dir.path().to_str().unwrap())
        .env("WARDEN_POLICY_EVAL_TIMEOUT_MS", "120000")
        .env("WARDEN_POLICY_MAX_INSTRUCTIONS", "1000000000000")
        .env("WARDEN_SERVER_SHUTDOWN_GRACE", "120s")
        .start()
        .await;
    let client = warden.client().await;
    let checks: Vec<_> = (0..2)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                client
                    .check(CheckBuilder::new("p", "a", "u", "x.y", "t").build())
                    .await
            })
        })
        .collect();
    // Let the checks reach the server before the signal.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = warden.terminate().await;
    for check in checks {
        let response = check.await.unwrap().expect("a check in flight is answered");
        assert_eq!(response.decision(), Decision::Allow);
    }
    assert!(
        status.success(),
        "warden exited with {status}\n{}",
        warden.stderr()
    );
    assert!(warden.stderr().contains("draining in-flight requests"));
}

#[tokio::test]
async fn sigterm_stops_a_quiet_server_cleanly() {
    let mut warden = Warden::start().await;
    let addr = warden.decision_addr;
    let status = warden.terminate().await;
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn refuses_to_start_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::create_dir_all(dir.path().join("broken")).unwrap();
    std::fs::write(
        dir.path().join("broken/policy.rego"),
        "package warden.authz\n\ndecision := {\n",
    )
    .unwrap();
    std::fs::write(
        path("identity.json"),
        r#"{"version": "1", "generated_at": "2026-11-01T00:00:00Z", "users": {}, "robots": {}}"#,
    )
    .unwrap();
    std::fs::write(
        path("warden.toml"),
        "[server]\ndecision_adr = \"127.0.0.1:0\"\n",
    )
    .unwrap();

    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--bundle".into(), path("broken")], "policy.rego"),
        (vec!["--bundle".into(), path("missing")], "missing"),
        (
            vec!["--identity".into(), path("identity.json")],
            "`robots` is not a known key",
        ),
        (vec!["--config".into(), path("warden.toml")], "decision_adr"),
        (vec![], "snapshots.max_age"),
    ];
    for (args, expected) in cases {
        let mut builder = Warden::builder();
        if args.is_empty() {
            builder = builder.env("WARDEN_SNAPSHOTS_MAX_AGE", "soon");
        }
        for arg in &args {
            builder = builder.arg(arg.clone());
        }
        let (status, stderr) = builder.start_expecting_failure();
        assert!(!status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in\n{stderr}"
        );
    }

    // A data directory that cannot be created.
    std::fs::write(path("file"), "").unwrap();
    let (status, stderr) = Warden::builder()
        .data_dir(path("file"))
        .start_expecting_failure();
    assert!(!status.success());
    assert!(stderr.contains("cannot open the store"), "{stderr}");
}

#[tokio::test]
async fn config_file_env_and_flags_layer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    // The file sets a tiny batch limit and an id limit; env overrides the
    // batch limit again; the flags (ports) override the file's addresses.
    std::fs::write(
        &config,
        "[server]\ndecision_addr = \"127.0.0.1:1\"\n[limits]\nmax_batch_items = 1\nmax_id_bytes = 40\n",
    )
    .unwrap();
    let warden = Warden::builder()
        .arg("--config")
        .arg(config.to_str().unwrap())
        .env("WARDEN_LIMITS_MAX_BATCH_ITEMS", "3")
        .start()
        .await;
    let mut client = warden.client().await;
    assert_eq!(
        client
            .batch_check(vec![allowed_request(); 3])
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        client
            .batch_check(vec![allowed_request(); 4])
            .await
            .is_err()
    );
    let long = CheckBuilder::new("p", "a".repeat(41), "u", "x.y", "t").build();
    assert!(client.check(long).await.is_err());
}

#[tokio::test]
async fn serves_a_bundle_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bundle.tar.gz");
    let status = std::process::Command::new("tar")
        .current_dir(repo_root().join("policies"))
        .args(["czf", archive.to_str().unwrap(), ".manifest", "warden"])
        .status()
        .unwrap();
    assert!(status.success());
    let warden = Warden::builder()
        .arg("--bundle")
        .arg(archive.to_str().unwrap())
        .start()
        .await;
    let response = warden
        .client()
        .await
        .check(allowed_request())
        .await
        .unwrap();
    assert_eq!(response.decision(), Decision::Allow, "{response:?}");
}

#[tokio::test]
async fn stale_snapshots_deny_before_the_policy() {
    // The demo snapshots were generated on 2026-11-01.
    let warden = Warden::builder()
        .env("WARDEN_SNAPSHOTS_MAX_AGE", "1h")
        .start()
        .await;
    let response = warden
        .client()
        .await
        .check(allowed_request())
        .await
        .unwrap();
    assert_eq!(response.decision(), Decision::Deny);
    assert_eq!(
        response.reasons,
        vec!["stale_snapshot:identity".to_string()]
    );
    assert_eq!(response.policy_revision, "", "the policy was not consulted");

    let fresh = Warden::builder()
        .env("WARDEN_SNAPSHOTS_MAX_AGE", "36500d")
        .start()
        .await;
    let response = fresh.client().await.check(allowed_request()).await.unwrap();
    assert_eq!(response.decision(), Decision::Allow);
}
