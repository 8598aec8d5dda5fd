//! Per-stage cost of a check on a large organisation: 10,000 users, 1,000
//! agents, 200 groups. Run with `cargo bench -p warden-bench --bench decision`.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use warden::audit::AuditLog;
use warden::audit::record::{DecisionFacts, Redaction, decision_record};
use warden::bundle::{ArchiveLimits, Bundle};
use warden::decision::{Verdict, decide};
use warden::engine::EngineOptions;
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::killswitch::{Mode, Scope, Switch, SwitchIndex, unix_ms};
use warden::limits::config::LimitsConfig;
use warden::limits::{RuleSet, UsageLimits};
use warden::request::{InputPath, Limits, validate};
use warden::snapshot::{Snapshot, SnapshotKind};
use warden_bench::workload::{Spec, Workload};

const LARGE: Spec = Spec {
    users: 10_000,
    agents: 1_000,
    groups: 200,
    owned_per_user: 3,
    seed: 11,
};

fn generation(workload: &Workload) -> Generation {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let bundle = Bundle::load(&root, &ArchiveLimits::default()).expect("default bundle");
    let policy = LoadedPolicy::compile(&bundle, &EngineOptions::default()).expect("compiles");
    let snapshot = |kind, document: &serde_json::Value| {
        Arc::new(
            Snapshot::parse(kind, document.to_string().as_bytes(), 256).expect("valid snapshot"),
        )
    };
    Generation::build(
        1,
        Arc::new(policy),
        snapshot(SnapshotKind::Identity, &workload.identity),
        snapshot(SnapshotKind::Entitlements, &workload.entitlements),
        MaxAge::default(),
    )
    .expect("binds")
}

