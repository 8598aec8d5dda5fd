//! Push-to-active time and resident memory for large snapshots: parsed and
//! bound alone, and through the same control path a `PutSnapshot` takes
//! (parse, schema check, version check, bind to the active policy, store
//! durably, publish), each in a fresh process.
//!
//!   cargo run --release -p warden-bench --bin snapshot-scale [USERS] [GRANTS_PER_USER]
//!
//! Defaults: 100,000 users, 10 owned grants each (1,000,000 grants), 1,000
//! agents, 200 groups.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use warden::control::{Control, Seed};
use warden::server::control_config;
use warden_bench::workload::{Spec, Workload};

/// The server's allocator, so that resident memory is what `warden` holds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Decides checks for two seconds on the thread that parsed, as a serving
/// process keeps doing after a push. mimalloc returns the parse's freed
/// scratch pages (the intern table, the raw bytes) to the OS lazily, on
/// later allocator activity; an idle process would keep them resident and
/// overstate what the snapshots cost.
fn serve_for_a_moment(generation: &warden::generation::Generation) {
    use warden::request::{Limits, validate};
    let request = warden_proto::v1::CheckRequest {
        platform: "copilot-studio".into(),
        agent: Some(warden_proto::v1::Agent {
            id: "agent-1".into(),
            attributes: None,
        }),
        principal: Some(warden_proto::v1::Principal {
            r#type: String::new(),
            id: "user-1".into(),
            attributes: None,
        }),
        action: Some(warden_proto::v1::Action {
            name: "documents.read".into(),
            attributes: None,
        }),
        resource: Some(warden_proto::v1::Resource {
            r#type: "document".into(),
            id: "doc-1".into(),
            attributes: None,
        }),
        ..Default::default()
    };
    let Ok(valid) = validate(&request, &Limits::default()) else {
        return;
    };
    let none = warden::killswitch::SwitchIndex::default();
    let until = Instant::now() + std::time::Duration::from_secs(2);
    while Instant::now() < until {
        std::hint::black_box(warden::decision::decide(
            &valid,
            generation,
            &none,
            std::time::SystemTime::now(),
        ));
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    if let Some(dir) = args.next().filter(|a| a == "--measure").and(args.next()) {
        return measure(Path::new(&dir));
    }
    let mut args = std::env::args().skip(1);
    if let Some(dir) = args.next().filter(|a| a == "--parsed").and(args.next()) {
        return parsed(Path::new(&dir));
    }
    let mut args = std::env::args().skip(1);
    let users: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let per_user: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let dir = tempfile::tempdir()?;

    // Generate and write the snapshots here, then measure in a fresh
    // process, so the generator's memory does not blur the figures.
    let (identity, entitlements) = {
        let workload = Workload::generate(Spec {
            users,
            agents: 1_000,
            groups: 200,
            owned_per_user: per_user,
            seed: 2026,
        });
        let mut identity = workload.identity.clone();
        let mut entitlements = workload.entitlements.clone();
        // Newer than the demo snapshots the server is seeded with.
        identity["version"] = serde_json::json!("identity-9-scale");
        entitlements["version"] = serde_json::json!("entitlements-9-scale");
        (
            serde_json::to_vec(&identity)?,
            serde_json::to_vec(&entitlements)?,
        )
    };
    std::fs::write(dir.path().join("identity.json"), &identity)?;
    std::fs::write(dir.path().join("entitlements.json"), &entitlements)?;
    println!(
        "snapshots: {users} users, 1000 agents, 200 groups, {} owned grants",
        users * per_user
    );
    for mode in ["--parsed", "--measure"] {
        let status = std::process::Command::new(std::env::current_exe()?)
            .arg(mode)
            .arg(dir.path())
            .status()?;
        anyhow::ensure!(status.success(), "measuring failed");
    }
    Ok(())
}

/// The snapshots alone, parsed and bound into a generation as the server
/// holds them, without the store: what the data itself costs in memory.
fn parsed(dir: &Path) -> anyhow::Result<()> {
    use std::sync::Arc;
    use warden::bundle::{ArchiveLimits, Bundle};
    use warden::engine::EngineOptions;
    use warden::generation::{Generation, LoadedPolicy, MaxAge};
    use warden::snapshot::{Snapshot, SnapshotKind};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bundle = Bundle::load(&root.join("policies"), &ArchiveLimits::default())?;
    let policy = Arc::new(LoadedPolicy::compile(&bundle, &EngineOptions::default())?);
    let identity = std::fs::read(dir.join("identity.json"))?;
    let entitlements = std::fs::read(dir.join("entitlements.json"))?;
    let serialized = (identity.len() + entitlements.len()) as u64;
    let before = rss_bytes();
    let identity = Arc::new(Snapshot::parse(SnapshotKind::Identity, &identity, 256)?);
    let entitlements = Arc::new(Snapshot::parse(
        SnapshotKind::Entitlements,
        &entitlements,
        256,
    )?);
    let generation = Generation::build(1, policy, identity, entitlements, MaxAge::default())?;
    serve_for_a_moment(&generation);
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    println!(
        "parsed and bound (no store): growth {:.1} MiB = {:.2}x the serialized size",
        mib(growth),
        growth as f64 / serialized as f64
    );
    drop(generation);
    Ok(())
}

fn measure(dir: &Path) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let identity = std::fs::read(dir.join("identity.json"))?;
    let entitlements = std::fs::read(dir.join("entitlements.json"))?;
    let serialized = (identity.len() + entitlements.len()) as u64;

    let mut config = warden::config::Config::try_from(warden::config::RawConfig::default())?;
    config.data_dir = dir.join("data");
    let store = warden::store::Store::open(&config.data_dir)?;
    let seed = Seed {
        bundle: root.join("policies"),
        identity: root.join("policies/demo/identity.json"),
        entitlements: root.join("policies/demo/entitlements.json"),
    };
    let control = Control::start(control_config(&config), store, &seed).context("seed")?;

    let before = rss_bytes();
    let started = Instant::now();
    control
        .put_snapshot("identity", identity, &control.heavy_turn_blocking())
        .context("identity push")?;
    let identity_time = started.elapsed();
    let started = Instant::now();
    control
        .put_snapshot("entitlements", entitlements, &control.heavy_turn_blocking())
        .context("entitlements push")?;
    let entitlements_time = started.elapsed();
    serve_for_a_moment(&control.generations().current());
    let after = rss_bytes();

    // The pushed bytes themselves were freed after parsing; what remains is
    // the parsed snapshots (minus the small demo ones they replaced).
    let growth = after.saturating_sub(before);
    println!("serialized size: {:.1} MiB", mib(serialized));
    println!("push-to-active: identity {identity_time:.2?}, entitlements {entitlements_time:.2?}");
    println!(
        "resident memory: {:.1} MiB before, {:.1} MiB after, growth {:.1} MiB = {:.2}x the serialized size",
        mib(before),
        mib(after),
        mib(growth),
        growth as f64 / serialized as f64
    );
    Ok(())
}
