//! `wardenctl kill … --replica A --replica B`: one switch sent to every
//! replica's admin listener directly, so that it holds on each even while
//! etcd (which would otherwise carry it) is down; and each replica's list.

use serde_json::json;
use warden_client::admin::{EngageKillSwitchRequest, KillSwitch};
use warden_client::{AdminClient, ClientError, ClientOptions};

use super::{print_switches, switch_json};
use crate::exit::for_client;
use crate::{CtlError, connection, table, usage};

/// What one replica made of the engage.
enum Outcome {
    Engaged { pending: bool },
    Already { pending: bool },
    Failed(ClientError),
}

impl Outcome {
    fn word(&self) -> String {
        let pending = |word: &str, pending: bool| match pending {
            true => format!("{word} (pending)"),
            false => word.to_owned(),
        };
        match self {
            Outcome::Engaged { pending: p } => pending("engaged", *p),
            Outcome::Already { pending: p } => pending("already engaged", *p),
            Outcome::Failed(e) if unreachable(e) => format!("unreachable: {e}"),
            Outcome::Failed(e) => format!("refused: {e}"),
        }
    }
}

fn unreachable(error: &ClientError) -> bool {
    for_client(error) == crate::exit::UNAVAILABLE
}

fn distinct(replicas: &[String]) -> Result<(), CtlError> {
    for (i, replica) in replicas.iter().enumerate() {
        if replicas.get(..i).is_some_and(|seen| seen.contains(replica)) {
            return Err(usage(format!("replica `{replica}` is given twice")));
        }
    }
    Ok(())
}

async fn connect(replica: &str, options: &ClientOptions) -> Result<AdminClient, ClientError> {
    let (endpoint, options) = connection::replica(replica, options)?;
    AdminClient::connect(endpoint.as_str(), options).await
}

/// Sends `request` to each replica in turn (the first takes it through
/// etcd when etcd is up; the others then confirm it), reports each, and
/// fails unless every one took it.
pub async fn engage(
    replicas: &[String],
    options: &ClientOptions,
    request: EngageKillSwitchRequest,
    json: bool,
) -> Result<(), CtlError> {
    distinct(replicas)?;
    let mut outcomes = Vec::with_capacity(replicas.len());
    for replica in replicas {
        let answer = match connect(replica, options).await {
            Ok(mut admin) => admin.engage_kill_switch_answer(request.clone()).await,
            Err(e) => Err(e),
        };
        outcomes.push(match answer {
            Ok(answer) => {
                let pending = answer
                    .kill_switch
                    .as_ref()
                    .is_some_and(|k| k.pending_replication);
                match answer.already_engaged {
                    true => Outcome::Already { pending },
                    false => Outcome::Engaged { pending },
                }
            }
            Err(e) => Outcome::Failed(e),
        });
    }
    if json {
        let rows: Vec<_> = replicas
            .iter()
            .zip(&outcomes)
            .map(|(replica, outcome)| match outcome {
                Outcome::Engaged { pending } => {
                    json!({"replica": replica, "outcome": "engaged", "pending_replication": pending})
                }
                Outcome::Already { pending } => {
                    json!({"replica": replica, "outcome": "already_engaged", "pending_replication": pending})
                }
                Outcome::Failed(e) => json!({
                    "replica": replica,
                    "outcome": if unreachable(e) { "unreachable" } else { "refused" },
                    "error": e.to_string(),
                }),
            })
            .collect();
        outln!("{}", json!({"id": request.id, "replicas": rows}));
    } else {
        let rows: Vec<Vec<String>> = replicas
            .iter()
            .zip(&outcomes)
            .map(|(replica, outcome)| vec![replica.clone(), outcome.word(), request.id.clone()])
            .collect();
        table(&["REPLICA", "OUTCOME", "ID"], &rows);
    }
    let failed = replicas
        .iter()
        .zip(outcomes)
        .find_map(|(replica, outcome)| match outcome {
            Outcome::Failed(e) => Some((replica, e)),
            _ => None,
        });
    match failed {
        None => Ok(()),
        // The first failure decides the exit code (4 for unreachable):
        // the switch is not in force everywhere.
        Some((replica, e)) => {
            eprintln!(
                "wardenctl: not every replica took kill switch `{}` (first: {replica}); send it again with --id {}",
                request.id, request.id
            );
            Err(CtlError::Client(e))
        }
    }
}

/// Each replica's switches; fails if a replica could not be read.
pub async fn list(
    replicas: &[String],
    options: &ClientOptions,
    ended: u32,
    json: bool,
) -> Result<(), CtlError> {
    distinct(replicas)?;
    let mut first_error = None;
    let mut rows = Vec::new();
    for replica in replicas {
        let listed = match connect(replica, options).await {
            Ok(mut admin) => admin.list_kill_switches(ended).await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(list) if json => rows.push(json!({
                "replica": replica,
                "active": list.active.iter().map(switch_json).collect::<Vec<_>>(),
                "ended": list.ended.iter().map(switch_json).collect::<Vec<_>>(),
            })),
            Ok(list) => print_replica(replica, &list.active, &list.ended),
            Err(e) => {
                if json {
                    rows.push(json!({"replica": replica, "error": e.to_string()}));
                } else {
                    outln!("replica {replica}: {e}");
                    outln!();
                }
                first_error.get_or_insert(e);
            }
        }
    }
    if json {
        outln!("{}", json!({"replicas": rows}));
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(CtlError::Client(e)),
    }
}

fn print_replica(replica: &str, active: &[KillSwitch], ended: &[KillSwitch]) {
    outln!("replica {replica}, engaged:");
    print_switches(active, false);
    outln!("replica {replica}, released or expired:");
    print_switches(ended, false);
    outln!();
}
