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

fn admin_cli(warden: &Warden, args: &[&str]) -> Output {
    Command::new(&binaries().wardenctl)
        .arg("--admin-addr")
        .arg(warden.admin_endpoint())
        .args(args)
        .output()
        .unwrap()
}

fn json_out(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&output.stdout)))
}

#[tokio::test]
async fn operators_manage_bundles_and_snapshots_from_the_command_line() {
    let warden = Warden::start().await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("frozen");
    std::fs::create_dir_all(source.join("warden/authz")).unwrap();
    std::fs::write(
        source.join(".manifest"),
        r#"{"revision": "cli-1", "roots": ["warden"]}"#,
    )
    .unwrap();
    std::fs::write(
        source.join("warden/authz/p.rego"),
        "package warden.authz\n\ndecision := {\"allow\": false, \"reasons\": [\"frozen\"]}\n",
    )
    .unwrap();
    let archive = dir.path().join("frozen.tar.gz");

    let built = admin_cli(
        &warden,
        &[
            "bundle",
            "build",
            source.to_str().unwrap(),
            "-o",
            archive.to_str().unwrap(),
        ],
    );
    assert!(built.status.success(), "{}", text(&built.stderr));

    let pushed = json_out(&admin_cli(
        &warden,
        &["bundle", "push", archive.to_str().unwrap(), "--json"],
    ));
    assert_eq!(pushed[0]["revision"], "cli-1");
    assert_eq!(pushed[0]["active"], true);
    let digest = pushed[0]["digest"].as_str().unwrap().to_owned();

    let table = admin_cli(&warden, &["bundle", "list"]);
    let listing = text(&table.stdout);
    assert!(
        listing.starts_with("STATE")
            && listing.contains("cli-1")
            && listing.contains(&digest[..12]),
        "{listing}"
    );

    let rolled = json_out(&admin_cli(&warden, &["bundle", "rollback", "--json"]));
    assert_ne!(rolled[0]["revision"], "cli-1");
    let activated = json_out(&admin_cli(
        &warden,
        &["bundle", "activate", &digest[..10], "--json"],
    ));
    assert_eq!(activated[0]["revision"], "cli-1");
    let serving = json_out(&admin_cli(&warden, &["bundle", "status", "--json"]));
    assert_eq!(serving[0]["revision"], "cli-1");

    let mut identity = Demo::load().identity;
    identity["version"] = serde_json::json!("identity-7-999");
    let snapshot = dir.path().join("identity.json");
    std::fs::write(&snapshot, serde_json::to_vec(&identity).unwrap()).unwrap();
    let pushed = json_out(&admin_cli(
        &warden,
        &[
            "snapshot",
            "push",
            "identity",
            snapshot.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(pushed[0]["version"], "identity-7-999");
    let status = json_out(&admin_cli(&warden, &["status", "--json"]));
    assert_eq!(status["active"]["revision"], "cli-1");
    assert_eq!(status["snapshots"][0]["version"], "identity-7-999");

    // A refused push exits 3 and says why.
    let again = admin_cli(
        &warden,
        &["snapshot", "push", "identity", snapshot.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(3));
    assert!(
        text(&again.stderr).contains("is not newer"),
        "{}",
        text(&again.stderr)
    );
    let human = admin_cli(&warden, &["snapshot", "status"]);
    assert!(text(&human.stdout).contains("identity-7-999"));
}

#[tokio::test]
async fn operators_engage_list_and_release_kill_switches_from_the_command_line() {
    let warden = Warden::start().await;
    let demo = Demo::load();
    let finance = format!("user:{}", demo.member_of("finance"));
    let check = |warden: &Warden| {
        wardenctl(
            warden,
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
            ],
        )
    };
    assert_eq!(check(&warden).status.code(), Some(0));

    let engaged = admin_cli(
        &warden,
        &[
            "kill",
            "engage",
            "--agent",
            "expense-assistant",
            "--action",
            "expenses.*",
            "--reason",
            "leaking receipts",
            "--ttl",
            "1h",
            "--json",
        ],
    );
    assert_eq!(engaged.status.code(), Some(0), "{}", text(&engaged.stderr));
    let switch = json_out(&engaged);
    let id = switch["id"].as_str().unwrap().to_owned();
    assert_eq!(switch["state"], "active");
    assert_eq!(switch["scope"]["agent_id"], "expense-assistant");
    assert!(!switch["expires_at"].as_str().unwrap().is_empty());

    let denied = check(&warden);
    assert_eq!(denied.status.code(), Some(1));
    let out = text(&denied.stdout);
    assert!(out.contains(&format!("kill_switch:{id}")), "{out}");
    assert!(out.contains("leaking receipts"), "{out}");

    let listed = admin_cli(&warden, &["kill", "list"]);
    let table = text(&listed.stdout);
    assert!(
        table.contains(&id) && table.contains("agent=expense-assistant action=expenses.*"),
        "{table}"
    );

    // A global switch needs confirmation; without a terminal, --yes.
    let refused = admin_cli(&warden, &["kill", "engage", "--reason", "everything"]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        text(&refused.stderr).contains("--yes"),
        "{}",
        text(&refused.stderr)
    );
    let listed = json_out(&admin_cli(&warden, &["kill", "list", "--json"]));
    assert_eq!(listed["active"].as_array().unwrap().len(), 1);

    let released = admin_cli(
        &warden,
        &["kill", "release", &id, "--reason", "rotated keys", "--json"],
    );
    assert_eq!(
        released.status.code(),
        Some(0),
        "{}",
        text(&released.stderr)
    );
    assert_eq!(json_out(&released)["state"], "released");
    assert_eq!(check(&warden).status.code(), Some(0));

    let again = admin_cli(&warden, &["kill", "release", &id, "--reason", "twice"]);
    assert_eq!(again.status.code(), Some(3));
}

#[tokio::test]
async fn auditors_query_export_and_verify_from_the_command_line() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    for agent in ["a1", "a2", "a1"] {
        client
            .check(warden_client::CheckBuilder::new("p1", agent, "u1", "docs.read", "doc").build())
            .await
            .unwrap();
    }
    // Async auditing writes once per flush interval; wait for the writer.
    let mut admin = warden.admin().await;
    while admin.status().await.unwrap().audit_queue_depth > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let query = admin_cli(
        &warden,
        &["audit", "query", "--agent", "a1", "--since", "1h", "--json"],
    );
    assert_eq!(query.status.code(), Some(0), "{}", text(&query.stderr));
    let lines: Vec<serde_json::Value> = text(&query.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["record"]["agent_id"] == "a1"));
    let table = text(&admin_cli(&warden, &["audit", "query", "--decision", "deny"]).stdout);
    assert!(
        table.starts_with("SEQ") && table.contains("p1/a2 for user:u1 docs.read doc"),
        "{table}"
    );

    let verified = admin_cli(&warden, &["audit", "verify"]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stderr)
    );
    assert!(
        text(&verified.stdout).starts_with("ok: "),
        "{}",
        text(&verified.stdout)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let file_arg = file.to_str().unwrap();
    let exported = admin_cli(&warden, &["audit", "export", "-o", file_arg]);
    assert_eq!(
        exported.status.code(),
        Some(0),
        "{}",
        text(&exported.stderr)
    );
    // Offline: no server needed.
    let offline = Command::new(&binaries().wardenctl)
        .args(["audit", "verify", "--file", file_arg, "--json"])
        .output()
        .unwrap();
    assert_eq!(offline.status.code(), Some(0), "{}", text(&offline.stderr));
    assert_eq!(json_out(&offline)["ok"], true);

    let original = std::fs::read_to_string(&file).unwrap();
    let tampered = original.replacen(r#""agent_id":"a2""#, r#""agent_id":"a3""#, 1);
    assert_ne!(tampered, original);
    std::fs::write(&file, tampered).unwrap();
    let offline = Command::new(&binaries().wardenctl)
        .args(["audit", "verify", "--file", file_arg])
        .output()
        .unwrap();
    assert_eq!(offline.status.code(), Some(1));
    assert!(
        text(&offline.stderr).contains("altered"),
        "{}",
        text(&offline.stderr)
    );
}
