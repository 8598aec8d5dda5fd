//! The control plane's one door. Every change to what Warden serves or
//! remembers — a bundle pushed, activated, rolled back or shadowed, a
//! snapshot, a kill switch engaged, released or expired — is described as a
//! `Change` and submitted here, the same way in single-node and cluster
//! mode. The replication backend makes it durable and ordered (this
//! replica's store, or etcd), the control plane applies it, and one writer
//! puts it in the audit chain with the caller who asked.
//!
//! Adapters (`api`, `http`) describe changes; they never pick a backend.
//! `docs/architecture.md` says where a new kind of state goes.

mod audit;
mod switches;

use std::sync::Arc;
use std::time::SystemTime;

use tracing::error;

use crate::audit::Auditor;
use crate::audit::record::admin_record;
use crate::cluster::{ClearedShadow, Cluster, Link};
use crate::control::records::RecordKind;
use crate::control::{Control, ControlError, Target, blocking, heavy};
use crate::killswitch::{EngageSpec, Mode, Switch};
use crate::snapshot::Snapshot;
use crate::store::BundleRecord;

/// A change, as a caller describes it.
#[derive(Debug)]
pub enum Change {
    PutBundle {
        archive: Vec<u8>,
        target: Target,
    },
    ActivateBundle {
        digest: String,
        target: Target,
    },
    Rollback,
    ClearShadow,
    PutSnapshot {
        kind: String,
        document: Vec<u8>,
    },
    EngageSwitch(EngageSpec),
    ReleaseSwitch {
        id: String,
        reason: String,
        by: String,
    },
}

/// What a change did.
#[derive(Debug)]
pub enum Applied {
    Bundle(BundleRecord),
    /// The shadow cleared, if there was one.
    ShadowCleared(Option<ClearedShadow>),
    Snapshot(Arc<Snapshot>),
    Switch(SwitchChange),
}

/// A kill switch engaged or released.
#[derive(Debug, Clone)]
pub struct SwitchChange {
    pub switch: Switch,
    /// Engaged already under that id; nothing changed.
    pub already: bool,
    /// Made on this replica while etcd was out of reach; published when
    /// it is back.
    pub pending: bool,
}

impl SwitchChange {
    fn made(switch: Switch) -> Applied {
        Applied::Switch(SwitchChange {
            switch,
            already: false,
            pending: false,
        })
    }
}

/// Where changes are made durable and ordered.
#[derive(Debug)]
enum Backend {
    /// This replica's store alone.
    Local,
    /// etcd, then every replica as its watch delivers the change.
    Cluster {
        cluster: Arc<Cluster>,
        switches: Arc<dyn RecordKind>,
    },
}

/// How this replica replicates, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    SingleNode,
    Cluster {
        replica: String,
        link: Link,
        /// `cluster.on_partition`, while it is in force.
        partitioned: Option<Mode>,
    },
}

/// See the module documentation.
#[derive(Debug)]
pub struct Changes {
    control: Arc<Control>,
    auditor: Arc<Auditor>,
    backend: Backend,
}

impl Changes {
    /// Changes made to this replica alone.
    pub fn single_node(control: Arc<Control>, auditor: Arc<Auditor>) -> Self {
        Self {
            control,
            auditor,
            backend: Backend::Local,
        }
    }

    /// Changes made through `cluster`; `switches` is the kill switches'
    /// record kind the cluster was given.
    pub fn clustered(
        control: Arc<Control>,
        auditor: Arc<Auditor>,
        cluster: Arc<Cluster>,
        switches: Arc<dyn RecordKind>,
    ) -> Self {
        Self {
            control,
            auditor,
            backend: Backend::Cluster { cluster, switches },
        }
    }

    pub fn replication(&self) -> Replication {
        match &self.backend {
            Backend::Local => Replication::SingleNode,
            Backend::Cluster { cluster, .. } => Replication::Cluster {
                replica: cluster.replica().to_owned(),
                link: cluster.link(),
                partitioned: self.control.partitioned(),
            },
        }
    }

    /// The kill switches made here while etcd was out of reach and not yet
    /// published (always none on a single node).
    pub fn pending_switches(&self) -> Result<Vec<String>, ControlError> {
        match &self.backend {
            Backend::Local => Ok(Vec::new()),
            Backend::Cluster { switches, .. } => {
                Ok(self.control.store().pending(switches.name())?)
            }
        }
    }

