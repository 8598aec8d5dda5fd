//! Replay throughput: records replayed per second for the default policy,
//! on recorded decisions of the demo organisation's workload, against a
//! candidate that changes `sensitive_actions` (about one in eight changes).
//! Run with `cargo bench -p warden-bench --bench replay`.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value as Json, json};
use warden::audit::record::{DecisionFacts, Redaction, decision_record};
use warden::bundle::{ArchiveLimits, Bundle};
use warden::decision::decide;
use warden::engine::EngineOptions;
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::killswitch::SwitchIndex;
use warden::replay::{Progress, ReplayError, Replayer, Report, Selection, run};
use warden::request::{Limits, validate};
use warden::snapshot::{Snapshot, SnapshotKind};
use warden_audit::{Entry, GENESIS};
use warden_bench::workload::{Spec, Workload};
use warden_proto::v1 as pb;

const RECORDS: usize = 20_000;

fn bundle(edit: impl FnOnce(&mut Json)) -> Arc<LoadedPolicy> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files = warden::bundle::read_dir(&root, &ArchiveLimits::default()).expect("files");
    let path = "warden/config/data.json";
    let mut data: Json = serde_json::from_slice(&files[path]).expect("data.json");
    edit(&mut data);
    files.insert(path.to_owned(), serde_json::to_vec(&data).expect("json"));
    let bundle = Bundle::from_files(files).expect("bundle");
    Arc::new(LoadedPolicy::compile(&bundle, &EngineOptions::default()).expect("compiles"))
}

fn snapshot(kind: SnapshotKind, document: &Json) -> Arc<Snapshot> {
    Arc::new(Snapshot::parse(kind, document.to_string().as_bytes(), 256).expect("valid snapshot"))
}

/// `RECORDS` sealed entry lines: the workload decided by the default policy.
fn recorded(workload: &Workload, active: &Generation) -> Vec<String> {
    let none = SwitchIndex::default();
    let mut prev = GENESIS.to_owned();
    workload
        .requests(RECORDS, 2026)
        .iter()
        .enumerate()
        .map(|(i, request)| {
            let request = validate(request, &Limits::default()).expect("valid");
            let decision = decide(&request, active, &none, SystemTime::now());
            let facts = DecisionFacts {
                request: &request,
                decision: &decision,
                decision_id: &format!("d-{i}"),
                policy_revision: "r1",
                snapshot_versions: BTreeMap::new(),
                time: SystemTime::now(),
                latency_us: 40,
                caller: "127.0.0.1:1",
                replica: None,
                approval: None,
            };
            let record = decision_record(&facts, &Redaction::default());
            let (line, hash) = Entry::seal_line(i as u64 + 1, &prev, &record);
            prev = hash;
            line
        })
        .collect()
}

struct Quiet;

impl Progress for Quiet {
    fn progress(&mut self, _: &Report) -> Result<(), ReplayError> {
        Ok(())
    }

    fn changed(&mut self, change: &pb::ReplayChange) -> Result<(), ReplayError> {
        black_box(change);
        Ok(())
    }
}

fn replay(c: &mut Criterion) {
    let workload = Workload::generate(Spec::DEMO);
    let identity = snapshot(SnapshotKind::Identity, &workload.identity);
    let entitlements = snapshot(SnapshotKind::Entitlements, &workload.entitlements);
    let active = bundle(|_| {});
    let generation = Generation::build(
        1,
        active.clone(),
        identity.clone(),
        entitlements.clone(),
        MaxAge::default(),
    )
    .expect("binds");
    let lines = recorded(&workload, &generation);
    let candidate = bundle(|data| {
        data["sensitive_actions"] = json!(["permissions.*", "iam.*", "*.share", "documents.*"]);
    });

    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, baseline) in [("records", None), ("as_recorded_policy", Some(active))] {
        let replayer = Replayer::new(
            candidate.clone(),
            baseline,
            identity.clone(),
            entitlements.clone(),
        )
        .expect("binds");
        let replay_all = || {
            run(
                lines.iter().cloned().map(Ok::<_, String>),
                &Selection::default(),
                &replayer,
                None,
                &AtomicBool::new(false),
                &mut Quiet,
            )
            .expect("replays")
        };
        let report = replay_all();
        eprintln!(
            "replay/{name}: {} replayed, {} changed",
            report.replayed(),
            report.changed()
        );
        group.bench_function(name, |b| b.iter(replay_all));
    }
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
