//! The counters: one sliding window per (rule, key), in shards behind
//! their own locks so that checks on different keys never wait on each
//! other, with a cap on how many keys are held.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::window::Window;

const SHARDS: usize = 64;

/// Whether an entry counts a budget or a tripwire's outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Limit,
    Tripwire,
}

/// One rule's window for one key.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    /// The rule's fingerprint when this was counted: another one means the
    /// rule changed, and counting starts again.
    pub fingerprint: u64,
    pub width_ms: u64,
    /// What this replica admitted.
    pub own: Window,
    /// What the other replicas last published, summed.
    pub remote: Option<Box<Window>>,
    /// A tripwire's switch, once fired: it does not fire again for this key
    /// while that switch is in force.
    pub fired: Option<Box<str>>,
    /// A tripwire's switch being engaged right now.
    pub firing: bool,
}

impl Entry {
    pub fn new(kind: EntryKind, fingerprint: u64, width_ms: u64) -> Self {
        Self {
            kind,
            fingerprint,
            width_ms,
            own: Window::default(),
            remote: None,
            fired: None,
            firing: false,
        }
    }

    /// Makes the entry count for a rule with this fingerprint and width,
    /// starting again if the rule changed.
    pub fn align(&mut self, kind: EntryKind, fingerprint: u64, width_ms: u64) {
        if self.fingerprint != fingerprint || self.width_ms != width_ms || self.kind != kind {
            *self = Entry::new(kind, fingerprint, width_ms);
        }
    }

    /// Both windows moved to `bucket`; the usage held in them.
    pub fn usage_at(&mut self, bucket: u64) -> u64 {
        self.own.advance(bucket);
        let remote = self.remote.as_mut().map_or(0, |r| {
            r.advance(bucket);
            r.total()
        });
        self.own.total().saturating_add(remote)
    }

    pub fn idle_at(&self, bucket: u64) -> bool {
        self.own.idle_at(bucket)
            && self.remote.as_ref().is_none_or(|r| r.idle_at(bucket))
            && self.fired.is_none()
            && !self.firing
    }
}

#[derive(Debug, Default)]
pub struct Shard {
    pub map: HashMap<Box<str>, Entry>,
    /// Changed since the last persisted snapshot.
    pub dirty: bool,
}

#[derive(Debug)]
pub struct Counters {
    shards: Box<[Mutex<Shard>]>,
    /// Fixed keys: a key's shard is the same after a restart, so each
    /// stored shard holds exactly the keys of one live shard.
    hasher: BuildHasherDefault<DefaultHasher>,
    keys: AtomicUsize,
    max_keys: usize,
}

