//! A `warden build` output evaluated by OPA's own JavaScript SDK (npm
//! `@open-policy-agent/opa-wasm`, on the machine's node) gives the same
//! results as Warden's native engine, over thousands of varied evaluations
//! in one instance — the way hosts reuse an instance, and the way a runtime
//! that kept state in memory the host reuses would be caught.

use std::process::Command;
use std::sync::Arc;

use serde_json::{Value as Json, json};
use warden::bundle::{ArchiveLimits, Bundle};
use warden::engine::EngineOptions;
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::request::{Limits, validate};
use warden::snapshot::{Snapshot, SnapshotKind};
use warden_bench::workload::{Spec, Workload};
use warden_e2e::repo_root;

#[test]
fn opa_javascript_sdk_agrees_with_the_native_engine() {
    let js = repo_root().join("tests/js");
    assert!(
        js.join("node_modules/@open-policy-agent/opa-wasm").exists(),
        "run `npm ci --prefix tests/js` (scripts/test does) to install OPA's JavaScript SDK"
    );
    let bundle = Bundle::load(&repo_root().join("policies"), &ArchiveLimits::default()).unwrap();
    let archive = warden::wasm::build_bundle(&bundle).unwrap();
    let built = Bundle::from_files(
        warden::bundle::read_tar_gz(&archive, &ArchiveLimits::default()).unwrap(),
    )
    .unwrap();
    let pages = built.manifest.metadata["wasm_memory_pages"]
        .as_u64()
        .unwrap();

    let snapshot = |kind, name: &str| {
        let bytes = std::fs::read(repo_root().join("policies/demo").join(name)).unwrap();
        Arc::new(Snapshot::parse(kind, &bytes, 256).unwrap())
    };
    let policy = LoadedPolicy::compile(&bundle, &EngineOptions::default()).unwrap();
    let native = Generation::build(
        1,
        Arc::new(policy),
        snapshot(SnapshotKind::Identity, "identity.json"),
        snapshot(SnapshotKind::Entitlements, "entitlements.json"),
        MaxAge::default(),
    )
    .unwrap();
    let mut data = serde_json::to_value(&bundle.data).unwrap();
    data["identity"] = serde_json::to_value(&native.identity.document).unwrap();
    data["entitlements"] = serde_json::to_value(&native.entitlements.document).unwrap();

    let requests: Vec<_> = Workload::generate(Spec::DEMO)
        .requests(2_000, 99)
        .iter()
        .map(|r| validate(r, &Limits::default()).unwrap())
        .collect();
    let inputs: Vec<Json> = requests.iter().map(warden::input::to_json).collect();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.wasm"), &built.wasm[0].bytes).unwrap();
    std::fs::write(
        dir.path().join("cases.json"),
        serde_json::to_vec(&json!({"memory_pages": pages, "data": data, "inputs": inputs}))
            .unwrap(),
    )
    .unwrap();
    let output = Command::new("node")
        .arg(js.join("evaluate.js"))
        .arg(dir.path().join("policy.wasm"))
        .arg(dir.path().join("cases.json"))
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Json> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.len(), requests.len());

    let mut allowed = 0;
    for (i, (request, result_set)) in requests.iter().zip(results).enumerate() {
        let expected = native.policy().evaluate(request).unwrap();
        let got = result_set[0].get("result").cloned();
        assert_eq!(got, expected, "request {i} differs\ninput: {}", inputs[i]);
        allowed += usize::from(got.as_ref().is_some_and(|v| v["allow"] == true));
    }
    assert!(
        allowed > 100 && allowed < 1_900,
        "{allowed} of 2000 allowed: too uniform to compare"
    );
}