    /// Makes `change` on behalf of `caller` (a label: `token:ops`), and
    /// audits it once made. Refused changes change nothing and are not
    /// audited here (the request is, in the log).
    pub async fn submit(&self, caller: &str, change: Change) -> Result<Applied, ControlError> {
        let about = audit::About::of(&change);
        let applied = match &self.backend {
            Backend::Local => self.local(change).await?,
            Backend::Cluster { cluster, switches } => {
                clustered(cluster, switches, &self.control, change).await?
            }
        };
        let (event, details) = about.describe(&applied);
        self.audit(caller, event, details).await;
        Ok(applied)
    }

    async fn local(&self, change: Change) -> Result<Applied, ControlError> {
        let control = &self.control;
        Ok(match change {
            Change::PutBundle { archive, target } => Applied::Bundle(
                heavy(control, move |c, turn| c.put_bundle(archive, target, turn)).await?,
            ),
            Change::ActivateBundle { digest, target } => Applied::Bundle(
                heavy(control, move |c, turn| c.activate(&digest, target, turn)).await?,
            ),
            Change::Rollback => Applied::Bundle(heavy(control, |c, turn| c.rollback(turn)).await?),
            Change::ClearShadow => Applied::ShadowCleared(
                blocking(control, |c| c.clear_shadow())
                    .await?
                    .map(ClearedShadow::Stored),
            ),
            Change::PutSnapshot { kind, document } => Applied::Snapshot(
                heavy(control, move |c, turn| {
                    c.put_snapshot(&kind, document, turn)
                })
                .await?,
            ),
            Change::EngageSwitch(spec) => {
                let engaged = blocking(control, move |c| c.engage(spec, SystemTime::now())).await?;
                Applied::Switch(SwitchChange {
                    switch: engaged.switch,
                    already: engaged.already,
                    pending: false,
                })
            }
            Change::ReleaseSwitch { id, reason, by } => SwitchChange::made(
                blocking(control, move |c| {
                    c.release(&id, reason, by, SystemTime::now())
                })
                .await?,
            ),
        })
    }

    /// Records the expiry of every kill switch past its `expires_at`
    /// (each replica records its own: expiry needs no agreement, checks
    /// stop matching at `expires_at` everywhere).
    pub async fn expire_due(&self) -> Result<(), ControlError> {
        let expired = blocking(&self.control, |c| c.expire_due(SystemTime::now())).await?;
        for switch in expired {
            let (event, details) = audit::expired(&switch);
            self.audit("warden", event, details).await;
        }
        Ok(())
    }

    /// Adds an admin event to the audit chain, durably. The change it
    /// records has already been made, so a failure is logged and counted,
    /// not returned.
    async fn audit(&self, caller: &str, event: &str, details: serde_json::Value) {
        let record = admin_record(event, caller, details, SystemTime::now());
        if let Err(e) = self.auditor.record_admin(&record).await {
            error!(event, error = %e, "an admin change was made but could not be audited");
        }
    }
}

/// A change made through etcd. Bundles and snapshots are checked here and
/// shared as blobs; kill switches are records, prepared here and shared.
async fn clustered(
    cluster: &Cluster,
    switch_records: &Arc<dyn RecordKind>,
    control: &Arc<Control>,
    change: Change,
) -> Result<Applied, ControlError> {
    Ok(match change {
        Change::PutBundle { archive, target } => {
            Applied::Bundle(cluster.put_bundle(archive, target).await?)
        }
        Change::ActivateBundle { digest, target } => {
            Applied::Bundle(cluster.activate(digest, target).await?)
        }
        Change::Rollback => Applied::Bundle(cluster.rollback().await?),
        Change::ClearShadow => Applied::ShadowCleared(cluster.clear_shadow().await?),
        Change::PutSnapshot { kind, document } => {
            Applied::Snapshot(cluster.put_snapshot(kind, document).await?)
        }
        Change::EngageSwitch(spec) => {
            let now = SystemTime::now();
            let switch = blocking(control, move |c| c.prepare_engage(spec, now)).await?;
            switches::engage(cluster, switch_records, control, switch).await?
        }
        Change::ReleaseSwitch { id, reason, by } => {
            switches::release(cluster, switch_records, control, id, reason, by).await?
        }
    })
}
