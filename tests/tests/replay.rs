//! Replay end to end: a candidate bundle judged on the server's recorded
//! decisions, against real OPA; redacted inputs; offline equal to online;
//! checks answered during a replay; cancelling.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tonic::Code;
use warden::bundle::{ArchiveLimits, Bundle, read_dir};
use warden::decision::interpret;
use warden_audit::Entry;
use warden_bench::workload::{Spec, Workload};
use warden_client::admin::{ReplayBundleRequest, ReplaySummary};
use warden_client::audit::{AuditClient, AuditQueryRequest};
use warden_client::{ClientError, ClientOptions};
use warden_e2e::process::{Warden, binaries};
use warden_e2e::repo_root;
use warden_proto::convert::to_struct;
use warden_proto::v1::replay_bundle_event::Event;

type Files = BTreeMap<String, Vec<u8>>;

/// The repository's policy, as files, with `edit` applied.
fn policy_files(edit: impl FnOnce(&mut Files)) -> Files {
    let mut files = read_dir(&repo_root().join("policies"), &ArchiveLimits::default()).unwrap();
    edit(&mut files);
    files
}

fn archive(files: &Files) -> Vec<u8> {
    warden_bundle::write_tar_gz(files).unwrap()
}

/// The default policy with other `sensitive_actions`: `*.delete` no longer
/// needs approval, every `documents.*` action now does.
fn sensitive_candidate() -> Files {
    policy_files(|files| {
        let path = "warden/config/data.json";
        let mut data: Json = serde_json::from_slice(&files[path]).unwrap();
        data["sensitive_actions"] = json!(["permissions.*", "iam.*", "*.share", "documents.*"]);
        files.insert(path.to_owned(), serde_json::to_vec(&data).unwrap());
    })
}

fn with_module(name: &str, source: &str) -> Files {
    policy_files(|files| {
        files.insert(name.to_owned(), source.as_bytes().to_vec());
    })
}

async fn audit(warden: &Warden) -> AuditClient {
    AuditClient::connect(warden.admin_endpoint(), ClientOptions::default())
        .await
        .unwrap()
}

