//! `wardenctl bundle replay`: what a candidate bundle would have decided on
//! recorded traffic, from a server's audit log or, offline, from an
//! exported audit file (the server's own replay code, linked in).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{Value as Json, json};
use warden_client::admin::{ReplayBundleRequest, ReplayChange, ReplaySummary};
use warden_client::{AdminClient, ClientOptions};

use super::{CtlError, local, table, usage};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The candidate bundle (`.tar.gz`; offline also a directory).
    candidate: PathBuf,
    /// Only records at most this old, e.g. `24h`.
    #[arg(long, conflicts_with_all = ["from_seq", "to_seq"])]
    since: Option<String>,
    /// First audit sequence number to read.
    #[arg(long, default_value_t = 0)]
    from_seq: u64,
    /// Last audit sequence number to read.
    #[arg(long, default_value_t = 0)]
    to_seq: u64,
    /// Only records of this platform.
    #[arg(long)]
    platform: Option<String>,
    /// Only records of this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Most decisions replayed.
    #[arg(long, default_value_t = 0)]
    limit: u64,
    /// Compare the candidate with the active bundle on the same inputs,
    /// not with what was recorded: changes are then the policy's alone.
    #[arg(long)]
    as_recorded_policy: bool,
    /// Every changed decision, one JSON object per line (the summary goes
    /// to standard error). Online this also needs the auditor role: the
    /// decisions name principals and resources.
    #[arg(long)]
    jsonl: bool,
    /// Groups of changes shown, largest first.
    #[arg(long, default_value_t = 10)]
    top: u32,
    /// Offline: an exported audit file (`wardenctl audit export`), verified
    /// before anything is replayed. No server is contacted.
    #[arg(long, requires_all = ["identity", "entitlements"])]
    audit_file: Option<PathBuf>,
    /// Offline: the identity snapshot to decide with.
    #[arg(long, requires = "audit_file")]
    identity: Option<PathBuf>,
    /// Offline: the entitlements snapshot to decide with.
    #[arg(long, requires = "audit_file")]
    entitlements: Option<PathBuf>,
    /// Offline, with `--as-recorded-policy`: the bundle serving now.
    #[arg(long, requires_all = ["audit_file", "as_recorded_policy"])]
    active: Option<PathBuf>,
}

pub async fn run(
    addr: &str,
    options: ClientOptions,
    args: ReplayArgs,
    json: bool,
) -> Result<(), CtlError> {
    let (summary, changes) = match &args.audit_file {
        Some(file) => offline(&args, file)?,
        None => online(addr, options, &args).await?,
    };
    if args.jsonl {
        for change in &changes {
            outln!("{}", change_json(change));
        }
        eprintln!("{}", headline(&summary));
    } else if json {
        outln!("{}", summary_json(&summary));
    } else {
        print_summary(&summary);
    }
    verdict(&summary)
}

/// Exit 1 when a decision changed; 2 when none did but some records could
/// not be replayed; else success.
fn verdict(summary: &ReplaySummary) -> Result<(), CtlError> {
    if summary.changed > 0 {
        return Err(CtlError::Finding(format!(
            "{} of {} replayed decisions change",
            summary.changed, summary.replayed
        )));
    }
    if summary.not_replayable + summary.unreadable > 0 {
        return Err(CtlError::Incomplete(format!(
            "no replayed decision changes, but {} records could not be replayed",
            summary.not_replayable + summary.unreadable
        )));
    }
    Ok(())
}

fn request(args: &ReplayArgs, bundle: Vec<u8>) -> ReplayBundleRequest {
    ReplayBundleRequest {
        bundle,
        from_seq: args.from_seq,
        to_seq: args.to_seq,
        since: args.since.clone().unwrap_or_default(),
        platform: args.platform.clone().unwrap_or_default(),
        agent_id: args.agent.clone().unwrap_or_default(),
        limit: args.limit,
        as_recorded_policy: args.as_recorded_policy,
        include_changes: args.jsonl,
        top_groups: args.top,
    }
}

async fn online(
    addr: &str,
    options: ClientOptions,
    args: &ReplayArgs,
) -> Result<(ReplaySummary, Vec<ReplayChange>), CtlError> {
    let bundle = read(&args.candidate)?;
    // A replay of a long range takes minutes: the call's deadline must not
    // cut it short (progress events keep the stream busy meanwhile).
    let options = ClientOptions {
        request_timeout: options.request_timeout.max(Duration::from_secs(3600)),
        ..options
    };
    let mut client = AdminClient::connect(addr, options).await?;
    Ok(client.replay_bundle_summary(request(args, bundle)).await?)
}

