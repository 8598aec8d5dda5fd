//! The Wasm engine cuts off policies that run or allocate without bound,
//! keeps serving, and refuses hostile modules at load with a precise error.

use std::path::Path;

use warden_client::{CheckBuilder, Decision};
use warden_e2e::process::Warden;

fn bundle(dir: &Path, body: &str) {
    std::fs::create_dir_all(dir.join("warden/authz")).unwrap();
    std::fs::write(
        dir.join("warden/authz/policy.rego"),
        format!("package warden.authz\n\ndecision if input.platform == \"fast\"\n\n{body}\n"),
    )
    .unwrap();
}

fn check(platform: &str) -> warden_client::CheckRequest {
    CheckBuilder::new(platform, "a", "u", "documents.read", "document").build()
}

async fn wasm_server(dir: &Path, extra: &[(&str, &str)]) -> Warden {
    let mut builder = Warden::builder()
        .arg("--bundle")
        .arg(dir.to_str().unwrap())
        .env("WARDEN_POLICY_ENGINE", "wasm");
    for (name, value) in extra {
        builder = builder.env(*name, *value);
    }
    builder.start().await
}

#[tokio::test]
async fn a_policy_that_never_ends_is_interrupted_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    bundle(
        dir.path(),
        "decision if {\n\tinput.platform != \"fast\"\n\tr := numbers.range(1, 2000)\n\tcount([1 | some a in r; some b in r; some c in r; a == -1]) > 0\n}",
    );
    let warden = wasm_server(dir.path(), &[("WARDEN_POLICY_EVAL_TIMEOUT_MS", "50")]).await;
    let mut client = warden.client().await;
    for _ in 0..2 {
        let response = client.check(check("slow")).await.unwrap();
        assert_eq!(response.decision(), Decision::Deny);
        assert_eq!(response.reasons, vec!["evaluation_timeout".to_string()]);
        // The next check, on a fresh instance, is answered normally.
        let response = client.check(check("fast")).await.unwrap();
        assert_eq!(response.decision(), Decision::Allow, "{response:?}");
    }
}

#[tokio::test]
async fn a_policy_that_allocates_without_bound_hits_the_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    bundle(
        dir.path(),
        "decision if {\n\tinput.platform != \"fast\"\n\tgrow(1)\n}\n\ngrow(n) if {\n\tcount(concat(\"\", [s | some _ in numbers.range(1, 200000); s := \"0123456789abcdef0123456789abcdef\"])) > n\n\tgrow(n + 1)\n}",
    );
    let warden = wasm_server(
        dir.path(),
        &[
            ("WARDEN_POLICY_WASM_MAX_MEMORY_MB", "48"),
            ("WARDEN_POLICY_EVAL_TIMEOUT_MS", "20000"),
        ],
    )
    .await;
    let mut client = warden.client().await;
    let response = client.check(check("hungry")).await.unwrap();
    assert_eq!(response.decision(), Decision::Deny);
    assert!(
        response.reasons[0].starts_with("evaluation_error: wasm"),
        "{:?}",
        response.reasons
    );
    let response = client.check(check("fast")).await.unwrap();
    assert_eq!(response.decision(), Decision::Allow, "{response:?}");
}

#[test]
fn hostile_modules_are_refused_at_load() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\x7fELF not wasm at all".to_vec(), "not a Wasm module"),
        (wat::parse_str(r#"(module (import "env" "memory" (memory 2)))"#).unwrap(), "lacks the export `eval`"),
        (
            wat::parse_str(r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (import "env" "memory" (memory 2)))"#).unwrap(),
            "imports `wasi_snapshot_preview1.fd_write`",
        ),
        (wat::parse_str(r#"(module (import "env" "memory" (memory 60000)))"#).unwrap(), "asks for 60000 pages"),
        (wat::parse_str(r#"(module (memory 1))"#).unwrap(), "defines its own memory"),
    ];
    for (bytes, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.wasm"), &bytes).unwrap();
        std::fs::write(
            dir.path().join(".manifest"),
            r#"{"roots": ["warden"], "wasm": [{"entrypoint": "warden/authz/decision", "module": "/policy.wasm"}]}"#,
        )
        .unwrap();
        let (status, stderr) = Warden::builder()
            .arg("--bundle")
            .arg(dir.path().to_str().unwrap())
            .env("WARDEN_POLICY_WASM_MAX_MEMORY_MB", "1024")
            .start_expecting_failure();
        assert!(!status.success());
        assert!(
            stderr.contains("policy.wasm") && stderr.contains(expected),
            "expected `{expected}` in:\n{stderr}"
        );
    }
}
