//! The embedded store (sled) under the data directory: pushed bundles,
//! snapshots, which bundle is active, and kill switches.
//!
//! Opening it also takes sled's lock on the directory, so two servers can
//! never share one data directory by mistake. Every write that a client is
//! told about is flushed first.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::killswitch::Switch;
use crate::snapshot::SnapshotKind;

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store in `{dir}`: {message}")]
    Open { dir: String, message: String },
    #[error("store: {0}")]
    Io(String),
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    #[error("no stored bundle has a digest starting with `{0}`")]
    NotFound(String),
    #[error("several stored bundles have digests starting with `{0}`; give more digits")]
    Ambiguous(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// What is known about a stored bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRecord {
    pub revision: String,
    pub digest: String,
    pub entrypoint: String,
    pub engine: String,
    /// RFC 3339.
    pub pushed_at: String,
    pub size_bytes: u64,
    pub signed_by: Option<String>,
    pub tests_passed: u32,
    /// Push order; larger is newer.
    pub seq: u64,
}

/// Which bundles are serving.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingState {
    pub active: Option<String>,
    pub shadow: Option<String>,
    /// Previously active digests, most recent last: where rollback goes.
    pub history: Vec<String>,
}

/// The open store.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    bundles: sled::Tree,
    archives: sled::Tree,
    snapshots: sled::Tree,
    killswitches: sled::Tree,
    /// Replicated records changed here while the cluster was out of reach,
    /// keyed `{kind}/{id}`: not yet published.
    pending: sled::Tree,
    instance_id: String,
}

