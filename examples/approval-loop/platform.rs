//! An agent platform's side of a human approval, as Warden expects it:
//! check before acting; when a person must approve, ask for approval with
//! the decision's access request, wait for the person, then check again
//! with the approval, and act only on ALLOW. The approval is bound to this
//! exact request and single use, so asking again with it is refused.
//!
//! `cargo run -p warden-client --example approval_loop` (see README.md;
//! `run.sh` plays the approver with `wardenctl`).

use std::process::ExitCode;

use serde_json::json;
use warden_client::{CheckBuilder, ClientOptions, Decision, WardenClient};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("approval-loop: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<ExitCode, warden_client::ClientError> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let options = ClientOptions {
        token: std::env::var("WARDEN_TOKEN").ok(),
        ..ClientOptions::default()
    };
    let mut warden =
        WardenClient::connect(env("WARDEN_DECISION", "http://127.0.0.1:50051"), options).await?;

    // The agent wants to grant Bob read access to a role: an access-control
    // change, which the default policy sends to the security group.
    let request = CheckBuilder::new(
        "support-desk",
        "access-admin",
        env("PRINCIPAL", "amelia.tanaka"),
        "permissions.grant",
        "role",
    )
    .resource_id("finance-approver")
    .action_attribute("grantee", json!("bob"))
    .action_attribute("level", json!("read"))
    .build();

    let first = warden.check(request.clone()).await?;
    println!("check: {:?} {:?}", first.decision(), first.reasons);
    let access = match (first.decision(), &first.access_request) {
        (Decision::Allow, _) => {
            println!("allowed without approval; acting");
            return Ok(ExitCode::SUCCESS);
        }
        (Decision::RequireApproval, Some(access)) => access.clone(),
        _ => {
            println!("not allowed; not acting");
            return Ok(ExitCode::from(1));
        }
    };

    let task = warden
        .request_approval(request.clone(), &access, "Bob covers the month-end close")
        .await?;
    println!("task: {} pending", task.id);
    println!("approve with: wardenctl approvals approve {}", task.id);

    let task = warden.wait_approval_task(&task.id).await?;
    println!("task: {} {:?} {}", task.id, task.state(), task.note);
    let Some(approval) = task.approval else {
        println!("not approved; not acting");
        return Ok(ExitCode::from(1));
    };

    let mut with_approval = request.clone();
    with_approval.approval = Some(approval.clone());
    let second = warden.check(with_approval.clone()).await?;
    println!("re-check: {:?} {:?}", second.decision(), second.reasons);
    if second.decision() != Decision::Allow {
        return Ok(ExitCode::from(1));
    }
    println!("acting: grant read on finance-approver to bob");

    // Single use: the same approval does not allow twice.
    let third = warden.check(with_approval).await?;
    println!(
        "re-check again: {:?} {:?} next: {}",
        third.decision(),
        third.reasons,
        third.next_action
    );
    Ok(
        if third.reasons.first().map(String::as_str) == Some("approval_used_up") {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
