//! Counters across restarts: every `limits.counter_snapshot_interval` the
//! shards changed since the last snapshot are written to the store, one
//! value per shard, and read back at start. A crash forgets at most what
//! was admitted within one interval (the loss window); a clean stop writes
//! a last snapshot and forgets nothing.

use serde::{Deserialize, Serialize};

use super::UsageLimits;
use super::counters::{Entry, EntryKind};
use super::window::Window;

const TREE: &str = "limit_counters";

/// Why counters could not be saved or read.
#[derive(Debug, thiserror::Error)]
#[error("limit counters: {0}")]
pub struct PersistError(String);

/// One key as stored (and as published to other replicas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub k: String,
    /// 0: limit, 1: tripwire.
    pub t: u8,
    pub f: u64,
    pub w: u64,
    /// Non-empty buckets, `(bucket, amount)`.
    pub b: Vec<(u64, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<String>,
}

impl Saved {
    pub fn of(key: &str, entry: &Entry) -> Self {
        Saved {
            k: key.to_owned(),
            t: match entry.kind {
                EntryKind::Limit => 0,
                EntryKind::Tripwire => 1,
            },
            f: entry.fingerprint,
            w: entry.width_ms,
            b: entry.own.buckets().collect(),
            fired: entry.fired.as_deref().map(str::to_owned),
        }
    }

    pub fn window(&self) -> Window {
        let mut window = Window::default();
        for (bucket, amount) in &self.b {
            window.add(*bucket, *amount);
        }
        window
    }

    fn entry(self) -> (Box<str>, Entry) {
        let kind = if self.t == 1 {
            EntryKind::Tripwire
        } else {
            EntryKind::Limit
        };
        let mut entry = Entry::new(kind, self.f, self.w.max(1));
        entry.own = self.window();
        entry.fired = self.fired.map(Into::into);
        (self.k.into(), entry)
    }
}

fn error(e: impl std::fmt::Display) -> PersistError {
    PersistError(e.to_string())
}

impl UsageLimits {
    /// Writes the shards changed since the last call; how many keys.
    /// Each shard is copied under its lock and written after.
    pub fn save(&self, db: &sled::Db) -> Result<usize, PersistError> {
        let tree = db.open_tree(TREE).map_err(error)?;
        let mut written = 0;
        let mut batch = sled::Batch::default();
        let mut taken = Vec::new();
        for index in 0..self.counters.shard_count() {
            let saved: Vec<Saved> = {
                let mut shard = self.counters.lock(index);
                if !shard.dirty {
                    continue;
                }
                shard.dirty = false;
                shard
                    .map
                    .iter()
                    .map(|(key, entry)| Saved::of(key, entry))
                    .filter(|s| !s.b.is_empty() || s.fired.is_some())
                    .collect()
            };
            taken.push(index);
            written += saved.len();
            let value = serde_json::to_vec(&saved).map_err(error)?;
            batch.insert(
                &u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes(),
                value,
            );
        }
        if taken.is_empty() {
            return Ok(0);
        }
        // One batch: a crash leaves the previous snapshot or this one,
        // never a key in two shards.
        let applied = tree
            .apply_batch(batch)
            .and_then(|()| tree.flush().map(drop));
        if let Err(e) = applied {
            // Written at the next snapshot instead.
            for index in taken {
                self.counters.lock(index).dirty = true;
            }
            return Err(error(e));
        }
        Ok(written)
    }

    /// Reads what `save` wrote; how many keys. Entries of a rule that
    /// changed meanwhile are dropped when first used (their fingerprint).
    pub fn load(&self, db: &sled::Db) -> Result<usize, PersistError> {
        let tree = db.open_tree(TREE).map_err(error)?;
        let mut entries = Vec::new();
        for item in tree.iter() {
            let (_, value) = item.map_err(error)?;
            // A shard that cannot be read starts empty rather than stopping
            // the server: its usage is lost, as after a crash.
            match serde_json::from_slice::<Vec<Saved>>(&value) {
                Ok(saved) => entries.extend(saved.into_iter().map(Saved::entry)),
                Err(e) => {
                    tracing::warn!(error = %e, "limit counters: a stored shard is unreadable; its usage starts again")
                }
            }
        }
        let restored = self.counters.restore(entries);
        // Rewritten whole at the next save: what could not be restored (over
        // the cap, or under another shard) is dropped from the store too.
        self.counters.touch_all();
        Ok(restored)
    }
}
