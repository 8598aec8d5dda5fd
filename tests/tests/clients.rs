//! The generated Python and TypeScript clients (`client/python`,
//! `client/typescript`) against the real server, with the Rust client as the
//! reference: each language's driver (`client/python/tests/driver.py`,
//! `client/typescript/test/driver.ts`) runs a script of calls through its
//! wrapper and prints the outcomes as JSON, and each example is run as a
//! person would run it.
//!
//! `scripts/setup-clients` (which `scripts/test` runs) installs the pinned
//! toolchains, generates both clients from `proto/` and names the
//! interpreters in `WARDEN_PYTHON` and `WARDEN_NODE`. Without them these
//! tests fail with instructions rather than pass vacuously.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::io::AsyncWriteExt;
use warden_client::{CheckBuilder, CheckRequest, ClientOptions, Decision, TlsOptions};
use warden_e2e::pki::Authority;
use warden_e2e::process::Warden;
use warden_e2e::{Demo, repo_root};

/// How long one client process may take; each normally needs well under a second.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Language {
    Python,
    TypeScript,
}

const LANGUAGES: [Language; 2] = [Language::Python, Language::TypeScript];

impl Language {
    /// The interpreter scripts/setup-clients named, and the driver and
    /// example it runs.
    fn files(self) -> (PathBuf, PathBuf, PathBuf) {
        let (var, driver, example) = match self {
            Language::Python => (
                "WARDEN_PYTHON",
                "client/python/tests/driver.py",
                "client/python/examples/check.py",
            ),
            Language::TypeScript => (
                "WARDEN_NODE",
                "client/typescript/dist/test/driver.js",
                "client/typescript/dist/examples/check.js",
            ),
        };
        let interpreter = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "{var} is not set: run `scripts/test` (or `scripts/setup-clients`, then export \
                 the lines it prints), which installs and generates the Python and TypeScript \
                 clients"
            )
        });
        let root = repo_root();
        let (driver, example) = (root.join(driver), root.join(example));
        for path in [&interpreter, &driver, &example] {
            assert!(
                path.exists(),
                "{} is missing: run `scripts/test` (or `scripts/setup-clients`)",
                path.display()
            );
        }
        (interpreter, driver, example)
    }

    /// Runs `script` through this language's driver; one outcome per call.
    async fn drive(self, script: &Json) -> Vec<Json> {
        let (interpreter, driver, _) = self.files();
        let output = run(
            tokio::process::Command::new(interpreter).arg(driver),
            Some(script.to_string()),
        )
        .await;
        assert!(
            output.status.success(),
            "{self:?} driver failed: {}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let outcomes: Vec<Json> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{self:?} driver printed no JSON array ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        let calls = script["calls"].as_array().map_or(0, Vec::len);
        assert_eq!(outcomes.len(), calls, "{self:?}: {outcomes:?}");
        outcomes
    }

    /// Runs the example with `args`; its exit code and JSON output.
    async fn example(self, args: &[&str]) -> (i32, Json) {
        let (interpreter, _, example) = self.files();
        let output = run(
            tokio::process::Command::new(interpreter)
                .arg(example)
                .args(args)
                .arg("--json"),
            None,
        )
        .await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{self:?} example printed no JSON ({e}): {stdout}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code().unwrap_or(-1), json)
    }
}

async fn run(command: &mut tokio::process::Command, stdin: Option<String>) -> Output {
    let mut child = command
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the client");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
    }
    tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
        .await
        .expect("the client did not finish in time")
        .expect("wait for the client")
}

/// A check in the drivers' JSON (the proto's field names).
fn check(platform: &str, agent: &str, principal: &str, action: &str, resource: &str) -> Json {
    json!({
        "platform": platform,
        "agent": agent,
        "principal": principal,
        "action": action,
        "resource": resource,
    })
}

fn with(mut check: Json, extra: Json) -> Json {
    if let (Some(object), Some(extra)) = (check.as_object_mut(), extra.as_object()) {
        object.extend(extra.clone());
    }
    check
}

