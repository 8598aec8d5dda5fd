//! The chain in sled. Entries are packed: each sled value holds the lines
//! of consecutive entries (up to `MAX_VALUE_BYTES`), keyed by the first
//! one's big-endian sequence number. sled's cost is mostly per item and per
//! flushed page, so packing a commit group into a few values, rather than
//! one item per record, cuts the writer's CPU several times over.
//!
//! Retention leaves an anchor: where the stored chain now starts.

use serde_json::{Value as Json, json};
use warden_audit::{Break, Entry, GENESIS, Verifier};

use crate::store::StoreError;

/// Largest packed value; well under the size at which sled stores a value
/// as a separate blob file.
const MAX_VALUE_BYTES: usize = 32 * 1024;
const ANCHOR: &[u8] = b"anchor";

/// Where the stored chain starts when retention has removed its beginning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub next_seq: u64,
    pub prev_hash: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    /// Where verification started: the genesis, or a retention checkpoint.
    pub from: Anchor,
    pub head_seq: u64,
    pub head_hash: String,
    pub broken: Option<Break>,
}

/// The stored chain.
#[derive(Debug, Clone)]
pub struct AuditLog {
    db: sled::Db,
    entries: sled::Tree,
    meta: sled::Tree,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("audit: {what}"))
}

