//! The audit chain's format, shared by the server that writes and verifies
//! it and by the offline verifier that needs nothing but an export file.
//!
//! Each entry is one line of canonical JSON:
//! `{"hash":…,"prev_hash":…,"record":{…},"seq":N}`. `hash` is SHA-256 over
//! the domain tag, `seq`, `prev_hash` and the record's canonical encoding, so
//! changing, removing or reordering any entry breaks the link to the next.

use std::fmt::Write as _;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Separates these hashes from any other SHA-256 use.
const DOMAIN: &str = "warden-audit-v1";

/// Compact JSON with object keys sorted by their UTF-8 bytes: one encoding
/// per value, so a verifier can recompute a hash from a parsed record.
pub fn canonical(value: &Json) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Appends `value`'s canonical encoding to `out`.
pub fn write_canonical(value: &Json, out: &mut String) {
    match value {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                if let Some(value) = map.get(key) {
                    write_canonical(value, out);
                }
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Json::String(s) => write_string(s, out),
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        // serde_json's number printing round-trips.
        Json::Number(n) => {
            let _ = write!(out, "{n}");
        }
    }
}

/// JSON string escaping exactly as serde_json does it (quote, backslash
/// and control characters only), written without allocating: this runs for
/// every key and string of every record. A property test holds the two
/// equal.
pub fn write_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The hash that seals a record at `seq` after `prev_hash`.
pub fn link_hash(seq: u64, prev_hash: &str, record_canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN.as_bytes());
    hasher.update(b"\n");
    hasher.update(seq.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(record_canonical.as_bytes());
    hex::encode(hasher.finalize())
}

/// Writes a canonical JSON object whose keys the caller adds in sorted
/// order, without building a `serde_json::Value` first: for records built
/// on every check. Debug builds check the order.
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
    #[cfg(debug_assertions)]
    last_key: String,
}

impl<'a> ObjectWriter<'a> {
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self {
            out,
            first: true,
            #[cfg(debug_assertions)]
            last_key: String::new(),
        }
    }

    /// Starts member `key`; the caller then writes its value to `out()`.
    pub fn key(&mut self, key: &str) -> &mut String {
        #[cfg(debug_assertions)]
        {
            debug_assert!(
                self.first || self.last_key.as_str() < key,
                "canonical keys out of order: `{}` then `{key}`",
                self.last_key
            );
            self.last_key = key.to_owned();
        }
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_string(key, self.out);
        self.out.push(':');
        self.out
    }

    pub fn string(&mut self, key: &str, value: &str) {
        let out = self.key(key);
        write_string(value, out);
    }

    /// A member whose value is already canonical JSON text.
    pub fn raw(&mut self, key: &str, canonical_value: &str) {
        self.key(key).push_str(canonical_value);
    }

    pub fn value(&mut self, key: &str, value: &Json) {
        let out = self.key(key);
        write_canonical(value, out);
    }

    pub fn finish(self) {
        self.out.push('}');
    }
}

/// SHA-256 of a value's canonical encoding, hex.
pub fn sha256_canonical(value: &Json) -> String {
    hex::encode(Sha256::digest(canonical(value).as_bytes()))
}

/// A sealed entry as stored and exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub record: Json,
}

impl Entry {
    /// Seals `record_canonical` (the canonical encoding of a record) as
    /// entry `seq` after `prev_hash`, and returns its line.
    pub fn seal_line(seq: u64, prev_hash: &str, record_canonical: &str) -> (String, String) {
        let hash = link_hash(seq, prev_hash, record_canonical);
        // Keys in canonical order: hash, prev_hash, record, seq.
        let line = format!(
            r#"{{"hash":"{hash}","prev_hash":"{prev_hash}","record":{record_canonical},"seq":{seq}}}"#
        );
        (line, hash)
    }

    /// Reads one line of a chain or an export.
    pub fn parse(line: &str) -> Result<Self, String> {
        let value: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        Self::from_json(&value)
    }

