//! Records (kill switches, and every other `RecordKind`) written to etcd:
//! one key per record, compare-and-swap on its revision, then applied here
//! before the writer answers.

use std::sync::Arc;
use std::time::SystemTime;

use super::{Cluster, etcd_error};
use crate::control::ControlError;
use crate::control::blocking;
use crate::control::records::RecordKind;

impl Cluster {
    /// Record `id` of `kind` as etcd has it: its value and revision.
    pub async fn record(
        &self,
        kind: &dyn RecordKind,
        id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>, ControlError> {
        self.writable()?;
        let entry = self
            .etcd
            .get(&self.keys.record(kind.name(), id))
            .await
            .map_err(|e| etcd_error(&e))?;
        Ok(entry.map(|e| (e.value, e.mod_revision)))
    }

    /// Writes `value` as record `id` if its key is still at `mod_revision`
    /// (0: absent); whether it did. Not yet applied here: see `apply_shared`.
    pub async fn put_record(
        &self,
        kind: &dyn RecordKind,
        id: &str,
        value: Vec<u8>,
        mod_revision: i64,
    ) -> Result<bool, ControlError> {
        self.writable()?;
        let written = self
            .etcd
            .put_if(&self.keys.record(kind.name(), id), value, mod_revision)
            .await
            .map_err(|e| etcd_error(&e))?;
        Ok(written.is_some())
    }

    /// Deletes record `id` of `kind` if its key is still at `mod_revision`;
    /// whether it did. Replicas drop their own copies on their own (records
    /// that expire do so by time, everywhere alike).
    pub async fn delete_record(
        &self,
        kind: &dyn RecordKind,
        id: &str,
        mod_revision: i64,
    ) -> Result<bool, ControlError> {
        self.writable()?;
        self.etcd
            .delete_if(&self.keys.record(kind.name(), id), mod_revision)
            .await
            .map_err(|e| etcd_error(&e))
    }

    /// Applies here a record that is in etcd: in force on this replica when
    /// this returns, and on every other as its watch delivers it.
    pub async fn apply_shared(
        &self,
        kind: &Arc<dyn RecordKind>,
        id: &str,
        value: Vec<u8>,
    ) -> Result<(), ControlError> {
        let applied = blocking(kind, move |k| k.apply(&value, SystemTime::now())).await;
        if let Err(e) = applied {
            // In force on the other replicas; here the kind fails closed
            // until the sync loop reloads and applies it again.
            kind.fail(format!(
                "{} `{id}` is in etcd but could not be applied here: {e}",
                kind.noun()
            ));
            return Err(ControlError::Unavailable(format!(
                "{} `{id}` was written to etcd and applies on the other replicas, but not \
                 on this one ({e}); this replica fails closed until it has caught up",
                kind.noun()
            )));
        }
        Ok(())
    }
}