/// Every record written, once the audit queue has drained.
async fn export(warden: &Warden) -> (Vec<u8>, Vec<Entry>) {
    let mut admin = warden.admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.status().await.unwrap().audit_queue_depth > 0 {
        assert!(Instant::now() < deadline, "the audit queue never drained");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut bytes = Vec::new();
    audit(warden).await.export(0, 0, &mut bytes).await.unwrap();
    let entries = String::from_utf8(bytes.clone())
        .unwrap()
        .lines()
        .map(|line| Entry::parse(line).unwrap())
        .collect();
    (bytes, entries)
}

/// The admin records (the first hundred).
async fn admin_records(warden: &Warden) -> Vec<warden_client::audit::AuditRecord> {
    let request = AuditQueryRequest {
        r#type: "admin".into(),
        page_size: 100,
        ..AuditQueryRequest::default()
    };
    audit(warden).await.query(request).await.unwrap().0
}

/// Decides `count` generated demo requests, in batches.
async fn record_traffic(
    warden: &Warden,
    count: usize,
    seed: u64,
    mut edit: impl FnMut(&mut warden_proto::v1::CheckRequest),
) {
    let mut requests = Workload::generate(Spec::DEMO).requests(count, seed);
    requests.iter_mut().for_each(&mut edit);
    let mut client = warden.client().await;
    for chunk in requests.chunks(250) {
        client.batch_check(chunk.to_vec()).await.unwrap();
    }
}

fn replay_request(bundle: Vec<u8>) -> ReplayBundleRequest {
    ReplayBundleRequest {
        bundle,
        include_changes: true,
        top_groups: 100,
        ..ReplayBundleRequest::default()
    }
}

fn wardenctl(args: &[&str]) -> Output {
    Command::new(&binaries().wardenctl)
        .args(args)
        .output()
        .unwrap()
}

fn stdout_json(output: &Output) -> Json {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test]
async fn replay_reports_exactly_the_decisions_opa_decides_otherwise_online_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::builder()
        .without_demo_limits(dir.path())
        .start()
        .await;
    record_traffic(&warden, 1_500, 2026, |_| {}).await;
    let candidate = sensitive_candidate();

    // What OPA decides for the candidate on each recorded input.
    let bundle = Bundle::from_files(candidate.clone()).unwrap();
    let opa = warden_e2e::audience::opa_with(&bundle);
    opa.add_data("", &serde_json::to_value(&bundle.data).unwrap());
    for kind in ["identity", "entitlements"] {
        let path = repo_root().join(format!("policies/demo/{kind}.json"));
        let mut document: Json = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let object = document.as_object_mut().unwrap();
        object.remove("version");
        object.remove("generated_at");
        opa.add_data(kind, &document);
    }
    let (exported, entries) = export(&warden).await;
    let mut decisions = 0;
    let mut expected = BTreeSet::new();
    let mut expected_outcomes = BTreeSet::new();
    let mut directions = BTreeSet::new();
    for entry in &entries {
        let record = &entry.record;
        if record["type"] != "decision" {
            continue;
        }
        decisions += 1;
        let theirs = interpret(
            opa.eval("warden.authz.decision", &record["input"])
                .unwrap()
                .as_ref(),
        );
        let recorded = (
            record["decision"].as_str().unwrap(),
            record["reasons"].clone(),
        );
        let id = record["decision_id"].as_str().unwrap().to_owned();
        if (theirs.verdict.as_str(), json!(theirs.reasons)) != recorded {
            expected.insert(id.clone());
        }
        if theirs.verdict.as_str() != recorded.0 {
            expected_outcomes.insert(id);
            directions.insert((recorded.0.to_owned(), theirs.verdict.as_str()));
        }
    }
    assert_eq!(decisions, 1_500);
    // Both ways: approval newly needed, and no longer needed.
    assert!(
        directions.contains(&("allow".to_owned(), "require_approval")),
        "{directions:?}"
    );
    assert!(
        directions.iter().any(|(old, _)| old == "require_approval"),
        "{directions:?}"
    );

    let mut admin = warden.admin().await;
    let (summary, changes) = admin
        .replay_bundle_summary(replay_request(archive(&candidate)))
        .await
        .unwrap();
    let changed: BTreeSet<String> = changes.iter().map(|c| c.decision_id.clone()).collect();
    let outcome_changed: BTreeSet<String> = changes
        .iter()
        .filter(|c| c.old_decision != c.new_decision)
        .map(|c| c.decision_id.clone())
        .collect();
    assert_eq!(changed, expected);
    assert_eq!(outcome_changed, expected_outcomes);
    assert_eq!(summary.replayed, 1_500);
    assert_eq!(summary.changed, expected.len() as u64);
    assert_eq!(summary.outcome_changed, expected_outcomes.len() as u64);
    assert_eq!(summary.unchanged, 1_500 - expected.len() as u64);
    assert_eq!((summary.not_replayable, summary.unreadable), (0, 0));
    assert!(summary.outside_policy.is_empty(), "{summary:?}");
    // The groups account for every change, examples included.
    assert_eq!(
        summary.groups.iter().map(|g| g.count).sum::<u64>(),
        summary.changed
    );
    for group in &summary.groups {
        assert!(
            group
                .example_decision_ids
                .iter()
                .all(|id| changed.contains(id))
        );
        assert!(group.action_pattern.ends_with(".*"), "{group:?}");
    }
    assert_eq!(summary.candidate_digest, bundle.digest);

    // The same bundle as the one serving changes nothing.
    let (same, _) = admin
        .replay_bundle_summary(replay_request(archive(&policy_files(|_| {}))))
        .await
        .unwrap();
    assert_eq!((same.replayed, same.changed), (1_500, 0));

    // wardenctl, online and offline on the exported file, says the same.
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let candidate_file = write("candidate.tar.gz", &archive(&candidate));
    let export_file = write("export.jsonl", &exported);
    let demo = repo_root().join("policies/demo");
    let (identity, entitlements) = (
        demo.join("identity.json").to_str().unwrap().to_owned(),
        demo.join("entitlements.json").to_str().unwrap().to_owned(),
    );
    let admin_addr = warden.admin_addr.to_string();
    // The server's log has grown since (the replays' own records).
    let head = entries.last().unwrap().seq.to_string();
    let online = wardenctl(&[
        "--admin-addr",
        &admin_addr,
        "--json",
        "bundle",
        "replay",
        &candidate_file,
        "--top",
        "100",
        "--to-seq",
        &head,
    ]);
    let offline_args = [
        "--json",
        "bundle",
        "replay",
        &candidate_file,
        "--top",
        "100",
        "--audit-file",
        &export_file,
        "--identity",
        &identity,
        "--entitlements",
        &entitlements,
        "--to-seq",
        &head,
    ];
    let offline = wardenctl(&offline_args);
    assert_eq!(online.status.code(), Some(1), "changes exit 1");
    assert_eq!(offline.status.code(), Some(1));
    let (mut online, mut offline) = (stdout_json(&online), stdout_json(&offline));
    assert_eq!(online["changed"], json!(expected.len()));
    assert_eq!(online["active_revision"], json!(summary.active_revision));
    online["active_revision"] = Json::Null;
    offline["active_revision"] = Json::Null;
    assert_eq!(online, offline, "offline and online disagree");
    // `--jsonl`: every changed decision, one per line.
    let lines = wardenctl(
        &[
            &["bundle", "replay", &candidate_file, "--jsonl"][..],
            &offline_args[6..],
        ]
        .concat(),
    );
    let listed: BTreeSet<String> = String::from_utf8(lines.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Json>(line).unwrap()["decision_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(listed, expected);

    // A tampered file is refused before anything is replayed.
    let tampered = String::from_utf8(exported)
        .unwrap()
        .replacen("\"allow\"", "\"deny\"", 1);
    let tampered_file = write("tampered.jsonl", tampered.as_bytes());
    let refused = wardenctl(&[
        "bundle",
        "replay",
        &candidate_file,
        "--audit-file",
        &tampered_file,
        "--identity",
        &identity,
        "--entitlements",
        &entitlements,
    ]);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a verified audit export"));

    // The replay itself is audited.
    let records = admin_records(&warden).await;
    assert!(
        records
            .iter()
            .filter(|r| r.json.contains("bundle.replayed"))
            .count()
            >= 3,
        "{records:?}"
    );
}

async fn replay(warden: &Warden, files: &Files) -> ReplaySummary {
    warden
        .admin()
        .await
        .replay_bundle_summary(replay_request(archive(files)))
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn redacted_records_replay_only_where_the_policy_cannot_read_what_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::builder()
        .without_demo_limits(dir.path())
        .env("WARDEN_AUDIT_REDACT_DROP", r#"["context.prompt"]"#)
        .env("WARDEN_AUDIT_REDACT_HASH", r#"["action.attributes.card"]"#)
        .start()
        .await;
    // Half the checks carry a prompt and a card, half do not.
    let mut n = 0;
    record_traffic(&warden, 200, 7, |request| {
        n += 1;
        if n % 2 == 0 {
            let object = |value: Json| to_struct(value.as_object().cloned().unwrap());
            request.context = Some(object(json!({"prompt": "payroll for all"})));
            if let Some(action) = &mut request.action {
                action.attributes = Some(object(json!({"card": "4111"})));
            }
        }
    })
    .await;

    // The default policy reads neither path: everything replays.
    let plain = replay(&warden, &policy_files(|_| {})).await;
    assert_eq!(
        (plain.replayed, plain.not_replayable, plain.changed),
        (200, 0, 0)
    );

    // A policy that reads the prompt cannot be judged on records without it.
    let reads_prompt = with_module(
        "warden/authz/prompt.rego",
        "package warden.authz\n\nprompt_mentions_payroll if contains(input.context.prompt, \"payroll\")\n",
    );
    let summary = replay(&warden, &reads_prompt).await;
    assert_eq!((summary.replayed, summary.not_replayable), (100, 100));
    assert_eq!(
        summary.not_replayable_paths,
        [("context.prompt".to_owned(), 100)].into()
    );

    // Taking the whole of `action.attributes` reads the hashed card.
    let reads_attributes = with_module(
        "warden/authz/attributes.rego",
        "package warden.authz\n\nmany_attributes if count(input.action.attributes) > 3\n",
    );
    let summary = replay(&warden, &reads_attributes).await;
    assert_eq!(
        summary.not_replayable_paths,
        [("action.attributes.card".to_owned(), 100)].into()
    );

    // wardenctl: nothing changed, but not everything was replayed: exit 2.
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("prompt.tar.gz");
    std::fs::write(&path, archive(&reads_prompt)).unwrap();
    let output = wardenctl(&[
        "--admin-addr",
        &warden.admin_addr.to_string(),
        "bundle",
        "replay",
        path.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("not replayable: 100 (input redacted at `context.prompt`"),
        "{text}"
    );
}

#[tokio::test]
async fn checks_are_answered_during_a_replay_and_a_client_that_leaves_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::builder()
        .without_demo_limits(dir.path())
        .start()
        .await;
    record_traffic(&warden, 12_000, 99, |_| {}).await;
    export(&warden).await;
    let candidate = archive(&sensitive_candidate());
    let mut admin = warden.admin().await;

    // Checks are answered while a replay runs.
    let mut events = admin
        .replay_bundle(replay_request(candidate.clone()))
        .await
        .unwrap();
    assert!(matches!(
        events.message().await.unwrap().and_then(|e| e.event),
        Some(Event::Progress(_))
    ));
    let mut client = warden.client().await;
    let requests = Workload::generate(Spec::DEMO).requests(50, 5);
    let mut answered_while_running = 0;
    let replaying = tokio::spawn(async move {
        let mut last = None;
        while let Some(event) = events.message().await.unwrap() {
            last = event.event;
        }
        last
    });
    for request in requests {
        client.check(request).await.unwrap();
        answered_while_running += usize::from(!replaying.is_finished());
    }
    assert!(
        answered_while_running > 0,
        "the replay ended before any check"
    );
    match replaying.await.unwrap() {
        // With the checks decided meanwhile, which it reached.
        Some(Event::Summary(summary)) => assert!(summary.replayed >= 12_000, "{summary:?}"),
        other => panic!("{other:?}"),
    }

    // One replay at a time; one whose client leaves stops.
    let mut events = admin
        .replay_bundle(replay_request(candidate.clone()))
        .await
        .unwrap();
    assert!(matches!(
        events.message().await.unwrap().and_then(|e| e.event),
        Some(Event::Progress(_))
    ));
    match admin.replay_bundle(replay_request(candidate.clone())).await {
        Err(ClientError::Status(status)) => assert_eq!(status.code(), Code::ResourceExhausted),
        other => panic!(
            "a second replay ran beside the first: {:?}",
            other.map(|_| ())
        ),
    }
    drop(events);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match admin.replay_bundle(replay_request(candidate.clone())).await {
            Ok(_) => break,
            Err(ClientError::Status(status)) if status.code() == Code::ResourceExhausted => {
                assert!(
                    Instant::now() < deadline,
                    "the cancelled replay kept running"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = admin_records(&warden).await;
        if records
            .iter()
            .any(|r| r.json.contains("bundle.replayed") && r.json.contains("\"cancelled\":true"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no record of the cancelled replay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_replay_requests_are_refused_precisely() {
    let warden = Warden::start().await;
    let mut admin = warden.admin().await;
    let refused = |result: Result<_, ClientError>| match result {
        Err(ClientError::Status(status)) => (status.code(), status.message().to_owned()),
        Ok(_) => panic!("accepted"),
        Err(e) => panic!("{e}"),
    };
    let (code, message) = refused(
        admin
            .replay_bundle(ReplayBundleRequest::default())
            .await
            .map(|_| ()),
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("bundle"), "{message}");
    let (code, message) = refused(
        admin
            .replay_bundle(ReplayBundleRequest {
                since: "yesterday".into(),
                ..replay_request(archive(&policy_files(|_| {})))
            })
            .await
            .map(|_| ()),
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("since"), "{message}");
    let broken = with_module(
        "warden/authz/broken.rego",
        "package warden.authz\n\nallow if {\n",
    );
    let (code, _) = refused(
        admin
            .replay_bundle(replay_request(archive(&broken)))
            .await
            .map(|_| ()),
    );
    assert_eq!(code, Code::InvalidArgument);
}

#[tokio::test]
async fn as_recorded_policy_tells_policy_changes_from_data_changes() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::builder()
        .without_demo_limits(dir.path())
        .start()
        .await;
    record_traffic(&warden, 300, 11, |_| {}).await;
    // Checks a kill switch decided say nothing of the policy.
    let mut admin = warden.admin().await;
    let switch = admin
        .engage_kill_switch(warden_e2e::cluster::engage_request("doc-summarizer"))
        .await
        .unwrap();
    record_traffic(&warden, 300, 11, |request| {
        if let Some(agent) = &mut request.agent {
            agent.id = "doc-summarizer".into();
        }
    })
    .await;
    admin
        .release_kill_switch(&switch.id, "over", "tests")
        .await
        .unwrap();
    // The data changes: half the subjects lose their entitlements.
    let path = repo_root().join("policies/demo/entitlements.json");
    let mut entitlements: Json = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let subjects = entitlements["subjects"].as_object_mut().unwrap();
    let keep: Vec<String> = subjects.keys().step_by(2).cloned().collect();
    subjects.retain(|name, _| keep.contains(name));
    entitlements["version"] = json!("entitlements-8-000");
    admin
        .put_snapshot("entitlements", serde_json::to_vec(&entitlements).unwrap())
        .await
        .unwrap();
    export(&warden).await;

    // Against the records, the unchanged bundle shows the data's changes.
    let same = archive(&policy_files(|_| {}));
    let (recorded, _) = admin
        .replay_bundle_summary(replay_request(same.clone()))
        .await
        .unwrap();
    assert_eq!(
        recorded.outside_policy,
        [("kill_switch".to_owned(), 300)].into()
    );
    assert_eq!(recorded.replayed, 300);
    assert!(recorded.changed > 10, "{recorded:?}");
    assert!(!recorded.as_recorded_policy);

    // Against the active bundle on the same inputs, nothing is the policy's.
    let (active, _) = admin
        .replay_bundle_summary(ReplayBundleRequest {
            as_recorded_policy: true,
            ..replay_request(same)
        })
        .await
        .unwrap();
    assert!(active.as_recorded_policy);
    assert_eq!((active.replayed, active.changed), (600, 0));
    assert!(active.outside_policy.is_empty());
    assert_eq!(active.data_changed, recorded.changed);

    // A policy change is told apart from the data's.
    let (candidate, _) = admin
        .replay_bundle_summary(ReplayBundleRequest {
            as_recorded_policy: true,
            ..replay_request(archive(&sensitive_candidate()))
        })
        .await
        .unwrap();
    assert!(candidate.changed > 0);
    assert_eq!(candidate.data_changed, recorded.changed);
    assert!(
        candidate
            .groups
            .iter()
            .all(|g| g.new_reasons.iter().all(|r| r == "sensitive_action")
                || g.old_decision == "require_approval"),
        "{candidate:?}"
    );

    // Filters: one platform, one agent, a limit.
    let (limited, _) = admin
        .replay_bundle_summary(ReplayBundleRequest {
            agent_id: "doc-summarizer".into(),
            as_recorded_policy: true,
            limit: 7,
            ..replay_request(archive(&policy_files(|_| {})))
        })
        .await
        .unwrap();
    assert_eq!((limited.replayed, limited.limited), (7, true));
}

#[tokio::test]
async fn replaying_takes_policy_admin_and_streaming_changes_takes_auditor_too() {
    let token = |name: &str| format!("replay-roles-token-{name}-0123456789abcdef");
    let entry = |name: &str, roles: &[&str]| {
        format!(
            "{{ name = \"{name}\", sha256 = \"{}\", roles = {roles:?} }}",
            warden::auth::hash_token(&token(name))
        )
    };
    let tokens = format!(
        "[{}, {}, {}]",
        entry("admin", &["policy_admin"]),
        entry("both", &["policy_admin", "auditor"]),
        entry("auditor", &["auditor"]),
    );
    let warden = Warden::builder()
        .env("WARDEN_AUTH_TOKENS", tokens)
        .start()
        .await;
    let bundle = archive(&policy_files(|_| {}));
    let replay_as = |who: &str, include_changes: bool| {
        let (endpoint, bundle, token) = (warden.admin_endpoint(), bundle.clone(), token(who));
        async move {
            let options = ClientOptions {
                token: Some(token),
                ..ClientOptions::default()
            };
            let mut admin = warden_client::AdminClient::connect(endpoint, options)
                .await
                .unwrap();
            let request = ReplayBundleRequest {
                include_changes,
                ..replay_request(bundle)
            };
            match admin.replay_bundle_summary(request).await {
                Ok(_) => Code::Ok,
                Err(ClientError::Status(status)) => status.code(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(replay_as("admin", false).await, Code::Ok);
    assert_eq!(replay_as("admin", true).await, Code::PermissionDenied);
    assert_eq!(replay_as("both", true).await, Code::Ok);
    assert_eq!(replay_as("auditor", false).await, Code::PermissionDenied);
}
