//! One chain of a merge: what was found about it, and verifying its
//! entries as they arrive.

use warden_audit::{Break, Verifier};

use super::merge::tagged;
use super::spool::Spool;

/// What a merge or a merged file's verification found for one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The tag its lines carry in a merged file: the source it was first
    /// read from (a replica's address, or an export file's path).
    pub chain: String,
    /// Where this copy came from: a replica's admin endpoint or a file.
    pub source: String,
    /// The top-level `replica` its records carry, when they carry one.
    pub replica: Option<String>,
    pub checked: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The last entry's hash; compare with a head recorded elsewhere.
    pub head_hash: Option<String>,
    /// The first problem, with the 1-based line (of the export or the
    /// merged file) it is on.
    pub broken: Option<(u64, ChainFault)>,
}

/// What is wrong with one chain of a merge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainFault {
    #[error(transparent)]
    Break(#[from] Break),
    /// Links alone cannot show that a chain's last records were dropped;
    /// the merged file's header says where each chain ends.
    #[error(
        "the chain ends at record {last} but its header says it ends at {expected}: records at its end were removed"
    )]
    Truncated { last: u64, expected: u64 },
    #[error(
        "the chain goes on past record {expected}, where its header says it ends: records were added"
    )]
    Extended { expected: u64 },
    #[error("the chain's head hash is not the one its header records")]
    Head { seq: u64 },
}

impl ChainFault {
    /// The sequence number the problem is reported at.
    pub fn seq(&self) -> u64 {
        match self {
            ChainFault::Break(broken) => broken.seq(),
            ChainFault::Truncated { last, .. } => last.saturating_add(1),
            ChainFault::Extended { expected } => expected.saturating_add(1),
            ChainFault::Head { seq } => *seq,
        }
    }
}

/// What a merged file's header says about one chain.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub(super) first_seq: Option<u64>,
    pub(super) last_seq: Option<u64>,
    pub(super) head_hash: Option<String>,
}

/// One chain being verified, and maybe kept for a merge.
#[derive(Debug)]
pub(super) struct Stage {
    pub(super) report: ChainReport,
    verifier: Verifier,
    header: Option<Header>,
    pub(super) spool: Option<Spool>,
}

impl Stage {
    pub(super) fn new(
        chain: String,
        source: String,
        header: Option<Header>,
        spool: bool,
    ) -> std::io::Result<Self> {
        let verifier = match header.as_ref().and_then(|h| h.first_seq) {
            Some(1) => Verifier::from_genesis(),
            _ => Verifier::from_first_entry(),
        };
        Ok(Self {
            report: ChainReport {
                chain,
                source,
                replica: None,
                checked: 0,
                first_seq: None,
                last_seq: None,
                head_hash: None,
                broken: None,
            },
            verifier,
            header,
            spool: if spool { Some(Spool::create()?) } else { None },
        })
    }

    /// Checks one entry; `line` is its text without a chain tag.
    pub(super) fn push(
        &mut self,
        position: u64,
        entry: Result<warden_audit::Entry, String>,
        line: &str,
    ) -> std::io::Result<()> {
        if self.report.broken.is_some() {
            return Ok(());
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(message) => {
                self.break_at(position, Break::Unreadable { position, message });
                return Ok(());
            }
        };
        if self.report.checked == 0 {
            match &self.header {
                Some(Header {
                    first_seq: None, ..
                }) => {
                    self.break_at(position, ChainFault::Extended { expected: 0 });
                    return Ok(());
                }
                Some(Header {
                    first_seq: Some(first),
                    ..
                }) if *first != entry.seq => {
                    let missing = Break::Missing {
                        expected: *first,
                        found: entry.seq,
                    };
                    self.break_at(position, missing);
                    return Ok(());
                }
                // As `verify_export`: a chain from its start is checked from
                // the genesis.
                None if entry.seq == 1 => self.verifier = Verifier::from_genesis(),
                _ => {}
            }
        }
        if let Err(broken) = self.verifier.push(&entry) {
            self.break_at(position, broken);
            return Ok(());
        }
        if self.report.replica.is_none() {
            self.report.replica = entry
                .record
                .get("replica")
                .and_then(|r| r.as_str())
                .map(str::to_owned);
        }
        self.report.first_seq.get_or_insert(entry.seq);
        self.report.last_seq = Some(entry.seq);
        self.report.checked = self.verifier.checked();
        self.report.head_hash = self.verifier.head().map(str::to_owned);
        if let Some(spool) = &mut self.spool {
            spool.write_line(&tagged(&self.report.chain, line))?;
        }
        Ok(())
    }

    fn break_at(&mut self, position: u64, fault: impl Into<ChainFault>) {
        self.report.broken = Some((position, fault.into()));
        // Nothing of a broken chain is written.
        self.spool = None;
    }

    /// Holds the chain to where its header says it ends.
    pub(super) fn finish(&mut self) {
        let Some(header) = &self.header else {
            return;
        };
        if self.report.broken.is_some() {
            return;
        }
        let last = self.report.last_seq.unwrap_or(0);
        let fault = match header.last_seq {
            Some(expected) if last < expected => Some(ChainFault::Truncated { last, expected }),
            Some(expected) if last > expected => Some(ChainFault::Extended { expected }),
            None if last > 0 => Some(ChainFault::Extended { expected: 0 }),
            _ if header.head_hash != self.report.head_hash => Some(ChainFault::Head { seq: last }),
            _ => None,
        };
        if let Some(fault) = fault {
            // After the file's last line: no line holds it.
            self.break_at(0, fault);
        }
    }
}