fn read(path: &Path) -> Result<Vec<u8>, CtlError> {
    std::fs::read(path).map_err(|e| usage(format!("`{}`: {e}", path.display())))
}

#[cfg(not(feature = "replay"))]
fn offline(_: &ReplayArgs, _: &Path) -> Result<(ReplaySummary, Vec<ReplayChange>), CtlError> {
    Err(usage(
        "this wardenctl was built without offline replay (feature `replay`)",
    ))
}

/// The same replay, on this machine: the file's chain is verified first,
/// and the candidate decides with the snapshots given.
#[cfg(feature = "replay")]
fn offline(args: &ReplayArgs, file: &Path) -> Result<(ReplaySummary, Vec<ReplayChange>), CtlError> {
    use std::io::BufRead;
    use warden::bundle::{ArchiveLimits, Bundle};
    use warden::engine::EngineOptions;
    use warden::generation::LoadedPolicy;
    use warden::snapshot::{Snapshot, SnapshotKind};

    let open = || {
        std::fs::File::open(file)
            .map(std::io::BufReader::new)
            .map_err(|e| usage(format!("`{}`: {e}", file.display())))
    };
    let verified = warden_client::audit::verify_export(open()?)
        .map_err(|e| local(format!("`{}`: {e}", file.display())))?;
    if let Some((line, broken)) = verified.broken {
        return Err(usage(format!(
            "`{}` is not a verified audit export: the chain breaks at line {line}: {broken}",
            file.display()
        )));
    }
    let policy = |path: &Path| -> Result<std::sync::Arc<LoadedPolicy>, CtlError> {
        let bundle = Bundle::load(path, &ArchiveLimits::default())
            .map_err(|e| usage(format!("`{}`: {e}", path.display())))?;
        LoadedPolicy::compile(&bundle, &EngineOptions::default())
            .map(std::sync::Arc::new)
            .map_err(|e| usage(format!("`{}`: {e}", path.display())))
    };
    let max_id_bytes = warden::request::Limits::default().max_id_bytes;
    let snapshot = |kind: SnapshotKind, path: &Option<PathBuf>| {
        let path = path
            .as_ref()
            .ok_or_else(|| usage(format!("--{kind} is required with --audit-file")))?;
        Snapshot::parse(kind, &read(path)?, max_id_bytes)
            .map(std::sync::Arc::new)
            .map_err(|e| usage(format!("`{}`: {e}", path.display())))
    };
    let baseline = match (&args.active, args.as_recorded_policy) {
        (Some(active), true) => Some(policy(active)?),
        (None, true) => {
            return Err(usage(
                "offline, --as-recorded-policy needs --active, the bundle serving now",
            ));
        }
        (_, false) => None,
    };
    let active_revision = baseline
        .as_ref()
        .map(|p| p.revision.clone())
        .unwrap_or_default();
    let replayer = warden::replay::Replayer::new(
        policy(&args.candidate)?,
        baseline,
        snapshot(SnapshotKind::Identity, &args.identity)?,
        snapshot(SnapshotKind::Entitlements, &args.entitlements)?,
    )
    .map_err(|e| usage(format!("`{}`: {e}", args.candidate.display())))?;
    let selection = warden::replay::Selection {
        from_seq: args.from_seq,
        to_seq: args.to_seq,
        since: args.since.as_deref().map(since).transpose()?,
        platform: args.platform.clone(),
        agent: args.agent.clone(),
        limit: args.limit,
    };
    let mut collected = Collect {
        changes: Vec::new(),
        keep: args.jsonl,
    };
    let report = warden::replay::run(
        open()?.lines(),
        &selection,
        &replayer,
        None,
        &std::sync::atomic::AtomicBool::new(false),
        &mut collected,
    )
    .map_err(local)?;
    Ok((
        // As the server: 0 means its default.
        replayer.summary(
            &report,
            match args.top {
                0 => 10,
                n => n as usize,
            },
            &active_revision,
        ),
        collected.changes,
    ))
}

#[cfg(feature = "replay")]
fn since(age: &str) -> Result<time::OffsetDateTime, CtlError> {
    let age = super::parse_duration(age).map_err(usage)?;
    let at = std::time::SystemTime::now()
        .checked_sub(age)
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    Ok(time::OffsetDateTime::from(at))
}

