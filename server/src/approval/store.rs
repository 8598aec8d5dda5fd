//! Where tasks live on this replica: a sled tree (`approval_tasks`), the
//! only copy on a single node and the applied copy of etcd's in a cluster.
//! Every change is a compare-and-swap of one task's record, flushed before
//! it is acknowledged, so a `kill -9` never gives a used approval back.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::json;
use tokio::sync::broadcast;

use super::error::ApprovalError;
use super::task::Task;
use crate::control::ControlError;
use crate::control::records::{Record, RecordKind};
use crate::killswitch::unix_ms;

pub const TREE: &str = "approval_tasks";

#[derive(Debug)]
pub struct TaskStore {
    db: sled::Db,
    tree: sled::Tree,
    changed: broadcast::Sender<Task>,
    failed: Mutex<Option<String>>,
}

fn store_error(e: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Unavailable(format!("approval store: {e}"))
}

fn decode(bytes: &[u8]) -> Result<Task, ApprovalError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApprovalError::Internal(format!("a stored task does not parse: {e}")))
}

pub fn encode(task: &Task) -> Result<Vec<u8>, ApprovalError> {
    serde_json::to_vec(task)
        .map_err(|e| ApprovalError::Internal(format!("cannot encode a task: {e}")))
}

impl TaskStore {
    pub fn open(db: &sled::Db) -> Result<Arc<Self>, ApprovalError> {
        let tree = db.open_tree(TREE).map_err(store_error)?;
        let (changed, _) = broadcast::channel(1024);
        Ok(Arc::new(Self {
            db: db.clone(),
            tree,
            changed,
            failed: Mutex::new(None),
        }))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Task> {
        self.changed.subscribe()
    }

    pub fn get(&self, id: &str) -> Result<Option<Task>, ApprovalError> {
        match self.tree.get(id.as_bytes()).map_err(store_error)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every task, in id order.
    pub fn all(&self) -> Result<Vec<Task>, ApprovalError> {
        self.tree
            .iter()
            .map(|entry| {
                let (_, bytes) = entry.map_err(store_error)?;
                decode(&bytes)
            })
            .collect()
    }

    /// Changes task `id` to what `change` makes of it (given the stored
    /// task, if any), atomically; `change` runs again if another writer got
    /// there first. Durable when this returns.
    pub fn update(
        &self,
        id: &str,
        change: &dyn Fn(Option<&Task>) -> Result<Task, ApprovalError>,
    ) -> Result<Task, ApprovalError> {
        loop {
            let old = self.tree.get(id.as_bytes()).map_err(store_error)?;
            let current = old.as_deref().map(decode).transpose()?;
            let mut task = change(current.as_ref())?;
            task.version = current.as_ref().map_or(1, |c| c.version + 1);
            let new = encode(&task)?;
            match self
                .tree
                .compare_and_swap(id.as_bytes(), old, Some(new))
                .map_err(store_error)?
            {
                Ok(()) => {
                    self.db.flush().map_err(store_error)?;
                    let _ = self.changed.send(task.clone());
                    return Ok(task);
                }
                Err(_) => continue,
            }
        }
    }

    /// Keeps `task` if it is newer than the stored one (a replica may see a
    /// change twice, or late); whether it did.
    pub fn merge(&self, task: &Task) -> Result<bool, ApprovalError> {
        let new = encode(task)?;
        loop {
            let old = self.tree.get(task.id.as_bytes()).map_err(store_error)?;
            if let Some(bytes) = &old
                && !task.newer_than(&decode(bytes)?)
            {
                return Ok(false);
            }
            if self
                .tree
                .compare_and_swap(task.id.as_bytes(), old, Some(new.clone()))
                .map_err(store_error)?
                .is_ok()
            {
                self.db.flush().map_err(store_error)?;
                let _ = self.changed.send(task.clone());
                return Ok(true);
            }
        }
    }

    pub fn remove(&self, id: &str) -> Result<(), ApprovalError> {
        self.tree.remove(id.as_bytes()).map_err(store_error)?;
        Ok(())
    }

    pub fn failed(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    fn set_failed(&self, reason: Option<String>) {
        if let Ok(mut failed) = self.failed.lock() {
            *failed = reason;
        }
    }
}

/// Approval tasks as replicated records: what a cluster backend applies as
/// its watch reports them.
#[derive(Debug)]
pub struct TaskRecords(pub Arc<TaskStore>);

fn control(e: ApprovalError) -> ControlError {
    ControlError::Internal(e.to_string())
}

impl RecordKind for TaskRecords {
    fn name(&self) -> &'static str {
        TREE
    }

    fn noun(&self) -> &'static str {
        "approval task"
    }

    fn local(&self) -> Result<Vec<Record>, ControlError> {
        self.0
            .all()
            .map_err(control)?
            .into_iter()
            .map(|task| {
                Ok(Record {
                    value: encode(&task).map_err(control)?,
                    id: task.id,
                })
            })
            .collect()
    }

    fn resync(&self, shared: &[Vec<u8>], _now: SystemTime) -> Result<(), ControlError> {
        for value in shared {
            let task = decode(value).map_err(control)?;
            self.0.merge(&task).map_err(control)?;
        }
        self.0.set_failed(None);
        Ok(())
    }

    fn apply(
        &self,
        value: &[u8],
        _now: SystemTime,
    ) -> Result<Option<serde_json::Value>, ControlError> {
        let task = decode(value).map_err(control)?;
        if !self.0.merge(&task).map_err(control)? {
            return Ok(None);
        }
        Ok(Some(
            json!({"id": task.id, "state": task.state.as_str(), "version": task.version}),
        ))
    }

    fn fail(&self, reason: String) {
        self.0.set_failed(Some(reason));
    }

    fn failed(&self) -> Option<String> {
        self.0.failed()
    }
}

pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}