/// Why a new key could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Counters {
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: BuildHasherDefault::default(),
            keys: AtomicUsize::new(0),
            max_keys,
        }
    }

    pub fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Locks shard `index`. A poisoned lock held counters only, which stay
    /// usable: the panic that poisoned it is reported where it happened.
    pub fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        let shard = &self.shards[index % SHARDS];
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn shard_count(&self) -> usize {
        SHARDS
    }

    pub fn keys(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The entry for `key` in the locked `shard`, created if there is room
    /// (idle entries of the shard are dropped first when there is not).
    pub fn entry<'s>(
        &self,
        shard: &'s mut Shard,
        key: &str,
        make: impl FnOnce() -> Entry,
        bucket_of: impl Fn(&Entry) -> u64,
    ) -> Result<&'s mut Entry, Full> {
        if !shard.map.contains_key(key) {
            if self.keys.load(Ordering::Relaxed) >= self.max_keys {
                let before = shard.map.len();
                shard
                    .map
                    .retain(|_, entry| !entry.idle_at(bucket_of(entry)));
                let dropped = before - shard.map.len();
                self.keys.fetch_sub(dropped, Ordering::Relaxed);
                if self.keys.load(Ordering::Relaxed) >= self.max_keys {
                    return Err(Full);
                }
            }
            self.keys.fetch_add(1, Ordering::Relaxed);
            shard.map.insert(key.into(), make());
        }
        shard.map.get_mut(key).ok_or(Full)
    }

    /// Drops idle entries everywhere; how many.
    pub fn evict_idle(&self, bucket_of: impl Fn(&Entry) -> u64) -> usize {
        let mut dropped = 0;
        for index in 0..SHARDS {
            let mut shard = self.lock(index);
            let before = shard.map.len();
            shard
                .map
                .retain(|_, entry| !entry.idle_at(bucket_of(entry)));
            let gone = before - shard.map.len();
            if gone > 0 {
                shard.dirty = true;
            }
            dropped += gone;
        }
        self.keys.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    /// Removes entries for which `remove` says so; how many.
    pub fn remove_where(&self, mut remove: impl FnMut(&str, &Entry) -> bool) -> usize {
        let mut removed = 0;
        for index in 0..SHARDS {
            let mut shard = self.lock(index);
            let before = shard.map.len();
            shard.map.retain(|key, entry| !remove(key, entry));
            let gone = before - shard.map.len();
            if gone > 0 {
                shard.dirty = true;
            }
            removed += gone;
        }
        self.keys.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Marks every shard changed, so the next save writes them all.
    pub fn touch_all(&self) {
        for index in 0..SHARDS {
            self.lock(index).dirty = true;
        }
    }

    /// Inserts restored entries (persisted, or from before a restart),
    /// within the cap.
    pub fn restore(&self, entries: impl IntoIterator<Item = (Box<str>, Entry)>) -> usize {
        let mut restored = 0;
        for (key, entry) in entries {
            if self.keys.load(Ordering::Relaxed) >= self.max_keys {
                break;
            }
            let mut shard = self.lock(self.shard_of(&key));
            if shard.map.insert(key, entry).is_none() {
                self.keys.fetch_add(1, Ordering::Relaxed);
                restored += 1;
            }
        }
        restored
    }
}

/// The counter key: the rule id, then each dimension's value, length
/// prefixed so that no choice of ids makes two keys collide.
pub fn key(buffer: &mut String, rule: &str, values: &[&str]) {
    use std::fmt::Write;
    buffer.clear();
    buffer.push_str(rule);
    for value in values {
        let _ = write!(buffer, "\u{1f}{}:{value}", value.len());
    }
}

/// The rule id and values of a key made by [`key`].
pub fn split(key: &str) -> Option<(&str, Vec<&str>)> {
    let (rule, mut rest) = key.split_once('\u{1f}').unwrap_or((key, ""));
    let mut values = Vec::new();
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let value = after.get(..len)?;
        values.push(value);
        rest = after.get(len..)?;
        rest = rest.strip_prefix('\u{1f}').unwrap_or(rest);
    }
    Some((rule, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn keys_split_back_into_their_parts(rule in "[a-z0-9._-]{1,20}", values in proptest::collection::vec(".{0,12}", 0..4)) {
            let mut buffer = String::new();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            key(&mut buffer, &rule, &refs);
            let (r, v) = split(&buffer).ok_or_else(|| TestCaseError::fail("unsplittable"))?;
            prop_assert_eq!(r, rule.as_str());
            prop_assert_eq!(v, refs);
        }

        #[test]
        fn different_values_make_different_keys(a in proptest::collection::vec(".{0,6}", 1..3), b in proptest::collection::vec(".{0,6}", 1..3)) {
            prop_assume!(a != b);
            let (mut ka, mut kb) = (String::new(), String::new());
            key(&mut ka, "r", &a.iter().map(String::as_str).collect::<Vec<_>>());
            key(&mut kb, "r", &b.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_ne!(ka, kb);
        }
    }

    #[test]
    fn a_full_table_drops_idle_keys_before_refusing() {
        let counters = Counters::new(2);
        let make = || Entry::new(EntryKind::Limit, 1, 1000);
        for name in ["a", "b"] {
            let mut shard = counters.lock(counters.shard_of(name));
            let entry = counters.entry(&mut shard, name, make, |_| 0);
            if let Ok(entry) = entry {
                entry.own.add(0, 1);
            }
        }
        assert_eq!(counters.keys(), 2);
        let mut shard = counters.lock(counters.shard_of("c"));
        // Both live at bucket 0: refused.
        assert!(counters.entry(&mut shard, "c", make, |_| 0).is_err());
        drop(shard);
        // Long after: idle, evicted on demand.
        let dropped = counters.evict_idle(|_| 1_000);
        assert_eq!(dropped, 2);
        let mut shard = counters.lock(counters.shard_of("c"));
        assert!(counters.entry(&mut shard, "c", make, |_| 1_000).is_ok());
    }
}
