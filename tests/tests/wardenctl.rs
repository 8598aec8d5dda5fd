//! `wardenctl check` against the real server: output and exit codes that
//! scripts rely on.

use std::process::{Command, Output};

use warden_e2e::Demo;
use warden_e2e::process::{Warden, binaries};

fn wardenctl(warden: &Warden, args: &[&str]) -> Output {
    Command::new(&binaries().wardenctl)
        .arg("--addr")
        .arg(warden.endpoint())
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn check_prints_the_decision_and_exits_with_its_code() {
    let warden = Warden::start().await;
    let demo = Demo::load();
    let finance = format!("user:{}", demo.member_of("finance"));
    let admin = demo.member_of("it-ops");

    let allow = wardenctl(
        &warden,
        &[
            "check",
            "--platform",
            "copilot-studio",
            "--agent",
            "expense-assistant",
            "--principal",
            &finance,
            "--action",
            "expenses.submit",
            "--resource",
            "expense:exp-1",
            "--request-id",
            "cli-1",
            "--context",
            r#"{"purpose": "month-end"}"#,
        ],
    );
    assert_eq!(allow.status.code(), Some(0), "{}", text(&allow.stderr));
    assert!(
        text(&allow.stdout).starts_with("ALLOW\n"),
        "{}",
        text(&allow.stdout)
    );

    let deny = wardenctl(
        &warden,
        &[
            "check",
            "--platform",
            "copilot-studio",
            "--agent",
            "ghost",
            "--principal",
            &finance,
            "--action",
            "expenses.submit",
            "--resource",
            "expense:exp-1",
        ],
    );
    assert_eq!(deny.status.code(), Some(1));
    assert!(
        text(&deny.stdout).contains("reason: agent_unknown"),
        "{}",
        text(&deny.stdout)
    );

    // A bare principal id is a user.
    let approval = wardenctl(
        &warden,
        &[
            "check",
            "--platform",
            "support-desk",
            "--agent",
            "access-admin",
            "--principal",
            &admin,
            "--action",
            "permissions.grant",
            "--resource",
            "role:db-admin",
            "--json",
        ],
    );
    assert_eq!(
        approval.status.code(),
        Some(2),
        "{}",
        text(&approval.stderr)
    );
    let document: serde_json::Value = serde_json::from_slice(&approval.stdout).unwrap();
    assert_eq!(document["decision"], "REQUIRE_APPROVAL");
    assert_eq!(document["reasons"], serde_json::json!(["sensitive_action"]));
    assert_eq!(document["decision_id"].as_str().map(str::len), Some(36));

    let invalid = wardenctl(
        &warden,
        &[
            "check",
            "--platform",
            "p",
            "--agent",
            "a",
            "--principal",
            "u",
            "--action",
            "not..dotted",
            "--resource",
            "t",
        ],
    );
    assert_eq!(invalid.status.code(), Some(3));
    assert!(
        text(&invalid.stderr).contains("action.name"),
        "{}",
        text(&invalid.stderr)
    );
}

#[test]
fn unreachable_server_is_its_own_exit_code() {
    let output = Command::new(&binaries().wardenctl)
        .args([
            "--addr",
            "http://127.0.0.1:1",
            "--timeout",
            "2s",
            "check",
            "--platform",
            "p",
            "--agent",
            "a",
            "--principal",
            "u",
            "--action",
            "x.y",
            "--resource",
            "t",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
}
