//! Fail closed: whatever goes wrong in a policy, the check is denied with a
//! reason, and the server goes on answering.

use std::path::Path;

use warden_client::{CheckBuilder, Decision};
use warden_e2e::process::Warden;

/// Writes a one-module bundle whose decision rule is `body`.
fn bundle(dir: &Path, body: &str) {
    std::fs::create_dir_all(dir.join("warden/authz")).unwrap();
    std::fs::write(
        dir.join("warden/authz/policy.rego"),
        format!("package warden.authz\n\n{body}\n"),
    )
    .unwrap();
}

fn request() -> warden_client::CheckRequest {
    CheckBuilder::new("p", "a", "u", "documents.read", "document").build()
}

async fn decide(warden: &Warden) -> (Decision, Vec<String>) {
    let response = warden.client().await.check(request()).await.unwrap();
    (response.decision(), response.reasons)
}

#[tokio::test]
async fn undefined_decision_denies() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), "decision if input.never_set");
    let warden = Warden::builder()
        .arg("--bundle")
        .arg(dir.path().to_str().unwrap())
        .start()
        .await;
    assert_eq!(
        decide(&warden).await,
        (Decision::Deny, vec!["undefined_decision".to_string()])
    );
}

#[tokio::test]
async fn conflicting_outputs_deny() {
    let dir = tempfile::tempdir().unwrap();
    // Two values for one complete rule: OPA reports a conflict error, the
    // RVM an undefined result. Either way the check is denied.
    bundle(
        dir.path(),
        "decision := true if input.platform\n\ndecision := false if input.agent",
    );
    let warden = Warden::builder()
        .arg("--bundle")
        .arg(dir.path().to_str().unwrap())
        .start()
        .await;
    assert_eq!(
        decide(&warden).await,
        (Decision::Deny, vec!["undefined_decision".to_string()])
    );
}

#[tokio::test]
async fn malformed_decisions_deny() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), r#"decision := {"allow": "yes"}"#);
    let warden = Warden::builder()
        .arg("--bundle")
        .arg(dir.path().to_str().unwrap())
        .start()
        .await;
    assert_eq!(
        decide(&warden).await,
        (
            Decision::Deny,
            vec!["invalid_decision: `allow` is not a boolean".to_string()]
        )
    );
}

/// About a billion iterations: far past any deadline, with no memory growth.
const SPIN: &str = "decision if {\n\tinput.platform != \"fast\"\n\tr := numbers.range(1, 1000)\n\tcount([1 | some a in r; some b in r; some c in r; a == -1]) > 0\n}";

#[tokio::test]
async fn runaway_policies_are_cut_off_by_the_deadline_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A second entrypoint answers normally when the input asks for it.
    bundle(
        dir.path(),
        &format!("{SPIN}\n\ndecision if input.platform == \"fast\""),
    );
    let warden = Warden::builder()
        .arg("--bundle")
        .arg(dir.path().to_str().unwrap())
        .env("WARDEN_POLICY_MAX_INSTRUCTIONS", "1000000000000")
        .env("WARDEN_POLICY_EVAL_TIMEOUT_MS", "50")
        .start()
        .await;
    let mut client = warden.client().await;
    for _ in 0..3 {
        let response = client.check(request()).await.unwrap();
        assert_eq!(response.decision(), Decision::Deny);
        assert_eq!(response.reasons, vec!["evaluation_timeout".to_string()]);
    }
    // Later checks on the same server are answered normally.
    let fast = CheckBuilder::new("fast", "a", "u", "documents.read", "document").build();
    let response = client.check(fast).await.unwrap();
    assert_eq!(response.decision(), Decision::Allow, "{response:?}");
}

#[tokio::test]
async fn the_instruction_budget_also_cuts_off() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), SPIN);
    let warden = Warden::builder()
        .arg("--bundle")
        .arg(dir.path().to_str().unwrap())
        .env("WARDEN_POLICY_MAX_INSTRUCTIONS", "100000")
        .env("WARDEN_POLICY_EVAL_TIMEOUT_MS", "60000")
        .start()
        .await;
    let (decision, reasons) = decide(&warden).await;
    assert_eq!(decision, Decision::Deny);
    assert!(
        reasons[0].starts_with("evaluation_error: ") && reasons[0].contains("instruction limit"),
        "{reasons:?}"
    );
}
