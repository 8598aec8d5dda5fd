//! `wardenctl audit`: query, tail, export and verify the audit trail.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value as Json, json};
use warden_client::audit::{
    AuditClient, AuditQueryRequest, AuditRecord, ChainReport, FileReport, Merge, MergeError,
    MergedReport, verify_file,
};
use warden_client::{ClientError, ClientOptions};

use super::{CtlError, connection, local, parse_duration, table, usage};

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
        /// `decision`, `admin`, `checkpoint` or `search`.
        #[arg(long = "type")]
        kind: Option<String>,
        /// One approval's chain of events: the REQUIRE_APPROVAL decision
        /// with this id (its `access_request.evaluation_id`), the request
        /// for approval, the approver's answer, and the checks that used
        /// the approval.
        #[arg(long, value_name = "EVALUATION_ID")]
        chain: Option<String>,
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
    ///
    /// With --replica (repeat it, one per replica of a cluster), export
    /// every replica's own chain, verify each as it arrives, and write one
    /// merged file: see `wardenctl audit merge --help` for its format. A
    /// replica unreachable or refusing fails the export with the exit code
    /// of that failure, a broken chain with exit code 1, each naming the
    /// replica; nothing is written then.
    #[command(verbatim_doc_comment)]
    Export {
        /// Output file; standard output when absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, default_value_t = 0)]
        to: u64,
        /// A replica's admin listener, `HOST:PORT` or a URL, instead of
        /// --admin-addr; repeat for each. The TLS and token options apply
        /// to every one. Sequence ranges differ per replica, so --from and
        /// --to do not combine with it.
        #[arg(
            long = "replica",
            value_name = "HOST:PORT|URL",
            conflicts_with_all = ["from", "to"]
        )]
        replicas: Vec<String>,
    },
    /// Merge export files (single exports, or merged files) into one merged
    /// file, offline, verifying every chain first; exit code 1 and nothing
    /// written when one is broken.
    ///
    /// A merged file starts with one header line per chain:
    ///   {"chain":NAME,"entries":N,"first_seq":A,"format":"warden-audit-merge-v1",
    ///    "head_hash":H,"last_seq":B,"replica":R,"source":S}
    /// then every entry as the server exported it, with its chain's NAME as
    /// one more member in front, outside the hashed part:
    ///   {"chain":NAME,"hash":…,"prev_hash":…,"record":{…},"seq":N}
    /// NAME is where the chain was read from: the --replica address, or the
    /// export file's path (a merged input keeps its names). `replica`, shown
    /// when records carry one, is theirs. Each chain's lines keep their
    /// order; lines of different chains are interleaved by record time,
    /// ties in the order the sources were given. `audit verify --file`
    /// checks each chain on its own, from its header's first record to its
    /// last.
    #[command(verbatim_doc_comment)]
    Merge {
        /// Export or merged files, in the order ties are broken.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Output file; standard output when absent. It may be one of the
        /// inputs: they are all read first.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Check every hash and link: the server's chain, or an export file
    /// (--file, offline; a merged file: every chain in it). Exit code 1 when
    /// a chain is broken.
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
            chain,
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
                chain: chain.unwrap_or_default(),
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
                    outln!("{}", record.json);
                } else {
                    let mut cells = row(&record);
                    let approval = approval_cell(&record);
                    if approval != "-" {
                        cells.push(approval);
                    }
                    outln!("{}", cells.join("  "));
                }
            }
            Ok(())
        }
        AuditCommand::Export {
            output, replicas, ..
        } if !replicas.is_empty() => {
            // Before connecting anywhere: a replica named twice is a typo.
            for (i, replica) in replicas.iter().enumerate() {
                if replicas.get(..i).is_some_and(|seen| seen.contains(replica)) {
                    return Err(usage(format!("replica `{replica}` is given twice")));
                }
            }
            let mut merge = Merge::new();
            for replica in &replicas {
                export_replica(&mut merge, replica, &options).await?;
            }
            finish_merge(merge, output, json)
        }
        AuditCommand::Merge { files, output } => {
            let mut merge = Merge::new();
            for file in &files {
                merge.add_file(file).map_err(merge_error)?;
            }
            finish_merge(merge, output, json)
        }
        AuditCommand::Export {
            output, from, to, ..
        } => {
            let mut client = AuditClient::connect(addr, options).await?;
            match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .map_err(|e| local(format!("`{}`: {e}", path.display())))?;
                    let mut out = std::io::BufWriter::new(file);
                    let bytes = client.export(from, to, &mut out).await?;
                    out.flush().map_err(local)?;
                    if json {
                        outln!(
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
            std::fs::File::open(&path).map_err(|e| usage(format!("`{}`: {e}", path.display())))?;
            let report = match verify_file(&path)
                .map_err(|e| local(format!("`{}`: {e}", path.display())))?
            {
                FileReport::Single(report) => report,
                FileReport::Merged(report) => return print_merged(&report, json),
            };
            let problem = report
                .broken
                .as_ref()
                .map(|(line, broken)| format!("line {line}: {broken}"));
            if json {
                outln!(
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
                outln!(
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
                outln!(
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
                outln!(
                    "ok: {} entries from seq {} to {} verified; head {}",
                    report.checked,
                    report.from_seq,
                    report.head_seq,
                    report.head_hash
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
            .map(|entry| admin_subject(&entry["record"]))
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

/// An admin event's subject: its details; for an approval event, what the
/// task is about and who acted, as a decision's subject reads (the task and
/// approval ids have their own column).
fn admin_subject(record: &Json) -> String {
    let details = &record["details"];
    let event = record["event"].as_str().unwrap_or_default();
    if !event.starts_with("approval.") || details["platform"].is_null() {
        return details.to_string();
    }
    let text = |name: &str| details[name].as_str().unwrap_or_default();
    let mut subject = format!(
        "{}/{} for {} {} {}",
        text("platform"),
        text("agent_id"),
        text("principal"),
        text("action"),
        text("resource")
    );
    match (text("by"), record["caller"].as_str().unwrap_or_default()) {
        ("", "") => {}
        ("", caller) => subject.push_str(&format!(" by {caller}")),
        (by, _) => subject.push_str(&format!(" by {by}")),
    }
    subject
}

fn print_records(records: &[AuditRecord], json: bool) {
    if json {
        for record in records {
            outln!("{}", record.json);
        }
        return;
    }
    // The approval column only when some record belongs to an approval.
    if records
        .iter()
        .all(|r| r.task_id.is_empty() && r.approval_id.is_empty())
    {
        let rows: Vec<Vec<String>> = records.iter().map(row).collect();
        table(
            &["SEQ", "TIME", "TYPE", "DECISION", "SUBJECT", "REASONS"],
            &rows,
        );
        return;
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            let mut cells = row(record);
            cells.push(approval_cell(record));
            cells
        })
        .collect();
    table(
        &[
            "SEQ",
            "TIME",
            "TYPE",
            "DECISION",
            "SUBJECT",
            "REASONS",
            "TASK/APPROVAL",
        ],
        &rows,
    );
}

/// The approval task and approval a record belongs to: `arq_…/apr_…`, the
/// task alone while it has no approval, `-` for neither.
fn approval_cell(record: &AuditRecord) -> String {
    match (record.task_id.as_str(), record.approval_id.as_str()) {
        ("", "") => "-".to_owned(),
        (task, "") => task.to_owned(),
        ("", approval) => approval.to_owned(),
        (task, approval) => format!("{task}/{approval}"),
    }
}

/// Exports `replica`'s chain into `merge`, verifying it as it arrives.
async fn export_replica(
    merge: &mut Merge,
    replica: &str,
    options: &ClientOptions,
) -> Result<(), CtlError> {
    let (endpoint, options) = connection::replica(replica, options)?;
    let mut writer = merge.chain(replica, &endpoint).map_err(merge_error)?;
    let exported = async {
        AuditClient::connect(endpoint.as_str(), options)
            .await?
            .export(0, 0, &mut writer)
            .await
    }
    .await;
    exported.map_err(|e| CtlError::Client(naming(replica, e)))?;
    let report = writer.finish().map_err(local)?;
    match &report.broken {
        None => Ok(()),
        Some(_) => Err(CtlError::Finding(format!(
            "replica `{replica}`: {}",
            chain_problem(&report)
        ))),
    }
}

/// `error`, saying which replica it came from, with its kind (and so its
/// exit code) kept.
fn naming(replica: &str, error: ClientError) -> ClientError {
    match error {
        ClientError::Status(status) => ClientError::Status(tonic::Status::with_details(
            status.code(),
            format!("replica `{replica}`: {}", status.message()),
            status.details().to_vec().into(),
        )),
        ClientError::Connect { endpoint, message } => ClientError::Connect {
            endpoint: format!("replica `{replica}` ({endpoint})"),
            message,
        },
        ClientError::Endpoint { endpoint, message } => ClientError::Endpoint {
            endpoint: format!("{endpoint} (replica `{replica}`)"),
            message,
        },
        ClientError::Protocol(message) => {
            ClientError::Protocol(format!("replica `{replica}`: {message}"))
        }
        ClientError::Config(message) => {
            ClientError::Config(format!("replica `{replica}`: {message}"))
        }
    }
}

fn merge_error(error: MergeError) -> CtlError {
    usage(error)
}

/// Refuses a merge with a broken chain; otherwise writes it and says what
/// it holds.
fn finish_merge(merge: Merge, output: Option<PathBuf>, json: bool) -> Result<(), CtlError> {
    let reports = merge.reports();
    let mut problems: Vec<String> = merge
        .problems()
        .iter()
        .map(|(_, problem)| problem.clone())
        .collect();
    problems.extend(
        reports
            .iter()
            .filter(|r| r.broken.is_some())
            .map(chain_problem),
    );
    if !problems.is_empty() {
        return Err(CtlError::Finding(format!(
            "{}; nothing written",
            problems.join("; ")
        )));
    }
    let Some(path) = output else {
        let mut out = std::io::stdout().lock();
        merge.write_to(&mut out).map_err(local)?;
        return Ok(());
    };
    let file =
        std::fs::File::create(&path).map_err(|e| local(format!("`{}`: {e}", path.display())))?;
    let bytes = merge
        .write_to(&mut std::io::BufWriter::new(file))
        .map_err(|e| local(format!("`{}`: {e}", path.display())))?;
    if json {
        outln!(
            "{}",
            json!({
                "output": path.display().to_string(),
                "size_bytes": bytes,
                "chains": reports.iter().map(chain_json).collect::<Vec<_>>(),
            })
        );
    } else {
        eprintln!(
            "wrote {bytes} bytes to {}: {} chains, each verified",
            path.display(),
            reports.len()
        );
        for report in &reports {
            eprintln!("  {}", chain_summary(report));
        }
    }
    Ok(())
}

fn print_merged(report: &MergedReport, json: bool) -> Result<(), CtlError> {
    let mut problems: Vec<String> = report
        .problems
        .iter()
        .map(|(_, problem)| problem.clone())
        .collect();
    problems.extend(
        report
            .chains
            .iter()
            .filter(|r| r.broken.is_some())
            .map(chain_problem),
    );
    if json {
        outln!(
            "{}",
            json!({
                "ok": problems.is_empty(),
                "chains": report.chains.iter().map(chain_json).collect::<Vec<_>>(),
                "problem": (!problems.is_empty()).then(|| problems.join("; ")),
            })
        );
    } else {
        for chain in &report.chains {
            match chain.broken {
                None => outln!("ok: {}", chain_summary(chain)),
                Some(_) => outln!("BROKEN: chain `{}`", chain.chain),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Finding(problems.join("; ")))
    }
}

/// The first problem of a broken chain, naming the chain.
fn chain_problem(report: &ChainReport) -> String {
    match &report.broken {
        Some((0, fault)) => format!("chain `{}` broken: {fault}", report.chain),
        Some((line, fault)) => format!(
            "chain `{}` broken at line {line} (seq {}): {fault}",
            report.chain,
            fault.seq()
        ),
        None => format!("chain `{}` intact", report.chain),
    }
}

fn chain_summary(report: &ChainReport) -> String {
    let replica = report
        .replica
        .as_deref()
        .map(|r| format!(" (replica {r})"))
        .unwrap_or_default();
    format!(
        "chain `{}`{replica}: {} entries from seq {} to {} verified; head {}",
        report.chain,
        report.checked,
        report.first_seq.unwrap_or(0),
        report.last_seq.unwrap_or(0),
        report.head_hash.as_deref().unwrap_or("-")
    )
}

fn chain_json(report: &ChainReport) -> Json {
    json!({
        "chain": report.chain,
        "source": report.source,
        "replica": report.replica,
        "ok": report.broken.is_none(),
        "checked": report.checked,
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "head_hash": report.head_hash,
        "broken_seq": report.broken.as_ref().map(|(_, fault)| fault.seq()),
        "problem": report.broken.as_ref().map(|_| chain_problem(report)),
    })
}
