//! Load generator: drives `Check` against a running Warden at a fixed
//! concurrency or a fixed rate, with a generated organisation pushed as its
//! snapshots, and measures the floor — gRPC health `Check`, a no-op unary
//! RPC — on the same server and the same connections, in alternating
//! phases so that both see the same machine. Every figure is also printed as
//! a ratio to the floor's.
//!
//!   warden serve &        # any configuration; audit `async` for the targets
//!   cargo run --release -p warden-bench --bin loadgen -- --concurrency 1
//!   cargo run --release -p warden-bench --bin loadgen -- --concurrency 64
//!   cargo run --release -p warden-bench --bin loadgen -- --rate 5000
//!
//! With `--rate`, latency counts from when each request was due, not when it
//! was sent, so a stalled server is not hidden by a stalled generator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use warden_bench::workload::{Spec, Workload};
use warden_client::{AdminClient, ClientOptions, TlsOptions, Transport, connect_channel};
use warden_proto::v1 as pb;
use warden_proto::v1::decision_service_client::DecisionServiceClient;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Drive Check against a running Warden and compare with an empty RPC"
)]
struct Args {
    /// Decision listener.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Admin listener, for pushing the generated snapshots.
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    admin_addr: String,
    /// Keep this many checks in flight (closed loop).
    #[arg(long, conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// Send this many checks per second (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// HTTP/2 connections the load is spread over.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Measured time per kind (check, floor), split into `rounds` phases.
    #[arg(long, default_value = "10", value_parser = seconds)]
    duration: Duration,
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Unmeasured time before the first phase.
    #[arg(long, default_value = "2", value_parser = seconds)]
    warmup: Duration,
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 1_000)]
    agents: usize,
    #[arg(long, default_value_t = 200)]
    groups: usize,
    /// Resources each user owns (one grant each).
    #[arg(long, default_value_t = 3)]
    owned_per_user: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use the snapshots the server already has (the workload is still
    /// generated, so they must be the same organisation).
    #[arg(long)]
    no_push: bool,
    /// Bearer token (platform role for checks; `--admin-token` for the push).
    #[arg(long, env = "WARDEN_TOKEN")]
    token: Option<String>,
    #[arg(long, env = "WARDEN_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// CA for a TLS server.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Drive one kind only (`check` or `floor`), for profiling the server.
    #[arg(long, value_parser = ["check", "floor"])]
    only: Option<String>,
    /// Only check that the decision listener answers gRPC health, then exit.
    #[arg(long)]
    probe: bool,
    /// Also measure checks with this many subject searches per second
    /// running beside them (each a full page: who may read a document), in
    /// phases alternating with checks alone.
    #[arg(long, default_value_t = 0.0)]
    searches_per_second: f64,
    /// The search: `subjects` (a full page of up to 10,000 evaluations) or
    /// `actions` (tool filtering: 40 candidate actions).
    #[arg(long, default_value = "subjects", value_parser = ["subjects", "actions"])]
    search_kind: String,
    /// Also measure checks while the server replays its audit log against
    /// this candidate bundle (`.tar.gz`), in phases alternating with checks
    /// alone; each phase starts a replay and cancels it at its end.
    #[arg(long)]
    replay_bundle: Option<std::path::PathBuf>,
    /// Before measuring, decide this many checks (in batches) so that the
    /// audit log has records to replay.
    #[arg(long, default_value_t = 0)]
    fill_records: u64,
}

fn seconds(value: &str) -> Result<Duration, String> {
    value
        .trim_end_matches('s')
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|e| format!("`{value}` is not seconds: {e}"))
}

/// Most calls an open-loop phase keeps unanswered before it gives up.
const MAX_OUTSTANDING: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Check,
    Floor,
}

/// What one kind of call did over all its phases.
struct Tally {
    latency: Histogram<u64>,
    calls: u64,
    errors: u64,
    elapsed: Duration,
    outcomes: [u64; 4],
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            calls: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            outcomes: [0; 4],
        })
    }

    fn throughput(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn quantile_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64
    }
}

