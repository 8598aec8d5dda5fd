//! Kill switches through etcd: an engage is taken wherever it lands (through
//! etcd, or on this replica alone while etcd cannot take it, published
//! later); a release needs etcd unless the switch was never published.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::warn;

use super::{Applied, SwitchChange};
use crate::cluster::Cluster;
use crate::control::records::RecordKind;
use crate::control::{Control, ControlError, already_engaged, blocking};
use crate::killswitch::Switch;

/// Releases a switch through etcd. Releasing loosens, so it needs etcd,
/// except for a switch this replica alone holds: it was never published,
/// so no other replica enforces it.
pub(super) async fn release(
    cluster: &Cluster,
    switches: &Arc<dyn RecordKind>,
    control: &Arc<Control>,
    id: String,
    reason: String,
    by: String,
) -> Result<Applied, ControlError> {
    if let Err(refused) = cluster.writable() {
        if !pending(control, switches.as_ref(), &id).await? {
            return Err(refused);
        }
        let switch = blocking(control, move |c| {
            c.release(&id, reason, by, SystemTime::now())
        })
        .await?;
        return Ok(Applied::Switch(SwitchChange {
            switch,
            already: false,
            pending: true,
        }));
    }
    // Of two releases racing on different replicas, the second is
    // refused, as on a single node.
    let shared = cluster.record(switches.as_ref(), &id).await?;
    if let Some((value, _)) = &shared
        && let Ok(stored) = serde_json::from_slice::<Switch>(value)
        && stored.ended.is_some()
    {
        return Err(ControlError::FailedPrecondition(format!(
            "kill switch `{id}` has already ended"
        )));
    }
    let now = SystemTime::now();
    let switch = blocking(control, move |c| c.prepare_release(&id, reason, by, now)).await?;
    let revision = shared.map_or(0, |(_, revision)| revision);
    let value = encode(&switch)?;
    if !cluster
        .put_record(switches.as_ref(), &switch.id, value.clone(), revision)
        .await?
    {
        return Err(ControlError::FailedPrecondition(format!(
            "kill switch `{}` was changed on another replica meanwhile; list the switches and retry",
            switch.id
        )));
    }
    cluster.apply_shared(switches, &switch.id, value).await?;
    Ok(SwitchChange::made(switch))
}

/// Engages a prepared switch through etcd; when etcd cannot take it, on
/// this replica alone, at once, to be published when etcd is back. An
/// engage only adds denials, so a replica that applies it alone is
/// stricter than the others, never looser.
pub(super) async fn engage(
    cluster: &Cluster,
    switches: &Arc<dyn RecordKind>,
    control: &Arc<Control>,
    switch: Switch,
) -> Result<Applied, ControlError> {
    let id = switch.id.clone();
    let unreachable = match cluster.writable() {
        Err(refused) => refused,
        Ok(()) => {
            let value = encode(&switch)?;
            match cluster
                .put_record(switches.as_ref(), &id, value.clone(), 0)
                .await
            {
                Ok(true) => {
                    cluster.apply_shared(switches, &id, value).await?;
                    return Ok(SwitchChange::made(switch));
                }
                // The id is in etcd already: the same switch sent again, or
                // to several replicas.
                Ok(false) => return engaged_already(cluster, switches, switch).await,
                Err(e) => e,
            }
        }
    };
    warn!(id, error = %unreachable, "cluster: etcd cannot take the kill switch; engaged on this replica, pending replication");
    let kind = switches.name();
    let engaged = blocking(control, move |c| {
        let engaged = c.engage_prepared(switch, SystemTime::now())?;
        if !engaged.already {
            c.store().mark_pending(kind, &engaged.switch.id)?;
        }
        Ok(engaged)
    })
    .await?;
    let pending = pending(control, switches.as_ref(), &id).await?;
    Ok(Applied::Switch(SwitchChange {
        switch: engaged.switch,
        already: engaged.already,
        pending,
    }))
}

/// An engage whose id etcd holds already: answered with that switch if it
/// is the same one (applied here too, in case the watch has not yet).
async fn engaged_already(
    cluster: &Cluster,
    switches: &Arc<dyn RecordKind>,
    wanted: Switch,
) -> Result<Applied, ControlError> {
    let Some((value, _)) = cluster.record(switches.as_ref(), &wanted.id).await? else {
        return Err(ControlError::Aborted(format!(
            "kill switch `{}` changed in etcd meanwhile; retry",
            wanted.id
        )));
    };
    let existing = serde_json::from_slice::<Switch>(&value).map_err(|e| {
        ControlError::Unavailable(format!(
            "kill switch `{}` in etcd is unreadable: {e}",
            wanted.id
        ))
    })?;
    let existing = already_engaged(existing, &wanted, SystemTime::now())?;
    cluster.apply_shared(switches, &existing.id, value).await?;
    Ok(Applied::Switch(SwitchChange {
        switch: existing,
        already: true,
        pending: false,
    }))
}

/// Whether record `id` of `kind` was made here and not yet published.
async fn pending(
    control: &Arc<Control>,
    kind: &dyn RecordKind,
    id: &str,
) -> Result<bool, ControlError> {
    let (kind, id) = (kind.name(), id.to_owned());
    blocking(control, move |c| Ok(c.store().pending(kind)?.contains(&id))).await
}

fn encode(switch: &Switch) -> Result<Vec<u8>, ControlError> {
    serde_json::to_vec(switch)
        .map_err(|e| ControlError::Internal(format!("cannot encode the switch: {e}")))
}
