//! The load generator against the real server: both load shapes run, every
//! verdict of the generated mix comes back, and the floor is measured in the
//! same run. Figures are not judged here (that is what the benchmark is
//! for); only that what it reports is the traffic it sent.

use std::process::Command;

use serde_json::Value as Json;
use warden_e2e::process::{Warden, binaries};

fn loadgen(warden: &Warden, shape: &[&str]) -> Json {
    let exe = binaries().warden.with_file_name("e2e-loadgen");
    let output = Command::new(&exe)
        .args([
            "--addr",
            &warden.endpoint(),
            "--admin-addr",
            &warden.admin_endpoint(),
        ])
        .args(["--users", "400", "--agents", "40", "--groups", "12"])
        .args([
            "--duration",
            "1",
            "--rounds",
            "2",
            "--warmup",
            "0.2",
            "--json",
        ])
        .args(shape)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    assert!(
        output.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "loadgen printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn count(report: &Json, path: &[&str]) -> u64 {
    let mut value = report;
    for key in path {
        value = &value[key];
    }
    value
        .as_u64()
        .unwrap_or_else(|| panic!("no count at {path:?} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_and_open_loop_runs_report_the_traffic_they_sent() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::builder()
        .without_demo_limits(dir.path())
        .start()
        .await;

    let closed = loadgen(&warden, &["--concurrency", "4"]);
    let checks = count(&closed, &["check", "calls"]);
    assert!(checks > 0, "{closed}");
    assert_eq!(count(&closed, &["check", "errors"]), 0, "{closed}");
    assert!(count(&closed, &["floor", "calls"]) > 0, "{closed}");
    assert_eq!(count(&closed, &["floor", "errors"]), 0, "{closed}");
    // The generated mix reaches every verdict, and every call has one.
    let verdicts: Vec<u64> = ["allow", "deny", "require_approval"]
        .iter()
        .map(|v| count(&closed, &["check", v]))
        .collect();
    assert!(verdicts.iter().all(|&n| n > 0), "{closed}");
    assert_eq!(verdicts.iter().sum::<u64>(), checks, "{closed}");
    for ratio in ["throughput_ratio", "p50_ratio", "p99_ratio", "p99.9_ratio"] {
        let r = closed[ratio].as_f64().unwrap_or(f64::NAN);
        assert!(r.is_finite() && r > 0.0, "{ratio} = {r}: {closed}");
    }
    let (p50, p99) = (
        closed["check"]["p50_us"].as_f64().unwrap_or(0.0),
        closed["check"]["p99_us"].as_f64().unwrap_or(0.0),
    );
    assert!(p50 > 0.0 && p99 >= p50, "{closed}");

    // Open loop: the count is what was scheduled (100/s for 1 s per kind),
    // however fast the server answers.
    let open = loadgen(&warden, &["--rate", "100", "--no-push"]);
    for kind in ["check", "floor"] {
        let calls = count(&open, &[kind, "calls"]);
        assert!((90..=110).contains(&calls), "{kind}: {calls} calls: {open}");
        assert_eq!(count(&open, &[kind, "errors"]), 0, "{open}");
    }

    // One kind alone (for profiling) reports no ratio to what it skipped.
    let alone = loadgen(
        &warden,
        &["--concurrency", "2", "--no-push", "--only", "check"],
    );
    assert!(count(&alone, &["check", "calls"]) > 0, "{alone}");
    assert_eq!(count(&alone, &["floor", "calls"]), 0, "{alone}");
    assert!(
        alone["p50_ratio"].is_null() && alone["throughput_ratio"].is_null(),
        "{alone}"
    );
}
