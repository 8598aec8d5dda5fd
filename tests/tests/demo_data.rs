//! The committed demo snapshots are exactly what the generator writes, so
//! regenerating them (`cargo run -p warden-bench --bin gen-demo`) is a no-op
//! unless the generator changed on purpose.

use warden_bench::workload::{Spec, Workload};
use warden_e2e::Demo;

#[test]
fn demo_snapshots_match_the_generator() {
    let demo = Demo::load();
    let generated = Workload::generate(Spec::DEMO);
    assert!(
        demo.identity == generated.identity,
        "policies/demo/identity.json is stale; run gen-demo"
    );
    assert!(
        demo.entitlements == generated.entitlements,
        "policies/demo/entitlements.json is stale; run gen-demo"
    );
    let users = demo.identity["users"].as_object().map_or(0, |u| u.len());
    let agents = demo.identity["agents"].as_object().map_or(0, |a| a.len());
    assert!(
        users >= 200 && agents >= 20,
        "{users} users, {agents} agents"
    );
}
