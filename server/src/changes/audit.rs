//! What the audit chain says of each change: its event name and details,
//! decided once for every backend.

use serde_json::{Value, json};

use super::{Applied, Change, SwitchChange};
use crate::cluster::ClearedShadow;
use crate::control::Target;
use crate::killswitch::{Switch, rfc3339_ms};
use crate::store::BundleRecord;

/// What must be remembered of a change before it is consumed.
#[derive(Debug, Clone, Copy)]
pub(super) enum About {
    PutBundle { target: Target, bytes: usize },
    ActivateBundle { target: Target },
    Rollback,
    ClearShadow,
    PutSnapshot,
    Engage,
    Release,
}

impl About {
    pub(super) fn of(change: &Change) -> Self {
        match change {
            Change::PutBundle { archive, target } => About::PutBundle {
                target: *target,
                bytes: archive.len(),
            },
            Change::ActivateBundle { target, .. } => About::ActivateBundle { target: *target },
            Change::Rollback => About::Rollback,
            Change::ClearShadow => About::ClearShadow,
            Change::PutSnapshot { .. } => About::PutSnapshot,
            Change::EngageSwitch(_) => About::Engage,
            Change::ReleaseSwitch { .. } => About::Release,
        }
    }

    /// The event and its details, for what the change did.
    pub(super) fn describe(self, applied: &Applied) -> (&'static str, Value) {
        match (self, applied) {
            (About::PutBundle { target, bytes }, Applied::Bundle(record)) => {
                let event = match target {
                    Target::Active => "bundle.activated",
                    Target::Shadow => "bundle.shadowed",
                    Target::Stored => "bundle.stored",
                };
                (event, bundle(record, Some(bytes)))
            }
            (About::ActivateBundle { target }, Applied::Bundle(record)) => {
                let event = match target {
                    Target::Shadow => "bundle.shadowed",
                    _ => "bundle.activated",
                };
                (event, bundle(record, None))
            }
            (About::Rollback, Applied::Bundle(record)) => {
                ("bundle.rolled_back", bundle(record, None))
            }
            // Recorded even when there was no shadow: the request was made.
            (_, Applied::ShadowCleared(cleared)) => (
                "bundle.shadow_cleared",
                match cleared {
                    Some(ClearedShadow::Stored(record)) => bundle(record, None),
                    Some(ClearedShadow::Named { digest, revision }) => {
                        json!({"digest": digest, "revision": revision})
                    }
                    None => json!({"cleared": null}),
                },
            ),
            (_, Applied::Snapshot(snapshot)) => (
                "snapshot.loaded",
                json!({
                    "kind": snapshot.kind.as_str(),
                    "version": snapshot.version,
                    "sha256": snapshot.sha256,
                    "size_bytes": snapshot.size,
                }),
            ),
            (About::Release, Applied::Switch(change)) => {
                let switch = &change.switch;
                let mut details = json!({
                    "id": switch.id,
                    "scope": switch.scope,
                    "released_by": switch.ended.as_ref().map(|e| e.by.as_str()),
                    "reason": switch.ended.as_ref().map(|e| e.reason.as_str()),
                });
                flags(&mut details, change);
                ("kill_switch.released", details)
            }
            (_, Applied::Switch(change)) => {
                let switch = &change.switch;
                let mut details = json!({
                    "id": switch.id,
                    "scope": switch.scope,
                    "mode": switch.mode.as_str(),
                    "reason": switch.reason,
                    "engaged_by": switch.engaged_by,
                    "expires_at": switch.expires_at_ms.map(rfc3339_ms),
                });
                flags(&mut details, change);
                ("kill_switch.engaged", details)
            }
            (_, Applied::Bundle(record)) => ("bundle.activated", bundle(record, None)),
        }
    }
}

/// Marks, only where they hold, an engage that changed nothing and a change
/// made while etcd was out of reach.
fn flags(details: &mut Value, change: &SwitchChange) {
    if let Some(details) = details.as_object_mut() {
        if change.already {
            details.insert("already_engaged".into(), Value::Bool(true));
        }
        if change.pending {
            details.insert("pending_replication".into(), Value::Bool(true));
        }
    }
}

/// A switch's expiry, recorded by the replica that saw it fall due.
pub(super) fn expired(switch: &Switch) -> (&'static str, Value) {
    (
        "kill_switch.expired",
        json!({
            "id": switch.id,
            "scope": switch.scope,
            "expired_at": switch.expires_at_ms.map(rfc3339_ms),
        }),
    )
}

fn bundle(record: &BundleRecord, pushed_bytes: Option<usize>) -> Value {
    json!({
        "revision": record.revision,
        "digest": record.digest,
        "engine": record.engine,
        "signed_by": record.signed_by,
        "tests_passed": record.tests_passed,
        "pushed_bytes": pushed_bytes,
    })
}
