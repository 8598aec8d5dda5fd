//! Disclosure checks at scale: a 100,000-user organisation whose all-staff
//! group has 20,000 members. Measures a check disclosing to that group (the
//! `warden.audience_gaps` fast path), the same check without an audience,
//! and what the per-generation index costs to build and hold.
//! Run with `cargo bench -p warden-bench --bench audience`.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value as Json, json};
use warden::bundle::{ArchiveLimits, Bundle};
use warden::engine::EngineOptions;
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::request::{Limits, validate};
use warden::snapshot::{Snapshot, SnapshotKind};
use warden_bench::workload::{Spec, Workload};
use warden_rego::audience::AudienceIndex;

const ORG: Spec = Spec {
    users: 100_000,
    agents: 1_000,
    groups: 200,
    owned_per_user: 3,
    seed: 11,
};

const STAFF: usize = 20_000;

/// The generated organisation, with every fifth user in `all-staff`.
fn identity(workload: &Workload) -> Json {
    let mut identity = workload.identity.clone();
    let users = identity["users"].as_object_mut().expect("users");
    for (i, user) in users.values_mut().enumerate() {
        if i % 5 == 0
            && let Some(groups) = user["groups"].as_array_mut()
        {
            groups.push(json!("all-staff"));
        }
    }
    identity["groups"]["all-staff"] = json!({"attributes": {}});
    identity
}

fn generation(identity: &Json, entitlements: &Json) -> (Generation, Duration) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let bundle = Bundle::load(&root, &ArchiveLimits::default()).expect("default bundle");
    let policy = LoadedPolicy::compile(&bundle, &EngineOptions::default()).expect("compiles");
    let snapshot = |kind, document: &Json| {
        Arc::new(
            Snapshot::parse(kind, document.to_string().as_bytes(), 256).expect("valid snapshot"),
        )
    };
    let (identity, entitlements) = (
        snapshot(SnapshotKind::Identity, identity),
        snapshot(SnapshotKind::Entitlements, entitlements),
    );
    let started = Instant::now();
    let generation = Generation::build(
        1,
        Arc::new(policy),
        identity,
        entitlements,
        MaxAge::default(),
    )
    .expect("binds");
    (generation, started.elapsed())
}

fn benches(c: &mut Criterion) {
    let workload = Workload::generate(ORG);
    let identity = identity(&workload);
    let (generation, bind) = generation(&identity, &workload.entitlements);
    let limits = Limits::default();

    let started = Instant::now();
    let index = black_box(AudienceIndex::build(
        &generation.identity.document,
        black_box(&generation.entitlements.document),
    ));
    let build = started.elapsed();
    println!(
        "audience index: {} users, built in {:.1} ms, about {:.1} MiB; whole generation bound in {:.1} ms",
        index.users(),
        build.as_secs_f64() * 1e3,
        index.approximate_bytes() as f64 / (1024.0 * 1024.0),
        bind.as_secs_f64() * 1e3,
    );

    // A summary of an engineering document, shared with all staff; and the
    // same check's read with no audience, the baseline.
    let mut read = workload.requests(1, 5).remove(0);
    read.action = Some(warden_proto::v1::Action {
        name: "documents.read".into(),
        attributes: None,
    });
    read.resource = Some(warden_proto::v1::Resource {
        r#type: "document".into(),
        id: "document-17".into(),
        attributes: None,
    });
    let mut share = read.clone();
    if let Some(action) = share.action.as_mut() {
        action.name = "documents.share".into();
    }
    share.audience = vec!["group:all-staff".into()];
    let read = validate(&read, &limits).expect("valid");
    let share = validate(&share, &limits).expect("valid");
    let decision = generation.policy().evaluate(&share).expect("evaluates");
    let members = decision
        .as_ref()
        .and_then(|d| d["audience"]["members"].as_u64())
        .expect("the all-staff share is refused, naming the gap");
    assert_eq!(members, STAFF as u64, "{decision:?}");

    let mut group = c.benchmark_group("audience");
    group.bench_function("evaluate/no_audience", |b| {
        b.iter(|| generation.policy().evaluate(black_box(&read)))
    });
    group.bench_function("evaluate/group_20k", |b| {
        b.iter(|| generation.policy().evaluate(black_box(&share)))
    });
    group.sample_size(10);
    group.bench_function("index_build/100k_users", |b| {
        b.iter(|| {
            AudienceIndex::build(
                &generation.identity.document,
                black_box(&generation.entitlements.document),
            )
        })
    });
    group.finish();
    drop(index);
}

criterion_group!(audience, benches);
criterion_main!(audience);