    /// Reads an entry already parsed as JSON: for files that carry entries
    /// inside lines of their own (a merge of several chains tags each line
    /// with its chain, and strips the tag before this).
    pub fn from_json(value: &Json) -> Result<Self, String> {
        let object = value.as_object().ok_or("not a JSON object")?;
        let text = |name: &str| {
            object
                .get(name)
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or(format!("`{name}` is missing or not a string"))
        };
        let entry = Entry {
            seq: object
                .get("seq")
                .and_then(Json::as_u64)
                .ok_or("`seq` is missing or not a number")?,
            prev_hash: text("prev_hash")?,
            hash: text("hash")?,
            record: object.get("record").cloned().ok_or("`record` is missing")?,
        };
        if object.len() != 4 {
            return Err("has fields other than hash, prev_hash, record and seq".into());
        }
        Ok(entry)
    }

    /// The hash this entry should carry, given its contents.
    pub fn expected_hash(&self) -> String {
        link_hash(self.seq, &self.prev_hash, &canonical(&self.record))
    }
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    #[error("record {seq} was altered: its hash does not match its contents")]
    Altered { seq: u64 },
    #[error(
        "record {seq} does not link to the record before it (that one was altered, removed or replaced)"
    )]
    Unlinked { seq: u64 },
    #[error(
        "record {expected} is missing (found record {found} in its place): removed or reordered"
    )]
    Missing { expected: u64, found: u64 },
    #[error("entry {position} cannot be read: {message}")]
    Unreadable { position: u64, message: String },
}

impl Break {
    /// The sequence number the problem is reported at.
    pub fn seq(&self) -> u64 {
        match self {
            Break::Altered { seq } | Break::Unlinked { seq } => *seq,
            Break::Missing { expected, .. } => *expected,
            Break::Unreadable { position, .. } => *position,
        }
    }
}

/// Walks a chain entry by entry.
#[derive(Debug, Clone)]
pub struct Verifier {
    next_seq: Option<u64>,
    prev_hash: Option<String>,
    checked: u64,
    last_hash: Option<String>,
}

impl Verifier {
    /// Expects the chain to start at its first record.
    pub fn from_genesis() -> Self {
        Self::from_anchor(1, GENESIS.to_owned())
    }

    /// Expects the chain to continue at `next_seq` after a record whose hash
    /// is `prev_hash` (a checkpoint left by retention).
    pub fn from_anchor(next_seq: u64, prev_hash: String) -> Self {
        Self {
            next_seq: Some(next_seq),
            prev_hash: Some(prev_hash),
            checked: 0,
            last_hash: None,
        }
    }

    /// Trusts the first entry's position and link, and checks everything
    /// from there: for exports that start after the genesis.
    pub fn from_first_entry() -> Self {
        Self {
            next_seq: None,
            prev_hash: None,
            checked: 0,
            last_hash: None,
        }
    }

    pub fn push(&mut self, entry: &Entry) -> Result<(), Break> {
        let expected_seq = self.next_seq.unwrap_or(entry.seq);
        if entry.seq != expected_seq {
            return Err(Break::Missing {
                expected: expected_seq,
                found: entry.seq,
            });
        }
        if entry.expected_hash() != entry.hash {
            return Err(Break::Altered { seq: entry.seq });
        }
        if let Some(prev) = &self.prev_hash
            && *prev != entry.prev_hash
        {
            return Err(Break::Unlinked { seq: entry.seq });
        }
        self.next_seq = Some(entry.seq.saturating_add(1));
        self.prev_hash = Some(entry.hash.clone());
        self.last_hash = Some(entry.hash.clone());
        self.checked += 1;
        Ok(())
    }

    /// Parses and checks one line; `position` names it in errors.
    pub fn push_line(&mut self, position: u64, line: &str) -> Result<(), Break> {
        let entry =
            Entry::parse(line).map_err(|message| Break::Unreadable { position, message })?;
        self.push(&entry)
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The hash of the last entry checked: the head to compare with a copy
    /// kept elsewhere.
    pub fn head(&self) -> Option<&str> {
        self.last_hash.as_deref()
    }
}

#[cfg(test)]
mod tests;
