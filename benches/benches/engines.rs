//! One decision through each engine on the same policy, data and inputs:
//! the Wasm engine (`warden build` output on wasmtime), the native engine
//! (regorus RVM) and real OPA (its Go evaluator through the oracle bridge,
//! which adds a JSON round trip per call).
//!
//! `scripts/fetch-opa-oracle` must have run (or set WARDEN_OPA_ORACLE).
//! Run with `cargo bench -p warden-bench --bench engines`.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use warden::bundle::{ArchiveLimits, Bundle};
use warden::engine::{EngineKind, EngineOptions};
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::request::{Limits, validate};
use warden::snapshot::{Snapshot, SnapshotKind};
use warden_bench::oracle::Opa;
use warden_bench::workload::{Spec, Workload};

const LARGE: Spec = Spec {
    users: 10_000,
    agents: 1_000,
    groups: 200,
    owned_per_user: 3,
    seed: 11,
};

fn benches(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let bundle = Bundle::load(&root, &ArchiveLimits::default()).expect("default bundle");
    let workload = Workload::generate(LARGE);
    let identity = Arc::new(
        Snapshot::parse(
            SnapshotKind::Identity,
            workload.identity.to_string().as_bytes(),
            256,
        )
        .expect("identity"),
    );
    let entitlements = Arc::new(
        Snapshot::parse(
            SnapshotKind::Entitlements,
            workload.entitlements.to_string().as_bytes(),
            256,
        )
        .expect("entitlements"),
    );
    let generation = |engine| {
        let options = EngineOptions {
            engine,
            ..EngineOptions::default()
        };
        let policy = LoadedPolicy::compile(&bundle, &options).expect("compiles");
        Generation::build(
            1,
            Arc::new(policy),
            identity.clone(),
            entitlements.clone(),
            MaxAge::default(),
        )
        .expect("binds")
    };
    let native = generation(EngineKind::Native);
    let wasm = generation(EngineKind::Wasm);
    let opa = Opa::new();
    for module in &bundle.modules {
        opa.add_policy(&module.path, &module.source);
    }
    opa.add_data("", &serde_json::to_value(&bundle.data).expect("json"));
    opa.add_data(
        "identity",
        &serde_json::to_value(&identity.document).expect("json"),
    );
    opa.add_data(
        "entitlements",
        &serde_json::to_value(&entitlements.document).expect("json"),
    );

    let requests: Vec<_> = workload
        .requests(64, 3)
        .iter()
        .map(|r| validate(r, &Limits::default()).expect("valid"))
        .collect();
    let inputs: Vec<_> = requests.iter().map(warden::input::to_json).collect();

    let mut group = c.benchmark_group("engine");
    let mut i = 0;
    group.bench_function("native", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            native.policy().evaluate(black_box(&requests[i]))
        })
    });
    group.bench_function("wasm", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            wasm.policy().evaluate(black_box(&requests[i]))
        })
    });
    group.bench_function("opa", |b| {
        b.iter(|| {
            i = (i + 1) % inputs.len();
            opa.eval("warden.authz.decision", black_box(&inputs[i]))
        })
    });
    group.finish();

    // The fixed cost of a call, apart from the policy: `decision := true`.
    let dir = std::env::temp_dir().join(format!("warden-bench-trivial-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("warden/authz")).expect("temp dir");
    std::fs::write(
        dir.join("warden/authz/p.rego"),
        "package warden.authz\n\ndecision := true\n",
    )
    .expect("write");
    let trivial = Bundle::load(&dir, &ArchiveLimits::default()).expect("trivial bundle");
    let _ = std::fs::remove_dir_all(&dir);
    let mut group = c.benchmark_group("overhead");
    for engine in [EngineKind::Native, EngineKind::Wasm] {
        let options = EngineOptions {
            engine,
            ..EngineOptions::default()
        };
        let policy = LoadedPolicy::compile(&trivial, &options).expect("compiles");
        let generation = Generation::build(
            1,
            Arc::new(policy),
            identity.clone(),
            entitlements.clone(),
            MaxAge::default(),
        )
        .expect("binds");
        group.bench_function(engine.as_str(), |b| {
            b.iter(|| generation.policy().evaluate(black_box(&requests[0])))
        });
    }
    group.finish();
}

criterion_group! {
    name = engines;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(engines);
