//! How fast a kill switch takes effect, two ways:
//!
//! 1. In process: from calling `Control::engage` until a thread spinning on
//!    the published switch index (as every check reads it) sees the switch,
//!    and until `engage` returns (the flush to disk included).
//! 2. Over gRPC under load: a real server on loopback, clients keeping
//!    checks in flight by the agent the switch stops; from sending
//!    `EngageKillSwitch` until the first check comes back denied by it (that
//!    check's own round trip and queueing included).
//!
//!   cargo run --release -p warden-bench --bin killswitch-latency [ROUNDS] [IN_FLIGHT]
//!
//! Prints p50 and p99 of each over ROUNDS engage/release rounds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use warden::config::Config;
use warden::control::{Control, Seed};
use warden::killswitch::{EngageSpec, Scope};
use warden::server::control_config;
use warden::store::Store;
use warden_bench::inproc;
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_client::AdminServiceClient;
use warden_proto::v1::decision_service_client::DecisionServiceClient;

const AGENT: &str = "expense-assistant";

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let index = (sorted.len().saturating_sub(1) * p) / 100;
    sorted.get(index).copied().unwrap_or_default()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let in_flight: usize = args.next().map_or(Ok(16), |a| a.parse())?;
    in_process(rounds)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(over_grpc(rounds, in_flight))
}

fn config(data: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::try_from(inproc::raw_config(data))?)
}

fn in_process(rounds: usize) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let config = config(data.path())?;
    let store = Store::open(&config.data_dir)?;
    let seed = Seed {
        bundle: config.bundle.clone(),
        identity: config.identity.clone(),
        entitlements: config.entitlements.clone(),
    };
    let control = Control::start(control_config(&config), store, &seed)?;
    let switches = control.kill_switches();
    let (mut effective, mut acks) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let stop = AtomicBool::new(false);
        let seen = std::thread::scope(|scope| -> anyhow::Result<Option<Duration>> {
            let watcher = scope.spawn(|| {
                loop {
                    // Looked at before `stop`: once engage returns, the
                    // switch is published, so the last look sees it.
                    let stopping = stop.load(Ordering::Acquire);
                    if switches.current().switches().len() == 1 {
                        return Some(Instant::now());
                    }
                    if stopping {
                        return None;
                    }
                    std::hint::spin_loop();
                }
            });
            // Give the watcher time to start spinning.
            std::thread::sleep(Duration::from_millis(2));
            let started = Instant::now();
            let result = control.engage(
                EngageSpec {
                    scope: Scope {
                        agent_id: Some(AGENT.into()),
                        ..Scope::default()
                    },
                    reason: format!("latency round {round}"),
                    ..EngageSpec::default()
                },
                SystemTime::now(),
            );
            acks.push(started.elapsed());
            stop.store(true, Ordering::Release);
            let seen = watcher.join().ok().flatten();
            let switch = result?.switch;
            control.release(
                &switch.id,
                "round over".into(),
                String::new(),
                SystemTime::now(),
            )?;
            Ok(seen.map(|seen| seen.saturating_duration_since(started)))
        })?;
        let Some(seen) = seen else {
            anyhow::bail!("round {round}: the switch was never seen");
        };
        effective.push(seen);
    }
    acks.sort();
    effective.sort();
    println!("in process, {rounds} rounds:");
    println!(
        "  engage to in force (index published): p50 {:>8.1} µs   p99 {:>8.1} µs",
        micros(percentile(&effective, 50)),
        micros(percentile(&effective, 99))
    );
    println!(
        "  engage to acknowledged (flushed):     p50 {:>8.1} µs   p99 {:>8.1} µs",
        micros(percentile(&acks, 50)),
        micros(percentile(&acks, 99))
    );
    Ok(())
}

async fn over_grpc(rounds: usize, in_flight: usize) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let config = config(data.path())?;

    let server = inproc::start(config).await?;
    let (decision, admin) = (server.decision, server.admin);
    let checks = DecisionServiceClient::connect(format!("http://{decision}")).await?;
    let mut admin = AdminServiceClient::connect(format!("http://{admin}")).await?;

    // The load: `in_flight` checks outstanding at all times. Each denied
    // answer marks the current round's first denial.
    let stop = Arc::new(AtomicBool::new(false));
    let first_denied: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let answered = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..in_flight {
        let mut client = checks.clone();
        let (stop, first_denied, answered) = (stop.clone(), first_denied.clone(), answered.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(response) = client.check(inproc::check_request(AGENT)).await else {
                    continue;
                };
                answered.fetch_add(1, Ordering::Relaxed);
                if response.into_inner().kill_switch.is_some() {
                    let now = Instant::now();
                    if let Ok(mut first) = first_denied.lock() {
                        first.get_or_insert(now);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let answered_before = answered.load(Ordering::Relaxed);
    let (mut acks, mut effective) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if let Ok(mut first) = first_denied.lock() {
            *first = None;
        }
        let sent = Instant::now();
        let switch = admin
            .engage_kill_switch(pb::EngageKillSwitchRequest {
                scope: Some(pb::KillSwitchScope {
                    agent_id: AGENT.into(),
                    ..Default::default()
                }),
                reason: format!("latency round {round}"),
                ..Default::default()
            })
            .await?
            .into_inner()
            .kill_switch
            .context("no switch")?;
        acks.push(sent.elapsed());
        let deadline = Instant::now() + Duration::from_secs(5);
        let first = loop {
            if let Some(first) = first_denied.lock().ok().and_then(|f| *f) {
                break first;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no check was denied in round {round}"
            );
            tokio::task::yield_now().await;
        };
        effective.push(first.saturating_duration_since(sent));
        admin
            .release_kill_switch(pb::ReleaseKillSwitchRequest {
                id: switch.id,
                reason: "round over".into(),
                released_by: "killswitch-latency".into(),
            })
            .await?;
        // Let checks denied by this round drain before the next one.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let rate = (answered.load(Ordering::Relaxed) - answered_before) as f64 / elapsed.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    server.stop().await?;

    acks.sort();
    effective.sort();
    println!("over gRPC, {rounds} rounds, {in_flight} checks in flight, {rate:.0} checks/s:");
    println!(
        "  engage acknowledged:                  p50 {:>8.1} µs   p99 {:>8.1} µs",
        micros(percentile(&acks, 50)),
        micros(percentile(&acks, 99))
    );
    println!(
        "  engage sent to first check denied:    p50 {:>8.1} µs   p99 {:>8.1} µs",
        micros(percentile(&effective, 50)),
        micros(percentile(&effective, 99))
    );
    Ok(())
}
