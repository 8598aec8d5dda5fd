//! Search: the tool-filtering call against the checks it replaces, a
//! resource search for a user entitled to 1,000 resources, and a subject
//! search on a 100,000-user organisation.
//! Run with `cargo bench -p warden-bench --bench search`.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value as Json, json};
use warden::bundle::{ArchiveLimits, Bundle};
use warden::decision::decide;
use warden::engine::EngineOptions;
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::killswitch::SwitchIndex;
use warden::request::{Limits, validate};
use warden::search::{Bounds, Judge, Query, Target, candidates, run};
use warden::snapshot::{Snapshot, SnapshotKind};
use warden_bench::workload::{Spec, Workload};
use warden_proto::v1 as pb;

const LARGE: Spec = Spec {
    users: 10_000,
    agents: 1_000,
    groups: 200,
    owned_per_user: 3,
    seed: 11,
};

const HUGE: Spec = Spec {
    users: 100_000,
    ..LARGE
};

fn bundle() -> Bundle {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    Bundle::load(&root, &ArchiveLimits::default()).expect("default bundle")
}

fn generation(identity: &Json, entitlements: &Json) -> Generation {
    let policy = LoadedPolicy::compile(&bundle(), &EngineOptions::default()).expect("compiles");
    let snapshot = |kind, document: &Json| {
        Arc::new(
            Snapshot::parse(kind, document.to_string().as_bytes(), 256).expect("valid snapshot"),
        )
    };
    Generation::build(
        1,
        Arc::new(policy),
        snapshot(SnapshotKind::Identity, identity),
        snapshot(SnapshotKind::Entitlements, entitlements),
        MaxAge::default(),
    )
    .expect("binds")
}

/// The default bundle's action catalogue, 40 names.
fn tools() -> Vec<String> {
    let data = bundle().data;
    let data: Json = serde_json::to_value(&data).expect("json");
    let mut names: Vec<String> = data["warden"]["config"]["actions"]
        .as_object()
        .expect("catalogue")
        .values()
        .flat_map(|names| names.as_array().expect("list").iter())
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.truncate(40);
    names
}

fn query(target: Target, request: &pb::CheckRequest, limits: &Limits) -> Query {
    Query {
        target,
        base: validate(request, limits).expect("valid"),
    }
}

fn bounds(cap: usize, limit: usize, every_outcome: bool) -> Bounds {
    Bounds {
        start: 0,
        limit,
        cap,
        deadline: Instant::now() + Duration::from_secs(3600),
        every_outcome,
        yield_every: Some((warden::api::search::YIELD_EVERY, Arc::default())),
    }
}

