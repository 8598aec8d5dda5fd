//! `wardenctl search`: what may an agent do, on what, for whom.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value as Json, json};
use warden_client::{CheckBuilder, ClientOptions, Decision, PageRequest, WardenClient};

use super::report;
use crate::check::{decision_name, parse_object};
use crate::error::CtlError;
use crate::table;

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Which actions the agent may take on a resource for a principal. With
    /// `--candidate` (repeat; the platform's tools), each candidate's
    /// outcome; without, the actions Warden finds allowed.
    Actions(ActionsArgs),
    /// Which resources of a type the agent may act on for a principal.
    Resources(ResourcesArgs),
    /// Which principals the agent may act for, on one resource.
    Subjects(SubjectsArgs),
}

#[derive(Debug, Args)]
pub struct Common {
    /// The calling agent platform.
    #[arg(long)]
    platform: String,
    /// The agent's id.
    #[arg(long)]
    agent: String,
    /// Actor between the principal and the agent; repeat, outermost first.
    #[arg(long = "delegated-by")]
    delegated_by: Vec<String>,
    /// Context as a JSON object.
    #[arg(long, value_parser = parse_object)]
    context: Option<Map<String, Json>>,
    /// Results per page (0: as many as one call evaluates).
    #[arg(long, default_value_t = 0)]
    page_size: u32,
    /// Stop after this many results (0: all).
    #[arg(long, default_value_t = 0)]
    max_results: usize,
}