/// The same check for the Rust client.
fn rust_request(check: &Json) -> CheckRequest {
    let field = |name: &str| check[name].as_str().unwrap_or_default();
    let mut builder = CheckBuilder::new(
        field("platform"),
        field("agent"),
        field("principal"),
        field("action"),
        field("resource"),
    )
    .resource_id(field("resource_id"))
    .request_id(field("request_id"));
    if let Some(context) = check["context"].as_object() {
        for (key, value) in context {
            builder = builder.context(key, value.clone());
        }
    }
    builder.build()
}

fn result(outcome: &Json) -> &Json {
    assert!(
        outcome["result"].is_object(),
        "expected a result: {outcome}"
    );
    &outcome["result"]
}

fn error(outcome: &Json) -> &Json {
    assert!(outcome["error"].is_object(), "expected an error: {outcome}");
    &outcome["error"]
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Allow => "ALLOW",
        Decision::RequireApproval => "REQUIRE_APPROVAL",
        Decision::Deny | Decision::Unspecified => "DENY",
    }
}

/// The demo's allow, deny and require-approval cases.
fn demo_cases() -> Vec<(Json, &'static str, Vec<&'static str>)> {
    let demo = Demo::load();
    let finance = demo.member_of("finance");
    let admin = demo.member_of("it-ops");
    let expense = |agent: &str, principal: &str| {
        with(
            check(
                "copilot-studio",
                agent,
                principal,
                "expenses.submit",
                "expense",
            ),
            json!({"resource_id": "exp-1"}),
        )
    };
    vec![
        (
            with(
                expense("expense-assistant", &finance),
                json!({
                    "request_id": "corr-1",
                    "context": {
                        "purpose": "month-end",
                        "signals": [1, 2.5, true, null, {"risk": "low"}],
                    },
                }),
            ),
            "ALLOW",
            vec![],
        ),
        (
            with(
                check(
                    "copilot-studio",
                    "expense-assistant",
                    &finance,
                    "ledger.post",
                    "ledger",
                ),
                json!({"resource_id": "gl-2026"}),
            ),
            "DENY",
            vec!["agent_not_granted"],
        ),
        (expense("ghost", &finance), "DENY", vec!["agent_unknown"]),
        (
            with(
                check(
                    "support-desk",
                    "access-admin",
                    &admin,
                    "permissions.grant",
                    "role",
                ),
                json!({"resource_id": "finance-approver"}),
            ),
            "REQUIRE_APPROVAL",
            vec!["sensitive_action"],
        ),
    ]
}

#[tokio::test]
async fn both_clients_decide_as_the_rust_client_does() {
    let warden = Warden::start().await;
    let mut reference = warden.client().await;
    let cases = demo_cases();
    let script = json!({
        "addr": warden.decision_addr.to_string(),
        "calls": cases.iter().map(|(check, _, _)| json!({"check": check})).collect::<Vec<_>>(),
    });
    for language in LANGUAGES {
        let outcomes = language.drive(&script).await;
        for ((check, decision, reasons), outcome) in cases.iter().zip(&outcomes) {
            let got = result(outcome);
            assert_eq!(got["decision"], *decision, "{language:?} {check}: {got}");
            assert_eq!(got["allowed"], *decision == "ALLOW", "{language:?}: {got}");
            assert_eq!(
                got["reasons"],
                json!(reasons),
                "{language:?} {check}: {got}"
            );
            assert_eq!(
                got["request_id"],
                check["request_id"].as_str().unwrap_or_default(),
                "{language:?}: {got}"
            );
            assert_eq!(got["decision_id"].as_str().map(str::len), Some(36), "{got}");
            assert_eq!(got["snapshot_versions"]["identity"], "identity-7-300");
            assert!(got["kill_switch_id"].is_null(), "{got}");

            let expected = reference.check(rust_request(check)).await.unwrap();
            assert_eq!(got["decision"], decision_name(expected.decision()));
            assert_eq!(got["reasons"], json!(expected.reasons));
            assert_eq!(got["policy_revision"], expected.policy_revision);
        }
    }
}

