//! Verifying files offline, with nothing but the file: a single export,
//! or a merged file chain by chain against its headers.

use std::io::BufRead;

use warden_audit::{Break, Verifier};

use super::chain::{ChainReport, Header, Stage};
use super::merge::MERGE_FORMAT;

/// What an offline verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub checked: u64,
    pub first_seq: Option<u64>,
    /// The last entry's hash; compare with a head recorded elsewhere.
    pub head_hash: Option<String>,
    /// The first problem, with the 1-based line it is on.
    pub broken: Option<(u64, Break)>,
}

/// Verifies an export read from `input`: every entry's hash, and every link.
/// An export that starts after the genesis (retention, or `--from`) is
/// checked from its first entry on.
pub fn verify_export(input: impl BufRead) -> std::io::Result<ExportReport> {
    let mut verifier = Verifier::from_first_entry();
    let mut first_seq = None;
    let mut position = 0u64;
    for line in input.lines() {
        let line = line?;
        position += 1;
        if line.is_empty() {
            continue;
        }
        if first_seq.is_none() {
            first_seq = warden_audit::Entry::parse(&line).ok().map(|e| e.seq);
            if first_seq == Some(1) {
                verifier = Verifier::from_genesis();
            }
        }
        if let Err(broken) = verifier.push_line(position, &line) {
            return Ok(ExportReport {
                checked: verifier.checked(),
                first_seq,
                head_hash: verifier.head().map(str::to_owned),
                broken: Some((position, broken)),
            });
        }
    }
    Ok(ExportReport {
        checked: verifier.checked(),
        first_seq,
        head_hash: verifier.head().map(str::to_owned),
        broken: None,
    })
}

/// What verifying a merged file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedReport {
    pub chains: Vec<ChainReport>,
    /// Lines that belong to no chain (no tag, an unknown tag, not JSON) or
    /// headers out of place, with their 1-based line numbers.
    pub problems: Vec<(u64, String)>,
}

impl MergedReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.chains.iter().all(|c| c.broken.is_none())
    }
}

/// What `verify_file` found: a file is either a single export or a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileReport {
    Single(ExportReport),
    Merged(MergedReport),
}

/// Verifies an export file or a merged file, whichever `path` holds: a
/// single export exactly as `verify_export` does.
pub fn verify_file(path: &std::path::Path) -> std::io::Result<FileReport> {
    let merged = is_merged(std::io::BufReader::new(std::fs::File::open(path)?))?;
    let input = std::io::BufReader::new(std::fs::File::open(path)?);
    if merged {
        let mut stages = Vec::new();
        let problems = read_merged(input, &mut stages, &mut |_| Ok(false))?;
        Ok(FileReport::Merged(MergedReport {
            chains: stages.into_iter().map(|s| s.report).collect(),
            problems,
        }))
    } else {
        verify_export(input).map(FileReport::Single)
    }
}

/// Verifies a merged file: every chain in it on its own, against its
/// header.
pub fn verify_merged(input: impl BufRead) -> std::io::Result<MergedReport> {
    let mut stages = Vec::new();
    let problems = read_merged(input, &mut stages, &mut |_| Ok(false))?;
    Ok(MergedReport {
        chains: stages.into_iter().map(|s| s.report).collect(),
        problems,
    })
}

/// Whether the first non-empty line is a merged file's header.
pub(super) fn is_merged(input: impl BufRead) -> std::io::Result<bool> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        return Ok(serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .is_some_and(|value| value.get("format").is_some()));
    }
    Ok(false)
}

/// Reads a merged file into `stages`, one per header; `spool(chain)` says
/// whether to keep a chain's lines for writing. Returns the problems that
/// belong to no chain.
pub(super) fn read_merged(
    input: impl BufRead,
    stages: &mut Vec<Stage>,
    spool: &mut dyn FnMut(&str) -> std::io::Result<bool>,
) -> std::io::Result<Vec<(u64, String)>> {
    let mut problems = Vec::new();
    let mut entries_seen = false;
    let mut position = 0u64;
    for line in input.lines() {
        let line = line?;
        position += 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(value) => value,
            Err(e) => {
                problems.push((position, format!("line {position} is not JSON: {e}")));
                continue;
            }
        };
        let Some(object) = value.as_object_mut() else {
            problems.push((position, format!("line {position} is not a JSON object")));
            continue;
        };
        let chain = match object.remove("chain") {
            Some(serde_json::Value::String(chain)) => chain,
            _ => {
                problems.push((position, format!("line {position} names no chain")));
                continue;
            }
        };
        if let Some(format) = object.get("format") {
            if format.as_str() != Some(MERGE_FORMAT) {
                problems.push((
                    position,
                    format!("line {position}: format {format} is not {MERGE_FORMAT}"),
                ));
                continue;
            }
            if entries_seen {
                problems.push((
                    position,
                    format!("line {position}: the header of chain `{chain}` comes after entries"),
                ));
                continue;
            }
            if stages.iter().any(|s| s.report.chain == chain) {
                problems.push((
                    position,
                    format!("line {position}: chain `{chain}` has a second header"),
                ));
                continue;
            }
            let text = |name: &str| object.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            let number = |name: &str| object.get(name).and_then(|v| v.as_u64());
            let header = Header {
                first_seq: number("first_seq"),
                last_seq: number("last_seq"),
                head_hash: text("head_hash"),
            };
            let keep = spool(&chain)?;
            let mut stage = Stage::new(
                chain,
                text("source").unwrap_or_default(),
                Some(header),
                keep,
            )?;
            stage.report.replica = text("replica");
            stages.push(stage);
            continue;
        }
        entries_seen = true;
        let Some(stage) = stages.iter_mut().find(|s| s.report.chain == chain) else {
            problems.push((
                position,
                format!("line {position} names chain `{chain}`, which has no header"),
            ));
            continue;
        };
        let entry = warden_audit::Entry::from_json(&value);
        let inner = warden_audit::canonical(&value);
        stage.push(position, entry, &inner)?;
    }
    for stage in stages.iter_mut() {
        stage.finish();
    }
    Ok(problems)
}
