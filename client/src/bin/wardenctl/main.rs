//! `wardenctl`: Warden's command-line client.
//!
//! Exit codes for `check`, for scripts: 0 ALLOW, 1 DENY, 2 REQUIRE_APPROVAL,
//! 3 or more an error (3: bad arguments or request, 4: cannot reach Warden).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod audit;
mod connection;
mod kill;
use serde_json::{Map, Value as Json, json};
use warden_bundle::signature;
use warden_client::admin::{BundleInfo, BundleTarget, SnapshotInfo};
use warden_client::{
    AdminClient, CheckBuilder, CheckResponse, ClientError, ClientOptions, Decision, WardenClient,
};

#[derive(Debug, Parser)]
#[command(name = "wardenctl", version, about = "Command-line client for Warden")]
struct Cli {
    #[command(flatten)]
    connection: connection::ConnectionArgs,
    /// Per-call deadline, e.g. `5s` (bundle pushes get at least 5 minutes).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask whether an agent may take an action; prints the decision and its
    /// reasons. Exit code: 0 allow, 1 deny, 2 require approval.
    Check(CheckArgs),
    /// Policy bundles: build, push, list, activate, roll back.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Identity and entitlement snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// The audit trail: query, tail, export, verify.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Incident kill switches: engage, release, list.
    #[command(subcommand)]
    Kill(kill::KillCommand),
    /// What Warden is serving: bundles, snapshots, counters.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Pack a directory of Rego and data into an OPA bundle `.tar.gz`,
    /// optionally signed (`.signatures.json`, OPA's format).
    Build {
        /// The bundle directory.
        dir: PathBuf,
        /// Output file.
        #[arg(short, long, default_value = "bundle.tar.gz")]
        output: PathBuf,
        /// Private key (PEM) for RS256/ES256, or a file holding the HS256 secret.
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// RS256, ES256 or HS256.
        #[arg(long, default_value = "RS256")]
        signing_alg: String,
        /// The key id Warden's configuration knows the key by.
        #[arg(long, default_value = "default")]
        key_id: String,
        /// Scope claim, when the verifying key requires one.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Push a bundle `.tar.gz`; it becomes active unless told otherwise.
    Push {
        file: PathBuf,
        /// Evaluate it beside the active bundle instead (answers still come
        /// from the active one).
        #[arg(long, conflicts_with = "store_only")]
        shadow: bool,
        /// Store it without serving it.
        #[arg(long)]
        store_only: bool,
        #[arg(long)]
        json: bool,
    },
    /// The stored bundles, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Serve a stored bundle (by digest or a unique prefix of 8+ digits).
    Activate {
        digest: String,
        /// As the shadow instead of the active bundle.
        #[arg(long)]
        shadow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Serve the previously active bundle again.
    Rollback {
        #[arg(long)]
        json: bool,
    },
    /// The active and shadow bundles.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Replace a snapshot; its version must be newer than the current one.
    Push {
        /// `identity` or `entitlements`.
        kind: String,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Versions and ages of the loaded snapshots.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The calling agent platform.
    #[arg(long)]
    platform: String,
    /// The agent's id.
    #[arg(long)]
    agent: String,
    /// Whom the agent acts for, `TYPE:ID` (`user:amelia.hughes`); a bare id
    /// is a user.
    #[arg(long)]
    principal: String,
    /// Dotted action name, e.g. `documents.read`.
    #[arg(long)]
    action: String,
    /// The resource, `TYPE:ID` or just `TYPE`.
    #[arg(long)]
    resource: String,
    /// Actor between the principal and the agent; repeat, outermost first.
    #[arg(long = "delegated-by")]
    delegated_by: Vec<String>,
    /// Context as a JSON object.
    #[arg(long, value_parser = parse_object)]
    context: Option<Map<String, Json>>,
    /// Agent attributes as a JSON object.
    #[arg(long, value_parser = parse_object)]
    agent_attributes: Option<Map<String, Json>>,
    /// Action attributes (tool arguments) as a JSON object.
    #[arg(long, value_parser = parse_object)]
    action_attributes: Option<Map<String, Json>>,
    /// Resource attributes as a JSON object.
    #[arg(long, value_parser = parse_object)]
    resource_attributes: Option<Map<String, Json>>,
    /// Correlation id, echoed and audited.
    #[arg(long)]
    request_id: Option<String>,
    /// Print the whole response as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    let (number, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a duration such as `5s`"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" | "" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(number.saturating_mul(3600))),
        "d" => Ok(Duration::from_secs(number.saturating_mul(86_400))),
        _ => Err(format!("`{value}` is not a duration such as `5s`")),
    }
}

fn parse_object(value: &str) -> Result<Map<String, Json>, String> {
    match serde_json::from_str(value) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Exit codes beyond the three decisions.
const EXIT_BAD_REQUEST: u8 = 3;
const EXIT_UNREACHABLE: u8 = 4;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let connection = match cli.connection.resolve(cli.timeout) {
        Ok(connection) => connection,
        Err(e) => {
            eprintln!("wardenctl: {e}");
            return ExitCode::from(EXIT_BAD_REQUEST);
        }
    };
    let (addr, admin_addr, options) = (
        connection.addr.as_str(),
        connection.admin_addr.as_str(),
        connection.options,
    );
    match cli.command {
        Command::Check(args) => check(addr, options, args).await,
        Command::Bundle(command) => report(bundle(admin_addr, options, command).await),
        Command::Snapshot(command) => report(snapshot(admin_addr, options, command).await),
        Command::Audit(command) => report(audit::run(admin_addr, options, command).await),
        Command::Kill(command) => report(kill::run(admin_addr, options, command).await),
        Command::Status { json } => report(status(admin_addr, options, json).await),
    }
}

/// Exit code for operator commands: 0 done, 1 a problem found (a broken
/// audit chain), 3 refused, 4 unreachable or failed locally.
fn report(result: Result<(), CtlError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CtlError::Client(e)) => {
            eprintln!("wardenctl: {e}");
            ExitCode::from(match e {
                ClientError::Status(_) => EXIT_BAD_REQUEST,
                _ => EXIT_UNREACHABLE,
            })
        }
        Err(CtlError::Local(message)) => {
            eprintln!("wardenctl: {message}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
        Err(CtlError::Finding(message)) => {
            eprintln!("wardenctl: {message}");
            ExitCode::FAILURE
        }
    }
}

enum CtlError {
    Client(ClientError),
    Local(String),
    /// The command worked and found a problem (a broken audit chain).
    Finding(String),
}

impl From<ClientError> for CtlError {
    fn from(e: ClientError) -> Self {
        CtlError::Client(e)
    }
}

fn local(message: impl std::fmt::Display) -> CtlError {
    CtlError::Local(message.to_string())
}

async fn admin(addr: &str, options: ClientOptions) -> Result<AdminClient, CtlError> {
    Ok(AdminClient::connect(addr, options).await?)
}

async fn bundle(
    addr: &str,
    options: ClientOptions,
    command: BundleCommand,
) -> Result<(), CtlError> {
    match command {
        BundleCommand::Build {
            dir,
            output,
            signing_key,
            signing_alg,
            key_id,
            scope,
        } => {
            let limits = warden_bundle::ArchiveLimits::default();
            let mut files = warden_bundle::read_dir(&dir, &limits)
                .map_err(|e| local(format!("`{}`: {e}", dir.display())))?;
            files.remove(signature::SIGNATURES_FILE);
            if let Some(path) = signing_key {
                let algorithm = signature::algorithm(&signing_alg).ok_or_else(|| {
                    local(format!("`{signing_alg}` is not RS256, ES256 or HS256"))
                })?;
                let material = std::fs::read(&path)
                    .map_err(|e| local(format!("`{}`: {e}", path.display())))?;
                let key =
                    signature::SigningKey::new(&key_id, algorithm, &material).map_err(local)?;
                let signatures = signature::sign(&files, &key, scope.as_deref()).map_err(local)?;
                files.insert(signature::SIGNATURES_FILE.to_owned(), signatures);
            }
            let archive = warden_bundle::write_tar_gz(&files).map_err(local)?;
            std::fs::write(&output, &archive)
                .map_err(|e| local(format!("`{}`: {e}", output.display())))?;
            println!(
                "wrote {} ({} files, {} bytes)",
                output.display(),
                files.len(),
                archive.len()
            );
            Ok(())
        }
        BundleCommand::Push {
            file,
            shadow,
            store_only,
            json,
        } => {
            let archive =
                std::fs::read(&file).map_err(|e| local(format!("`{}`: {e}", file.display())))?;
            let bar = indicatif::ProgressBar::new(archive.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message("uploading");
            // Only worth drawing for a push that takes a moment, and only
            // for people.
            if json
                || archive.len() < 1024 * 1024
                || !std::io::IsTerminal::is_terminal(&std::io::stderr())
            {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let progress_bar = bar.clone();
            let progress: warden_client::admin::UploadProgress =
                std::sync::Arc::new(move |n| progress_bar.inc(n as u64));
            let options = ClientOptions {
                request_timeout: options.request_timeout.max(Duration::from_secs(300)),
                ..options
            };
            let mut client =
                AdminClient::connect_with_progress(addr, options, Some(progress)).await?;
            let target = if shadow {
                BundleTarget::Shadow
            } else if store_only {
                BundleTarget::Stored
            } else {
                BundleTarget::Active
            };
            bar.set_message("uploading");
            let result = client.put_bundle(archive, target).await;
            bar.finish_and_clear();
            print_bundles(&[result?], json);
            Ok(())
        }
        BundleCommand::List { json } => {
            print_bundles(&admin(addr, options).await?.list_bundles().await?, json);
            Ok(())
        }
        BundleCommand::Activate {
            digest,
            shadow,
            json,
        } => {
            let target = if shadow {
                BundleTarget::Shadow
            } else {
                BundleTarget::Active
            };
            print_bundles(
                &[admin(addr, options)
                    .await?
                    .activate(&digest, target)
                    .await?],
                json,
            );
            Ok(())
        }
        BundleCommand::Rollback { json } => {
            print_bundles(&[admin(addr, options).await?.rollback().await?], json);
            Ok(())
        }
        BundleCommand::Status { json } => {
            let status = admin(addr, options).await?.status().await?;
            let serving: Vec<BundleInfo> = status.active.into_iter().chain(status.shadow).collect();
            print_bundles(&serving, json);
            Ok(())
        }
    }
}

async fn snapshot(
    addr: &str,
    options: ClientOptions,
    command: SnapshotCommand,
) -> Result<(), CtlError> {
    match command {
        SnapshotCommand::Push { kind, file, json } => {
            let document =
                std::fs::read(&file).map_err(|e| local(format!("`{}`: {e}", file.display())))?;
            let snapshot = admin(addr, options)
                .await?
                .put_snapshot(&kind, document)
                .await?;
            print_snapshots(&[snapshot], json);
            Ok(())
        }
        SnapshotCommand::Status { json } => {
            print_snapshots(&admin(addr, options).await?.status().await?.snapshots, json);
            Ok(())
        }
    }
}

async fn status(addr: &str, options: ClientOptions, json: bool) -> Result<(), CtlError> {
    let status = admin(addr, options).await?.status().await?;
    if json {
        println!(
            "{}",
            json!({
                "active": status.active.as_ref().map(bundle_json),
                "shadow": status.shadow.as_ref().map(bundle_json),
                "snapshots": status.snapshots.iter().map(snapshot_json).collect::<Vec<_>>(),
                "generation": status.generation,
                "shadow_divergences": status.shadow_divergences,
                "active_kill_switches": status.active_kill_switches,
                "audit_records": status.audit_records,
                "audit_durability": status.audit_durability,
                "audit_queue_depth": status.audit_queue_depth,
                "audit_commits": status.audit_commits,
                "audit_refused": status.audit_refused,
                "audit_failed": status.audit_failed,
                "uptime_seconds": status.uptime_seconds,
                "instance_id": status.instance_id,
            })
        );
        return Ok(());
    }
    let serving: Vec<BundleInfo> = status
        .active
        .iter()
        .chain(&status.shadow)
        .cloned()
        .collect();
    print_bundles(&serving, false);
    println!();
    print_snapshots(&status.snapshots, false);
    println!();
    println!(
        "generation {}  uptime {}s  instance {}",
        status.generation, status.uptime_seconds, status.instance_id
    );
    println!(
        "kill switches {}  shadow divergences {}",
        status.active_kill_switches, status.shadow_divergences
    );
    println!(
        "audit ({}): records {}  commits {}  queued {}  refused {}  failed {}",
        status.audit_durability,
        status.audit_records,
        status.audit_commits,
        status.audit_queue_depth,
        status.audit_refused,
        status.audit_failed
    );
    Ok(())
}

fn bundle_json(bundle: &BundleInfo) -> Json {
    json!({
        "revision": bundle.revision,
        "digest": bundle.digest,
        "entrypoint": bundle.entrypoint,
        "engine": bundle.engine,
        "pushed_at": bundle.pushed_at,
        "size_bytes": bundle.size_bytes,
        "signed_by": bundle.signed_by,
        "active": bundle.active,
        "shadow": bundle.shadow,
        "tests_passed": bundle.tests_passed,
    })
}

fn snapshot_json(snapshot: &SnapshotInfo) -> Json {
    json!({
        "kind": snapshot.kind,
        "version": snapshot.version,
        "generated_at": snapshot.generated_at,
        "age_seconds": snapshot.age_seconds,
        "stale": snapshot.stale,
        "sha256": snapshot.sha256,
        "size_bytes": snapshot.size_bytes,
    })
}

fn print_bundles(bundles: &[BundleInfo], json: bool) {
    if json {
        println!("{}", Json::Array(bundles.iter().map(bundle_json).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = bundles
        .iter()
        .map(|b| {
            vec![
                if b.active {
                    "active"
                } else if b.shadow {
                    "shadow"
                } else {
                    ""
                }
                .to_owned(),
                b.revision.clone(),
                b.digest.chars().take(12).collect(),
                b.engine.clone(),
                if b.signed_by.is_empty() {
                    "-".to_owned()
                } else {
                    b.signed_by.clone()
                },
                b.tests_passed.to_string(),
                b.pushed_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            "STATE",
            "REVISION",
            "DIGEST",
            "ENGINE",
            "SIGNED BY",
            "TESTS",
            "PUSHED",
        ],
        &rows,
    );
}

fn print_snapshots(snapshots: &[SnapshotInfo], json: bool) {
    if json {
        println!(
            "{}",
            Json::Array(snapshots.iter().map(snapshot_json).collect())
        );
        return;
    }
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|s| {
            vec![
                s.kind.clone(),
                s.version.clone(),
                s.generated_at.clone(),
                format!("{}s", s.age_seconds),
                if s.stale { "STALE" } else { "fresh" }.to_owned(),
                s.size_bytes.to_string(),
            ]
        })
        .collect();
    table(
        &["KIND", "VERSION", "GENERATED", "AGE", "STATE", "BYTES"],
        &rows,
    );
}

/// A plain aligned table for people; `--json` is for scripts.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

async fn check(addr: &str, options: ClientOptions, args: CheckArgs) -> ExitCode {
    let (principal_type, principal_id) = match args.principal.split_once(':') {
        Some((kind, id)) => (kind.to_owned(), id.to_owned()),
        None => ("user".to_owned(), args.principal.clone()),
    };
    let (resource_type, resource_id) = match args.resource.split_once(':') {
        Some((kind, id)) => (kind.to_owned(), Some(id.to_owned())),
        None => (args.resource.clone(), None),
    };
    let mut builder = CheckBuilder::new(
        &args.platform,
        &args.agent,
        principal_id,
        &args.action,
        resource_type,
    )
    .principal_type(principal_type);
    if let Some(id) = resource_id {
        builder = builder.resource_id(id);
    }
    if let Some(id) = &args.request_id {
        builder = builder.request_id(id);
    }
    for actor in &args.delegated_by {
        builder = builder.delegated_by(actor);
    }
    for (key, value) in args.context.into_iter().flatten() {
        builder = builder.context(key, value);
    }
    for (key, value) in args.agent_attributes.into_iter().flatten() {
        builder = builder.agent_attribute(key, value);
    }
    for (key, value) in args.action_attributes.into_iter().flatten() {
        builder = builder.action_attribute(key, value);
    }
    for (key, value) in args.resource_attributes.into_iter().flatten() {
        builder = builder.resource_attribute(key, value);
    }

    let result = async {
        let mut client = WardenClient::connect(addr, options).await?;
        client.check(builder.build()).await
    }
    .await;
    match result {
        Ok(response) => {
            print_response(&response, args.json);
            ExitCode::from(match response.decision() {
                Decision::Allow => 0,
                Decision::RequireApproval => 2,
                Decision::Deny | Decision::Unspecified => 1,
            })
        }
        Err(e) => {
            eprintln!("wardenctl: {e}");
            ExitCode::from(match e {
                ClientError::Status(_) => EXIT_BAD_REQUEST,
                _ => EXIT_UNREACHABLE,
            })
        }
    }
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Allow => "ALLOW",
        Decision::Deny => "DENY",
        Decision::RequireApproval => "REQUIRE_APPROVAL",
        Decision::Unspecified => "UNSPECIFIED",
    }
}

fn print_response(response: &CheckResponse, as_json: bool) {
    if as_json {
        let document = json!({
            "decision": decision_name(response.decision()),
            "reasons": response.reasons,
            "decision_id": response.decision_id,
            "request_id": response.request_id,
            "policy_revision": response.policy_revision,
            "snapshot_versions": response.snapshot_versions,
            "kill_switch": response.kill_switch.as_ref().map(|k| json!({"id": k.id})),
        });
        println!("{document}");
        return;
    }
    println!("{}", decision_name(response.decision()));
    for reason in &response.reasons {
        println!("  reason: {reason}");
    }
    println!("  decision_id: {}", response.decision_id);
    if !response.policy_revision.is_empty() {
        println!("  policy_revision: {}", response.policy_revision);
    }
}