#[tokio::test]
async fn batch_check_answers_each_item_in_order() {
    let warden = Warden::start().await;
    let cases = demo_cases();
    let mut items: Vec<Json> = cases.iter().map(|(check, _, _)| check.clone()).collect();
    // An invalid item gets an error entry; the others are still decided.
    items.insert(1, with(items[0].clone(), json!({"agent": ""})));
    let script = json!({
        "addr": warden.decision_addr.to_string(),
        "calls": [{"batch": items}],
    });
    for language in LANGUAGES {
        let outcomes = language.drive(&script).await;
        let answers = outcomes[0]["batch"]
            .as_array()
            .unwrap_or_else(|| panic!("{language:?}: expected a batch: {outcomes:?}"));
        assert_eq!(answers.len(), cases.len() + 1, "{language:?}: {answers:?}");
        let invalid = error(&answers[1]);
        assert_eq!(
            invalid["code"], "INVALID_ARGUMENT",
            "{language:?}: {invalid}"
        );
        assert_eq!(invalid["field"], "agent.id", "{language:?}: {invalid}");
        let decided = answers.iter().enumerate().filter(|(i, _)| *i != 1);
        for ((_, answer), (check, decision, reasons)) in decided.zip(&cases) {
            let got = result(answer);
            assert_eq!(got["decision"], *decision, "{language:?} {check}: {got}");
            assert_eq!(got["reasons"], json!(reasons), "{language:?}: {got}");
        }
        assert_eq!(
            result(&answers[0])["policy_revision"],
            result(&answers[4])["policy_revision"],
            "one generation for the batch"
        );
    }
}

#[tokio::test]
async fn invalid_requests_surface_invalid_argument_and_the_field() {
    let warden = Warden::start().await;
    let finance = Demo::load().member_of("finance");
    let valid = check(
        "copilot-studio",
        "expense-assistant",
        &finance,
        "expenses.submit",
        "expense",
    );
    // Deeper than the 16 levels attributes may nest: the nested Struct must
    // reach the server whole for it to refuse it.
    let deep = (0..20).fold(json!("bottom"), |inner, _| json!({ "level": inner }));
    let cases = [
        (with(valid.clone(), json!({"agent": ""})), "agent.id"),
        (
            with(valid.clone(), json!({"action": "expenses submit"})),
            "action.name",
        ),
        (with(valid.clone(), json!({"platform": ""})), "platform"),
        (with(valid.clone(), json!({"context": deep})), "context"),
    ];
    let script = json!({
        "addr": warden.decision_addr.to_string(),
        "calls": cases.iter().map(|(check, _)| json!({"check": check})).collect::<Vec<_>>(),
    });
    for language in LANGUAGES {
        let outcomes = language.drive(&script).await;
        for ((check, field), outcome) in cases.iter().zip(&outcomes) {
            let got = error(outcome);
            assert_eq!(
                got["code"], "INVALID_ARGUMENT",
                "{language:?} {check}: {got}"
            );
            let blamed = got["field"].as_str().unwrap_or_default();
            assert!(
                blamed.starts_with(field),
                "{language:?}: expected the field {field}, got {got}"
            );
            let message = got["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(blamed),
                "{language:?}: the message should name {blamed}: {got}"
            );
        }
    }
}

