//! The generated Python and TypeScript clients (`client/python`,
//! `client/typescript`) against the real server, with the Rust client as the
//! reference: each language's driver (`client/python/tests/driver.py`,
//! `client/typescript/test/driver.ts`) runs a script of calls through its
//! wrapper and prints the outcomes as JSON, and each example is run as a
//! person would run it. The approval loop runs with this test as the person:
//! the client asks, the test approves on the admin listener, the client
//! watches the task and checks again with the approval.
//!
//! `scripts/setup-clients` (which `scripts/test` runs) installs the pinned
//! toolchains, generates both clients from `proto/` and names the
//! interpreters in `WARDEN_PYTHON` and `WARDEN_NODE`. Without them these
//! tests fail with instructions rather than pass vacuously.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use warden_client::{
    CheckBuilder, CheckRequest, ClientOptions, Decision, TlsOptions, connect_channel,
};
use warden_e2e::pki::Authority;
use warden_e2e::process::Warden;
use warden_e2e::{Demo, repo_root};
use warden_proto::v1 as pb;
use warden_proto::v1::approver_service_client::ApproverServiceClient;

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
        self.outcomes(script, &output)
    }

    /// Runs `script` like `drive`, and `act` while it runs: once a task
    /// watch in it reports `state` (the driver writes each task it sees to
    /// standard error).
    async fn drive_until(
        self,
        script: &Json,
        state: &str,
        act: impl Future<Output = ()>,
    ) -> Vec<Json> {
        let (interpreter, driver, _) = self.files();
        let mut child = tokio::process::Command::new(interpreter)
            .arg(driver)
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the client");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(script.to_string().as_bytes())
            .await
            .expect("write stdin");
        drop(stdin);
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut stderr = String::new();
        let reported = tokio::time::timeout(PROCESS_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                stderr.push_str(&line);
                stderr.push('\n');
                if serde_json::from_str::<Json>(&line).is_ok_and(|seen| seen["state"] == state) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or_else(|_| panic!("{self:?}: the watch never reported {state}: {stderr}"));
        assert!(
            reported,
            "{self:?} driver ended before its watch reported {state}: {stderr}"
        );
        act.await;
        let rest = tokio::spawn(async move {
            let mut rest = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                rest.push_str(&line);
                rest.push('\n');
            }
            rest
        });
        let mut output = tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
            .await
            .expect("the client did not finish in time")
            .expect("wait for the client");
        stderr.push_str(&rest.await.expect("read stderr"));
        output.stderr = stderr.into_bytes();
        self.outcomes(script, &output)
    }

    /// The outcomes a driver printed, one per call of `script`.
    fn outcomes(self, script: &Json, output: &Output) -> Vec<Json> {
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
    for entry in check["audience"].as_array().into_iter().flatten() {
        builder = builder.audience(entry.as_str().unwrap_or_default());
    }
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
            // `ledger.post` matches the disclosing `*.post` too.
            vec!["agent_not_granted", "audience_missing"],
        ),
        (expense("ghost", &finance), "DENY", vec!["agent_unknown"]),
        // A share the agent and the person may make, but not in public.
        (
            with(
                check(
                    "agentforce",
                    "sales-assistant",
                    "ama.bianchi",
                    "documents.share",
                    "document",
                ),
                json!({"resource_id": "doc-1", "audience": ["public"]}),
            ),
            "DENY",
            vec!["audience_external"],
        ),
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