#[derive(Clone)]
struct Lanes {
    decision: Vec<DecisionServiceClient<Transport>>,
    health: Vec<HealthClient<Transport>>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.probe || args.concurrency.is_some() || args.rate.is_some(),
        "give --concurrency N or --rate R"
    );
    anyhow::ensure!(
        args.connections > 0 && args.rounds > 0,
        "connections and rounds must be positive"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.probe {
        let channel = connect_channel(args.addr.clone(), &ClientOptions::default()).await?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        return Ok(());
    }
    let workload = Workload::generate(Spec {
        users: args.users,
        agents: args.agents,
        groups: args.groups,
        owned_per_user: args.owned_per_user,
        seed: args.seed,
    });
    let tls = match &args.ca {
        Some(ca) => Some(TlsOptions::from_files(Some(ca), None, None)?),
        None => None,
    };
    if !args.no_push {
        push_snapshots(&args, &workload, tls.clone()).await?;
    }
    let requests = Arc::new(workload.requests(20_000, args.seed ^ 0x5eed));
    let options = ClientOptions {
        tls,
        token: args.token.clone(),
        request_timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    let mut lanes = Lanes {
        decision: Vec::new(),
        health: Vec::new(),
    };
    for _ in 0..args.connections {
        // One connection serves both kinds, so the floor travels exactly
        // the path a check does up to the service.
        let channel = connect_channel(args.addr.clone(), &options)
            .await
            .with_context(|| format!("cannot connect to {}", args.addr))?;
        lanes
            .decision
            .push(DecisionServiceClient::new(channel.clone()));
        lanes.health.push(HealthClient::new(channel));
    }

    if args.fill_records > 0 {
        fill(&lanes, &requests, args.fill_records).await?;
    }
    let replay = match &args.replay_bundle {
        Some(path) => Some((
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            AdminClient::connect(
                args.admin_addr.clone(),
                ClientOptions {
                    token: args.admin_token.clone(),
                    request_timeout: Duration::from_secs(3600),
                    ..options.clone()
                },
            )
            .await?,
        )),
        None => None,
    };
    let mut replayed = Replayed::default();

    let phase = args.duration / args.rounds;
    for kind in [Kind::Floor, Kind::Check] {
        drive(&args, &lanes, &requests, kind, args.warmup / 2, None).await?;
    }
    let mut check = Tally::new()?;
    let mut floor = Tally::new()?;
    let mut beside = Tally::new()?;
    let mut beside_replay = Tally::new()?;
    let mut searches = Tally::new()?;
    let wanted = |kind: &str| args.only.as_deref().is_none_or(|only| only == kind);
    for _ in 0..args.rounds {
        if wanted("floor") {
            drive(
                &args,
                &lanes,
                &requests,
                Kind::Floor,
                phase,
                Some(&mut floor),
            )
            .await?;
        }
        if wanted("check") {
            drive(
                &args,
                &lanes,
                &requests,
                Kind::Check,
                phase,
                Some(&mut check),
            )
            .await?;
        }
        if args.searches_per_second > 0.0 {
            let stream = tokio::spawn(search_stream(
                lanes.decision[0].clone(),
                requests[0].clone(),
                args.search_kind == "actions",
                args.searches_per_second,
                Instant::now() + phase,
            ));
            drive(
                &args,
                &lanes,
                &requests,
                Kind::Check,
                phase,
                Some(&mut beside),
            )
            .await?;
            searches.merge(&stream.await??)?;
        }
        if let Some((bundle, admin)) = &replay {
            let stream = tokio::spawn(replay_stream(
                admin.clone(),
                bundle.clone(),
                Instant::now() + phase,
            ));
            drive(
                &args,
                &lanes,
                &requests,
                Kind::Check,
                phase,
                Some(&mut beside_replay),
            )
            .await?;
            let (records, elapsed) = stream.await??;
            replayed.records += records;
            replayed.elapsed += elapsed;
        }
    }
    report(&args, &check, &floor);
    if args.searches_per_second > 0.0 {
        report_beside(&args, &check, &beside, &searches);
    }
    if replay.is_some() {
        report_replay(&args, &check, &beside_replay, &replayed);
    }
    Ok(())
}

/// Decides `count` checks in batches of 256, eight in flight.
async fn fill(lanes: &Lanes, requests: &[pb::CheckRequest], count: u64) -> anyhow::Result<()> {
    let batches = count.div_ceil(256);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for lane in 0..8 {
        let mut client = lanes.decision[lane % lanes.decision.len()].clone();
        let next = next.clone();
        let requests: Vec<pb::CheckRequest> = requests.to_vec();
        tasks.push(tokio::spawn(async move {
            loop {
                let batch = next.fetch_add(1, Ordering::Relaxed);
                if batch >= batches {
                    return anyhow::Ok(());
                }
                let start = (batch as usize * 256) % requests.len().max(1);
                let items = requests
                    .iter()
                    .cycle()
                    .skip(start)
                    .take(256)
                    .cloned()
                    .collect();
                client
                    .batch_check(pb::BatchCheckRequest { items })
                    .await
                    .context("batch check while filling the audit log")?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Records a replay read while checks were measured beside it.
#[derive(Default)]
struct Replayed {
    records: u64,
    elapsed: Duration,
}

/// Runs a replay until `end`, then leaves it (which cancels it); returns
/// the records it read and for how long. A replay still being cancelled
/// from the phase before is waited for.
async fn replay_stream(
    mut admin: AdminClient,
    bundle: Vec<u8>,
    end: Instant,
) -> anyhow::Result<(u64, Duration)> {
    let request = pb::ReplayBundleRequest {
        bundle,
        ..pb::ReplayBundleRequest::default()
    };
    let started = Instant::now();
    let mut events = loop {
        match admin.replay_bundle(request.clone()).await {
            Ok(events) => break events,
            Err(warden_client::ClientError::Status(status))
                if status.code() == tonic::Code::ResourceExhausted && Instant::now() < end =>
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut read = 0;
    let mut last = started;
    while let Ok(event) = tokio::time::timeout_at(end.into(), events.message()).await {
        match event?.and_then(|event| event.event) {
            Some(pb::replay_bundle_event::Event::Progress(progress)) => {
                read = progress.read;
                last = Instant::now();
            }
            Some(pb::replay_bundle_event::Event::Summary(summary)) => {
                read = summary.read;
                last = Instant::now();
                break;
            }
            Some(pb::replay_bundle_event::Event::Change(_)) => {}
            None => break,
        }
    }
    Ok((read, last - started))
}

/// Checks with a replay beside them, against checks alone.
fn report_replay(args: &Args, alone: &Tally, beside: &Tally, replayed: &Replayed) {
    let rate = replayed.records as f64 / replayed.elapsed.as_secs_f64().max(1e-9);
    if args.json {
        let mut report = beside_json(alone, beside);
        report["replay"] =
            serde_json::json!({"records": replayed.records, "records_per_second": rate});
        println!("{report}");
        return;
    }
    println!(
        "with a replay beside: {} records read ({rate:.0} records/s while checks ran)",
        replayed.records
    );
    ratio_table(alone, beside);
}

/// Checks beside other work against checks alone, for `--json`.
fn beside_json(alone: &Tally, beside: &Tally) -> serde_json::Value {
    let ratio = |ours: f64, theirs: f64| ours / theirs.max(1e-9);
    serde_json::json!({
        "beside": {"calls": beside.calls, "errors": beside.errors, "throughput": beside.throughput(),
                   "p50_us": beside.quantile_us(0.5), "p99_us": beside.quantile_us(0.99)},
        "p50_ratio_to_alone": ratio(beside.quantile_us(0.5), alone.quantile_us(0.5)),
        "p99_ratio_to_alone": ratio(beside.quantile_us(0.99), alone.quantile_us(0.99)),
        "throughput_ratio_to_alone": ratio(beside.throughput(), alone.throughput()),
    })
}

fn ratio_table(alone: &Tally, beside: &Tally) {
    let ratio = |ours: f64, theirs: f64| ours / theirs.max(1e-9);
    println!("{:<12} {:>12} {:>12} {:>8}", "", "alone", "beside", "ratio");
    println!(
        "{:<12} {:>10.0}/s {:>10.0}/s {:>7.2}×",
        "throughput",
        alone.throughput(),
        beside.throughput(),
        ratio(beside.throughput(), alone.throughput())
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        println!(
            "{:<12} {:>10.0}µs {:>10.0}µs {:>7.2}×",
            name,
            alone.quantile_us(q),
            beside.quantile_us(q),
            ratio(beside.quantile_us(q), alone.quantile_us(q))
        );
    }
}

/// Sends a search every `1/rate` seconds until `end`: who may the first
/// request's agent act for, reading a document; or (`actions`) which of 40
/// tools it may use on the first request's resource.
async fn search_stream(
    mut client: DecisionServiceClient<Transport>,
    check: pb::CheckRequest,
    actions: bool,
    rate: f64,
    end: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let tools: Vec<String> = [
        "read", "write", "search", "share", "delete", "export", "update", "create",
    ]
    .iter()
    .flat_map(|verb| {
        ["documents", "reports", "tickets", "accounts", "datasets"]
            .iter()
            .map(move |noun| format!("{noun}.{verb}"))
    })
    .collect();
    let mut due = Instant::now();
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        let sent = Instant::now();
        let outcome = if actions {
            let request = pb::SearchActionsRequest {
                platform: check.platform.clone(),
                agent: check.agent.clone(),
                principal: check.principal.clone(),
                resource: check.resource.clone(),
                candidates: tools.clone(),
                ..Default::default()
            };
            client
                .search_actions(request)
                .await
                .map(|answer| usize::from(!answer.into_inner().results.is_empty()))
        } else {
            let request = pb::SearchSubjectsRequest {
                platform: check.platform.clone(),
                agent: check.agent.clone(),
                subject_type: "user".into(),
                action: Some(pb::Action {
                    name: "documents.read".into(),
                    attributes: None,
                }),
                resource: Some(pb::Resource {
                    r#type: "document".into(),
                    id: "document-17".into(),
                    attributes: None,
                }),
                ..Default::default()
            };
            client
                .search_subjects(request)
                .await
                .map(|answer| usize::from(!answer.into_inner().results.is_empty()))
        };
        record(&mut tally, outcome, sent.elapsed())?;
        due += interval;
    }
    Ok(tally)
}

/// Checks with searches beside them, against checks alone.
fn report_beside(args: &Args, alone: &Tally, beside: &Tally, searches: &Tally) {
    if args.json {
        let mut report = beside_json(alone, beside);
        report["searches_per_second"] = serde_json::json!(args.searches_per_second);
        report["search_kind"] = serde_json::json!(args.search_kind);
        report["searches"] = serde_json::json!({"calls": searches.calls, "errors": searches.errors,
            "p50_us": searches.quantile_us(0.5), "p99_us": searches.quantile_us(0.99)});
        println!("{report}");
        return;
    }
    println!(
        "with {} {} search(es)/s beside: {} searches (errors {}), search p50 {:.0}µs p99 {:.0}µs",
        args.searches_per_second,
        args.search_kind,
        searches.calls,
        searches.errors,
        searches.quantile_us(0.5),
        searches.quantile_us(0.99)
    );
    ratio_table(alone, beside);
}

async fn push_snapshots(
    args: &Args,
    workload: &Workload,
    tls: Option<TlsOptions>,
) -> anyhow::Result<()> {
    let options = ClientOptions {
        tls,
        token: args.admin_token.clone(),
        request_timeout: Duration::from_secs(600),
        ..ClientOptions::default()
    };
    let mut admin = AdminClient::connect(args.admin_addr.clone(), options)
        .await
        .with_context(|| format!("cannot connect to {}", args.admin_addr))?;
    // Versions must grow on every push; the time does.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    for (kind, document) in [
        ("identity", &workload.identity),
        ("entitlements", &workload.entitlements),
    ] {
        let mut document = document.clone();
        document["version"] = serde_json::json!(format!("{kind}-loadgen-{stamp}"));
        admin
            .put_snapshot(kind, serde_json::to_vec(&document)?)
            .await
            .with_context(|| format!("cannot push the {kind} snapshot"))?;
    }
    Ok(())
}

/// Runs one phase of `kind` for `length`, adding to `tally` when given.
async fn drive(
    args: &Args,
    lanes: &Lanes,
    requests: &Arc<Vec<pb::CheckRequest>>,
    kind: Kind,
    length: Duration,
    tally: Option<&mut Tally>,
) -> anyhow::Result<()> {
    let shared = Arc::new(Mutex::new(Tally::new()?));
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + length;
    match (args.concurrency, args.rate) {
        (Some(concurrency), _) => {
            let mut workers = Vec::new();
            for worker in 0..concurrency {
                let lane = worker % lanes.decision.len();
                let (mut decision, mut health) =
                    (lanes.decision[lane].clone(), lanes.health[lane].clone());
                let (requests, shared, next) = (requests.clone(), shared.clone(), next.clone());
                workers.push(tokio::spawn(async move {
                    let mut local = Tally::new()?;
                    while Instant::now() < end {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let sent = Instant::now();
                        let outcome = call(kind, &mut decision, &mut health, &requests, i).await;
                        record(&mut local, outcome, sent.elapsed())?;
                    }
                    shared.lock().await.merge(&local)?;
                    anyhow::Ok(())
                }));
            }
            for worker in workers {
                worker.await??;
            }
        }
        (None, Some(rate)) => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
            // Calls sent and not yet answered: past the bound the server
            // is not keeping up, and the run stops rather than queue
            // without limit.
            let outstanding = Arc::new(AtomicU64::new(0));
            let mut overloaded = false;
            let mut tasks = Vec::new();
            let mut due = start;
            let mut i = 0usize;
            while due < end {
                tokio::time::sleep_until(due.into()).await;
                if outstanding.load(Ordering::Relaxed) > MAX_OUTSTANDING {
                    overloaded = true;
                    break;
                }
                let lane = i % lanes.decision.len();
                let (mut decision, mut health) =
                    (lanes.decision[lane].clone(), lanes.health[lane].clone());
                let (requests, shared, outstanding) =
                    (requests.clone(), shared.clone(), outstanding.clone());
                let intended = due;
                outstanding.fetch_add(1, Ordering::Relaxed);
                tasks.push(tokio::spawn(async move {
                    let outcome = call(kind, &mut decision, &mut health, &requests, i).await;
                    outstanding.fetch_sub(1, Ordering::Relaxed);
                    let mut tally = shared.lock().await;
                    record(&mut tally, outcome, intended.elapsed())
                }));
                i += 1;
                due += interval;
            }
            for task in tasks {
                task.await??;
            }
            if overloaded {
                eprintln!(
                    "loadgen: more than {MAX_OUTSTANDING} calls outstanding; the rate is too high"
                );
            }
        }
        (None, None) => anyhow::bail!("no load shape"),
    }
    let elapsed = start.elapsed();
    if let Some(tally) = tally {
        let phase = shared.lock().await;
        tally.merge(&phase)?;
        tally.elapsed += elapsed;
    }
    Ok(())
}

/// How a call ended: the decision (0 unspecified, 1 allow, 2 deny, 3
/// require approval) or an error.
type Outcome = Result<usize, tonic::Status>;

async fn call(
    kind: Kind,
    decision: &mut DecisionServiceClient<Transport>,
    health: &mut HealthClient<Transport>,
    requests: &[pb::CheckRequest],
    i: usize,
) -> Outcome {
    match kind {
        Kind::Check => {
            let request = requests[i % requests.len()].clone();
            let response = decision.check(request).await?.into_inner();
            Ok(usize::try_from(response.decision).unwrap_or(0).min(3))
        }
        Kind::Floor => {
            health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            Ok(0)
        }
    }
}

fn record(tally: &mut Tally, outcome: Outcome, latency: Duration) -> anyhow::Result<()> {
    tally.calls += 1;
    match outcome {
        Ok(decision) => tally.outcomes[decision] += 1,
        Err(_) => tally.errors += 1,
    }
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    tally.latency.saturating_record(micros);
    Ok(())
}

impl Tally {
    fn merge(&mut self, other: &Tally) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.calls += other.calls;
        self.errors += other.errors;
        for (mine, theirs) in self.outcomes.iter_mut().zip(other.outcomes) {
            *mine += theirs;
        }
        Ok(())
    }
}

fn report(args: &Args, check: &Tally, floor: &Tally) {
    let quantiles = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];
    let shape = match (args.concurrency, args.rate) {
        (Some(c), _) => format!("{c} in flight"),
        (_, Some(r)) => format!("{r} /s offered"),
        _ => String::new(),
    };
    // With `--only`, one side was not measured: no ratio rather than a
    // ratio to nothing.
    let measured = check.calls > 0 && floor.calls > 0;
    let ratio = |ours: f64, theirs: f64| measured.then(|| ours / theirs.max(1e-9));
    let throughput_ratio = ratio(check.throughput(), floor.throughput());
    if args.json {
        let mut out = serde_json::json!({
            "shape": shape,
            "connections": args.connections,
            "workload": {"users": args.users, "agents": args.agents, "groups": args.groups},
            "check": {"calls": check.calls, "errors": check.errors, "throughput": check.throughput(),
                      "allow": check.outcomes[1], "deny": check.outcomes[2], "require_approval": check.outcomes[3]},
            "floor": {"calls": floor.calls, "errors": floor.errors, "throughput": floor.throughput()},
            "throughput_ratio": throughput_ratio,
        });
        for (name, q) in quantiles {
            out["check"][format!("{name}_us")] = serde_json::json!(check.quantile_us(q));
            out["floor"][format!("{name}_us")] = serde_json::json!(floor.quantile_us(q));
            out[format!("{name}_ratio")] =
                serde_json::json!(ratio(check.quantile_us(q), floor.quantile_us(q)));
        }
        println!("{out}");
        return;
    }
    let shown = |r: Option<f64>| r.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"));
    println!(
        "loadgen: {shape}, {} connection(s), {} users / {} agents / {} groups, {:?} per kind in {} rounds",
        args.connections, args.users, args.agents, args.groups, args.duration, args.rounds
    );
    println!(
        "checks: {} (allow {}, deny {}, require_approval {}, errors {}); floor calls: {} (errors {})",
        check.calls,
        check.outcomes[1],
        check.outcomes[2],
        check.outcomes[3],
        check.errors,
        floor.calls,
        floor.errors
    );
    println!("{:<12} {:>12} {:>12} {:>8}", "", "Check", "floor", "ratio");
    println!(
        "{:<12} {:>10.0}/s {:>10.0}/s {:>8}",
        "throughput",
        check.throughput(),
        floor.throughput(),
        shown(throughput_ratio)
    );
    for (name, q) in quantiles {
        println!(
            "{:<12} {:>10.0}µs {:>10.0}µs {:>8}",
            name,
            check.quantile_us(q),
            floor.quantile_us(q),
            shown(ratio(check.quantile_us(q), floor.quantile_us(q)))
        );
    }
}
