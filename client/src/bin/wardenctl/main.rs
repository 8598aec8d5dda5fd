//! `wardenctl`: Warden's command-line client.
//!
//! Output is an aligned table (or a short report) for people; the global
//! `--json`, accepted anywhere on the line, prints JSON for scripts: one
//! object for one result, an array for a list, and for `audit query` and
//! `audit tail` one stored entry per line.
//!
//! Exit codes, for scripts (`exit.rs` maps outcomes and gRPC codes to them;
//! `wardenctl --help` lists them too):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; `check`: ALLOW |
//! | 1 | `check`: DENY; `audit verify`, `export`, `merge`: a chain is broken |
//! | 2 | `check`: REQUIRE_APPROVAL |
//! | 3 | bad arguments, input or configuration, a confirmation not given, or a request Warden rejected (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `NOT_FOUND`, `ALREADY_EXISTS`, `OUT_OF_RANGE`) |
//! | 4 | Warden unreachable or unavailable: no connection, `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `ABORTED`, `CANCELLED` |
//! | 5 | `UNAUTHENTICATED` or `PERMISSION_DENIED` |
//! | 6 | anything else: a server fault, an unexpected answer, a local failure |

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// `outln!` for standard output that may close early (see `output.rs`).
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

mod audit;
mod connection;
mod exit;
mod kill;
mod output;
use serde_json::{Map, Value as Json, json};
use warden_bundle::signature;
use warden_client::admin::{BundleInfo, BundleTarget, SnapshotInfo};
use warden_client::{
    AdminClient, CheckBuilder, CheckResponse, ClientError, ClientOptions, Decision, WardenClient,
};

#[derive(Debug, Parser)]
#[command(
    name = "wardenctl",
    version,
    about = "Command-line client for Warden",
    after_help = exit::HELP
)]
struct Cli {
    #[command(flatten)]
    connection: connection::ConnectionArgs,
    /// Per-call deadline, e.g. `5s` (bundle pushes get at least 5 minutes).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,
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
    Status,
    /// Print a shell completion script.
    ///
    /// For example `source <(wardenctl completions bash)` in `~/.bashrc`, or
    /// `wardenctl completions zsh > ~/.zfunc/_wardenctl`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
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
    },
    /// The stored bundles, newest first.
    List,
    /// Serve a stored bundle (by digest or a unique prefix of 8+ digits).
    Activate {
        digest: String,
        /// As the shadow instead of the active bundle.
        #[arg(long)]
        shadow: bool,
    },
    /// Serve the previously active bundle again.
    Rollback,
    /// Stop evaluating the shadow bundle (it stays stored, until pruned).
    ClearShadow,
    /// The active and shadow bundles.
    Status,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Replace a snapshot; its version must be newer than the current one.
    Push {
        #[arg(value_parser = ["identity", "entitlements"])]
        kind: String,
        file: PathBuf,
    },
    /// Versions and ages of the loaded snapshots.
    #[command(visible_alias = "list")]
    Status,
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap would exit 2, which `check` means as REQUIRE_APPROVAL;
            // help and version go to standard output and are no error.
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
    };
    if let Command::Completions { shell } = cli.command {
        return report(completions(shell));
    }
    let connection = match cli.connection.resolve(cli.timeout) {
        Ok(connection) => connection,
        Err(e) => return report(Err(e.into())),
    };
    let (addr, admin_addr, options, json) = (
        connection.addr.as_str(),
        connection.admin_addr.as_str(),
        connection.options,
        cli.json,
    );
    match cli.command {
        Command::Check(args) => check(addr, options, args, json).await,
        Command::Bundle(command) => report(bundle(admin_addr, options, command, json).await),
        Command::Snapshot(command) => report(snapshot(admin_addr, options, command, json).await),
        Command::Audit(command) => report(audit::run(admin_addr, options, command, json).await),
        Command::Kill(command) => report(kill::run(admin_addr, options, command, json).await),
        Command::Status => report(status(admin_addr, options, json).await),
        // Printed above, before any configuration is read.
        Command::Completions { .. } => ExitCode::SUCCESS,
    }
}

fn completions(shell: clap_complete::Shell) -> Result<(), CtlError> {
    // Into memory first: `generate` panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "wardenctl", &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| local(format!("cannot write the script: {e}")))
}

fn report(result: Result<(), CtlError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wardenctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

enum CtlError {
    Client(ClientError),
    /// The operator's input will not do: a file that cannot be read, a
    /// malformed value, a confirmation not given.
    Usage(String),
    /// Something failed on this machine, such as writing a file.
    Local(String),
    /// The command worked and found a problem (a broken audit chain).
    Finding(String),
}

impl CtlError {
    fn exit_code(&self) -> u8 {
        match self {
            CtlError::Client(e) => exit::for_client(e),
            CtlError::Usage(_) => exit::USAGE,
            CtlError::Local(_) => exit::FAILED,
            CtlError::Finding(_) => exit::DENY,
        }
    }
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::Client(e) => e.fmt(f),
            CtlError::Usage(message) | CtlError::Local(message) | CtlError::Finding(message) => {
                f.write_str(message)
            }
        }
    }
}

impl From<ClientError> for CtlError {
    fn from(e: ClientError) -> Self {
        CtlError::Client(e)
    }
}

