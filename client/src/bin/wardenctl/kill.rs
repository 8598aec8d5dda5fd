//! `wardenctl kill`: engage, release and list kill switches.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value as Json, json};
use warden_client::ClientOptions;
use warden_client::admin::{
    EngageKillSwitchRequest, KillSwitch, KillSwitchMode, KillSwitchScope, KillSwitchState,
};

use super::{CtlError, admin, local, parse_duration, table, usage};

mod fan_out;

#[derive(Debug, Subcommand)]
pub enum KillCommand {
    /// Stop agents now: every check matching the scope is denied from the
    /// moment this returns. With no scope it stops everything (asks first
    /// unless --yes).
    Engage(EngageArgs),
    /// Release a switch by id.
    Release {
        id: String,
        /// Why it is released (recorded).
        #[arg(long)]
        reason: String,
    },
    /// Engaged switches, and the most recently released or expired ones.
    List {
        /// How many ended switches to show.
        #[arg(long, default_value_t = 20)]
        ended: u32,
        /// A replica's admin listener, `HOST:PORT` or a URL, instead of
        /// --admin-addr; repeat for each: lists every replica's switches.
        #[arg(long = "replica", value_name = "HOST:PORT|URL")]
        replicas: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Deny every matching check.
    DenyAll,
    /// Deny matching checks unless the action ends in a read verb.
    DenyMutating,
}

#[derive(Debug, Args)]
pub struct EngageArgs {
    /// Only checks from this agent platform.
    #[arg(long)]
    platform: Option<String>,
    /// Only checks by this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Only checks on behalf of this principal id.
    #[arg(long)]
    principal: Option<String>,
    /// Only actions matching this pattern (`documents.*`, `iam.grant`).
    #[arg(long)]
    action: Option<String>,
    /// Only actions on this resource type.
    #[arg(long)]
    resource_type: Option<String>,
    /// Only checks from this agent session (the id at the server's
    /// `[limits] session_path`, by default `context.session_id`).
    #[arg(long)]
    session: Option<String>,
    #[arg(long, value_enum, default_value = "deny-all")]
    mode: Mode,
    /// Why (returned with every denied check, and recorded).
    #[arg(long)]
    reason: String,
    /// Release it automatically after this long (`30m`, `2h`, `1d`).
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// Engage a global switch without asking.
    #[arg(long)]
    yes: bool,
    /// The switch's id (`ks-…`); generated when absent. Give the id a
    /// fan-out printed to send the same switch again.
    #[arg(long)]
    id: Option<String>,
    /// A replica's admin listener, `HOST:PORT` or a URL, instead of
    /// --admin-addr; repeat for each. The switch (one id) goes to every
    /// replica directly, so it holds even while etcd is down; the exit
    /// code is non-zero unless every replica took it.
    #[arg(long = "replica", value_name = "HOST:PORT|URL")]
    replicas: Vec<String>,
}

/// Who is at the keyboard, for the record.
fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
}

pub async fn run(
    addr: &str,
    options: ClientOptions,
    command: KillCommand,
    json: bool,
) -> Result<(), CtlError> {
    match command {
        KillCommand::Engage(args) => {
            let scope = KillSwitchScope {
                platform: args.platform.unwrap_or_default(),
                agent_id: args.agent.unwrap_or_default(),
                principal_id: args.principal.unwrap_or_default(),
                action: args.action.unwrap_or_default(),
                resource_type: args.resource_type.unwrap_or_default(),
                session_id: args.session.unwrap_or_default(),
            };
            let global = scope == KillSwitchScope::default();
            if global && !args.yes {
                confirm_global()?;
            }
            let fan_out = !args.replicas.is_empty();
            // One id for every replica, so they converge on one switch.
            let id = match args.id {
                Some(id) => id,
                None if fan_out => format!("ks-{}", uuid::Uuid::now_v7()),
                None => String::new(),
            };
            let request = EngageKillSwitchRequest {
                scope: Some(scope),
                mode: match args.mode {
                    Mode::DenyAll => KillSwitchMode::DenyAll,
                    Mode::DenyMutating => KillSwitchMode::DenyMutating,
                } as i32,
                reason: args.reason,
                expires_at: String::new(),
                ttl_seconds: args.ttl.map_or(0, |ttl| ttl.as_secs().max(1)),
                global,
                engaged_by: operator(),
                id,
            };
            if fan_out {
                return fan_out::engage(&args.replicas, &options, request, json).await;
            }
            let switch = admin(addr, options)
                .await?
                .engage_kill_switch(request)
                .await?;
            print_switches(&[switch], json);
            Ok(())
        }
        KillCommand::Release { id, reason } => {
            let switch = admin(addr, options)
                .await?
                .release_kill_switch(&id, &reason, &operator())
                .await?;
            print_switches(&[switch], json);
            Ok(())
        }
        KillCommand::List { ended, replicas } if !replicas.is_empty() => {
            fan_out::list(&replicas, &options, ended, json).await
        }
        KillCommand::List { ended, .. } => {
            let list = admin(addr, options)
                .await?
                .list_kill_switches(ended)
                .await?;
            if json {
                outln!(
                    "{}",
                    json!({
                        "active": list.active.iter().map(switch_json).collect::<Vec<_>>(),
                        "ended": list.ended.iter().map(switch_json).collect::<Vec<_>>(),
                    })
                );
            } else {
                outln!("engaged:");
                print_switches(&list.active, false);
                outln!();
                outln!("released or expired:");
                print_switches(&list.ended, false);
            }
            Ok(())
        }
    }
}

