//! Bounded divergence: a replica out of touch with etcd for longer than
//! `cluster.partition_grace` cannot know which switches the others engaged,
//! so it applies `cluster.on_partition` (a global switch of that mode, with
//! the reason `cluster_partitioned`) until it is in step again — caught up
//! with everything etcd holds, switches first.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use super::Cluster;
use crate::audit::record::admin_record;
use crate::control::blocking;

const CHECK_EVERY: Duration = Duration::from_millis(100);

pub(super) async fn run(cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
    let Some(mode) = cluster.on_partition else {
        return;
    };
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let cut_off = cluster
            .cut_off_for()
            .is_some_and(|cut_off| cut_off > cluster.partition_grace);
        let wanted = cut_off.then_some(mode);
        if wanted == cluster.partitioned() {
            continue;
        }
        let control = cluster.control.clone();
        if let Err(e) = blocking(&control, move |c| {
            c.set_partition(wanted, SystemTime::now());
            Ok(())
        })
        .await
        {
            warn!(error = %e, "cluster: cannot change the partition mode");
            continue;
        }
        cluster.refresh_readiness();
        let event = match wanted {
            Some(mode) => {
                warn!(
                    on_partition = mode.as_str(),
                    grace = ?cluster.partition_grace,
                    "cluster: cut off from etcd for longer than the grace; on_partition in force"
                );
                "cluster.partitioned"
            }
            None => {
                info!("cluster: in step with etcd again; on_partition lifted");
                "cluster.partition_lifted"
            }
        };
        let record = admin_record(
            event,
            "cluster",
            json!({"on_partition": mode.as_str(), "grace_ms": cluster.partition_grace.as_millis() as u64}),
            SystemTime::now(),
        );
        if let Err(e) = cluster.auditor.record_admin(&record).await {
            warn!(error = %e, event, "cannot audit a partition change");
        }
    }
}