#[derive(Debug, Args)]
pub struct ActionsArgs {
    #[command(flatten)]
    common: Common,
    /// Whom the agent acts for, `TYPE:ID`; a bare id is a user.
    #[arg(long)]
    principal: String,
    /// The resource, `TYPE:ID` or just `TYPE`.
    #[arg(long)]
    resource: String,
    /// An action name to decide on; repeat for several.
    #[arg(long = "candidate")]
    candidates: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ResourcesArgs {
    #[command(flatten)]
    common: Common,
    /// Whom the agent acts for, `TYPE:ID`; a bare id is a user.
    #[arg(long)]
    principal: String,
    /// Dotted action name.
    #[arg(long)]
    action: String,
    /// The type of the resources to find.
    #[arg(long)]
    resource_type: String,
}

#[derive(Debug, Args)]
pub struct SubjectsArgs {
    #[command(flatten)]
    common: Common,
    /// The kind of principal to find.
    #[arg(long, default_value = "user")]
    subject_type: String,
    /// Dotted action name.
    #[arg(long)]
    action: String,
    /// The resource, `TYPE:ID`.
    #[arg(long)]
    resource: String,
}

/// One result row: what was found, its outcome and reasons.
struct Row {
    /// `NAME`, `TYPE:ID`, or `TYPE:*` for every resource of the type.
    value: String,
    every_resource: bool,
    decision: Decision,
    reasons: Vec<String>,
}

fn split(value: &str, default_kind: &str) -> (String, Option<String>) {
    match value.split_once(':') {
        Some((kind, id)) => (kind.to_owned(), Some(id.to_owned())),
        None if default_kind.is_empty() => (value.to_owned(), None),
        None => (default_kind.to_owned(), Some(value.to_owned())),
    }
}

fn builder(
    common: &Common,
    principal: (String, Option<String>),
    action: &str,
    resource: (String, Option<String>),
) -> CheckBuilder {
    let mut builder = CheckBuilder::new(
        &common.platform,
        &common.agent,
        principal.1.unwrap_or_default(),
        action,
        resource.0,
    )
    .principal_type(principal.0);
    if let Some(id) = resource.1 {
        builder = builder.resource_id(id);
    }
    for actor in &common.delegated_by {
        builder = builder.delegated_by(actor);
    }
    for (key, value) in common.context.clone().into_iter().flatten() {
        builder = builder.context(key, value);
    }
    builder
}

pub async fn run(
    addr: &str,
    options: ClientOptions,
    command: SearchCommand,
    json: bool,
) -> ExitCode {
    report(search(addr, options, command, json).await)
}

async fn search(
    addr: &str,
    options: ClientOptions,
    command: SearchCommand,
    json: bool,
) -> Result<(), CtlError> {
    let mut client = WardenClient::connect(addr, options).await?;
    let (target, header, common, rows) = match command {
        SearchCommand::Actions(args) => {
            let mut request = builder(
                &args.common,
                split(&args.principal, "user"),
                "-",
                split(&args.resource, ""),
            )
            .search_actions(args.candidates);
            let mut rows = Vec::new();
            loop {
                request.page = Some(page(&args.common, &request.page));
                let answer = client.search_actions(request.clone()).await?;
                rows.extend(answer.results.into_iter().map(|r| Row {
                    decision: r.decision(),
                    value: r.name,
                    every_resource: false,
                    reasons: r.reasons,
                }));
                if !more(
                    &args.common,
                    rows.len(),
                    answer.page.as_ref(),
                    &mut request.page,
                ) {
                    break;
                }
            }
            ("actions", "ACTION", args.common, rows)
        }
        SearchCommand::Resources(args) => {
            let mut request = builder(
                &args.common,
                split(&args.principal, "user"),
                &args.action,
                (args.resource_type.clone(), None),
            )
            .search_resources();
            let mut rows = Vec::new();
            loop {
                request.page = Some(page(&args.common, &request.page));
                let answer = client.search_resources(request.clone()).await?;
                rows.extend(answer.results.into_iter().map(|r| Row {
                    decision: r.decision(),
                    value: if r.every_resource {
                        format!("{}:*", args.resource_type)
                    } else {
                        format!("{}:{}", args.resource_type, r.id)
                    },
                    every_resource: r.every_resource,
                    reasons: r.reasons,
                }));
                if !more(
                    &args.common,
                    rows.len(),
                    answer.page.as_ref(),
                    &mut request.page,
                ) {
                    break;
                }
            }
            ("resources", "RESOURCE", args.common, rows)
        }
        SearchCommand::Subjects(args) => {
            let mut request = builder(
                &args.common,
                (args.subject_type.clone(), None),
                &args.action,
                split(&args.resource, ""),
            )
            .search_subjects();
            let mut rows = Vec::new();
            loop {
                request.page = Some(page(&args.common, &request.page));
                let answer = client.search_subjects(request.clone()).await?;
                rows.extend(answer.results.into_iter().map(|r| Row {
                    decision: r.decision(),
                    value: format!("{}:{}", r.r#type, r.id),
                    every_resource: false,
                    reasons: r.reasons,
                }));
                if !more(
                    &args.common,
                    rows.len(),
                    answer.page.as_ref(),
                    &mut request.page,
                ) {
                    break;
                }
            }
            ("subjects", "SUBJECT", args.common, rows)
        }
    };
    let mut rows = rows;
    if common.max_results > 0 {
        rows.truncate(common.max_results);
    }
    if json {
        let results: Vec<Json> = rows
            .iter()
            .map(|row| {
                let mut result = json!({
                    "value": row.value,
                    "decision": decision_name(row.decision),
                    "reasons": row.reasons,
                });
                if row.every_resource {
                    result["every_resource"] = json!(true);
                }
                result
            })
            .collect();
        outln!("{}", json!({"target": target, "results": results}));
    } else {
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|row| {
                vec![
                    if row.every_resource {
                        format!("{} (every resource)", row.value)
                    } else {
                        row.value
                    },
                    decision_name(row.decision).to_owned(),
                    row.reasons.join(","),
                ]
            })
            .collect();
        table(&[header, "DECISION", "REASONS"], &rows);
    }
    Ok(())
}

/// The page to ask for: the size asked for, and the token so far.
fn page(common: &Common, current: &Option<PageRequest>) -> PageRequest {
    PageRequest {
        token: current
            .as_ref()
            .map(|p| p.token.clone())
            .unwrap_or_default(),
        limit: common.page_size,
    }
}

/// Whether to ask for another page; sets its token.
fn more(
    common: &Common,
    found: usize,
    answered: Option<&warden_client::PageResponse>,
    next: &mut Option<PageRequest>,
) -> bool {
    let token = answered.map(|p| p.next_token.clone()).unwrap_or_default();
    if token.is_empty() || (common.max_results > 0 && found >= common.max_results) {
        return false;
    }
    *next = Some(PageRequest {
        token,
        limit: common.page_size,
    });
    true
}