fn usage(message: impl std::fmt::Display) -> CtlError {
    CtlError::Usage(message.to_string())
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
    json: bool,
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
                .map_err(|e| usage(format!("`{}`: {e}", dir.display())))?;
            files.remove(signature::SIGNATURES_FILE);
            let signed = signing_key.is_some();
            if let Some(path) = signing_key {
                let algorithm = signature::algorithm(&signing_alg).ok_or_else(|| {
                    usage(format!("`{signing_alg}` is not RS256, ES256 or HS256"))
                })?;
                let material = std::fs::read(&path)
                    .map_err(|e| usage(format!("`{}`: {e}", path.display())))?;
                let key =
                    signature::SigningKey::new(&key_id, algorithm, &material).map_err(usage)?;
                let signatures = signature::sign(&files, &key, scope.as_deref()).map_err(local)?;
                files.insert(signature::SIGNATURES_FILE.to_owned(), signatures);
            }
            let archive = warden_bundle::write_tar_gz(&files).map_err(local)?;
            std::fs::write(&output, &archive)
                .map_err(|e| local(format!("`{}`: {e}", output.display())))?;
            if json {
                outln!(
                    "{}",
                    json!({
                        "output": output.display().to_string(),
                        "files": files.len(),
                        "size_bytes": archive.len(),
                        "signed": signed,
                    })
                );
            } else {
                outln!(
                    "wrote {} ({} files, {} bytes{})",
                    output.display(),
                    files.len(),
                    archive.len(),
                    if signed { ", signed" } else { "" }
                );
            }
            Ok(())
        }
        BundleCommand::Push {
            file,
            shadow,
            store_only,
        } => {
            let archive =
                std::fs::read(&file).map_err(|e| usage(format!("`{}`: {e}", file.display())))?;
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
            print_bundle(&result?, json);
            Ok(())
        }
        BundleCommand::List => {
            print_bundles(&admin(addr, options).await?.list_bundles().await?, json);
            Ok(())
        }
        BundleCommand::Activate { digest, shadow } => {
            let target = if shadow {
                BundleTarget::Shadow
            } else {
                BundleTarget::Active
            };
            print_bundle(
                &admin(addr, options)
                    .await?
                    .activate(&digest, target)
                    .await?,
                json,
            );
            Ok(())
        }
        BundleCommand::Rollback => {
            print_bundle(&admin(addr, options).await?.rollback().await?, json);
            Ok(())
        }
        BundleCommand::ClearShadow => {
            match admin(addr, options).await?.clear_shadow().await? {
                Some(bundle) => print_bundle(&bundle, json),
                None if json => outln!("null"),
                None => outln!("no shadow bundle was being evaluated"),
            }
            Ok(())
        }
        BundleCommand::Status => {
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
    json: bool,
) -> Result<(), CtlError> {
    match command {
        SnapshotCommand::Push { kind, file } => {
            let document =
                std::fs::read(&file).map_err(|e| usage(format!("`{}`: {e}", file.display())))?;
            let snapshot = admin(addr, options)
                .await?
                .put_snapshot(&kind, document)
                .await?;
            if json {
                outln!("{}", snapshot_json(&snapshot));
            } else {
                print_snapshots(&[snapshot], false);
            }
            Ok(())
        }
        SnapshotCommand::Status => {
            print_snapshots(&admin(addr, options).await?.status().await?.snapshots, json);
            Ok(())
        }
    }
}

async fn status(addr: &str, options: ClientOptions, json: bool) -> Result<(), CtlError> {
    let status = admin(addr, options).await?.status().await?;
    if json {
        outln!(
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
                "cluster": status.cluster,
                "replica_id": status.replica_id,
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
    outln!();
    print_snapshots(&status.snapshots, false);
    outln!();
    let rows: Vec<Vec<String>> = [
        ("instance", status.instance_id),
        ("cluster", status.cluster),
        ("replica", status.replica_id),
        ("uptime", format!("{}s", status.uptime_seconds)),
        ("generation", status.generation.to_string()),
        ("kill switches", status.active_kill_switches.to_string()),
        ("shadow divergences", status.shadow_divergences.to_string()),
        ("audit durability", status.audit_durability),
        ("audit records", status.audit_records.to_string()),
        ("audit commits", status.audit_commits.to_string()),
        ("audit queued", status.audit_queue_depth.to_string()),
        ("audit refused", status.audit_refused.to_string()),
        ("audit failed", status.audit_failed.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| vec![name.to_owned(), value])
    .collect();
    table(&["COUNTER", "VALUE"], &rows);
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

/// One bundle, the answer to a push, an activation or a rollback.
fn print_bundle(bundle: &BundleInfo, json: bool) {
    if json {
        outln!("{}", bundle_json(bundle));
    } else {
        print_bundles(std::slice::from_ref(bundle), false);
    }
}

fn print_bundles(bundles: &[BundleInfo], json: bool) {
    if json {
        outln!("{}", Json::Array(bundles.iter().map(bundle_json).collect()));
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
        outln!(
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
        outln!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

async fn check(addr: &str, options: ClientOptions, args: CheckArgs, json: bool) -> ExitCode {
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
            print_response(&response, json);
            ExitCode::from(match response.decision() {
                Decision::Allow => exit::SUCCESS,
                Decision::RequireApproval => exit::REQUIRE_APPROVAL,
                Decision::Deny | Decision::Unspecified => exit::DENY,
            })
        }
        Err(e) => report(Err(e.into())),
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
        outln!("{document}");
        return;
    }
    outln!("{}", decision_name(response.decision()));
    for reason in &response.reasons {
        outln!("  reason: {reason}");
    }
    outln!("  decision_id: {}", response.decision_id);
    if !response.policy_revision.is_empty() {
        outln!("  policy_revision: {}", response.policy_revision);
    }
}