fn benches(c: &mut Criterion) {
    let workload = Workload::generate(LARGE);
    let generation = generation(&workload);
    let limits = Limits::default();
    let requests = workload.requests(2_000, 3);
    let none = SwitchIndex::default();
    // Requests that disclose nothing, so that the same requests are chosen
    // before and after disclosure checks (issue 20) and compare alike.
    let discloses = |r: &warden_proto::v1::CheckRequest| {
        let name = r.action.as_ref().map_or("", |a| a.name.as_str());
        name.starts_with("messages.")
            || [".share", ".post", ".send", ".publish"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
    };
    let first = |verdict: Verdict| {
        requests
            .iter()
            .filter(|r| !discloses(r))
            .find(|r| {
                let valid = validate(r, &limits).expect("valid");
                decide(&valid, &generation, &none, SystemTime::now()).verdict == verdict
            })
            .expect("the workload has every verdict")
            .clone()
    };
    let allow = first(Verdict::Allow);
    let deny = first(Verdict::Deny);
    let approval = first(Verdict::RequireApproval);

    // What the server's codec does with the bytes of a check, either way.
    let mut group = c.benchmark_group("wire");
    let encoded = prost::Message::encode_to_vec(&allow);
    group.bench_function("decode_request", |b| {
        b.iter(|| {
            <warden_proto::v1::CheckRequest as prost::Message>::decode(black_box(&encoded[..]))
        })
    });
    let answered = warden_proto::v1::CheckResponse {
        decision: warden_proto::v1::Decision::Allow as i32,
        reasons: vec!["sensitive_action".into()],
        decision_id: "01a21333-d505-748d-a4f5-ac3e77d1e2d7".into(),
        request_id: "req-1".into(),
        policy_revision: generation.policy.revision.clone(),
        snapshot_versions: generation.snapshot_versions().into_iter().collect(),
        ..Default::default()
    };
    group.bench_function("encode_response", |b| {
        b.iter(|| prost::Message::encode_to_vec(black_box(&answered)))
    });
    group.finish();

    let mut group = c.benchmark_group("input");
    group.bench_function("validate", |b| {
        b.iter(|| validate(black_box(&allow), &limits))
    });
    let valid = validate(&allow, &limits).expect("valid");
    group.bench_function("to_rego", |b| {
        b.iter(|| warden::input::to_rego(black_box(&valid)))
    });
    group.bench_function("to_json", |b| {
        b.iter(|| warden::input::to_json(black_box(&valid)))
    });
    group.finish();

    let mut group = c.benchmark_group("evaluate");
    for (name, request) in [
        ("allow", &allow),
        ("deny", &deny),
        ("require_approval", &approval),
    ] {
        let valid = validate(request, &limits).expect("valid");
        group.bench_function(name, |b| {
            b.iter(|| generation.policy().evaluate(black_box(&valid)))
        });
    }
    // The workload's mix in turn (allow, deny, require-approval, strays),
    // so that one figure follows what a server sees.
    let mix: Vec<_> = requests
        .iter()
        .map(|r| validate(r, &limits).expect("valid"))
        .collect();
    let mut next = 0;
    group.bench_function("mix", |b| {
        b.iter(|| {
            next = (next + 1) % mix.len();
            generation.policy().evaluate(black_box(&mix[next]))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("decide");
    group.bench_function("allow_from_wire", |b| {
        b.iter(|| {
            let valid = validate(black_box(&allow), &limits).expect("valid");
            decide(&valid, &generation, &none, SystemTime::now())
        })
    });
    group.finish();

    approval_benches(c, &generation, &approval, &limits, &none);
    limit_benches(c, &requests, &limits);

    // The audit path, piece by piece: building a decision's record on the
    // request thread, sealing it into the chain, and writing groups to sled.
    let decision = decide(&valid, &generation, &none, SystemTime::now());
    let facts = DecisionFacts {
        request: &valid,
        decision: &decision,
        decision_id: "01a21333-d505-748d-a4f5-ac3e77d1e2d7",
        policy_revision: &generation.policy.revision,
        snapshot_versions: generation.snapshot_versions(),
        time: SystemTime::now(),
        latency_us: 40,
        caller: "127.0.0.1:45678",
        replica: None,
        approval: None,
    };
    let mut group = c.benchmark_group("audit");
    group.bench_function("build_record", |b| {
        b.iter(|| decision_record(black_box(&facts), &Redaction::default()))
    });
    let body = decision_record(&facts, &Redaction::default());
    group.bench_function("seal", |b| {
        b.iter(|| warden_audit::Entry::seal_line(7, warden_audit::GENESIS, black_box(&body)))
    });
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = warden::store::Store::open(dir.path()).expect("store");
    let log = AuditLog::open(store.db()).expect("audit log");
    let (line, _) = warden_audit::Entry::seal_line(1, warden_audit::GENESIS, &body);
    let mut seq = 0u64;
    group.bench_function("append_64", |b| {
        b.iter(|| {
            let lines: Vec<(u64, String)> = (0..64)
                .map(|_| {
                    seq += 1;
                    (seq, line.clone())
                })
                .collect();
            log.append(&lines).expect("append")
        })
    });
    group.finish();

    // The kill-switch stage with many engaged switches that do not match the
    // check: its cost must not grow with their number.
    let valid = validate(&allow, &limits).expect("valid");
    let mut group = c.benchmark_group("killswitch");
    for count in [0, 100, 10_000] {
        let index = unrelated_switches(count);
        group.bench_function(format!("match/{count}"), |b| {
            b.iter(|| index.check(black_box(&valid), 0).is_some())
        });
        group.bench_function(format!("decide/{count}"), |b| {
            b.iter(|| decide(black_box(&valid), &generation, &index, SystemTime::now()))
        });
    }
    group.finish();
}

/// The approval workflow on the check path: minting an access request for
/// a REQUIRE_APPROVAL, verifying an approval a check carries (store read,
/// state digest, binding hash), the policy run with it, and a use (a
/// compare-and-swap and an fsync on a single node).
fn approval_benches(
    c: &mut Criterion,
    generation: &Generation,
    request: &warden_proto::v1::CheckRequest,
    limits: &Limits,
    none: &SwitchIndex,
) {
    use warden::approval::keys::{Algorithm, Keys};
    use warden::approval::task::{Grant, State, Task};
    use warden::approval::{Approvals, ApprovalsConfig, Backend, TaskStore, binding};

    let valid = validate(request, limits).expect("valid");
    let decision = decide(&valid, generation, none, SystemTime::now());
    let requirement = decision
        .approval
        .clone()
        .expect("the default policy names approvers");
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = warden::store::Store::open(dir.path()).expect("store");
    let auditor = warden::audit::Auditor::start(
        AuditLog::open(store.db()).expect("audit log"),
        warden::audit::AuditConfig::default(),
        Arc::new(warden::metrics::Metrics::default()),
    )
    .expect("auditor");
    let tasks = TaskStore::open(store.db()).expect("task store");
    let keys = Keys::ephemeral(Algorithm::Es256).expect("key");
    let config = ApprovalsConfig::default();
    let task_id = keys.task_id("01a21333-d505-748d-a4f5-ac3e77d1e2d7");
    let approval_id = format!("apr_{}{}", &task_id[4..], "0".repeat(32));
    let state = keys
        .sign(&serde_json::json!({"approval_id": approval_id}))
        .expect("signs");
    let digest = <sha2::Sha256 as sha2::Digest>::digest(state.as_bytes());
    let task = Task {
        id: task_id.clone(),
        version: 0,
        state: State::Approved,
        created_at_ms: 0,
        expires_at_ms: u64::MAX,
        evaluation_id: "01a21333-d505-748d-a4f5-ac3e77d1e2d7".into(),
        platform: valid.platform.clone(),
        agent_id: valid.agent.id.clone(),
        principal_type: "user".into(),
        principal_id: valid.principal.id.clone(),
        action: valid.action.name.clone(),
        resource: valid.resource.kind.clone(),
        request: binding::bound(&valid, &config.exclude_context),
        binding_hash: binding::hash(&binding::bound(&valid, &config.exclude_context)),
        requirement: requirement.clone(),
        policy_reasons: decision.reasons.clone(),
        justification: String::new(),
        requested_by: "bench".into(),
        decided_at_ms: Some(0),
        decided_by: Some("bench".into()),
        note: String::new(),
        grant: Some(Grant {
            id: approval_id.clone(),
            approved_at: "2026-12-04T00:00:00Z".into(),
            approved_until: "2999-01-01T00:00:00Z".into(),
            approved_until_ms: u64::MAX,
            uses: u32::MAX,
            used: 0,
            state: state.clone(),
            state_sha256: hex::encode(digest),
            approver: "bench".into(),
            revoked: None,
            used_by: Vec::new(),
        }),
    };
    tasks
        .update(&task_id, &|_| Ok(task.clone()))
        .expect("stored");
    let approvals = Approvals::new(config, Ok(keys), tasks.clone(), Backend::Local, auditor);
    let presented = warden_proto::v1::ApprovalRef {
        id: approval_id,
        approved_at: "2026-12-04T00:00:00Z".into(),
        approved_until: "2999-01-01T00:00:00Z".into(),
        state,
    };
    let now = SystemTime::now();
    let verified = approvals
        .verify(&presented, &valid, now)
        .expect("the approval verifies");

    let mut group = c.benchmark_group("approval");
    group.bench_function("access_request", |b| {
        b.iter(|| {
            approvals.access_request(
                black_box(&valid),
                Some(&requirement),
                &decision.reasons,
                "01a21333-d505-748d-a4f5-ac3e77d1e2d7",
                now,
            )
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| approvals.verify(black_box(&presented), &valid, now).is_ok())
    });
    let mut with_facts = valid.clone();
    with_facts.approval = Some(verified.facts.clone());
    group.bench_function("decide_with_approval", |b| {
        b.iter(|| {
            let verified = approvals.verify(black_box(&presented), &valid, now);
            (verified.is_ok(), decide(&with_facts, generation, none, now))
        })
    });
    group.bench_function("decide_without", |b| {
        b.iter(|| decide(black_box(&valid), generation, none, now))
    });
    group.bench_function("use_fsync", |b| {
        b.iter(|| {
            tasks.update(&task_id, &|current| {
                let mut task = current
                    .cloned()
                    .ok_or_else(|| warden::approval::ApprovalError::Internal("gone".into()))?;
                if let Some(grant) = task.grant.as_mut() {
                    grant.used += 1;
                }
                Ok(task)
            })
        })
    });
    group.finish();
}

/// What budgets add to an allowed check: matching the rules and reserving
/// in the ones that apply, with no rules, and with 20 rules (16 limits, 4
/// tripwires) over 100,000 live keys.
fn limit_benches(c: &mut Criterion, requests: &[warden_proto::v1::CheckRequest], limits: &Limits) {
    let valid: Vec<_> = requests
        .iter()
        .map(|r| validate(r, limits).expect("valid"))
        .collect();
    let session = Arc::new("context.session_id".parse::<InputPath>().expect("path"));
    let usage = UsageLimits::new(
        LimitsConfig {
            max_keys: 1_000_000,
            ..LimitsConfig::default()
        },
        session,
    );
    let actions = [
        "documents.read",
        "documents.*",
        "documents.write",
        "reports.*",
        "permissions.*",
        "iam.*",
        "payments.*",
        "tickets.*",
    ];
    let pers = [
        json!(["agent", "principal"]),
        json!(["agent"]),
        json!(["principal"]),
        json!(["agent", "action"]),
    ];
    let windows = ["1m", "10m", "1h", "1d"];
    let limit_rules: Vec<_> = (0..16)
        .map(|i| {
            json!({"id": format!("limit-{i}"), "match": {"action": actions[i % actions.len()]},
                   "per": pers[i % pers.len()], "window": windows[i % windows.len()],
                   "max": 1_000_000_000_000u64, "expose": i % 5 == 0})
        })
        .collect();
    let tripwires: Vec<_> = (0..4)
        .map(|i| {
            json!({"id": format!("trip-{i}"), "match": {"action": actions[(i * 3) % actions.len()]},
                   "per": ["agent"], "window": "5m", "threshold": 1_000_000_000u64,
                   "count": {"outcomes": ["deny"]}, "switch": {"ttl": "1h"}})
        })
        .collect();
    let rules = RuleSet::from_data(
        &json!({"warden": {"limits": {"rules": limit_rules, "tripwires": tripwires}}}),
    )
    .expect("rules");
    let now = || unix_ms(SystemTime::now());
    // 100,000 live keys: the workload's checks under other agent ids.
    let mut fill = valid[0].clone();
    let mut next = 0usize;
    while usage.keys() < 100_000 {
        fill.agent.id = format!("filler-{next}");
        fill.action.name = ["documents.read", "reports.read", "permissions.grant"][next % 3].into();
        next += 1;
        let _ = usage.admit(&rules, &fill, now(), false);
    }
    let empty = RuleSet::default();
    let mut group = c.benchmark_group("limits");
    let mut at = 0usize;
    group.bench_function("admit/no_rules", |b| {
        b.iter(|| {
            at = (at + 1) % valid.len();
            usage.admit(&empty, black_box(&valid[at]), now(), false)
        })
    });
    group.bench_function("admit/20_rules_100k_keys", |b| {
        b.iter(|| {
            at = (at + 1) % valid.len();
            usage.admit(&rules, black_box(&valid[at]), now(), false)
        })
    });
    let none = SwitchIndex::default();
    let reasons = vec!["principal_not_entitled".to_owned()];
    group.bench_function("observe/20_rules_100k_keys", |b| {
        b.iter(|| {
            at = (at + 1) % valid.len();
            usage.observe(
                &rules,
                black_box(&valid[at]),
                "deny",
                &reasons,
                now(),
                &none,
            )
        })
    });
    group.finish();
}

/// `count` switches spread over every scope dimension, none of which stops
/// the workload's checks.
fn unrelated_switches(count: usize) -> SwitchIndex {
    let switches = (0..count).map(|i| {
        let other = |what: &str| Some(format!("other-{what}-{i}"));
        let scope = match i % 6 {
            0 => Scope {
                agent_id: other("agent"),
                ..Scope::default()
            },
            1 => Scope {
                principal_id: other("user"),
                ..Scope::default()
            },
            2 => Scope {
                platform: other("platform"),
                resource_type: Some("document".into()),
                ..Scope::default()
            },
            3 => Scope {
                action: Some(format!("other{i}.*")),
                ..Scope::default()
            },
            4 => Scope {
                resource_type: other("type"),
                ..Scope::default()
            },
            _ => Scope {
                action: Some(format!("other{i}.write")),
                platform: other("platform"),
                ..Scope::default()
            },
        };
        Arc::new(Switch {
            id: format!("ks-{i:08}"),
            scope,
            mode: if i % 2 == 0 {
                Mode::DenyAll
            } else {
                Mode::DenyMutating
            },
            reason: "benchmark".into(),
            engaged_by: String::new(),
            engaged_at_ms: 0,
            expires_at_ms: None,
            ended: None,
        })
    });
    let verbs: Arc<[String]> = ["read", "get", "list", "search"]
        .into_iter()
        .map(String::from)
        .collect();
    SwitchIndex::build(switches, verbs, Default::default())
}

criterion_group! {
    name = decision;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(decision);