#[tokio::test]
async fn the_examples_print_the_decision_and_exit_like_wardenctl() {
    let warden = Warden::start().await;
    let addr = warden.decision_addr.to_string();
    let demo = Demo::load();
    let finance = demo.member_of("finance");
    let admin = demo.member_of("it-ops");
    let cases: [(Vec<&str>, i32, &str); 4] = [
        (
            vec!["--principal", &finance, "--resource", "expense:exp-1"],
            0,
            "ALLOW",
        ),
        (
            vec!["--principal", &finance, "--action", "ledger.post"],
            1,
            "DENY",
        ),
        (
            vec![
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
            ],
            2,
            "REQUIRE_APPROVAL",
        ),
        (vec!["--agent", ""], 3, "INVALID_ARGUMENT"),
    ];
    for language in LANGUAGES {
        for (args, code, answer) in &cases {
            let args: Vec<&str> = ["--addr", addr.as_str()]
                .into_iter()
                .chain(args.iter().copied())
                .collect();
            let (exit, json) = language.example(&args).await;
            assert_eq!(exit, *code, "{language:?} {args:?}: {json}");
            let got = json["decision"].as_str().or(json["error"]["code"].as_str());
            assert_eq!(got, Some(*answer), "{language:?} {args:?}: {json}");
        }
    }
}

const TOKEN: &str = "client-test-token-0123456789abcdef";

#[tokio::test]
async fn bearer_tokens_authenticate_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "ca");
    let server = ca.server("server");
    let config = format!(
        r#"
[tls]
cert_file = "{cert}"
key_file = "{key}"

[auth]
tokens = [{{ name = "copilot", sha256 = "{sha256}", roles = ["platform:copilot-studio"] }}]
"#,
        cert = server.cert.display(),
        key = server.key.display(),
        sha256 = warden::auth::hash_token(TOKEN),
    );
    let config_file = dir.path().join("warden.toml");
    std::fs::write(&config_file, config).unwrap();
    let warden = Warden::builder()
        .env("WARDEN_CONFIG", config_file.display().to_string())
        .start_listening();
    wait_serving_tls(&warden, &ca).await;

    let finance = Demo::load().member_of("finance");
    let allowed = with(
        check(
            "copilot-studio",
            "expense-assistant",
            &finance,
            "expenses.submit",
            "expense",
        ),
        json!({"resource_id": "exp-1"}),
    );
    let other_platform = check(
        "support-desk",
        "access-admin",
        &finance,
        "tickets.read",
        "ticket",
    );
    let calls = json!([{"check": allowed}, {"check": other_platform}]);
    let ca_file = ca.cert_file.display().to_string();
    for language in LANGUAGES {
        let script = |addr: String, token: Option<&str>| {
            let mut script = json!({"addr": addr, "ca_file": ca_file, "calls": calls});
            if let Some(token) = token {
                script["token"] = json!(token);
            }
            script
        };
        // A bare address with a CA turns TLS on, as does an https:// URL.
        let with_token = language
            .drive(&script(warden.decision_addr.to_string(), Some(TOKEN)))
            .await;
        assert_eq!(
            result(&with_token[0])["decision"],
            "ALLOW",
            "{language:?}: {with_token:?}"
        );
        // The token names copilot-studio; it may not ask for another platform.
        assert_eq!(
            error(&with_token[1])["code"],
            "PERMISSION_DENIED",
            "{language:?}: {with_token:?}"
        );

        let https = format!("https://{}", warden.decision_addr);
        let without = language.drive(&script(https.clone(), None)).await;
        assert_eq!(
            error(&without[0])["code"],
            "UNAUTHENTICATED",
            "{language:?}: {without:?}"
        );

        let wrong = language.drive(&script(https, Some("not-the-token"))).await;
        assert_eq!(
            error(&wrong[0])["code"],
            "UNAUTHENTICATED",
            "{language:?}: {wrong:?}"
        );
    }
}

/// Waits until the TLS decision listener answers health checks.
async fn wait_serving_tls(warden: &Warden, ca: &Authority) {
    let options = ClientOptions {
        tls: Some(TlsOptions {
            ca_pem: Some(ca.ca_pem()),
            identity: None,
            server_name: None,
        }),
        ..ClientOptions::default()
    };
    warden
        .wait_health(format!("https://{}", warden.decision_addr), &options)
        .await;
}
