//! The command line: the global flags and the commands, each command's
//! own arguments defined beside the code that runs it.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::{approvals, audit, bundle, check, connection, exit, kill, limits, search, snapshot};

#[derive(Debug, Parser)]
#[command(
    name = "wardenctl",
    version,
    about = "Command-line client for Warden",
    after_help = exit::HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub connection: connection::ConnectionArgs,
    /// Per-call deadline, e.g. `5s` (bundle pushes get at least 5 minutes).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask whether an agent may take an action; prints the decision and its
    /// reasons. Exit code: 0 allow, 1 deny, 2 require approval.
    Check(check::CheckArgs),
    /// What an agent may do: which actions (tool filtering), which
    /// resources, or which principals, each result the decision a check
    /// would get.
    #[command(subcommand)]
    Search(search::SearchCommand),
    /// Policy bundles: build, push, list, activate, roll back.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Identity and entitlement snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// The audit trail: query, tail, export, verify.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Incident kill switches: engage, release, list.
    #[command(subcommand)]
    Kill(kill::KillCommand),
    /// Human approval of REQUIRE_APPROVAL decisions: list, show, approve,
    /// deny, revoke (deciding needs the role `approver:<user id>`).
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// Budgets and tripwires: the rules in force and the hottest keys with
    /// their usage against max; `limits reset` forgets a key's usage.
    Limits(limits::LimitsArgs),
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

pub fn parse_duration(value: &str) -> Result<Duration, String> {
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
