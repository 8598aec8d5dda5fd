//! `Check` throughput with auditing off, `async` and `sync`, in one run on
//! one machine: a real server in process, closed-loop clients on loopback.
//!
//!   cargo run --release -p warden-bench --bin audit-throughput [SECONDS] [IN_FLIGHT]
//!
//! Each mode gets a fresh data directory and a warm-up second; the modes
//! run in turn, twice (off, async, sync, off, async, sync), and the better
//! run of each counts, so that one noisy moment does not decide a ratio.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use warden::config::Config;
use warden_bench::inproc;
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_client::AdminServiceClient;
use warden_proto::v1::decision_service_client::DecisionServiceClient;

/// CPU time this process has used, from /proc (0 where unavailable).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which is in parentheses.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let in_flight: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(Duration::from_secs(seconds), in_flight))
}

async fn run(duration: Duration, in_flight: usize) -> anyhow::Result<()> {
    let modes = ["off", "async", "sync"];
    let mut best = [0f64; 3];
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    for _round in 0..rounds {
        for (i, mode) in modes.iter().enumerate() {
            let rate = measure(mode, duration, in_flight).await?;
            println!("  {mode:<5} {rate:>9.0} checks/s");
            best[i] = best[i].max(rate);
        }
    }
    println!(
        "best of two, {in_flight} checks in flight, {} s each:",
        duration.as_secs()
    );
    for (mode, rate) in modes.iter().zip(best) {
        println!(
            "  {mode:<5} {rate:>9.0} checks/s   {:.2}x off",
            rate / best[0].max(1.0)
        );
    }
    Ok(())
}

async fn measure(mode: &str, duration: Duration, in_flight: usize) -> anyhow::Result<f64> {
    let data = tempfile::tempdir()?;
    let mut raw = inproc::raw_config(data.path());
    raw.audit.durability = mode.into();
    let server = inproc::start(Config::try_from(raw)?).await?;
    let client = DecisionServiceClient::connect(format!("http://{}", server.decision)).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let mut client = client.clone();
        let (stop, answered) = (stop.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if client
                    .check(inproc::check_request("expense-assistant"))
                    .await
                    .is_ok()
                {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = answered.load(Ordering::Relaxed);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    let checks = answered.load(Ordering::Relaxed) - before;
    let rate = checks as f64 / started.elapsed().as_secs_f64();
    println!(
        "        {:.1} µs of CPU per check (server and clients)",
        (cpu_seconds() - cpu_before) * 1e6 / checks.max(1) as f64
    );
    let status = AdminServiceClient::connect(format!("http://{}", server.admin))
        .await?
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner();
    if status.audit_records > 0 {
        println!(
            "        records {}, group commits {} ({:.0} records each), queued now {}",
            status.audit_records,
            status.audit_commits,
            status.audit_records as f64 / status.audit_commits.max(1) as f64,
            status.audit_queue_depth
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    server.stop().await?;
    Ok(rate)
}
