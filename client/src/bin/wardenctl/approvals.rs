//! `wardenctl approvals`: list, show, approve, deny and revoke approval
//! tasks on the admin listener. Deciding needs a token with the role
//! `approver:<user id>`; the decision is that user's.

use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use serde_json::{Value as Json, json};
use warden_client::ClientOptions;
use warden_client::approval::{
    ApprovalTaskDetail, ApprovalTaskState, ApproverClient, ListApprovalTasksRequest, state_name,
    struct_to_json,
};

use super::{CtlError, local, parse_duration, table};

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Tasks you may decide (auditors: all), oldest first; pending ones
    /// unless --state says otherwise. `--json`: an array of tasks, as
    /// `show --json` prints each.
    List {
        #[arg(long, value_enum, default_value = "pending")]
        state: StateArg,
        /// Only tasks from this agent platform.
        #[arg(long)]
        platform: Option<String>,
        /// Only tasks on behalf of this principal: its id, or `TYPE:ID`.
        #[arg(long)]
        principal: Option<String>,
        /// Only this action, or those matching `prefix.*`.
        #[arg(long)]
        action: Option<String>,
        /// Most tasks to print; when more match, the token to continue
        /// with is written to standard error.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue a listing where an earlier one stopped.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// One task whole: who asks for what, the request exactly as an
    /// approval would allow it, who may approve, and the outcome.
    Show { task_id: String },
    /// Approve a pending task as your user; the platform may then repeat
    /// exactly the request it asked about.
    Approve {
        task_id: String,
        /// Shown to the platform and recorded.
        #[arg(long, default_value = "")]
        note: String,
        /// How long the approval holds (`30m`, `1h`); at most what the
        /// policy allows, which is the default.
        #[arg(long, value_parser = parse_duration)]
        valid_for: Option<Duration>,
    },
    /// Deny a pending task as your user.
    Deny {
        task_id: String,
        /// Shown to the platform and recorded.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Withdraw the approval a task gave; checks that carry it are denied
    /// from then on.
    Revoke {
        task_id: String,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl StateArg {
    fn state(self) -> ApprovalTaskState {
        match self {
            StateArg::Pending => ApprovalTaskState::Pending,
            StateArg::Approved => ApprovalTaskState::Approved,
            StateArg::Denied => ApprovalTaskState::Denied,
            StateArg::Expired => ApprovalTaskState::Expired,
            StateArg::Cancelled => ApprovalTaskState::Cancelled,
        }
    }
}

pub async fn run(
    addr: &str,
    options: ClientOptions,
    command: ApprovalsCommand,
    json: bool,
) -> Result<(), CtlError> {
    let mut client = ApproverClient::connect(addr, options).await?;
    match command {
        ApprovalsCommand::List {
            state,
            platform,
            principal,
            action,
            limit,
            page_token,
        } => {
            let request = ListApprovalTasksRequest {
                state: state.state() as i32,
                platform: platform.unwrap_or_default(),
                principal_id: principal.unwrap_or_default(),
                action: action.unwrap_or_default(),
                page_size: 0,
                page_token: page_token.unwrap_or_default(),
            };
            let (tasks, next) = client.list_all(request, limit).await?;
            print_tasks(&tasks, json);
            if !next.is_empty() {
                eprintln!("more tasks match; continue with --page-token {next}");
            }
            Ok(())
        }
        ApprovalsCommand::Show { task_id } => {
            let task = client.detail(&task_id).await?;
            if json {
                outln!("{}", task_json(&task));
            } else {
                print_detail(&task)?;
            }
            Ok(())
        }
        ApprovalsCommand::Approve {
            task_id,
            note,
            valid_for,
        } => {
            let task = client.approve(&task_id, &note, valid_for).await?;
            print_one(&task, json);
            Ok(())
        }
        ApprovalsCommand::Deny { task_id, note } => {
            let task = client.deny(&task_id, &note).await?;
            print_one(&task, json);
            Ok(())
        }
        ApprovalsCommand::Revoke { task_id, reason } => {
            let task = client.revoke(&task_id, &reason).await?;
            print_one(&task, json);
            Ok(())
        }
    }
}

fn state_of(detail: &ApprovalTaskDetail) -> &'static str {
    detail
        .task
        .as_ref()
        .map_or("unknown", |task| state_name(task.state()))
}

/// A task for scripts: the task's own fields, then the detail's, flat.
pub fn task_json(detail: &ApprovalTaskDetail) -> Json {
    let task = detail.task.clone().unwrap_or_default();
    let requirement = detail.requirement.clone().unwrap_or_default();
    json!({
        "id": task.id,
        "state": state_name(task.state()),
        "created_at": task.created_at,
        "expires_at": task.expires_at,
        "decided_at": task.decided_at,
        "evaluation_id": task.evaluation_id,
        "note": task.note,
        "approval": task.approval.as_ref().map(|a| json!({
            "id": a.id,
            "approved_at": a.approved_at,
            "approved_until": a.approved_until,
        })),
        "platform": detail.platform,
        "agent_id": detail.agent_id,
        "principal": detail.principal,
        "action": detail.action,
        "resource": detail.resource,
        "request": detail.request.as_ref().map(struct_to_json),
        "requirement": {
            "approvers": requirement.approvers,
            "self_approval": requirement.self_approval,
            "max_ttl_seconds": requirement.max_ttl_seconds,
            "uses": requirement.uses,
            "template": requirement.template,
        },
        "justification": detail.justification,
        "policy_reasons": detail.policy_reasons,
        "requested_by": detail.requested_by,
        "decided_by": detail.decided_by,
        "uses": detail.uses,
        "used": detail.used,
        "revoked_at": detail.revoked_at,
        "revoked_by": detail.revoked_by,
        "can_decide": detail.can_decide,
    })
}

/// The result of approve, deny or revoke: one object, or one row.
fn print_one(task: &ApprovalTaskDetail, json: bool) {
    if json {
        outln!("{}", task_json(task));
    } else {
        print_tasks(std::slice::from_ref(task), false);
    }
}

fn dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value.to_owned()
    }
}