/// A platform's tool catalogue, as the support desk would offer it for an
/// account: for `access-admin` acting for an it-ops member, reads and
/// changes are allowed, deletes need an approval, disclosures (a search has
/// no audience) and the actions of other teams are denied.
const TOOLS: [&str; 40] = [
    "accounts.read",
    "accounts.list",
    "accounts.search",
    "accounts.create",
    "accounts.update",
    "accounts.rename",
    "accounts.lock",
    "accounts.unlock",
    "accounts.disable",
    "accounts.enable",
    "accounts.reset_password",
    "accounts.mfa.reset",
    "accounts.sessions.list",
    "accounts.sessions.revoke",
    "accounts.groups.list",
    "accounts.export",
    "accounts.delete",
    "accounts.credentials.delete",
    "accounts.sessions.delete",
    "accounts.share",
    "accounts.notes.post",
    "accounts.report.send",
    "permissions.grant",
    "permissions.revoke",
    "permissions.list",
    "iam.roles.assign",
    "iam.roles.list",
    "iam.policies.attach",
    "tickets.read",
    "tickets.create",
    "tickets.update",
    "tickets.comment",
    "tickets.close",
    "email.read",
    "email.send",
    "documents.read",
    "calendar.create",
    "kb.search",
    "messages.post",
    "alerts.read",
];

/// The part of a check a search of the catalogue holds fixed, in the
/// drivers' JSON; a check of one tool is this with its `action`.
fn tool_search(principal: &str) -> Json {
    json!({
        "platform": "support-desk",
        "agent": "access-admin",
        "principal": principal,
        "resource": "account",
        "resource_id": "acct-7",
        "delegation_chain": ["client:helpdesk-ui"],
        "context": {"purpose": "offboarding", "ticket": {"id": "INC-1042", "priority": 2}},
    })
}

/// The check of `action` with a search's fixed part.
fn tool_check(fixed: &Json, action: &str) -> Json {
    json!({"check": with(fixed.clone(), json!({"action": action}))})
}

fn searched(outcome: &Json) -> &Json {
    assert!(
        outcome["search"]["results"].is_array(),
        "expected a search: {outcome}"
    );
    &outcome["search"]
}

