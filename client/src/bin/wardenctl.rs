//! `wardenctl`: Warden's command-line client.
//!
//! Exit codes for `check`, for scripts: 0 ALLOW, 1 DENY, 2 REQUIRE_APPROVAL,
//! 3 or more an error (3: bad arguments or request, 4: cannot reach Warden).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value as Json, json};
use warden_client::{
    CheckBuilder, CheckResponse, ClientError, ClientOptions, Decision, WardenClient,
};

#[derive(Debug, Parser)]
#[command(name = "wardenctl", version, about = "Command-line client for Warden")]
struct Cli {
    /// Warden's decision listener.
    #[arg(
        long,
        global = true,
        env = "WARDEN_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    addr: String,
    /// Per-call deadline, e.g. `5s`.
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
        "m" => Ok(Duration::from_secs(number * 60)),
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
    let options = ClientOptions {
        connect_timeout: cli.timeout,
        request_timeout: cli.timeout,
    };
    match cli.command {
        Command::Check(args) => check(&cli.addr, options, args).await,
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