pub fn print_tasks(tasks: &[ApprovalTaskDetail], json: bool) {
    if json {
        outln!("{}", Json::Array(tasks.iter().map(task_json).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let task = t.task.clone().unwrap_or_default();
            let approvers = t
                .requirement
                .as_ref()
                .map(|r| approvers(r.approvers.as_slice(), r.self_approval))
                .unwrap_or_default();
            vec![
                task.id,
                state_of(t).to_owned(),
                task.created_at,
                if task.decided_at.is_empty() {
                    task.expires_at
                } else {
                    task.decided_at
                },
                format!("{}/{}", t.platform, t.agent_id),
                t.principal.clone(),
                t.action.clone(),
                t.resource.clone(),
                approvers,
                if t.can_decide { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "TASK",
            "STATE",
            "CREATED",
            "EXPIRES/DECIDED",
            "PLATFORM/AGENT",
            "PRINCIPAL",
            "ACTION",
            "RESOURCE",
            "APPROVERS",
            "YOU DECIDE",
        ],
        &rows,
    );
}

/// Who may approve, as one cell: `group:security`, `self`, or both.
fn approvers(approvers: &[String], self_approval: bool) -> String {
    let mut who: Vec<&str> = approvers.iter().map(String::as_str).collect();
    if self_approval {
        who.push("self");
    }
    if who.is_empty() {
        "-".to_owned()
    } else {
        who.join(",")
    }
}

/// Seconds as people say them: `1h`, `1h30m`, `45s`.
fn duration_text(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".to_owned();
    }
    [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")]
        .into_iter()
        .scan(seconds, |left, (unit, name)| {
            let count = *left / unit;
            *left %= unit;
            Some((count > 0).then(|| format!("{count}{name}")))
        })
        .flatten()
        .collect()
}

fn print_detail(detail: &ApprovalTaskDetail) -> Result<(), CtlError> {
    let task = detail.task.clone().unwrap_or_default();
    let requirement = detail.requirement.clone().unwrap_or_default();
    let approval = task.approval.clone().unwrap_or_default();
    let mut rows: Vec<(&str, String)> = vec![
        ("task", task.id),
        ("state", state_of(detail).to_owned()),
        (
            "you may decide",
            if detail.can_decide { "yes" } else { "no" }.to_owned(),
        ),
        ("created", task.created_at),
        ("expires", task.expires_at),
        ("decided", dash(&task.decided_at)),
        ("evaluation", task.evaluation_id),
        ("platform", detail.platform.clone()),
        ("agent", detail.agent_id.clone()),
        ("principal", detail.principal.clone()),
        ("action", detail.action.clone()),
        ("resource", detail.resource.clone()),
        ("justification", dash(&detail.justification)),
        ("policy reasons", dash(&detail.policy_reasons.join(","))),
        ("requested by", dash(&detail.requested_by)),
        (
            "approvers",
            approvers(&requirement.approvers, requirement.self_approval),
        ),
        (
            "self approval",
            if requirement.self_approval {
                "allowed"
            } else {
                "not allowed"
            }
            .to_owned(),
        ),
        ("max validity", duration_text(requirement.max_ttl_seconds)),
        ("uses per approval", requirement.uses.to_string()),
        ("template", dash(&requirement.template)),
        ("decided by", dash(&detail.decided_by)),
        ("note", dash(&task.note)),
    ];
    if !approval.id.is_empty() {
        rows.extend([
            ("approval", approval.id),
            ("approved at", approval.approved_at),
            ("approved until", approval.approved_until),
            ("used", format!("{} of {}", detail.used, detail.uses)),
        ]);
    }
    if !detail.revoked_at.is_empty() {
        rows.extend([
            ("revoked at", detail.revoked_at.clone()),
            ("revoked by", dash(&detail.revoked_by)),
        ]);
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, value)| vec![name.to_owned(), value])
        .collect();
    table(&["FIELD", "VALUE"], &rows);
    outln!();
    outln!("request (exactly what an approval allows):");
    let request = detail.request.as_ref().map_or(Json::Null, struct_to_json);
    outln!("{}", serde_json::to_string_pretty(&request).map_err(local)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(3600), "1h");
        assert_eq!(duration_text(5400), "1h30m");
        assert_eq!(duration_text(45), "45s");
        assert_eq!(duration_text(90_061), "1d1h1m1s");
        assert_eq!(duration_text(0), "0s");
    }
}
