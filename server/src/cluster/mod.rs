//! Cluster mode: replicas that answer identically because they share, in
//! etcd, the kill switches, the bundles and which one is active, and the
//! snapshots. Audit chains stay local to each replica.
//!
//! etcd is the order of changes. A write made on any replica is checked
//! there first (nothing invalid reaches etcd), written to etcd, and then
//! applied by every replica — the writer included — as its watch reports
//! it, in etcd's order, so replicas converge on the same state. Records
//! (kill switches, and every other `RecordKind`) are also applied by the
//! writer at once, before it answers: an acknowledged engage is in force
//! there already, and on the others as soon as their watch delivers it.
//! Bundle and snapshot contents travel as blobs named by their SHA-256,
//! verified before they are used.
//!
//! This is a replication backend below the control plane: it reports
//! refusals as `ControlError`s and knows nothing of the API that asked.
//!
//! Without etcd a replica keeps serving what it last knew — its own store
//! holds every applied change — reports itself degraded, and refuses admin
//! writes: applying one locally only would make it answer differently from
//! the others.

mod bootstrap;
mod collect;
pub mod config;
mod data;
mod etcd;
mod keys;
mod partition;
mod records;
mod sync;
pub(crate) mod tls;
mod usage;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::audit::Auditor;
use crate::control::records::RecordKind;
use crate::control::{Control, ControlError};
use crate::killswitch::Mode;
use crate::readiness::Readiness;
use config::ClusterConfig;
pub use data::ClearedShadow;
pub use etcd::EtcdError;
use etcd::{Etcd, Listing};
use keys::Keys;
pub use tls::{EtcdFile, EtcdTls};

/// Whether this replica is in step with etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not yet in contact since start.
    Starting,
    Connected,
    Degraded(String),
}

/// The cluster side of one replica.
#[derive(Debug)]
pub struct Cluster {
    etcd: Etcd,
    keys: Keys,
    replica: String,
    timeout: Duration,
    /// How long an unnamed blob stays in etcd after it was last written.
    blob_grace: Duration,
    /// How long this replica may be out of touch with etcd before
    /// `on_partition` (`None`: serve) applies.
    partition_grace: Duration,
    on_partition: Option<Mode>,
    /// Since when this replica has not been in step with etcd (`None`
    /// while it is).
    cut_off_since: Mutex<Option<Instant>>,
    control: Arc<Control>,
    /// The kinds of record replicated as they are (kill switches, …).
    kinds: Vec<Arc<dyn RecordKind>>,
    auditor: Arc<Auditor>,
    readiness: Arc<Readiness>,
    link: Mutex<Link>,
    /// Changes from etcd this replica could not apply, by key, with why;
    /// retried by the sync loop.
    failures: Mutex<std::collections::BTreeMap<String, String>>,
    /// One data change (bundle, snapshot) applied at a time, across
    /// sessions.
    data_order: Arc<Mutex<()>>,
    /// Which session may apply data changes: a change from an aborted
    /// session that starts late finds the epoch moved and does nothing.
    epoch: Arc<std::sync::atomic::AtomicU64>,
    /// The highest etcd revision this replica has applied.
    applied: watch::Sender<i64>,
}

/// Why a cluster write was refused.
fn unavailable(link: &Link) -> ControlError {
    let why = match link {
        Link::Starting => "etcd has not been reached since this replica started".to_owned(),
        Link::Degraded(reason) => reason.clone(),
        Link::Connected => "etcd is unreachable".to_owned(),
    };
    ControlError::Unavailable(format!(
        "cluster mode: {why}; admin writes are refused so that replicas do not diverge"
    ))
}

fn etcd_error(error: &EtcdError) -> ControlError {
    match error {
        // The write may have been committed just before the deadline.
        EtcdError::Timeout(_) => ControlError::Unavailable(format!(
            "cluster mode: etcd did not confirm the change in time ({error}); it may or may not \
             have been applied: list the current state before retrying"
        )),
        _ => ControlError::Unavailable(format!(
            "cluster mode: the change could not be written to etcd ({error}); nothing changed"
        )),
    }
}