/// A global switch stops every agent on every platform; make the operator
/// say so. Without a terminal there is nobody to ask, so `--yes` is needed.
fn confirm_global() -> Result<(), CtlError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(usage(
            "refusing to engage a global kill switch without confirmation; pass --yes",
        ));
    }
    eprint!("This denies EVERY check from every agent. Type `global` to engage: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| local(format!("cannot read the confirmation: {e}")))?;
    if answer.trim() == "global" {
        Ok(())
    } else {
        Err(usage("not confirmed; nothing was engaged"))
    }
}

fn scope_text(scope: Option<&KillSwitchScope>) -> String {
    let Some(scope) = scope else {
        return "global".into();
    };
    let parts: Vec<String> = [
        ("platform", &scope.platform),
        ("agent", &scope.agent_id),
        ("principal", &scope.principal_id),
        ("action", &scope.action),
        ("resource_type", &scope.resource_type),
        ("session", &scope.session_id),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, value)| format!("{name}={value}"))
    .collect();
    if parts.is_empty() {
        "global".into()
    } else {
        parts.join(" ")
    }
}

fn mode_name(mode: i32) -> &'static str {
    match KillSwitchMode::try_from(mode) {
        Ok(KillSwitchMode::DenyMutating) => "deny_mutating",
        _ => "deny_all",
    }
}

fn state_name(state: i32) -> &'static str {
    match KillSwitchState::try_from(state) {
        Ok(KillSwitchState::Active) => "active",
        Ok(KillSwitchState::Released) => "released",
        Ok(KillSwitchState::Expired) => "expired",
        _ => "unknown",
    }
}

pub fn switch_json(switch: &KillSwitch) -> Json {
    let scope = switch.scope.clone().unwrap_or_default();
    json!({
        "id": switch.id,
        "scope": {
            "platform": scope.platform,
            "agent_id": scope.agent_id,
            "principal_id": scope.principal_id,
            "action": scope.action,
            "resource_type": scope.resource_type,
            "session_id": scope.session_id,
        },
        "mode": mode_name(switch.mode),
        "reason": switch.reason,
        "engaged_by": switch.engaged_by,
        "engaged_at": switch.engaged_at,
        "expires_at": switch.expires_at,
        "state": state_name(switch.state),
        "ended_at": switch.ended_at,
        "ended_by": switch.ended_by,
        "end_reason": switch.end_reason,
        "pending_replication": switch.pending_replication,
    })
}

pub fn print_switches(switches: &[KillSwitch], json: bool) {
    if json {
        for switch in switches {
            outln!("{}", switch_json(switch));
        }
        return;
    }
    let rows: Vec<Vec<String>> = switches
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                if s.pending_replication {
                    format!("{} (pending)", state_name(s.state))
                } else {
                    state_name(s.state).to_owned()
                },
                scope_text(s.scope.as_ref()),
                mode_name(s.mode).to_owned(),
                s.engaged_at.clone(),
                if s.ended_at.is_empty() {
                    s.expires_at.clone()
                } else {
                    s.ended_at.clone()
                },
                s.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "SCOPE",
            "MODE",
            "ENGAGED",
            "EXPIRES/ENDED",
            "REASON",
        ],
        &rows,
    );
}
