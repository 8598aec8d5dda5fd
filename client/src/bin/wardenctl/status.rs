//! `wardenctl status`: what Warden is serving, and its counters.

use serde_json::json;
use warden_client::ClientOptions;
use warden_client::admin::BundleInfo;

use super::{CtlError, admin, table};
use crate::bundle::{bundle_json, print_bundles};
use crate::snapshot::{print_snapshots, snapshot_json};

pub async fn run(addr: &str, options: ClientOptions, json: bool) -> Result<(), CtlError> {
    let status = admin(addr, options).await?.status().await?;
    if json {
        outln!(
            "{}",
            json!({
                "active": status.active.as_ref().map(bundle_json),
                "shadow": status.shadow.as_ref().map(bundle_json),
                "snapshots": status.snapshots.iter().map(snapshot_json).collect::<Vec<_>>(),
                "generation": status.generation,
                "shadow_divergences": status.shadow_divergences,
                "active_kill_switches": status.active_kill_switches,
                "audit_records": status.audit_records,
                "audit_durability": status.audit_durability,
                "audit_queue_depth": status.audit_queue_depth,
                "audit_commits": status.audit_commits,
                "audit_refused": status.audit_refused,
                "audit_failed": status.audit_failed,
                "uptime_seconds": status.uptime_seconds,
                "instance_id": status.instance_id,
                "cluster": status.cluster,
                "replica_id": status.replica_id,
                "pending_kill_switches": status.pending_kill_switches,
                "partition_mode": status.partition_mode,
                "limit_keys": status.limit_keys,
                "limits": status.limits,
            })
        );
        return Ok(());
    }
    let serving: Vec<BundleInfo> = status
        .active
        .iter()
        .chain(&status.shadow)
        .cloned()
        .collect();
    print_bundles(&serving, false);
    outln!();
    print_snapshots(&status.snapshots, false);
    outln!();
    let rows: Vec<Vec<String>> = [
        ("instance", status.instance_id),
        ("cluster", status.cluster),
        ("replica", status.replica_id),
        ("uptime", format!("{}s", status.uptime_seconds)),
        ("generation", status.generation.to_string()),
        ("kill switches", status.active_kill_switches.to_string()),
        (
            "kill switches pending replication",
            status.pending_kill_switches.to_string(),
        ),
        (
            "partition mode",
            match status.partition_mode.as_str() {
                "" => "-".to_owned(),
                mode => mode.to_owned(),
            },
        ),
        ("shadow divergences", status.shadow_divergences.to_string()),
        ("limits", status.limits),
        ("audit durability", status.audit_durability),
        ("audit records", status.audit_records.to_string()),
        ("audit commits", status.audit_commits.to_string()),
        ("audit queued", status.audit_queue_depth.to_string()),
        ("audit refused", status.audit_refused.to_string()),
        ("audit failed", status.audit_failed.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| vec![name.to_owned(), value])
    .collect();
    table(&["COUNTER", "VALUE"], &rows);
    Ok(())
}