impl AuditLog {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            entries: db.open_tree("audit")?,
            meta: db.open_tree("audit_meta")?,
        })
    }

    /// The last entry's sequence number and hash, where the next entry
    /// links: `(0, GENESIS)` for an empty chain.
    pub fn head(&self) -> Result<(u64, String), StoreError> {
        match self.entries.last()? {
            Some((key, value)) => {
                let first = key_seq(&key)?;
                let text = String::from_utf8_lossy(&value);
                let count = text.lines().count() as u64;
                let line = text.lines().last().unwrap_or_default();
                let seq = first + count.saturating_sub(1);
                let entry = Entry::parse(line).map_err(|e| corrupt(format!("entry {seq}: {e}")))?;
                Ok((seq, entry.hash))
            }
            None => match self.anchor()? {
                Some(anchor) => Ok((anchor.next_seq.saturating_sub(1), anchor.prev_hash)),
                None => Ok((0, GENESIS.to_owned())),
            },
        }
    }

    /// Writes sealed lines of consecutive entries (not flushed).
    pub fn append(&self, lines: &[(u64, String)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut value = String::new();
        let mut first = None;
        for (seq, line) in lines {
            if !value.is_empty() && value.len() + line.len() > MAX_VALUE_BYTES {
                if let Some(first) = first.take() {
                    batch.insert(&u64::to_be_bytes(first), value.as_bytes());
                }
                value.clear();
            }
            first.get_or_insert(*seq);
            if !value.is_empty() {
                value.push('\n');
            }
            value.push_str(line);
        }
        if let Some(first) = first {
            batch.insert(&first.to_be_bytes(), value.as_bytes());
        }
        self.entries.apply_batch(batch)?;
        Ok(())
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The first stored entry's sequence number: the anchor's, once
    /// retention has run.
    pub fn first_seq(&self) -> Result<Option<u64>, StoreError> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        if let Some(anchor) = self.anchor()? {
            return Ok(Some(anchor.next_seq));
        }
        self.entries
            .first()?
            .map(|(key, _)| key_seq(&key))
            .transpose()
    }

    /// Entry lines from `from` (or the first stored entry) on, in order,
    /// each with the position it is stored at.
    pub fn range(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<(u64, String), StoreError>> + use<> {
        let from = match self.first_seq() {
            Ok(Some(first)) => from.max(first),
            _ => from,
        };
        // Start at the value holding `from`, which may begin before it.
        let start = self
            .entries
            .range(..=from.to_be_bytes())
            .keys()
            .next_back()
            .and_then(Result::ok)
            .map_or_else(|| from.to_be_bytes().to_vec(), |key| key.to_vec());
        self.entries
            .range(start..)
            .flat_map(|item| -> Vec<Result<(u64, String), StoreError>> {
                match item {
                    Err(e) => vec![Err(e.into())],
                    Ok((key, value)) => match key_seq(&key) {
                        Err(e) => vec![Err(e)],
                        Ok(first) => String::from_utf8_lossy(&value)
                            .lines()
                            .enumerate()
                            .map(|(i, line)| Ok((first + i as u64, line.to_owned())))
                            .collect(),
                    },
                }
            })
            .filter(move |item| item.as_ref().map_or(true, |(seq, _)| *seq >= from))
    }

    /// One entry's line.
    pub fn get(&self, seq: u64) -> Result<Option<String>, StoreError> {
        match self.range(seq).next().transpose()? {
            Some((at, line)) if at == seq => Ok(Some(line)),
            _ => Ok(None),
        }
    }

    pub fn anchor(&self) -> Result<Option<Anchor>, StoreError> {
        let Some(bytes) = self.meta.get(ANCHOR)? else {
            return Ok(None);
        };
        let value: Json =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("anchor: {e}")))?;
        match (value["next_seq"].as_u64(), value["prev_hash"].as_str()) {
            (Some(next_seq), Some(prev_hash)) => Ok(Some(Anchor {
                next_seq,
                prev_hash: prev_hash.to_owned(),
            })),
            _ => Err(corrupt("anchor is malformed")),
        }
    }

    /// Bytes of the chain's entry lines from its first entry on (what
    /// `max_bytes` bounds).
    pub fn stored_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for item in self.range(0) {
            total += item?.1.len() as u64 + 1;
        }
        Ok(total)
    }

    /// Records that the chain now starts at `anchor`, then removes every
    /// entry before it. Flushed. Returns how many entries it removed.
    pub fn truncate(&self, anchor: &Anchor) -> Result<u64, StoreError> {
        let value = json!({"next_seq": anchor.next_seq, "prev_hash": anchor.prev_hash});
        self.meta.insert(ANCHOR, value.to_string().as_bytes())?;
        self.flush()?;
        // Remove the values whose entries all precede the anchor; one that
        // straddles it stays (reads skip its early entries).
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        for item in self.entries.range(..anchor.next_seq.to_be_bytes()) {
            let (key, value) = item?;
            let count = String::from_utf8_lossy(&value).lines().count() as u64;
            if key_seq(&key)? + count <= anchor.next_seq {
                batch.remove(key);
                removed += count;
            }
        }
        self.entries.apply_batch(batch)?;
        self.flush()?;
        Ok(removed)
    }

    /// Walks the chain from its anchor (or the genesis) to its head.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let from = self.anchor()?.unwrap_or(Anchor {
            next_seq: 1,
            prev_hash: GENESIS.to_owned(),
        });
        let mut verifier = Verifier::from_anchor(from.next_seq, from.prev_hash.clone());
        let mut broken = None;
        let mut head_seq = from.next_seq.saturating_sub(1);
        for item in self.range(from.next_seq) {
            let (position, line) = item?;
            // An entry must sit at its own sequence number: a record moved
            // elsewhere is reordered even if its line is intact.
            let result = match Entry::parse(&line) {
                Ok(entry) if entry.seq != position => Err(Break::Missing {
                    expected: position,
                    found: entry.seq,
                }),
                Ok(entry) => verifier.push(&entry),
                Err(message) => Err(Break::Unreadable { position, message }),
            };
            if let Err(e) = result {
                broken = Some(e);
                break;
            }
            head_seq = position;
        }
        Ok(VerifyReport {
            checked: verifier.checked(),
            head_hash: verifier.head().unwrap_or(&from.prev_hash).to_owned(),
            from,
            head_seq,
            broken,
        })
    }
}

fn key_seq(key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt("an entry key is not a sequence number"))
}