/// Keeps the changes offline, as the stream carries them online.
#[cfg(feature = "replay")]
struct Collect {
    changes: Vec<ReplayChange>,
    keep: bool,
}

#[cfg(feature = "replay")]
impl warden::replay::Progress for Collect {
    fn progress(&mut self, _: &warden::replay::Report) -> Result<(), warden::replay::ReplayError> {
        Ok(())
    }

    fn changed(&mut self, change: &ReplayChange) -> Result<(), warden::replay::ReplayError> {
        if self.keep {
            self.changes.push(change.clone());
        }
        Ok(())
    }
}

pub fn change_json(change: &ReplayChange) -> Json {
    json!({
        "seq": change.seq,
        "decision_id": change.decision_id,
        "time": change.time,
        "platform": change.platform,
        "agent_id": change.agent_id,
        "principal": change.principal,
        "action": change.action,
        "resource": change.resource,
        "old": {"decision": change.old_decision, "reasons": change.old_reasons},
        "new": {"decision": change.new_decision, "reasons": change.new_reasons},
    })
}

pub fn summary_json(summary: &ReplaySummary) -> Json {
    json!({
        "candidate": {"revision": summary.candidate_revision, "digest": summary.candidate_digest},
        "active_revision": summary.active_revision,
        "snapshot_versions": summary.snapshot_versions,
        "as_recorded_policy": summary.as_recorded_policy,
        "read": summary.read,
        "replayed": summary.replayed,
        "unchanged": summary.unchanged,
        "changed": summary.changed,
        "outcome_changed": summary.outcome_changed,
        "reasons_changed": summary.reasons_changed,
        "not_replayable": summary.not_replayable,
        "not_replayable_paths": summary.not_replayable_paths,
        "outside_policy": summary.outside_policy,
        "unreadable": summary.unreadable,
        "unreadable_examples": summary.unreadable_examples,
        "data_changed": summary.data_changed,
        "first_seq": summary.first_seq,
        "last_seq": summary.last_seq,
        "limited": summary.limited,
        "group_count": summary.group_count,
        "groups": summary.groups.iter().map(|g| json!({
            "old": g.old_decision,
            "new": g.new_decision,
            "new_reasons": g.new_reasons,
            "agent_id": g.agent_id,
            "action_pattern": g.action_pattern,
            "count": g.count,
            "examples": g.example_decision_ids,
        })).collect::<Vec<_>>(),
    })
}

fn headline(summary: &ReplaySummary) -> String {
    format!(
        "replayed {} decisions (entries {}..{}) under {}: {} unchanged, {} changed \
         ({} in outcome, {} in reasons only), {} not replayable",
        summary.replayed,
        summary.first_seq,
        summary.last_seq,
        summary.candidate_revision,
        summary.unchanged,
        summary.changed,
        summary.outcome_changed,
        summary.reasons_changed,
        summary.not_replayable,
    )
}

fn print_summary(summary: &ReplaySummary) {
    outln!("{}", headline(summary));
    if summary.as_recorded_policy {
        outln!(
            "compared with the active bundle ({}); it decides {} of them otherwise than recorded",
            summary.active_revision,
            summary.data_changed
        );
    }
    for (path, count) in &summary.not_replayable_paths {
        outln!("not replayable: {count} (input redacted at `{path}`, which the policy may read)");
    }
    for (kind, count) in &summary.outside_policy {
        outln!("not compared: {count} settled by {kind}, not by the policy");
    }
    for example in &summary.unreadable_examples {
        outln!("unreadable: {example}");
    }
    if summary.limited {
        outln!("stopped at --limit");
    }
    if summary.groups.is_empty() {
        return;
    }
    outln!();
    let rows: Vec<Vec<String>> = summary
        .groups
        .iter()
        .map(|g| {
            vec![
                g.count.to_string(),
                format!("{} -> {}", g.old_decision, g.new_decision),
                g.agent_id.clone(),
                g.action_pattern.clone(),
                g.new_reasons.join(","),
                g.example_decision_ids.join(" "),
            ]
        })
        .collect();
    table(
        &[
            "COUNT",
            "CHANGE",
            "AGENT",
            "ACTIONS",
            "NEW REASONS",
            "EXAMPLES",
        ],
        &rows,
    );
    if summary.group_count > summary.groups.len() as u64 {
        outln!(
            "({} more groups; --top N shows more)",
            summary.group_count - summary.groups.len() as u64
        );
    }
}
