//! Per-stage cost of a check on a large organisation: 10,000 users, 1,000
//! agents, 200 groups. Run with `cargo bench -p warden-bench --bench decision`.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use warden::bundle::{ArchiveLimits, Bundle};
use warden::decision::{Verdict, decide};
use warden::engine::EngineOptions;
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::request::{Limits, validate};
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
    let first = |verdict: Verdict| {
        requests
            .iter()
            .find(|r| {
                let valid = validate(r, &limits).expect("valid");
                decide(&valid, &generation, SystemTime::now()).verdict == verdict
            })
            .expect("the workload has every verdict")
            .clone()
    };
    let allow = first(Verdict::Allow);
    let deny = first(Verdict::Deny);
    let approval = first(Verdict::RequireApproval);

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
    group.finish();

    let mut group = c.benchmark_group("decide");
    group.bench_function("allow_from_wire", |b| {
        b.iter(|| {
            let valid = validate(black_box(&allow), &limits).expect("valid");
            decide(&valid, &generation, SystemTime::now())
        })
    });
    group.finish();
}

criterion_group! {
    name = decision;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(decision);
