//! The audit trail end to end: crash durability in both modes, tampering,
//! query filters and paging, live tail, export and offline verification,
//! retention, redaction, admin events, and fail-closed refusals.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use warden_audit::Entry;
use warden_client::admin::BundleTarget;
use warden_client::audit::{AuditClient, AuditQueryRequest, AuditRecord, verify_export};
use warden_client::{CheckBuilder, CheckRequest, ClientOptions, Decision, WardenClient};
use warden_e2e::process::{Warden, WardenBuilder};

fn request(agent: &str, action: &str) -> CheckRequest {
    CheckBuilder::new("p1", agent, "u1", action, "doc")
        .resource_id("d-1")
        .build()
}

async fn audit_client(warden: &Warden) -> AuditClient {
    AuditClient::connect(warden.admin_endpoint(), ClientOptions::default())
        .await
        .unwrap()
}

/// Waits until every record submitted so far is written (async mode
/// writes once per flush interval).
async fn settle(warden: &Warden) {
    let mut admin = warden.admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.status().await.unwrap().audit_queue_depth > 0 {
        assert!(Instant::now() < deadline, "the audit queue never drained");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The whole stored chain, parsed.
async fn export(warden: &Warden) -> (Vec<u8>, Vec<Entry>) {
    settle(warden).await;
    let mut bytes = Vec::new();
    audit_client(warden)
        .await
        .export(0, 0, &mut bytes)
        .await
        .unwrap();
    let entries = String::from_utf8(bytes.clone())
        .unwrap()
        .lines()
        .map(|line| Entry::parse(line).unwrap())
        .collect();
    (bytes, entries)
}

fn decision_ids(entries: &[Entry]) -> HashSet<String> {
    entries
        .iter()
        .filter_map(|e| e.record["decision_id"].as_str().map(str::to_owned))
        .collect()
}

/// Drives checks from several tasks until told to stop; returns each
/// answered decision id with when its answer arrived.
fn load(
    warden: &Warden,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<(String, Instant)>>> {
    (0..6)
        .map(|task| {
            let endpoint = warden.endpoint();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answered = Vec::new();
                let Ok(client) = WardenClient::connect(endpoint, ClientOptions::default()).await
                else {
                    return answered;
                };
                let mut in_flight = tokio::task::JoinSet::new();
                let mut n = 0;
                loop {
                    while in_flight.len() < 16 && !stop.load(Ordering::SeqCst) {
                        let mut client = client.clone();
                        let request = request(&format!("a{task}"), &format!("docs.op{}", n % 7));
                        n += 1;
                        in_flight.spawn(async move {
                            client
                                .check(request)
                                .await
                                .ok()
                                .map(|r| (r.decision_id, Instant::now()))
                        });
                    }
                    match in_flight.join_next().await {
                        Some(Ok(Some(done))) => answered.push(done),
                        Some(_) => {}
                        None => return answered,
                    }
                }
            })
        })
        .collect()
}

async fn crash_under_load(durability: &str) -> (Vec<(String, Instant)>, Instant, Warden) {
    let data = tempfile::tempdir().unwrap().keep();
    let mut warden = Warden::builder()
        .data_dir(&data)
        .env("WARDEN_AUDIT_DURABILITY", durability)
        .start()
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&warden, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    warden.kill9();
    stop.store(true, Ordering::SeqCst);
    let mut answered = Vec::new();
    for task in tasks {
        answered.extend(task.await.unwrap());
    }
    let restarted = Warden::builder()
        .data_dir(&data)
        .env("WARDEN_AUDIT_DURABILITY", durability)
        .start()
        .await;
    (answered, killed_at, restarted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_sync_mode_every_answered_decision_survives_kill_9() {
    let (answered, _, warden) = crash_under_load("sync").await;
    assert!(
        answered.len() > 500,
        "only {} checks answered",
        answered.len()
    );
    let (_, entries) = export(&warden).await;
    let stored = decision_ids(&entries);
    let lost: Vec<_> = answered
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered decisions lost",
        lost.len(),
        answered.len()
    );
    let report = audit_client(&warden).await.verify().await.unwrap();
    assert!(report.ok, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_async_mode_a_crash_loses_at_most_the_last_moments() {
    let (answered, killed_at, warden) = crash_under_load("async").await;
    assert!(
        answered.len() > 500,
        "only {} checks answered",
        answered.len()
    );
    let (_, entries) = export(&warden).await;
    let stored = decision_ids(&entries);
    // The documented window is the flush interval (5 ms); the margin covers
    // the test's own scheduling between an answer and the kill.
    let window = Duration::from_millis(5) + Duration::from_millis(300);
    for (id, at) in &answered {
        if !stored.contains(id) {
            assert!(
                killed_at.saturating_duration_since(*at) <= window,
                "decision {id} answered {:?} before the crash was lost",
                killed_at.saturating_duration_since(*at)
            );
        }
    }
    assert!(audit_client(&warden).await.verify().await.unwrap().ok);
}

/// Starts a server on `data`, makes `checks` checks, and stops it cleanly.
async fn chain_of(data: &std::path::Path, checks: usize) {
    let mut warden = Warden::builder().data_dir(data).start().await;
    let mut client = warden.client().await;
    for i in 0..checks {
        client
            .check(request("a1", &format!("docs.op{i}")))
            .await
            .unwrap();
    }
    warden.terminate().await;
}

/// The stored chain as (sled key, the lines packed under it).
type Packed = Vec<(Vec<u8>, Vec<String>)>;

/// Lets `change` edit the stored chain's lines in place (the writer packs
/// several entries into one sled value), then writes it back.
fn edit_chain(data: &std::path::Path, change: impl FnOnce(&mut Packed)) {
    warden_e2e::edit_store(data, |db| edit_packed(db, change));
}

fn edit_packed(db: &sled::Db, change: impl FnOnce(&mut Packed)) {
    let tree = db.open_tree("audit").unwrap();
    let mut packed: Packed = tree
        .iter()
        .map(|item| {
            let (key, value) = item.unwrap();
            let lines = String::from_utf8(value.to_vec())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            (key.to_vec(), lines)
        })
        .collect();
    change(&mut packed);
    tree.clear().unwrap();
    for (key, lines) in packed {
        tree.insert(key, lines.join("\n").as_bytes()).unwrap();
    }
}

/// Where entry `seq` is: (index of its value, index of its line).
fn locate(packed: &Packed, seq: u64) -> (usize, usize) {
    for (v, (key, lines)) in packed.iter().enumerate() {
        let first = u64::from_be_bytes(key.as_slice().try_into().unwrap());
        if seq >= first && seq < first + lines.len() as u64 {
            return (v, (seq - first) as usize);
        }
    }
    panic!("entry {seq} is not stored");
}

async fn verify_after_restart(data: &std::path::Path) -> warden_client::audit::AuditVerifyResponse {
    let warden = Warden::builder().data_dir(data).start().await;
    let report = audit_client(&warden).await.verify().await.unwrap();
    drop(warden);
    report
}

#[tokio::test]
async fn verify_names_a_changed_deleted_or_reordered_record() {
    let data = tempfile::tempdir().unwrap();
    chain_of(data.path(), 12).await;
    let mut pristine = Packed::new();
    edit_chain(data.path(), |packed| pristine = packed.clone());

    // Changed: the decision flipped, the hash left alone.
    edit_chain(data.path(), |packed| {
        let (v, l) = locate(packed, 5);
        let line = &mut packed[v].1[l];
        let changed = line.replace(r#""decision":"deny""#, r#""decision":"allow""#);
        assert!(changed != *line, "entry 5 is a denied decision");
        *line = changed;
    });
    let report = verify_after_restart(data.path()).await;
    assert!(!report.ok);
    assert_eq!(report.broken_seq, 5, "{report:?}");
    assert!(report.problem.contains("altered"), "{}", report.problem);

    // Deleted.
    edit_chain(data.path(), |packed| {
        *packed = pristine.clone();
        let (v, l) = locate(packed, 7);
        packed[v].1.remove(l);
    });
    let report = verify_after_restart(data.path()).await;
    assert_eq!((report.ok, report.broken_seq), (false, 7), "{report:?}");
    assert!(report.problem.contains("missing"), "{}", report.problem);

    // Reordered: two entries swap places.
    edit_chain(data.path(), |packed| {
        *packed = pristine.clone();
        let (v3, l3) = locate(packed, 3);
        let (v4, l4) = locate(packed, 4);
        let three = packed[v3].1[l3].clone();
        packed[v3].1[l3] = packed[v4].1[l4].clone();
        packed[v4].1[l4] = three;
    });
    let report = verify_after_restart(data.path()).await;
    assert_eq!((report.ok, report.broken_seq), (false, 3), "{report:?}");

    // Restored: intact again, so the three findings were the tampering's.
    edit_chain(data.path(), |packed| *packed = pristine.clone());
    assert!(verify_after_restart(data.path()).await.ok);
}

#[tokio::test]
async fn an_export_verifies_offline_and_a_tampered_export_does_not() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    for i in 0..10 {
        client
            .check(request("a1", &format!("docs.op{i}")))
            .await
            .unwrap();
    }
    let (bytes, entries) = export(&warden).await;
    let report = verify_export(bytes.as_slice()).unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.checked, entries.len() as u64);
    assert_eq!(report.first_seq, Some(1));
    let server = audit_client(&warden).await.verify().await.unwrap();
    assert!(server.head_seq >= entries.len() as u64);

    let text = String::from_utf8(bytes).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[4] = lines[4].replace(r#""agent_id":"a1""#, r#""agent_id":"a2""#);
    let tampered = lines.join("\n");
    let report = verify_export(tampered.as_bytes()).unwrap();
    let (line, broken) = report.broken.unwrap();
    assert_eq!(line, 5);
    assert_eq!(broken.seq(), 5);
}

/// Every record matching `request`.
async fn all(audit: &mut AuditClient, request: AuditQueryRequest) -> Vec<AuditRecord> {
    audit.query_all(request, 1000).await.unwrap()
}

#[tokio::test]
async fn query_filters_and_pages() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..9 {
        let agent = ["a1", "a2", "a3"][i % 3];
        *expected.entry(agent).or_default() += 1;
        client.check(request(agent, "docs.read")).await.unwrap();
    }
    client.check(request("a1", "mail.send")).await.unwrap();
    settle(&warden).await;
    let mut audit = audit_client(&warden).await;

    let by_agent = all(
        &mut audit,
        AuditQueryRequest {
            agent_id: "a2".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_agent.len(), expected["a2"]);
    assert!(
        by_agent
            .iter()
            .all(|r| r.agent_id == "a2" && r.r#type == "decision")
    );

    // Paging: three per page, every record once, in chain order.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = audit
            .query(AuditQueryRequest {
                r#type: "decision".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.into_iter().map(|r| r.seq));
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(seen.len(), 10);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    let by_action = all(
        &mut audit,
        AuditQueryRequest {
            action: "mail.*".into(),
            principal_id: "u1".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_action.len(), 1);
    let by_decision = all(
        &mut audit,
        AuditQueryRequest {
            decision: "deny".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(by_decision.iter().all(|r| r.decision == "deny"));
    assert_eq!(by_decision.len(), 10, "unknown agents are denied");
    let future = all(
        &mut audit,
        AuditQueryRequest {
            start_time: "2999-01-01T00:00:00Z".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(future.is_empty());
    let past = all(
        &mut audit,
        AuditQueryRequest {
            end_time: "2000-01-01T00:00:00Z".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(past.is_empty());
    let error = audit
        .query(AuditQueryRequest {
            start_time: "yesterday".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("start_time"), "{error}");
}

#[tokio::test]
async fn tail_sends_history_then_live_records_in_order() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    client.check(request("a1", "docs.read")).await.unwrap();
    let mut stream = audit_client(&warden).await.tail(1).await.unwrap();
    for i in 0..5 {
        client
            .check(request("a1", &format!("docs.live{i}")))
            .await
            .unwrap();
    }
    let mut actions = Vec::new();
    let mut last_seq = 0;
    while actions.len() < 6 {
        let record = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(record.seq, last_seq + 1, "records arrive in chain order");
        last_seq = record.seq;
        if record.r#type == "decision" {
            actions.push(record.action);
        }
    }
    assert_eq!(
        actions,
        [
            "docs.read",
            "docs.live0",
            "docs.live1",
            "docs.live2",
            "docs.live3",
            "docs.live4"
        ]
    );
}

#[tokio::test]
async fn retention_keeps_the_remaining_chain_verifiable() {
    let warden = Warden::builder()
        .env("WARDEN_AUDIT_MAX_RECORDS", "20")
        .env("WARDEN_AUDIT_RETENTION_INTERVAL", "50ms")
        .start()
        .await;
    let mut client = warden.client().await;
    for i in 0..60 {
        client
            .check(request("a1", &format!("docs.op{i}")))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (bytes, entries) = export(&warden).await;
    assert_eq!(
        entries.len(),
        20,
        "max_records entries kept, the checkpoint among them"
    );
    assert!(entries[0].seq > 1);
    assert!(
        entries.iter().any(|e| e.record["type"] == "checkpoint"),
        "retention leaves a checkpoint"
    );
    let report = audit_client(&warden).await.verify().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.from_seq, entries[0].seq);
    assert_eq!(verify_export(bytes.as_slice()).unwrap().broken, None);
    // Retention is settled: its own checkpoint does not trigger another run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(export(&warden).await.0, bytes);
}

#[tokio::test]
async fn retention_by_size_keeps_the_chain_under_its_byte_budget() {
    let warden = Warden::builder()
        .env("WARDEN_AUDIT_MAX_BYTES", "20000")
        .env("WARDEN_AUDIT_RETENTION_INTERVAL", "50ms")
        .start()
        .await;
    let mut client = warden.client().await;
    for i in 0..60 {
        client
            .check(request("a1", &format!("docs.op{i}")))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (bytes, entries) = export(&warden).await;
    assert!(
        bytes.len() <= 20_000 && bytes.len() > 10_000,
        "{} bytes kept",
        bytes.len()
    );
    assert!(entries[0].seq > 1);
    assert!(audit_client(&warden).await.verify().await.unwrap().ok);
    assert_eq!(verify_export(bytes.as_slice()).unwrap().broken, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(export(&warden).await.0, bytes, "retention is settled");
}

#[tokio::test]
async fn retention_by_age_removes_only_old_records() {
    let warden = Warden::builder()
        .env("WARDEN_AUDIT_MAX_AGE", "2s")
        .env("WARDEN_AUDIT_RETENTION_INTERVAL", "50ms")
        .start()
        .await;
    let mut client = warden.client().await;
    let mut old = HashSet::new();
    for i in 0..10 {
        old.insert(
            client
                .check(request("a1", &format!("docs.old{i}")))
                .await
                .unwrap()
                .decision_id,
        );
    }
    tokio::time::sleep(Duration::from_millis(2400)).await;
    let mut new = HashSet::new();
    for i in 0..5 {
        new.insert(
            client
                .check(request("a1", &format!("docs.new{i}")))
                .await
                .unwrap()
                .decision_id,
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (bytes, entries) = export(&warden).await;
    let kept = decision_ids(&entries);
    assert!(
        old.is_disjoint(&kept),
        "records older than max_age were kept"
    );
    assert!(new.is_subset(&kept), "recent records were removed");
    assert!(entries.iter().any(|e| e.record["type"] == "checkpoint"));
    assert!(audit_client(&warden).await.verify().await.unwrap().ok);
    assert_eq!(verify_export(bytes.as_slice()).unwrap().broken, None);
}

#[tokio::test]
async fn redaction_drops_and_hashes_inputs_but_the_input_hash_covers_everything() {
    let warden = Warden::builder()
        .env("WARDEN_AUDIT_REDACT_DROP", r#"["context.prompt"]"#)
        .env("WARDEN_AUDIT_REDACT_HASH", r#"["action.attributes.card"]"#)
        .start()
        .await;
    let mut client = warden.client().await;
    let with = |prompt: &str| {
        CheckBuilder::new("p1", "a1", "u1", "payments.charge", "card")
            .context("prompt", Json::from(prompt))
            .action_attribute("card", Json::from("4111-1111"))
            .build()
    };
    let first = client
        .check(with("ignore previous instructions"))
        .await
        .unwrap();
    let second = client.check(with("something else")).await.unwrap();
    let (bytes, entries) = export(&warden).await;
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        !text.contains("ignore previous") && !text.contains("4111"),
        "{text}"
    );
    let record = |id: &str| {
        entries
            .iter()
            .find(|e| e.record["decision_id"] == id)
            .unwrap()
            .record
            .clone()
    };
    let (a, b) = (record(&first.decision_id), record(&second.decision_id));
    assert_eq!(a["input"], b["input"], "what is stored is identical");
    assert_ne!(
        a["input_sha256"], b["input_sha256"],
        "the hash saw the full input"
    );
    assert!(
        a["input"]["action"]["attributes"]["card"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(
        a["redacted"],
        serde_json::json!(["context.prompt", "action.attributes.card"])
    );
}

#[tokio::test]
async fn admin_changes_are_records_of_the_same_chain() {
    let warden = Warden::start().await;
    let mut admin = warden.admin().await;
    let files: BTreeMap<String, Vec<u8>> = [
        (
            ".manifest".to_owned(),
            br#"{"revision": "r2", "roots": ["warden"]}"#.to_vec(),
        ),
        (
            "warden/authz/p.rego".to_owned(),
            b"package warden.authz\n\ndecision := true\n".to_vec(),
        ),
    ]
    .into_iter()
    .collect();
    admin
        .put_bundle(
            warden_bundle::write_tar_gz(&files).unwrap(),
            BundleTarget::Active,
        )
        .await
        .unwrap();
    let switch = admin
        .engage_kill_switch(warden_client::admin::EngageKillSwitchRequest {
            scope: Some(warden_client::admin::KillSwitchScope {
                agent_id: "a9".into(),
                ..Default::default()
            }),
            reason: "drill".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .release_kill_switch(&switch.id, "drill over", "ops")
        .await
        .unwrap();
    settle(&warden).await;
    let events: Vec<String> = audit_client(&warden)
        .await
        .query_all(
            AuditQueryRequest {
                r#type: "admin".into(),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.decision)
        .collect();
    assert_eq!(
        events,
        [
            "server.started",
            "bundle.activated",
            "kill_switch.engaged",
            "kill_switch.released"
        ]
    );
    let status = admin.status().await.unwrap();
    assert_eq!(status.audit_durability, "async");
    assert!(status.audit_records >= 4);
    assert!(audit_client(&warden).await.verify().await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_deny_on_full_nothing_is_dropped_silently() {
    let warden = WardenBuilder::default()
        .env("WARDEN_AUDIT_QUEUE_CAPACITY", "1")
        .env("WARDEN_AUDIT_ON_FULL", "deny")
        .start()
        .await;
    let client = warden.client().await;
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..400 {
        let mut client = client.clone();
        in_flight.spawn(async move {
            // 20 agents, 20 denials each: under the default bundle's
            // tripwire (30), whose switch's admin event the full queue
            // would refuse too, one refusal no check answer shows.
            client
                .check(request(&format!("a{}", i % 20), &format!("docs.op{i}")))
                .await
                .unwrap()
        });
    }
    let mut refused = 0u64;
    let mut answered = Vec::new();
    while let Some(response) = in_flight.join_next().await {
        let response = response.unwrap();
        if response.reasons == ["audit_queue_full"] {
            assert_eq!(response.decision(), Decision::Deny);
            refused += 1;
        } else {
            answered.push(response.decision_id);
        }
    }
    settle(&warden).await;
    let status = warden.admin().await.status().await.unwrap();
    assert_eq!(status.audit_refused, refused, "every refusal is counted");
    let (_, entries) = export(&warden).await;
    let stored = decision_ids(&entries);
    assert!(
        answered.iter().all(|id| stored.contains(id)),
        "every decision answered normally has its record"
    );
}