const INSTANCE_ID: &[u8] = b"instance_id";
const SERVING: &[u8] = b"serving";
const SEQ: &[u8] = b"seq";
/// The tree of kill-switch records, keyed by switch id.
pub const KILLSWITCH_TREE: &str = "killswitches";

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let open_error = |message: String| StoreError::Open {
            dir: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        // sled caches 1 GiB by default; Warden reads its store at start-up,
        // on admin calls and for audit queries, and otherwise only appends,
        // so a small cache is enough (a larger one did not speed up the
        // audit writer measurably). HighThroughput: the audit chain is an
        // append-heavy log, and this mode cut the writer's CPU.
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(8 * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| open_error(e.to_string()))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_error(e.to_string()));
        let meta = tree("meta")?;
        // The instance id names this server's state in logs and audit
        // records; it survives restarts.
        let fresh = uuid::Uuid::now_v7().to_string();
        let instance_id = match meta.compare_and_swap(
            INSTANCE_ID,
            None as Option<&[u8]>,
            Some(fresh.as_bytes()),
        )? {
            Ok(()) => fresh,
            Err(existing) => existing
                .current
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or(fresh),
        };
        let store = Self {
            bundles: tree("bundles")?,
            archives: tree("bundle_archives")?,
            snapshots: tree("snapshots")?,
            killswitches: tree(KILLSWITCH_TREE)?,
            pending: tree("pending_records")?,
            meta,
            db,
            instance_id,
        };
        store.flush()?;
        Ok(store)
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The underlying database, for other parts of the server that keep
    /// their own trees (kill switches, audit).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A number that increases with every call, persisted.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let next = self.meta.update_and_fetch(SEQ, |old| {
            let current = old
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .map_or(0, u64::from_be_bytes);
            Some(current.saturating_add(1).to_be_bytes().to_vec())
        })?;
        next.and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt("sequence counter".into()))
    }

    pub fn serving(&self) -> Result<ServingState, StoreError> {
        match self.meta.get(SERVING)? {
            None => Ok(ServingState::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("serving state: {e}"))),
        }
    }

    /// Records which bundles serve; durable when this returns.
    pub fn set_serving(&self, state: &ServingState) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state).map_err(|e| StoreError::Io(e.to_string()))?;
        self.meta.insert(SERVING, bytes)?;
        self.flush()
    }

    /// Stores a bundle's archive and record (not yet flushed: the serving
    /// state written after it is).
    pub fn put_bundle(&self, record: &BundleRecord, archive: &[u8]) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Io(e.to_string()))?;
        self.archives.insert(record.digest.as_bytes(), archive)?;
        self.bundles.insert(record.digest.as_bytes(), bytes)?;
        Ok(())
    }

    pub fn bundle_record(&self, digest: &str) -> Result<Option<BundleRecord>, StoreError> {
        match self.bundles.get(digest.as_bytes())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("bundle record `{digest}`: {e}"))),
        }
    }

    pub fn bundle_archive(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.archives.get(digest.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Every stored bundle, newest first.
    pub fn bundles(&self) -> Result<Vec<BundleRecord>, StoreError> {
        let mut records = Vec::new();
        for entry in self.bundles.iter() {
            let (key, bytes) = entry?;
            let record: BundleRecord = serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Corrupt(format!(
                    "bundle record `{}`: {e}",
                    String::from_utf8_lossy(&key)
                ))
            })?;
            records.push(record);
        }
        records.sort_by_key(|r| std::cmp::Reverse(r.seq));
        Ok(records)
    }

    /// The stored bundle whose digest starts with `prefix`.
    pub fn find_bundle(&self, prefix: &str) -> Result<BundleRecord, StoreError> {
        let mut found = self
            .bundles()?
            .into_iter()
            .filter(|r| r.digest.starts_with(prefix));
        match (found.next(), found.next()) {
            (Some(record), None) => Ok(record),
            (None, _) => Err(StoreError::NotFound(prefix.to_owned())),
            (Some(_), Some(_)) => Err(StoreError::Ambiguous(prefix.to_owned())),
        }
    }

    /// Deletes all but the newest `keep` bundles, never one in `protected`.
    pub fn prune_bundles(&self, keep: usize, protected: &[&str]) -> Result<(), StoreError> {
        for record in self.bundles()?.into_iter().skip(keep) {
            if !protected.contains(&record.digest.as_str()) {
                self.bundles.remove(record.digest.as_bytes())?;
                self.archives.remove(record.digest.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Stores a snapshot document as the newest of its kind and keeps the
    /// last `keep`; durable when this returns.
    pub fn put_snapshot(
        &self,
        kind: SnapshotKind,
        seq: u64,
        document: &[u8],
        keep: usize,
    ) -> Result<(), StoreError> {
        self.snapshots.insert(snapshot_key(kind, seq), document)?;
        let keys: Vec<_> = self
            .snapshots
            .scan_prefix(snapshot_prefix(kind))
            .keys()
            .collect::<Result<_, _>>()?;
        for key in keys.iter().rev().skip(keep.max(1)) {
            self.snapshots.remove(key)?;
        }
        self.flush()
    }

    /// The newest stored snapshot of `kind`.
    pub fn snapshot(&self, kind: SnapshotKind) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .snapshots
            .scan_prefix(snapshot_prefix(kind))
            .values()
            .next_back()
            .transpose()?
            .map(|v| v.to_vec()))
    }
}

impl Store {
    /// Writes a kill switch's record; durable when this returns.
    pub fn put_switch(&self, switch: &Switch) -> Result<(), StoreError> {
        self.stage_switch(switch)?;
        self.flush()
    }

    /// Writes a kill switch's record without waiting for the disk; returns
    /// the record it replaced, for `unstage_switch`. Durable after `flush`.
    pub fn stage_switch(&self, switch: &Switch) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes = serde_json::to_vec(switch).map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(self
            .killswitches
            .insert(switch.id.as_bytes(), bytes)?
            .map(|old| old.to_vec()))
    }

    /// Puts back what `stage_switch` replaced, after a failed flush.
    pub fn unstage_switch(&self, id: &str, previous: Option<Vec<u8>>) -> Result<(), StoreError> {
        match previous {
            Some(bytes) => self.killswitches.insert(id.as_bytes(), bytes)?,
            None => self.killswitches.remove(id.as_bytes())?,
        };
        Ok(())
    }

    /// One stored kill switch.
    pub fn switch(&self, id: &str) -> Result<Option<Switch>, StoreError> {
        match self.killswitches.get(id.as_bytes())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("kill switch record `{id}`: {e}"))),
        }
    }

    /// Every stored kill switch, engaged or ended. One unreadable record
    /// fails the whole read: a switch that cannot be read might be the one
    /// that should stop a check.
    pub fn switches(&self) -> Result<Vec<Switch>, StoreError> {
        let mut switches = Vec::new();
        for entry in self.killswitches.iter() {
            let (key, bytes) = entry?;
            let switch: Switch = serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Corrupt(format!(
                    "kill switch record `{}`: {e}",
                    String::from_utf8_lossy(&key)
                ))
            })?;
            if switch.id.as_bytes() != key.as_ref() {
                return Err(StoreError::Corrupt(format!(
                    "kill switch record `{}` holds switch `{}`",
                    String::from_utf8_lossy(&key),
                    switch.id
                )));
            }
            switches.push(switch);
        }
        Ok(switches)
    }
}

impl Store {
    /// Marks record `id` of `kind` as changed here but not yet published to
    /// the cluster; durable when this returns.
    pub fn mark_pending(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        self.pending
            .insert(format!("{kind}/{id}").as_bytes(), &[] as &[u8])?;
        self.flush()
    }

    /// The ids of `kind` marked pending.
    pub fn pending(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{kind}/");
        let mut ids = Vec::new();
        for entry in self.pending.scan_prefix(prefix.as_bytes()) {
            let (key, _) = entry?;
            let key = String::from_utf8_lossy(&key);
            if let Some(id) = key.strip_prefix(&prefix) {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }

    /// Record `id` of `kind` is published; durable when this returns.
    pub fn clear_pending(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        if self
            .pending
            .remove(format!("{kind}/{id}").as_bytes())?
            .is_some()
        {
            self.flush()?;
        }
        Ok(())
    }
}

fn snapshot_prefix(kind: SnapshotKind) -> Vec<u8> {
    let mut prefix = kind.as_str().as_bytes().to_vec();
    prefix.push(b'/');
    prefix
}

/// `<kind>/<seq, big-endian>`: keys of one kind sort by push order.
fn snapshot_key(kind: SnapshotKind, seq: u64) -> Vec<u8> {
    let mut key = snapshot_prefix(kind);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}
