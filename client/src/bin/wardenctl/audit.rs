//! `wardenctl audit`: query, tail, export and verify the audit trail.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value as Json, json};
use warden_client::ClientOptions;
use warden_client::audit::{AuditClient, AuditQueryRequest, AuditRecord, verify_export};

use super::{CtlError, local, parse_duration, table, usage};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Records matching every filter given, oldest first. `--json`: one
    /// entry per line, exactly as stored.
    Query {
        /// From this time: RFC 3339, or a duration back from now (`1h`).
        #[arg(long)]
        since: Option<String>,
        /// Until this time (exclusive): RFC 3339, or a duration back from now.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        platform: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        /// Principal id, or `TYPE:ID`.
        #[arg(long)]
        principal: Option<String>,
        /// Action name or `prefix.*`.
        #[arg(long)]
        action: Option<String>,
        /// `allow`, `deny` or `require_approval`.
        #[arg(long)]
        decision: Option<String>,
        /// `decision`, `admin` or `checkpoint`.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Most records to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Print records as they are written (from --from SEQ first); Ctrl-C
    /// stops. `--json`: one entry per line, exactly as stored.
    Tail {
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
    /// Write the chain as JSON Lines, verifiable offline.
    Export {
        /// Output file; standard output when absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, default_value_t = 0)]
        to: u64,
    },
    /// Check every hash and link: the server's chain, or an export file
    /// (--file, offline). Exit code 1 when the chain is broken.
    Verify {
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn time_bound(value: Option<String>) -> Result<String, CtlError> {
    let Some(value) = value else {
        return Ok(String::new());
    };
    if value.contains('T') {
        return Ok(value);
    }
    let back = parse_duration(&value).map_err(usage)?;
    let at = std::time::SystemTime::now()
        .checked_sub(back)
        .ok_or_else(|| usage(format!("`{value}` reaches back before the epoch")))?;
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(local)
}

pub async fn run(
    addr: &str,
    options: ClientOptions,
    command: AuditCommand,
    json: bool,
) -> Result<(), CtlError> {
    match command {
        AuditCommand::Query {
            since,
            until,
            platform,
            agent,
            principal,
            action,
            decision,
            kind,
            limit,
        } => {
            let request = AuditQueryRequest {
                start_time: time_bound(since)?,
                end_time: time_bound(until)?,
                platform: platform.unwrap_or_default(),
                agent_id: agent.unwrap_or_default(),
                principal_id: principal.unwrap_or_default(),
                action: action.unwrap_or_default(),
                decision: decision.unwrap_or_default(),
                r#type: kind.unwrap_or_default(),
                page_size: limit.min(1000) as u32,
                page_token: String::new(),
            };
            let records = AuditClient::connect(addr, options)
                .await?
                .query_all(request, limit)
                .await?;
            print_records(&records, json);
            Ok(())
        }
        AuditCommand::Tail { from } => {
            let mut stream = AuditClient::connect(addr, options)
                .await?
                .tail(from)
                .await?;
            while let Some(record) = stream
                .message()
                .await
                .map_err(|s| CtlError::Client(s.into()))?
            {
                if json {
                    println!("{}", record.json);
                } else {
                    println!("{}", row(&record).join("  "));
                }
            }
            Ok(())
        }
        AuditCommand::Export { output, from, to } => {
            let mut client = AuditClient::connect(addr, options).await?;
            match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .map_err(|e| local(format!("`{}`: {e}", path.display())))?;
                    let mut out = std::io::BufWriter::new(file);
                    let bytes = client.export(from, to, &mut out).await?;
                    out.flush().map_err(local)?;
                    if json {
                        println!(
                            "{}",
                            json!({"output": path.display().to_string(), "size_bytes": bytes})
                        );
                    } else {
                        eprintln!("wrote {bytes} bytes to {}", path.display());
                    }
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    client.export(from, to, &mut out).await?;
                }
            }
            Ok(())
        }
        AuditCommand::Verify { file: Some(path) } => {
            let file = std::fs::File::open(&path)
                .map_err(|e| usage(format!("`{}`: {e}", path.display())))?;
            let report = verify_export(std::io::BufReader::new(file))
                .map_err(|e| local(format!("`{}`: {e}", path.display())))?;
            let problem = report
                .broken
                .as_ref()
                .map(|(line, broken)| format!("line {line}: {broken}"));
            if json {
                println!(
                    "{}",
                    json!({
                        "ok": problem.is_none(),
                        "checked": report.checked,
                        "first_seq": report.first_seq,
                        "head_hash": report.head_hash,
                        "broken_seq": report.broken.as_ref().map(|(_, b)| b.seq()),
                        "problem": problem,
                    })
                );
            } else if problem.is_none() {
                println!(
                    "ok: {} entries from seq {} verified; head {}",
                    report.checked,
                    report.first_seq.unwrap_or(0),
                    report.head_hash.as_deref().unwrap_or("-")
                );
            }
            match problem {
                None => Ok(()),
                Some(problem) => Err(CtlError::Finding(format!("chain broken at {problem}"))),
            }
        }
        AuditCommand::Verify { file: None } => {
            let report = AuditClient::connect(addr, options).await?.verify().await?;
            if json {
                println!(
                    "{}",
                    json!({
                        "ok": report.ok,
                        "checked": report.checked,
                        "from_seq": report.from_seq,
                        "from_hash": report.from_hash,
                        "head_seq": report.head_seq,
                        "head_hash": report.head_hash,
                        "broken_seq": report.broken_seq,
                        "problem": report.problem,
                    })
                );
            } else if report.ok {
                println!(
                    "ok: {} entries from seq {} to {} verified; head {}",
                    report.checked, report.from_seq, report.head_seq, report.head_hash
                );
            }
            if report.ok {
                Ok(())
            } else {
                Err(CtlError::Finding(format!(
                    "chain broken at seq {}: {}",
                    report.broken_seq, report.problem
                )))
            }
        }
    }
}

fn row(record: &AuditRecord) -> Vec<String> {
    let subject = if record.r#type == "decision" {
        format!(
            "{}/{} for {} {} {}",
            record.platform, record.agent_id, record.principal, record.action, record.resource
        )
    } else {
        serde_json::from_str::<Json>(&record.json)
            .ok()
            .map(|entry| entry["record"]["details"].to_string())
            .unwrap_or_default()
    };
    vec![
        record.seq.to_string(),
        record.time.clone(),
        record.r#type.clone(),
        record.decision.clone(),
        subject,
        record.reasons.join(","),
    ]
}

fn print_records(records: &[AuditRecord], json: bool) {
    if json {
        for record in records {
            println!("{}", record.json);
        }
        return;
    }
    let rows: Vec<Vec<String>> = records.iter().map(row).collect();
    table(
        &["SEQ", "TIME", "TYPE", "DECISION", "SUBJECT", "REASONS"],
        &rows,
    );
}