impl Cluster {
    pub fn new(
        config: &ClusterConfig,
        replica: String,
        control: Arc<Control>,
        kinds: Vec<Arc<dyn RecordKind>>,
        auditor: Arc<Auditor>,
        readiness: Arc<Readiness>,
    ) -> Result<Arc<Self>, EtcdError> {
        let (applied, _) = watch::channel(0);
        Ok(Arc::new(Self {
            etcd: Etcd::new(
                &config.etcd_endpoints,
                config.etcd_tls.as_ref(),
                config.etcd_timeout,
            )?,
            keys: Keys {
                prefix: config.prefix.clone(),
            },
            replica,
            timeout: config.etcd_timeout,
            blob_grace: config.blob_grace,
            partition_grace: config.partition_grace,
            on_partition: config.on_partition,
            cut_off_since: Mutex::new(Some(Instant::now())),
            control,
            kinds,
            auditor,
            readiness,
            link: Mutex::new(Link::Starting),
            failures: Mutex::new(std::collections::BTreeMap::new()),
            data_order: Arc::new(Mutex::new(())),
            epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            applied,
        }))
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// How this replica stands with the cluster: degraded while etcd is
    /// out of reach, and also while a change from etcd is not applied.
    pub fn link(&self) -> Link {
        let link = self.sync_link();
        if link == Link::Connected
            && let Some((key, reason)) = self.failed().iter().next()
        {
            return Link::Degraded(format!("cannot apply `{key}` from etcd: {reason}"));
        }
        link
    }

    /// Whether the sync loop is in step with etcd (writes are possible).
    fn sync_link(&self) -> Link {
        self.link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_link(&self, link: Link) {
        {
            let mut since = self
                .cut_off_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match link {
                Link::Connected => *since = None,
                _ => *since = since.or_else(|| Some(Instant::now())),
            }
        }
        *self
            .link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = link;
        self.refresh_readiness();
    }

    /// How long this replica has been out of step with etcd.
    fn cut_off_for(&self) -> Option<Duration> {
        self.cut_off_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|since| since.elapsed())
    }

    /// `cluster.on_partition`, while it is in force here.
    pub fn partitioned(&self) -> Option<Mode> {
        self.control.partitioned()
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `key` could not be applied; whether that is news.
    fn record_failure(&self, key: &str, reason: &str) -> bool {
        let new = self
            .failed()
            .insert(key.to_owned(), reason.to_owned())
            .as_deref()
            != Some(reason);
        self.refresh_readiness();
        new
    }

    fn clear_failure(&self, key: &str) {
        if self.failed().remove(key).is_some() {
            self.refresh_readiness();
        }
    }

    fn failed_keys(&self) -> Vec<String> {
        self.failed().keys().cloned().collect()
    }

    fn refresh_readiness(&self) {
        let partition = match self.partitioned() {
            Some(mode) => format!(
                "; partitioned: cut off from etcd for longer than cluster.partition_grace, \
                 on_partition = {} in force",
                mode.as_str()
            ),
            None => String::new(),
        };
        match self.link() {
            Link::Connected if partition.is_empty() => self.readiness.set_degraded(None),
            Link::Connected => self
                .readiness
                .set_degraded(Some(format!("cluster: in step again{partition}"))),
            Link::Degraded(reason) => self
                .readiness
                .set_degraded(Some(format!("cluster: {reason}{partition}"))),
            Link::Starting if partition.is_empty() => {}
            Link::Starting => self
                .readiness
                .set_degraded(Some(format!("cluster: etcd not reached yet{partition}"))),
        }
    }

    /// The etcd revision applied here.
    pub fn applied_revision(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Writes need etcd; a change this replica failed to apply does not
    /// stop them (a new push may be what repairs it).
    pub fn writable(&self) -> Result<(), ControlError> {
        match self.sync_link() {
            Link::Connected => Ok(()),
            other => Err(unavailable(&other)),
        }
    }

    /// Waits until this replica has applied etcd's revision `revision`.
    async fn caught_up(&self, revision: i64) -> Result<(), ControlError> {
        let mut applied = self.applied.subscribe();
        let wait = applied.wait_for(|applied| *applied >= revision);
        match tokio::time::timeout(self.timeout.saturating_mul(5), wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ControlError::Unavailable(format!(
                "cluster mode: the change is in etcd (revision {revision}) but this replica has not applied it yet; \
                 it will, once its watch catches up"
            ))),
        }
    }

    /// Keeps this replica in step with etcd until `stop` (see `sync`), and
    /// etcd free of what no pointer needs (see `collect`).
    /// The kind of record `key` holds, if it is a record's key.
    fn kind_of(&self, key: &str) -> Option<&Arc<dyn RecordKind>> {
        self.kinds
            .iter()
            .find(|kind| key.starts_with(&self.keys.records(kind.name())))
    }

    pub fn spawn(self: &Arc<Self>, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let (sync, collect, partition) = (
            sync::run(self.clone(), stop.clone()),
            collect::run(self.clone(), stop.clone()),
            partition::run(self.clone(), stop),
        );
        tokio::spawn(async move {
            tokio::join!(sync, collect, partition);
        })
    }

    async fn listing(&self) -> Result<Listing, EtcdError> {
        self.etcd.range(&self.keys.all()).await
    }
}
