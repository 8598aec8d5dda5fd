//! `wardenctl check`: ask for a decision, and exit with it.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value as Json, json};
use warden_client::{CheckBuilder, CheckResponse, ClientOptions, Decision, WardenClient};

use super::report;
use crate::exit;

#[derive(Debug, Args)]
pub struct CheckArgs {
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
    /// Who will see the result: `user:ID`, `group:ID`, `public` or
    /// `external:DOMAIN`; repeat for several.
    #[arg(long)]
    audience: Vec<String>,
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

pub fn parse_object(value: &str) -> Result<Map<String, Json>, String> {
    match serde_json::from_str(value) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

pub async fn run(addr: &str, options: ClientOptions, args: CheckArgs, json: bool) -> ExitCode {
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
    for entry in &args.audience {
        builder = builder.audience(entry);
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

pub fn decision_name(decision: Decision) -> &'static str {
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
            "access_request": response.access_request.as_ref().map(|a| json!({
                "evaluation_id": a.evaluation_id,
                "evaluated_at": a.evaluated_at,
                "expires_at": a.expires_at,
                "binding_token": a.binding_token,
                "approvers": a.requirement.as_ref().map(|r| r.approvers.clone()),
                "self_approval": a.requirement.as_ref().map(|r| r.self_approval),
            })),
            "approval": response.approval.as_ref().map(|a| json!({
                "id": a.id,
                "approved_until": a.approved_until,
                "uses_left": a.uses_left,
            })),
            "next_action": response.next_action,
            "retry_after_seconds": response.retry_after_seconds,
            "audience": response.audience.as_ref().map(|g| json!({
                "members": g.members,
                "lacking_count": g.lacking_count,
                "lacking": g.lacking,
            })),
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
    if let Some(gap) = &response.audience {
        outln!(
            "  audience: {} of {} may not read it: {}{}",
            gap.lacking_count,
            gap.members,
            gap.lacking.join(", "),
            if (gap.lacking_count as usize) > gap.lacking.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    if let Some(access) = &response.access_request {
        let approvers = access
            .requirement
            .as_ref()
            .map(|r| {
                let mut who = r.approvers.clone();
                if r.self_approval {
                    who.push("self".into());
                }
                who.join(",")
            })
            .unwrap_or_default();
        outln!("  approval can be requested until {}", access.expires_at);
        outln!("  approvers: {approvers}");
    }
    if let Some(approval) = &response.approval {
        outln!(
            "  approval: {} (until {}, {} uses left)",
            approval.id,
            approval.approved_until,
            approval.uses_left
        );
    }
    if !response.next_action.is_empty() {
        outln!("  next_action: {}", response.next_action);
        if response.retry_after_seconds > 0 {
            outln!("  retry_after_seconds: {}", response.retry_after_seconds);
        }
    }
}