/// The names of a search's results.
fn names(search: &Json) -> Vec<&str> {
    search["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|found| found["name"].as_str().unwrap_or_default())
        .collect()
}

/// Asserts that each of a search's results is what the corresponding check
/// answered: decision, reasons, and `allowed` only for ALLOW.
fn assert_as_checked(language: Language, search: &Json, checked: &[Json]) {
    let results = search["results"].as_array().map_or(&[][..], Vec::as_slice);
    assert_eq!(results.len(), checked.len(), "{language:?}: {search}");
    for (found, outcome) in results.iter().zip(checked) {
        let check = result(outcome);
        let name = &found["name"];
        assert_eq!(
            found["decision"], check["decision"],
            "{language:?} {name}: searched {found}, checked {check}"
        );
        assert_eq!(
            found["reasons"], check["reasons"],
            "{language:?} {name}: searched {found}, checked {check}"
        );
        assert_eq!(
            found["allowed"],
            found["decision"] == "ALLOW",
            "{language:?}: {found}"
        );
        assert_eq!(
            search["policy_revision"], check["policy_revision"],
            "{language:?}: one generation"
        );
        assert_eq!(
            search["snapshot_versions"], check["snapshot_versions"],
            "{language:?}: one generation"
        );
    }
}

/// The tool-filtering call: every tool of the catalogue is answered, in
/// order, exactly as a check of it is; paged, the pages add up to the same
/// answer, as `search_actions_all` (which follows the pages) gives it, and
/// `allowed_actions` keeps its ALLOWs.
#[tokio::test]
async fn search_actions_answers_every_candidate_as_check_does() {
    let fixed = tool_search(&Demo::load().member_of("it-ops"));
    let search = with(
        fixed.clone(),
        json!({"candidates": TOOLS.as_slice(), "request_id": "tools-1"}),
    );
    for language in LANGUAGES {
        // A server per language: the checks' denials for
        // `principal_not_entitled` count toward the demo tripwire (30 per
        // agent within 5 minutes), which would switch the agent off.
        let warden = Warden::start().await;
        let addr = warden.decision_addr.to_string();
        let by_seven = with(search.clone(), json!({"limit": 7}));
        let mut calls = vec![
            json!({"search_actions": search}),
            json!({"search_actions_all": by_seven}),
            json!({"allowed_actions": by_seven}),
        ];
        calls.extend(TOOLS.iter().map(|tool| tool_check(&fixed, tool)));
        let outcomes = language.drive(&json!({"addr": addr, "calls": calls})).await;

        let all = searched(&outcomes[0]);
        assert_eq!(names(all), TOOLS, "{language:?}: in the order given");
        assert_eq!(all["count"], TOOLS.len(), "{language:?}: {all}");
        assert_eq!(all["evaluated"], TOOLS.len(), "{language:?}: {all}");
        assert_eq!(all["total"], TOOLS.len(), "{language:?}: {all}");
        assert_eq!(all["next_token"], "", "{language:?}: {all}");
        assert_eq!(all["done"], true, "{language:?}: {all}");
        assert!(
            !all["search_id"].as_str().unwrap_or_default().is_empty(),
            "{language:?}: {all}"
        );
        assert_eq!(all["snapshot_versions"]["identity"], "identity-7-300");
        assert_as_checked(language, all, &outcomes[3..]);
        for decision in ["ALLOW", "REQUIRE_APPROVAL", "DENY"] {
            assert!(
                all["results"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|found| found["decision"] == decision)),
                "{language:?}: the catalogue should have a {decision}: {all}"
            );
        }
        let allowed: Vec<&str> = all["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|found| found["decision"] == "ALLOW")
            .map(|found| found["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            outcomes[1]["search_actions_all"], all["results"],
            "{language:?}: search_actions_all, 7 a page"
        );
        assert_eq!(
            outcomes[2]["allowed_actions"],
            json!(allowed),
            "{language:?}: allowed_actions, 7 a page"
        );

        // 15 a page: three pages, the same answers; the total only on the last.
        let mut paged: Vec<Json> = Vec::new();
        let mut token = String::new();
        let mut first_token = String::new();
        for page in 0..3 {
            let mut call = with(search.clone(), json!({"limit": 15}));
            if !token.is_empty() {
                call["page_token"] = json!(token);
            }
            let outcome = language
                .drive(&json!({"addr": addr, "calls": [{"search_actions": call}]}))
                .await;
            let got = searched(&outcome[0]);
            let count = got["results"].as_array().map_or(0, Vec::len);
            assert_eq!(got["count"], count, "{language:?}: {got}");
            assert_eq!(got["evaluated"], count, "{language:?}: {got}");
            paged.extend(got["results"].as_array().into_iter().flatten().cloned());
            token = got["next_token"].as_str().unwrap_or_default().to_owned();
            if page < 2 {
                assert_eq!(count, 15, "{language:?} page {page}: {got}");
                assert!(!token.is_empty(), "{language:?} page {page}: {got}");
                assert_eq!(got["done"], false, "{language:?}: {got}");
                assert!(got["total"].is_null(), "{language:?} page {page}: {got}");
            } else {
                assert_eq!(count, 10, "{language:?} last page: {got}");
                assert!(token.is_empty(), "{language:?} last page: {got}");
                assert_eq!(got["done"], true, "{language:?}: {got}");
                assert_eq!(got["total"], TOOLS.len(), "{language:?}: {got}");
            }
            if page == 0 {
                first_token.clone_from(&token);
            }
        }
        assert_eq!(
            json!(paged),
            all["results"],
            "{language:?}: the pages add up to the whole answer"
        );

        // A token belongs to its query: another resource is refused.
        let other = with(
            search.clone(),
            json!({"resource_id": "acct-8", "page_token": first_token, "limit": 15}),
        );
        let refused = language
            .drive(&json!({"addr": addr, "calls": [{"search_actions": other}]}))
            .await;
        assert_eq!(
            error(&refused[0])["code"],
            "INVALID_ARGUMENT",
            "{language:?}: {refused:?}"
        );
    }
}

/// Without candidates Warden proposes the actions and returns only those
/// a check allows or answers REQUIRE_APPROVAL, sorted by name, each as the
/// check answers it.
#[tokio::test]
async fn search_actions_without_candidates_returns_what_checks_allow() {
    let warden = Warden::start().await;
    let addr = warden.decision_addr.to_string();
    let fixed = tool_search(&Demo::load().member_of("it-ops"));
    let script = json!({
        "addr": addr,
        "calls": [
            {"search_actions": fixed},
            {"search_actions": with(fixed.clone(), json!({"candidates": TOOLS.as_slice()}))},
            {"search_actions": with(fixed.clone(), json!({"agent": ""}))},
        ],
    });
    for language in LANGUAGES {
        let outcomes = language.drive(&script).await;
        let found = searched(&outcomes[0]);
        let found_names = names(found);
        assert!(!found_names.is_empty(), "{language:?}: {found}");
        assert!(
            found_names.windows(2).all(|pair| pair[0] < pair[1]),
            "{language:?}: sorted by name, each once: {found_names:?}"
        );
        for result in found["results"].as_array().into_iter().flatten() {
            assert!(
                result["decision"] == "ALLOW" || result["decision"] == "REQUIRE_APPROVAL",
                "{language:?}: only what a check would not deny: {result}"
            );
        }
        assert_eq!(found["count"], found_names.len(), "{language:?}: {found}");
        assert_eq!(found["total"], found_names.len(), "{language:?}: {found}");
        assert_eq!(found["next_token"], "", "{language:?}: {found}");
        assert_eq!(found["done"], true, "{language:?}: {found}");

        let checks: Vec<Json> = found_names
            .iter()
            .map(|name| tool_check(&fixed, name))
            .collect();
        let checked = language
            .drive(&json!({"addr": addr, "calls": checks}))
            .await;
        assert_as_checked(language, found, &checked);

        // What it found of the catalogue, the catalogue's search answers alike.
        let catalogue = searched(&outcomes[1]);
        for result in found["results"].as_array().into_iter().flatten() {
            if let Some(same) = catalogue["results"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|tool| tool["name"] == result["name"])
            {
                assert_eq!(same, result, "{language:?}");
            }
        }

        // The fixed part is validated as a check's is.
        let invalid = error(&outcomes[2]);
        assert_eq!(
            invalid["code"], "INVALID_ARGUMENT",
            "{language:?}: {invalid}"
        );
        assert_eq!(invalid["field"], "agent.id", "{language:?}: {invalid}");
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

const PLATFORM_TOKEN: &str = "client-test-platform-0123456789abcdef";
const APPROVER_TOKEN: &str = "client-test-approver-0123456789abcdef";

/// A server with a platform credential (support-desk) and an approver: the
/// security member `approver`.
async fn approval_server(approver: &str) -> (Warden, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[auth]
tokens = [
  {{ name = "desk", sha256 = "{desk}", roles = ["platform:support-desk"] }},
  {{ name = "sec", sha256 = "{sec}", roles = ["approver:{approver}"] }},
]
"#,
        desk = warden::auth::hash_token(PLATFORM_TOKEN),
        sec = warden::auth::hash_token(APPROVER_TOKEN),
    );
    let config_file = dir.path().join("warden.toml");
    std::fs::write(&config_file, config).unwrap();
    let warden = Warden::builder()
        .env("WARDEN_CONFIG", config_file.display().to_string())
        .start_listening();
    let options = ClientOptions {
        token: Some(PLATFORM_TOKEN.into()),
        ..ClientOptions::default()
    };
    warden.wait_health(warden.endpoint(), &options).await;
    (warden, dir)
}

/// Approves `task_id` as the security member, on the admin listener.
async fn approve(warden: &Warden, task_id: &str) {
    let options = ClientOptions {
        token: Some(APPROVER_TOKEN.into()),
        ..ClientOptions::default()
    };
    let channel = connect_channel(warden.admin_endpoint(), &options)
        .await
        .unwrap();
    let detail = ApproverServiceClient::new(channel)
        .approve(pb::ApproveRequest {
            task_id: task_id.into(),
            note: "ok for the close".into(),
            valid_for_seconds: 600,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        detail.task.map(|t| t.state()),
        Some(pb::ApprovalTaskState::Approved)
    );
}

fn task(outcome: &Json) -> &Json {
    assert!(outcome["task"].is_object(), "expected a task: {outcome}");
    &outcome["task"]
}

/// The whole approval loop through each client: a sensitive check is
/// requestable, the client asks, a person approves, the client sees it and
/// checks again with the approval, which allows exactly once.
#[tokio::test]
async fn both_clients_run_the_approval_loop() {
    let demo = Demo::load();
    let principal = demo.member_of("it-ops");
    let (warden, _dir) = approval_server(&demo.member_of("security")).await;
    // The default policy asks group:security to approve ACL changes.
    let grant = with(
        check(
            "support-desk",
            "access-admin",
            &principal,
            "permissions.grant",
            "role",
        ),
        json!({
            "resource_id": "finance-approver",
            "action_attributes": {"grantee": "bob", "level": "read"},
            "context": {"purpose": "quarter close"},
        }),
    );
    let script = |calls: Json| {
        json!({
            "addr": warden.decision_addr.to_string(),
            "token": PLATFORM_TOKEN,
            "calls": calls,
        })
    };
    for language in LANGUAGES {
        // Requestable: REQUIRE_APPROVAL with how to ask; each decision its own.
        let checked = language
            .drive(&script(json!([{"check": grant}, {"check": grant}])))
            .await;
        let mut access_requests = Vec::new();
        for outcome in &checked {
            let got = result(outcome);
            assert_eq!(got["decision"], "REQUIRE_APPROVAL", "{language:?}: {got}");
            assert_eq!(got["reasons"], json!(["sensitive_action"]), "{got}");
            assert!(got["approval"].is_null(), "{language:?}: {got}");
            let access = &got["access_request"];
            assert_eq!(access["evaluation_id"], got["decision_id"], "{got}");
            assert!(
                access["expires_at"].as_str() > access["evaluated_at"].as_str(),
                "{language:?}: {access}"
            );
            assert!(
                !access["binding_token"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty(),
                "{language:?}: {access}"
            );
            let requirement = &access["requirement"];
            assert_eq!(requirement["approvers"], json!(["group:security"]));
            assert_eq!(requirement["self_approval"], false, "{requirement}");
            assert_eq!(requirement["uses"], 1, "{requirement}");
            assert_eq!(requirement["template"], "acl_change", "{requirement}");
            // 1h, a uint64 on the wire: both clients give a number.
            assert_eq!(
                requirement["max_ttl_seconds"], 3600,
                "{language:?}: {requirement}"
            );
            access_requests.push(access.clone());
        }

        // Ask; asking again for the same decision is the same task, and a
        // request other than the decided one is refused.
        let ask = |request: &Json, access: &Json| {
            json!({"request_approval": {
                "request": request,
                "access_request": access,
                "justification": "month-end access for the audit",
            }})
        };
        let mut escalated = grant.clone();
        escalated["action_attributes"]["level"] = json!("admin");
        let asked = language
            .drive(&script(json!([
                ask(&grant, &access_requests[0]),
                ask(&grant, &access_requests[0]),
                ask(&grant, &access_requests[1]),
                ask(&escalated, &access_requests[1]),
            ])))
            .await;
        let pending = task(&asked[0]);
        let task_id = pending["id"].as_str().unwrap_or_default().to_owned();
        assert!(task_id.starts_with("arq_"), "{language:?}: {pending}");
        assert_eq!(pending["state"], "PENDING", "{language:?}: {pending}");
        assert_eq!(pending["ended"], false, "{pending}");
        assert_eq!(
            pending["evaluation_id"],
            access_requests[0]["evaluation_id"]
        );
        assert!(pending["approval"].is_null(), "{pending}");
        assert_eq!(task(&asked[1])["id"], task_id.as_str(), "{language:?}");
        let other = task(&asked[2]);
        assert_ne!(other["id"], task_id.as_str(), "{language:?}: {other}");
        let refused = error(&asked[3]);
        assert_eq!(
            refused["code"], "INVALID_ARGUMENT",
            "{language:?}: {refused}"
        );
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or_default()
                .contains("binding_token"),
            "{language:?}: {refused}"
        );

        // The other task is withdrawn; once ended it cannot be again.
        let other_id = other["id"].clone();
        let cancel = json!({"cancel_approval_task": {"task_id": other_id, "reason": "not needed"}});
        let read = language
            .drive(&script(json!([
                {"get_approval_task": task_id},
                cancel,
                cancel,
                {"get_approval_task": "arq_unknown"},
            ])))
            .await;
        assert_eq!(task(&read[0])["state"], "PENDING", "{language:?}: {read:?}");
        let cancelled = task(&read[1]);
        assert_eq!(cancelled["state"], "CANCELLED", "{language:?}: {cancelled}");
        assert_eq!(cancelled["ended"], true, "{cancelled}");
        assert_eq!(cancelled["note"], "not needed", "{cancelled}");
        assert!(
            !cancelled["decided_at"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
        assert_eq!(error(&read[2])["code"], "FAILED_PRECONDITION", "{read:?}");
        assert_eq!(error(&read[3])["code"], "NOT_FOUND", "{read:?}");

        // The client watches while a person approves on the admin listener.
        let watched = language
            .drive_until(
                &script(json!([{"watch_approval_task": task_id}])),
                "PENDING",
                approve(&warden, &task_id),
            )
            .await;
        let seen = watched[0]["tasks"]
            .as_array()
            .unwrap_or_else(|| panic!("{language:?}: expected the tasks watched: {watched:?}"));
        let states: Vec<&Json> = seen.iter().map(|t| &t["state"]).collect();
        assert_eq!(
            states,
            [&json!("PENDING"), &json!("APPROVED")],
            "{language:?}"
        );
        let approved = &seen[1];
        assert_eq!(approved["ended"], true, "{approved}");
        assert_eq!(approved["note"], "ok for the close", "{approved}");
        let approval = approved["approval"].clone();
        let approval_id = approval["id"].as_str().unwrap_or_default().to_owned();
        assert!(approval_id.starts_with("apr_"), "{language:?}: {approved}");
        assert!(!approval["state"].as_str().unwrap_or_default().is_empty());

        // The same request with the approval is allowed once, then used up.
        let with_approval = with(
            grant.clone(),
            json!({"approval": approval, "request_id": "after-approval"}),
        );
        let rechecked = language
            .drive(&script(json!([
                {"get_approval_task": task_id},
                {"check": with_approval},
                {"check": with_approval},
            ])))
            .await;
        let got = task(&rechecked[0]);
        assert_eq!(got["state"], "APPROVED", "{language:?}: {got}");
        assert_eq!(got["approval"], approval, "{language:?}: {got}");
        let allowed = result(&rechecked[1]);
        assert_eq!(allowed["decision"], "ALLOW", "{language:?}: {allowed}");
        assert_eq!(allowed["allowed"], true, "{allowed}");
        assert_eq!(
            allowed["reasons"],
            json!([format!("approved:{approval_id}")]),
            "{language:?}: {allowed}"
        );
        assert_eq!(allowed["request_id"], "after-approval", "{allowed}");
        assert_eq!(allowed["approval"]["id"], approval_id.as_str(), "{allowed}");
        assert_eq!(allowed["approval"]["uses_left"], 0, "{allowed}");
        assert_eq!(
            allowed["approval"]["approved_until"], approval["approved_until"],
            "{allowed}"
        );
        assert!(allowed["access_request"].is_null(), "{allowed}");
        let used_up = result(&rechecked[2]);
        assert_eq!(used_up["decision"], "DENY", "{language:?}: {used_up}");
        assert_eq!(used_up["reasons"][0], "approval_used_up", "{used_up}");
        assert_eq!(used_up["next_action"], "request", "{language:?}: {used_up}");
        assert!(used_up["approval"].is_null(), "{used_up}");
    }
}
