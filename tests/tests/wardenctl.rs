//! `wardenctl` against the real server: output for people and for scripts,
//! and the exit codes scripts rely on.

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

    // A bare HOST:PORT, the form `warden serve` takes, from the environment.
    let allow = Command::new(&binaries().wardenctl)
        .env("WARDEN_ADDR", warden.decision_addr.to_string())
        .args([
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
        ])
        .output()
        .unwrap();
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
    let output = Command::new(&binaries().wardenctl)
        .args(["--admin-addr", "127.0.0.1:1", "--timeout", "2s", "status"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("http://127.0.0.1:1"),
        "{}",
        text(&output.stderr)
    );
}

fn offline(args: &[&str]) -> Output {
    Command::new(&binaries().wardenctl)
        .args(["--admin-addr", "127.0.0.1:1", "--addr", "127.0.0.1:1"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Usage errors exit 3, never clap's 2, which `check` means as
/// REQUIRE_APPROVAL; nothing here needs a server.
#[test]
fn usage_errors_exit_3_and_help_exits_0() {
    for args in [
        &["check", "--platform", "p"][..],
        &["frobnicate"],
        &[],
        &["--timeout", "soon", "status"],
        &["snapshot", "push", "policy", "x.json"],
        &["bundle", "push", "/nonexistent/bundle.tar.gz"],
        // A global switch needs confirmation; without a terminal, --yes.
        &["kill", "engage", "--reason", "everything"],
    ] {
        let output = offline(args);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
    let refused = offline(&["kill", "engage", "--reason", "everything"]);
    assert!(
        text(&refused.stderr).contains("--yes"),
        "{}",
        text(&refused.stderr)
    );

    let help = offline(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for line in [
        "Exit codes:",
        "  2  check: REQUIRE_APPROVAL",
        "  4  Warden unreachable",
        "  5  UNAUTHENTICATED",
    ] {
        assert!(help.contains(line), "{line} missing from {help}");
    }
    assert_eq!(offline(&["kill", "--help"]).status.code(), Some(0));
    assert_eq!(offline(&["--version"]).status.code(), Some(0));
}

#[test]
fn completions_are_printed_for_each_shell() {
    let bash = offline(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0), "{}", text(&bash.stderr));
    let script = text(&bash.stdout);
    assert!(
        script.contains("_wardenctl()")
            && script.contains("complete ")
            && script.contains("engage"),
        "{script}"
    );
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let output = offline(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        assert!(text(&output.stdout).contains("wardenctl"), "{shell}");
    }
    assert_eq!(offline(&["completions", "tcsh"]).status.code(), Some(3));
}

#[tokio::test]
async fn credentials_refused_exit_5() {
    let auditor = "test-token-auditor-0123456789abcdef";
    let tokens = format!(
        "[{{ name = \"auditor\", sha256 = \"{}\", roles = [\"auditor\"] }}]",
        warden::auth::hash_token(auditor)
    );
    let warden = Warden::builder()
        .env("WARDEN_AUTH_TOKENS", tokens)
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{auditor}\n")).unwrap();
    // The same bare HOST:PORT `warden serve --admin-addr` takes.
    let cli = |token: bool, args: &[&str]| {
        let mut command = Command::new(&binaries().wardenctl);
        command
            .env("WARDEN_ADMIN_ADDR", warden.admin_addr.to_string())
            .env_remove("WARDEN_TOKEN")
            .env_remove("WARDEN_TOKEN_FILE");
        if token {
            command.arg("--token-file").arg(&token_file);
        }
        command.args(args).output().unwrap()
    };

    let anonymous = cli(false, &["status"]);
    assert_eq!(
        anonymous.status.code(),
        Some(5),
        "{}",
        text(&anonymous.stderr)
    );
    assert!(
        text(&anonymous.stderr).contains("Unauthenticated"),
        "{}",
        text(&anonymous.stderr)
    );
    // An auditor may look but not engage.
    let status = cli(true, &["status", "--json"]);
    assert_eq!(json_out(&status)["active_kill_switches"], 0);
    let engage = cli(true, &["kill", "engage", "--agent", "a", "--reason", "r"]);
    assert_eq!(engage.status.code(), Some(5), "{}", text(&engage.stderr));
    assert!(
        text(&engage.stderr).contains("PermissionDenied"),
        "{}",
        text(&engage.stderr)
    );
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

    // One result is one object; a list is an array.
    let pushed = json_out(&admin_cli(
        &warden,
        &["bundle", "push", archive.to_str().unwrap(), "--json"],
    ));
    assert_eq!(pushed["revision"], "cli-1");
    assert_eq!(pushed["active"], true);
    let digest = pushed["digest"].as_str().unwrap().to_owned();

    let table = admin_cli(&warden, &["bundle", "list"]);
    let listing = text(&table.stdout);
    assert!(
        listing.starts_with("STATE   REVISION")
            && listing.contains("cli-1")
            && listing.contains(&digest[..12]),
        "{listing}"
    );
    // `--json` is global: before the command works as well as after.
    let listed = json_out(&admin_cli(&warden, &["--json", "bundle", "list"]));
    assert_eq!(listed[0]["digest"].as_str(), Some(digest.as_str()));
    assert!(listed.as_array().unwrap().len() >= 2, "{listed}");

    let rolled = json_out(&admin_cli(&warden, &["bundle", "rollback", "--json"]));
    assert_ne!(rolled["revision"], "cli-1");
    let activated = json_out(&admin_cli(
        &warden,
        &["bundle", "activate", &digest[..10], "--json"],
    ));
    assert_eq!(activated["revision"], "cli-1");
    let serving = json_out(&admin_cli(&warden, &["bundle", "status", "--json"]));
    assert_eq!(serving[0]["revision"], "cli-1");

    // The bundle rolled back from, as the shadow, then cleared.
    let shadowed = json_out(&admin_cli(
        &warden,
        &[
            "bundle",
            "activate",
            "--shadow",
            rolled["digest"].as_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(shadowed["shadow"], true, "{shadowed}");
    let cleared = json_out(&admin_cli(&warden, &["bundle", "clear-shadow", "--json"]));
    assert_eq!(cleared["digest"], rolled["digest"]);
    let serving = json_out(&admin_cli(&warden, &["bundle", "status", "--json"]));
    assert_eq!(serving.as_array().map(Vec::len), Some(1), "{serving}");
    let again = admin_cli(&warden, &["bundle", "clear-shadow"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(
        text(&again.stdout),
        "no shadow bundle was being evaluated\n"
    );

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
    assert_eq!(pushed["version"], "identity-7-999");
    let status = json_out(&admin_cli(&warden, &["status", "--json"]));
    assert_eq!(status["active"]["revision"], "cli-1");
    assert_eq!(status["snapshots"][0]["version"], "identity-7-999");
    let snapshots = json_out(&admin_cli(&warden, &["snapshot", "list", "--json"]));
    assert_eq!(snapshots.as_array().map(Vec::len), Some(2), "{snapshots}");
    let human = text(&admin_cli(&warden, &["status"]).stdout);
    assert!(
        human.starts_with("STATE ")
            && human.contains("\nKIND ")
            && human.contains("\nCOUNTER ")
            && human.contains("\ngeneration "),
        "{human}"
    );

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
    let human = text(&admin_cli(&warden, &["snapshot", "status"]).stdout);
    assert!(
        human.starts_with("KIND ") && human.contains("identity-7-999"),
        "{human}"
    );
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
        table.starts_with("engaged:\nID ")
            && table.contains(&id)
            && table.contains("agent=expense-assistant action=expenses.*"),
        "{table}"
    );

    // A global switch needs confirmation; without a terminal, --yes. The
    // refusal is a usage error, not "unreachable".
    let refused = admin_cli(&warden, &["kill", "engage", "--reason", "everything"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
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

/// Two single-node servers stand in for two replicas: each keeps its own
/// chain, as replicas of a cluster do.
#[tokio::test]
async fn replicas_chains_export_into_one_merged_file_that_verifies_each_chain() {
    let (a, b) = tokio::join!(Warden::start(), Warden::start());
    for (warden, agents) in [(&a, ["a1", "a2"]), (&b, ["b1", "b2"])] {
        let mut client = warden.client().await;
        for agent in agents.iter().chain(&agents) {
            client
                .check(
                    warden_client::CheckBuilder::new("p1", *agent, "u1", "docs.read", "doc")
                        .build(),
                )
                .await
                .unwrap();
        }
        let mut admin = warden.admin().await;
        while admin.status().await.unwrap().audit_queue_depth > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let ctl = |args: &[&str]| {
        Command::new(&binaries().wardenctl)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // One bare HOST:PORT, one URL: chains are named as they were given.
    let (name_a, name_b) = (a.admin_addr.to_string(), b.admin_endpoint());
    let merged = path("merged.jsonl");
    let exported = json_out(&ctl(&[
        "audit",
        "export",
        "--replica",
        &name_a,
        "--replica",
        &name_b,
        "-o",
        &merged,
        "--json",
    ]));
    assert_eq!(exported["chains"][0]["chain"], name_a.as_str());
    assert_eq!(exported["chains"][1]["chain"], name_b.as_str());

    let text_of = |file: &str| std::fs::read_to_string(file).unwrap();
    let lines: Vec<serde_json::Value> = text_of(&merged)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines[..2]
            .iter()
            .all(|h| h["format"] == "warden-audit-merge-v1"),
        "{lines:?}"
    );
    let entries = &lines[2..];
    // The server's own export is inside, line for line, under its tag.
    for (warden, name, header) in [(&a, &name_a, &lines[0]), (&b, &name_b, &lines[1])] {
        let single = path("single.jsonl");
        let out = admin_cli(warden, &["audit", "export", "-o", &single]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let ours: Vec<serde_json::Value> = entries
            .iter()
            .filter(|e| e["chain"] == name.as_str())
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("chain");
                e
            })
            .collect();
        let theirs: Vec<serde_json::Value> = text_of(&single)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ours, theirs);
        assert_eq!(header["entries"], theirs.len());
        assert!(theirs.iter().any(|e| e["record"]["agent_id"] == "a1") == (name == &name_a));
    }
    // One timeline.
    let times: Vec<time::OffsetDateTime> = entries
        .iter()
        .map(|e| {
            time::OffsetDateTime::parse(
                e["record"]["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let verified = json_out(&ctl(&["audit", "verify", "--file", &merged, "--json"]));
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["chains"].as_array().map(Vec::len), Some(2));
    let human = ctl(&["audit", "verify", "--file", &merged]);
    assert_eq!(human.status.code(), Some(0), "{}", text(&human.stderr));
    assert!(
        text(&human.stdout).contains(&format!("ok: chain `{name_b}`")),
        "{}",
        text(&human.stdout)
    );

    // One line of b's chain changed: b is named, a still verifies.
    let original = text_of(&merged);
    let tampered = original.replacen(r#""agent_id":"b2""#, r#""agent_id":"b3""#, 1);
    assert_ne!(tampered, original);
    std::fs::write(&merged, &tampered).unwrap();
    let broken = ctl(&["audit", "verify", "--file", &merged]);
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken.stderr));
    let stderr = text(&broken.stderr);
    assert!(
        stderr.contains(&format!("chain `{name_b}` broken at line"))
            && stderr.contains("altered")
            && !stderr.contains(&format!("chain `{name_a}`")),
        "{stderr}"
    );
    assert!(
        text(&broken.stdout).contains(&format!("ok: chain `{name_a}`")),
        "{}",
        text(&broken.stdout)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&ctl(&["audit", "verify", "--file", &merged, "--json"]).stdout)
            .unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["chains"][0]["ok"], true);
    assert_eq!(report["chains"][1]["ok"], false);

    // A replica that cannot be reached fails the export, named, exit 4.
    let failed = path("failed.jsonl");
    let unreachable = ctl(&[
        "--timeout",
        "2s",
        "audit",
        "export",
        "--replica",
        &name_a,
        "--replica",
        "127.0.0.1:1",
        "-o",
        &failed,
    ]);
    assert_eq!(
        unreachable.status.code(),
        Some(4),
        "{}",
        text(&unreachable.stderr)
    );
    assert!(
        text(&unreachable.stderr).contains("replica `127.0.0.1:1`"),
        "{}",
        text(&unreachable.stderr)
    );
    assert!(!std::path::Path::new(&failed).exists(), "nothing written");
    let ranged = ctl(&["audit", "export", "--replica", &name_a, "--from", "2"]);
    assert_eq!(ranged.status.code(), Some(3));
}

#[tokio::test]
async fn export_files_merge_offline_and_a_single_export_verifies_as_before() {
    let (a, b) = tokio::join!(Warden::start(), Warden::start());
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (file_a, file_b, merged) = (path("a.jsonl"), path("b.jsonl"), path("merged.jsonl"));
    for (warden, file) in [(&a, &file_a), (&b, &file_b)] {
        let mut client = warden.client().await;
        client
            .check(warden_client::CheckBuilder::new("p1", "a1", "u1", "docs.read", "doc").build())
            .await
            .unwrap();
        let mut admin = warden.admin().await;
        while admin.status().await.unwrap().audit_queue_depth > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let out = admin_cli(warden, &["audit", "export", "-o", file]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    drop((a, b));
    let ctl = |args: &[&str]| {
        Command::new(&binaries().wardenctl)
            .args(args)
            .output()
            .unwrap()
    };

    // A single export: the same report as ever.
    let single = ctl(&["audit", "verify", "--file", &file_a]);
    assert_eq!(single.status.code(), Some(0), "{}", text(&single.stderr));
    assert!(
        text(&single.stdout).starts_with("ok: ")
            && text(&single.stdout).contains(" entries from seq 1 verified; head "),
        "{}",
        text(&single.stdout)
    );
    let single = json_out(&ctl(&["audit", "verify", "--file", &file_a, "--json"]));
    assert_eq!(single["first_seq"], 1);
    assert!(single.get("chains").is_none(), "{single}");

    let out = ctl(&["audit", "merge", &file_a, &file_b, "-o", &merged]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let verified = json_out(&ctl(&["audit", "verify", "--file", &merged, "--json"]));
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["chains"][0]["chain"], file_a.as_str());
    assert_eq!(verified["chains"][1]["chain"], file_b.as_str());
    let exported = std::fs::read_to_string(&file_b).unwrap().lines().count();
    assert_eq!(verified["chains"][1]["checked"], exported);

    // Merged again with nothing new, it comes out the same.
    let again = path("again.jsonl");
    let out = ctl(&["audit", "merge", &merged, "-o", &again]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&merged).unwrap()
    );

    // A broken input: named, exit 1, and the earlier merge left alone.
    let original = std::fs::read_to_string(&file_b).unwrap();
    let tampered = original.replacen(r#""agent_id":"a1""#, r#""agent_id":"a9""#, 1);
    assert_ne!(tampered, original);
    std::fs::write(&file_b, tampered).unwrap();
    let before = std::fs::read(&merged).unwrap();
    let out = ctl(&["audit", "merge", &file_a, &file_b, "-o", &merged]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("chain `{file_b}` broken")),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&merged).unwrap(), before);
    let out = ctl(&["audit", "merge", &file_a, &file_a]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

#[tokio::test]
async fn a_tail_whose_reader_leaves_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let check = || warden_client::CheckBuilder::new("p1", "a1", "u1", "docs.read", "doc").build();
    client.check(check()).await.unwrap();
    let mut tail = Command::new(&binaries().wardenctl)
        .arg("--admin-addr")
        .arg(warden.admin_endpoint())
        .args(["--json", "audit", "tail"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // One line, as `wardenctl audit tail | head -n 1` reads, then the reader
    // is gone; records keep coming meanwhile and after.
    let stdout = tail.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).unwrap();
        first
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = tail.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "tail never ended");
        client.check(check()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let first = reader.join().unwrap();
    serde_json::from_str::<serde_json::Value>(&first).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut tail.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// The approval loop with people at the command line: a platform's check
/// needs approval, the platform asks through the Rust client, a security
/// approver finds, reads and decides it with `wardenctl approvals`, the
/// platform's repeated check is allowed, and `audit query --chain` tells the
/// whole story.
#[tokio::test]
async fn approvers_decide_tasks_from_the_command_line() {
    use serde_json::{Value as Json, json};
    use warden_client::{
        ApprovalTaskState, CheckBuilder, ClientOptions, Decision, WardenClient, task_ended,
    };

    let token = |name: &str| format!("wardenctl-approvals-token-{name}-0123456789");
    let demo = Demo::load();
    // An it-ops member may grant permissions, so the default policy asks a
    // security member (not the principal) to approve.
    let principal = demo.member_of("it-ops");
    let security = demo.member_of("security");
    let tokens = warden_e2e::token_table(
        &[
            ("desk", "platform:support-desk".to_owned()),
            ("sec", format!("approver:{security}")),
            ("auditor", "auditor".to_owned()),
        ],
        token,
    );
    let warden = Warden::builder()
        .env("WARDEN_AUTH_TOKENS", tokens)
        .start()
        .await;
    let as_user = |who: &str| ClientOptions {
        token: Some(token(who)),
        ..ClientOptions::default()
    };
    let ctl = |who: &str, args: &[&str]| {
        Command::new(&binaries().wardenctl)
            .arg("--admin-addr")
            .arg(warden.admin_endpoint())
            .env_remove("WARDEN_TOKEN_FILE")
            .env("WARDEN_TOKEN", token(who))
            .args(args)
            .output()
            .unwrap()
    };
    let grant = |resource: &str| {
        CheckBuilder::new(
            "support-desk",
            "access-admin",
            &principal,
            "permissions.grant",
            "role",
        )
        .resource_id(resource)
        .action_attribute("grantee", json!("bob"))
        .action_attribute("level", json!("read"))
        .context("purpose", json!("quarter close"))
    };

    // The platform's check needs approval and says how to ask for it.
    let mut platform = WardenClient::connect(warden.endpoint(), as_user("desk"))
        .await
        .unwrap();
    let request = grant("finance-approver").build();
    let denied = platform.check(request.clone()).await.unwrap();
    assert_eq!(denied.decision(), Decision::RequireApproval, "{denied:?}");
    let access = denied.access_request.clone().expect("an access request");
    assert_eq!(access.evaluation_id, denied.decision_id);
    let task = platform
        .request_approval(request.clone(), &access, "month-end access for the audit")
        .await
        .unwrap();
    assert_eq!(task.state(), ApprovalTaskState::Pending);
    assert!(!task_ended(&task));
    let id = task.id.clone();

    // The approver finds it, for scripts and for people.
    let listed = json_out(&ctl("sec", &["approvals", "list", "--json"]));
    let listed = listed.as_array().expect("an array of tasks");
    let found = listed
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap_or_else(|| panic!("task {id} not listed: {listed:?}"));
    assert_eq!(found["state"], "pending");
    assert_eq!(found["can_decide"], true);
    assert_eq!(found["platform"], "support-desk");
    assert_eq!(found["action"], "permissions.grant");
    assert_eq!(found["evaluation_id"], access.evaluation_id.as_str());
    assert_eq!(found["justification"], "month-end access for the audit");
    assert_eq!(found["requirement"]["approvers"], json!(["group:security"]));
    assert_eq!(found["requirement"]["self_approval"], false);
    let table = ctl("sec", &["approvals", "list", "--action", "permissions.*"]);
    let table = text(&table.stdout);
    assert!(
        table.starts_with("TASK ") && table.contains(&id) && table.contains("group:security"),
        "{table}"
    );
    let others = json_out(&ctl(
        "sec",
        &["approvals", "list", "--platform", "nobody", "--json"],
    ));
    assert_eq!(others, json!([]));

    // The whole detail: the request exactly as an approval would allow it.
    let shown = json_out(&ctl("sec", &["approvals", "show", &id, "--json"]));
    assert_eq!(shown["id"], id.as_str());
    let bound = shown["request"].to_string();
    assert!(
        bound.contains("permissions.grant")
            && bound.contains("finance-approver")
            && bound.contains("\"level\":\"read\""),
        "{shown}"
    );
    let human = text(&ctl("sec", &["approvals", "show", &id]).stdout);
    assert!(
        human.starts_with("FIELD ")
            && human.contains("group:security")
            && human.contains("request (exactly what an approval allows):\n{"),
        "{human}"
    );

    // Approved, by the approver's own user.
    let approved = ctl(
        "sec",
        &[
            "approvals",
            "approve",
            &id,
            "--note",
            "ok for the close",
            "--valid-for",
            "30m",
        ],
    );
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        text(&approved.stderr)
    );
    assert!(
        text(&approved.stdout).contains(&id),
        "{}",
        text(&approved.stdout)
    );
    let shown = json_out(&ctl("sec", &["approvals", "show", &id, "--json"]));
    assert_eq!(shown["state"], "approved", "{shown}");
    assert_eq!(shown["decided_by"], security.as_str());
    assert_eq!(shown["note"], "ok for the close");
    let approval_id = shown["approval"]["id"].as_str().unwrap().to_owned();
    assert!(approval_id.starts_with("apr_"), "{shown}");
    // Deciding twice is refused as it stands: exit 3.
    let again = ctl("sec", &["approvals", "deny", &id]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    // Nothing pending is left for the approver.
    let pending = json_out(&ctl("sec", &["approvals", "list", "--json"]));
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != id.as_str()),
        "{pending}"
    );

    // The platform picks the approval up and repeats the check with it.
    let ended = platform.wait_approval_task(&id).await.unwrap();
    assert_eq!(ended.state(), ApprovalTaskState::Approved);
    let approval = ended
        .approval
        .expect("an approved task carries its approval");
    assert_eq!(approval.id, approval_id);
    let allowed = platform
        .check(grant("finance-approver").approval(approval).build())
        .await
        .unwrap();
    assert_eq!(allowed.decision(), Decision::Allow, "{allowed:?}");
    assert_eq!(allowed.reasons, [format!("approved:{approval_id}")]);
    assert_eq!(
        allowed.approval.as_ref().map(|a| a.id.as_str()),
        Some(approval_id.as_str())
    );

    // Another request, denied; and the tasks as an auditor sees them.
    let other = grant("payroll-admin").build();
    let asked = platform.check(other.clone()).await.unwrap();
    let other_task = platform
        .request_approval(other, &asked.access_request.unwrap(), "payroll run")
        .await
        .unwrap();
    let refused = json_out(&ctl(
        "sec",
        &[
            "approvals",
            "deny",
            &other_task.id,
            "--note",
            "not this quarter",
            "--json",
        ],
    ));
    assert_eq!(refused["state"], "denied", "{refused}");
    let denied_task = platform.get_approval_task(&other_task.id).await.unwrap();
    assert_eq!(denied_task.state(), ApprovalTaskState::Denied);
    assert_eq!(denied_task.note, "not this quarter");
    let by_state = json_out(&ctl(
        "auditor",
        &["approvals", "list", "--state", "denied", "--json"],
    ));
    assert_eq!(by_state[0]["id"], other_task.id.as_str(), "{by_state}");
    assert_eq!(by_state[0]["can_decide"], false);
    // Only an approver decides: the auditor's token lacks the role.
    let not_allowed = ctl("auditor", &["approvals", "approve", &other_task.id]);
    assert_eq!(
        not_allowed.status.code(),
        Some(5),
        "{}",
        text(&not_allowed.stderr)
    );

    // An approval withdrawn before use: the check that carries it is denied.
    let third = grant("audit-reader").build();
    let asked = platform.check(third.clone()).await.unwrap();
    let third_task = platform
        .request_approval(third.clone(), &asked.access_request.unwrap(), "audit prep")
        .await
        .unwrap();
    let out = ctl("sec", &["approvals", "approve", &third_task.id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let revoked = json_out(&ctl(
        "sec",
        &[
            "approvals",
            "revoke",
            &third_task.id,
            "--reason",
            "wrong role",
            "--json",
        ],
    ));
    assert!(
        revoked["revoked_at"]
            .as_str()
            .is_some_and(|at| !at.is_empty()),
        "{revoked}"
    );
    assert_eq!(revoked["revoked_by"], security.as_str(), "{revoked}");
    let withdrawn = platform
        .get_approval_task(&third_task.id)
        .await
        .unwrap()
        .approval
        .expect("the approval stays on the task");
    let mut repeated = third;
    repeated.approval = Some(withdrawn);
    let refused = platform.check(repeated).await.unwrap();
    assert_eq!(refused.decision(), Decision::Deny, "{refused:?}");

    // One approval's story, in the audit trail: the decision that needed
    // it, the request, the approval and the check that used it.
    let mut admin =
        warden_client::AdminClient::connect(warden.admin_endpoint(), as_user("auditor"))
            .await
            .unwrap();
    while admin.status().await.unwrap().audit_queue_depth > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let chain = ctl(
        "auditor",
        &["audit", "query", "--chain", &access.evaluation_id, "--json"],
    );
    assert_eq!(chain.status.code(), Some(0), "{}", text(&chain.stderr));
    let records: Vec<Json> = text(&chain.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Json>(line).unwrap()["record"].clone())
        .collect();
    let story: Vec<String> = records
        .iter()
        .map(|r| match r["type"].as_str() {
            Some("admin") => r["event"].as_str().unwrap_or_default().to_owned(),
            _ => r["decision"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    assert_eq!(
        story,
        [
            "require_approval",
            "approval.requested",
            "approval.approved",
            "allow"
        ],
        "{records:?}"
    );
    assert_eq!(records[0]["decision_id"], access.evaluation_id.as_str());
    assert_eq!(records[1]["details"]["task_id"], id.as_str());
    assert_eq!(records[2]["details"]["approval_id"], approval_id.as_str());
    assert_eq!(records[3]["decision_id"], allowed.decision_id.as_str());
    assert_eq!(records[3]["approval_id"], approval_id.as_str());
    assert_eq!(records[3]["task_id"], id.as_str());
    let human = text(
        &ctl(
            "auditor",
            &["audit", "query", "--chain", &access.evaluation_id],
        )
        .stdout,
    );
    assert!(
        human.starts_with("SEQ ")
            && human.contains("TASK/APPROVAL")
            && human.contains(&format!("{id}/{approval_id}")),
        "{human}"
    );
}

#[test]
fn completions_cover_approvals_and_the_audit_chain() {
    let bash = text(&offline(&["completions", "bash"]).stdout);
    for word in ["approvals", "approve", "revoke", "--valid-for", "--chain"] {
        assert!(bash.contains(word), "{word} is not completed");
    }
    // A state is one of the five; anything else is a usage error.
    let output = offline(&["approvals", "list", "--state", "maybe"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let output = offline(&["approvals", "approve", "arq_x", "--valid-for", "soon"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
}

fn bundle_with_limits(limits: &serde_json::Value) -> Vec<u8> {
    warden_e2e::bundle_with_limits("cli-limits-1", limits)
}

#[tokio::test]
async fn responders_list_and_reset_limit_keys_from_the_command_line() {
    use serde_json::{Value as Json, json};
    use warden_client::admin::BundleTarget;
    use warden_client::{AdminClient, CheckBuilder, ClientOptions, Decision, WardenClient};

    const AGENT: &str = "doc-summarizer";
    let token = |name: &str| format!("wardenctl-limits-token-{name}-0123456789");
    let tokens = warden_e2e::token_table(
        &[
            ("chat", "platform:internal-chat".to_owned()),
            ("policy", "policy_admin".to_owned()),
            ("oncall", "incident_responder".to_owned()),
            ("auditor", "auditor".to_owned()),
        ],
        token,
    );
    let warden = Warden::builder()
        .env("WARDEN_AUTH_TOKENS", tokens)
        .start()
        .await;
    let as_user = |who: &str| ClientOptions {
        token: Some(token(who)),
        ..ClientOptions::default()
    };
    let ctl = |who: &str, args: &[&str]| {
        Command::new(&binaries().wardenctl)
            .arg("--admin-addr")
            .arg(warden.admin_endpoint())
            .env_remove("WARDEN_TOKEN_FILE")
            .env("WARDEN_TOKEN", token(who))
            .args(args)
            .output()
            .unwrap()
    };
    let limits = json!({"rules": [{"id": "reads", "match": {"action": "documents.read"},
                                   "per": ["agent"], "window": "1h", "max": 3}]});
    AdminClient::connect(warden.admin_endpoint(), as_user("policy"))
        .await
        .unwrap()
        .put_bundle(bundle_with_limits(&limits), BundleTarget::Active)
        .await
        .unwrap();

    // An engineer may read documents through the summarizer.
    let demo = Demo::load();
    let reader = demo.member_of("engineering");
    let mut platform = WardenClient::connect(warden.endpoint(), as_user("chat"))
        .await
        .unwrap();
    let read = CheckBuilder::new(
        "internal-chat",
        AGENT,
        &reader,
        "documents.read",
        "document",
    )
    .resource_id("doc-1")
    .build();
    for _ in 0..2 {
        let response = platform.check(read.clone()).await.unwrap();
        assert_eq!(response.decision(), Decision::Allow, "{response:?}");
    }

    // Scripts see the rule as the bundle wrote it and the key's usage.
    let listed = json_out(&ctl("oncall", &["limits", "--json"]));
    assert_eq!(listed["policy_revision"], "cli-limits-1");
    assert_eq!(
        listed["rules"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let rule = &listed["rules"][0];
    assert_eq!(rule["id"], "reads");
    assert_eq!(rule["kind"], "limit");
    assert_eq!(rule["match"], json!({"action": "documents.read"}));
    assert_eq!(rule["per"], json!(["agent"]));
    assert_eq!(rule["window_seconds"], 3600);
    assert_eq!(rule["max"], 3.0);
    assert_eq!(rule["on_exceed"], "deny");
    assert_eq!(
        listed["keys"],
        json!([{"rule": "reads", "key": {"agent": AGENT}, "used": 2.0, "max": 3.0,
                "tripwire": false, "fired_switch_id": ""}]),
        "{listed}"
    );
    assert_eq!(listed["keys_tracked"], 1);
    assert_eq!(listed["max_keys"], 1_000_000);
    // People get tables; auditors may look too.
    let human = text(&ctl("auditor", &["limits"]).stdout);
    assert!(
        human.contains("\nRULE   KIND ")
            && human.contains("action=documents.read")
            && human.contains(&format!("agent={AGENT}"))
            && human.contains("67%"),
        "{human}"
    );
    let status = json_out(&ctl("auditor", &["status", "--json"]));
    assert_eq!(status["limit_keys"], 1);
    assert_eq!(status["limits"], "1 rule, 0 tripwires; 1 key of 1000000");
    let unknown = ctl("oncall", &["limits", "--rule", "writes"]);
    assert_eq!(unknown.status.code(), Some(3), "{}", text(&unknown.stderr));

    // Only an incident responder may reset; a wrong dimension is named.
    let reset = |who: &str, extra: &[&str]| {
        let mut args = vec!["limits", "reset", "reads"];
        args.extend_from_slice(extra);
        ctl(who, &args)
    };
    let refused = reset("auditor", &["--agent", AGENT, "--reason", "x"]);
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("PermissionDenied"),
        "{}",
        text(&refused.stderr)
    );
    let wrong = reset("oncall", &["--session", "s-1", "--reason", "x"]);
    assert_eq!(wrong.status.code(), Some(3), "{}", text(&wrong.stderr));
    assert!(
        text(&wrong.stderr).contains("key.session"),
        "{}",
        text(&wrong.stderr)
    );
    let whole = reset("oncall", &["--reason", "x"]);
    assert_eq!(whole.status.code(), Some(3), "{}", text(&whole.stderr));
    let gone = ctl(
        "oncall",
        &["limits", "reset", "writes", "--all", "--reason", "x"],
    );
    assert_eq!(gone.status.code(), Some(3), "{}", text(&gone.stderr));
    assert!(
        text(&gone.stderr).contains("NotFound"),
        "{}",
        text(&gone.stderr)
    );

    let done = json_out(&reset(
        "oncall",
        &[
            "--agent",
            AGENT,
            "--reason",
            "INC-7: replayed reads",
            "--json",
        ],
    ));
    assert_eq!(
        done,
        json!({"rule": "reads", "key": {"agent": AGENT}, "keys_reset": 1})
    );
    let listed = json_out(&ctl("oncall", &["limits", "--json"]));
    assert_eq!(listed["keys"], json!([]), "{listed}");
    // The whole budget is back: three reads, then the limit.
    for _ in 0..3 {
        let response = platform.check(read.clone()).await.unwrap();
        assert_eq!(response.decision(), Decision::Allow, "{response:?}");
    }
    let over = platform.check(read.clone()).await.unwrap();
    assert_eq!(over.reasons, ["limit_exceeded:reads"], "{over:?}");
    let (code, metrics) = warden_e2e::http_get(warden.ops_addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("\nwarden_limit_refusals_total{rule=\"reads\"} 1\n")
            && metrics.contains("\nwarden_limit_keys 1"),
        "{metrics}"
    );
    let human = text(&reset("oncall", &["--all", "--reason", "again"]).stdout);
    assert_eq!(human, "reset 1 key of rule reads (every key)\n");

    // The chain says who reset what, and why.
    let records = ctl("auditor", &["audit", "query", "--type", "admin", "--json"]);
    assert_eq!(records.status.code(), Some(0), "{}", text(&records.stderr));
    let resets: Vec<Json> = text(&records.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Json>(line).unwrap()["record"].clone())
        .filter(|r| r["event"] == "limits.key_reset")
        .collect();
    assert_eq!(resets.len(), 2, "{resets:?}");
    assert_eq!(
        resets[0]["details"],
        json!({"rule": "reads", "key": {"agent": AGENT}, "keys_reset": 1,
               "reason": "INC-7: replayed reads"})
    );
    assert!(
        resets[0]["caller"].as_str().unwrap().starts_with("oncall "),
        "{resets:?}"
    );
    assert_eq!(resets[1]["details"]["key"], json!({}));
}