fn benches(c: &mut Criterion) {
    let limits = Limits::default();
    let none = SwitchIndex::default();

    // 1. Tool filtering: 40 candidates in one search, against 40 checks.
    let workload = Workload::generate(LARGE);
    let large = generation(&workload.identity, &workload.entitlements);
    let base = workload.requests(1, 3).remove(0);
    let tools = tools();
    assert_eq!(tools.len(), 40);
    let checks: Vec<pb::CheckRequest> = tools
        .iter()
        .map(|name| {
            let mut request = base.clone();
            request.action = Some(pb::Action {
                name: name.clone(),
                attributes: None,
            });
            request
        })
        .collect();
    let actions = query(Target::Actions, &checks[0], &limits);
    let mut group = c.benchmark_group("search");
    group.bench_function("actions/40_candidates", |b| {
        b.iter(|| {
            let proposed =
                candidates(&actions, Some(black_box(tools.clone())), &large).expect("candidates");
            run(
                &actions,
                &proposed,
                Judge {
                    generation: &large,
                    switches: &none,
                    usage: None,
                    limits: &limits,
                    now: SystemTime::now(),
                },
                &bounds(10_000, 0, true),
            )
        })
    });
    group.bench_function("actions/40_checks", |b| {
        b.iter(|| {
            for request in &checks {
                let valid = validate(black_box(request), &limits).expect("valid");
                black_box(decide(&valid, &large, &none, SystemTime::now()));
            }
        })
    });

    // 2. A user entitled to 1,000 documents one by one.
    let mut entitlements = workload.entitlements.clone();
    let principal = base
        .principal
        .as_ref()
        .map(|p| p.id.clone())
        .expect("principal");
    let owned: serde_json::Map<String, Json> = (0..1000)
        .map(|i| (format!("dossier-{i:04}"), json!(["documents.read"])))
        .collect();
    entitlements["subjects"][format!("user:{principal}")]["dossier"] = Json::Object(owned);
    let mut identity = workload.identity.clone();
    let agent = base.agent.as_ref().map(|a| a.id.clone()).expect("agent");
    identity["agents"][&agent]["grants"] = json!(["documents.read"]);
    let with_dossiers = generation(&identity, &entitlements);
    let mut find = base.clone();
    find.action = Some(pb::Action {
        name: "documents.read".into(),
        attributes: None,
    });
    find.resource = Some(pb::Resource {
        r#type: "dossier".into(),
        id: String::new(),
        attributes: None,
    });
    let resources = query(Target::Resources, &find, &limits);
    let found = {
        let proposed = candidates(&resources, None, &with_dossiers).expect("candidates");
        run(
            &resources,
            &proposed,
            Judge {
                generation: &with_dossiers,
                switches: &none,
                usage: None,
                limits: &limits,
                now: SystemTime::now(),
            },
            &bounds(10_000, 0, false),
        )
    };
    assert_eq!(found.found.len(), 1000, "every dossier is found");
    group.sample_size(20);
    group.bench_function("resources/1000_entitled", |b| {
        b.iter(|| {
            let proposed = candidates(&resources, None, &with_dossiers).expect("candidates");
            run(
                &resources,
                &proposed,
                Judge {
                    generation: &with_dossiers,
                    switches: &none,
                    usage: None,
                    limits: &limits,
                    now: SystemTime::now(),
                },
                &bounds(10_000, 0, false),
            )
        })
    });
    group.finish();

    // 3. Who may this agent act for on a document, among 100,000 users?
    let huge_workload = Workload::generate(HUGE);
    let huge = generation(&huge_workload.identity, &huge_workload.entitlements);
    let mut who = huge_workload.requests(1, 5).remove(0);
    who.action = Some(pb::Action {
        name: "documents.read".into(),
        attributes: None,
    });
    who.resource = Some(pb::Resource {
        r#type: "document".into(),
        id: "document-17".into(),
        attributes: None,
    });
    if let Some(p) = who.principal.as_mut() {
        p.id = "warden-search".into();
    }
    let subjects = query(Target::Subjects, &who, &limits);
    let started = Instant::now();
    let proposed = candidates(&subjects, None, &huge).expect("candidates");
    let first = started.elapsed();
    let started = Instant::now();
    let again = candidates(&subjects, None, &huge).expect("candidates");
    let warm = started.elapsed();
    assert_eq!(proposed, again);
    let page = run(
        &subjects,
        &proposed,
        Judge {
            generation: &huge,
            switches: &none,
            usage: None,
            limits: &limits,
            now: SystemTime::now(),
        },
        &bounds(10_000, 0, false),
    );
    println!(
        "subject search on 100k users: {} candidates; first search {:.1} ms to build the index and propose, then {:.1} ms to propose; a full page evaluates {} and finds {}",
        proposed.len(),
        first.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        page.evaluated,
        page.found.len(),
    );
    let mut group = c.benchmark_group("search");
    group.sample_size(10);
    group.bench_function("subjects/100k_users/first_100", |b| {
        b.iter(|| {
            let proposed = candidates(&subjects, None, &huge).expect("candidates");
            run(
                &subjects,
                &proposed,
                Judge {
                    generation: &huge,
                    switches: &none,
                    usage: None,
                    limits: &limits,
                    now: SystemTime::now(),
                },
                &bounds(10_000, 100, false),
            )
        })
    });
    group.bench_function("subjects/100k_users/page_of_10000", |b| {
        b.iter(|| {
            let proposed = candidates(&subjects, None, &huge).expect("candidates");
            run(
                &subjects,
                &proposed,
                Judge {
                    generation: &huge,
                    switches: &none,
                    usage: None,
                    limits: &limits,
                    now: SystemTime::now(),
                },
                &bounds(10_000, 0, false),
            )
        })
    });
    group.finish();
}

criterion_group!(search, benches);
criterion_main!(search);
