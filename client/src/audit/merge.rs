//! Merging the chains of several replicas (or export files) into one
//! file, interleaved by record time.

use std::io::BufRead;

use super::chain::{ChainReport, Stage};
use super::verify::{is_merged, read_merged};

/// Names the version of the merged format in its header lines, which also
/// tell a merged file from a single export.
pub const MERGE_FORMAT: &str = "warden-audit-merge-v1";

/// A merge that cannot go ahead, as opposed to a chain found broken.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("chain `{chain}` is given twice (again in `{origin}`)")]
    Duplicate { chain: String, origin: String },
    #[error("`{origin}`: {error}")]
    Io {
        origin: String,
        error: std::io::Error,
    },
}

/// Gathers chains, verifying each as it arrives, and writes them as one
/// merged file. Each chain is spooled to a temporary file first: the
/// headers at the top need every chain's end, and the timeline needs all
/// of them at once.
#[derive(Debug, Default)]
pub struct Merge {
    stages: Vec<Stage>,
    problems: Vec<(u64, String)>,
}

impl Merge {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a chain tagged `chain`, read from `source`; write its export
    /// (JSON Lines, as the server sends it) to the writer returned, then
    /// call `finish` on it.
    pub fn chain(&mut self, chain: &str, source: &str) -> Result<ChainWriter<'_>, MergeError> {
        self.check_unique(chain, source)?;
        let stage =
            Stage::new(chain.to_owned(), source.to_owned(), None, true).map_err(|error| {
                MergeError::Io {
                    origin: source.to_owned(),
                    error,
                }
            })?;
        self.stages.push(stage);
        let index = self.stages.len() - 1;
        Ok(ChainWriter {
            merge: self,
            index,
            pending: Vec::new(),
            position: 0,
        })
    }

    /// Adds the chains of an export file (one, tagged with its path) or of
    /// a merged file (each keeps the tag and source its header gives).
    pub fn add_file(&mut self, path: &std::path::Path) -> Result<(), MergeError> {
        let origin = path.display().to_string();
        let io = |error| MergeError::Io {
            origin: origin.clone(),
            error,
        };
        let open = || std::fs::File::open(path).map(std::io::BufReader::new);
        if is_merged(open().map_err(io)?).map_err(io)? {
            let taken: Vec<String> = self.stages.iter().map(|s| s.report.chain.clone()).collect();
            let mut duplicate = None;
            let mut stages = Vec::new();
            let problems = read_merged(open().map_err(io)?, &mut stages, &mut |chain| {
                if taken.iter().any(|t| t == chain) {
                    duplicate.get_or_insert_with(|| chain.to_owned());
                }
                Ok(true)
            })
            .map_err(io)?;
            if let Some(chain) = duplicate {
                return Err(MergeError::Duplicate { chain, origin });
            }
            self.stages.extend(stages);
            self.problems.extend(
                problems
                    .into_iter()
                    .map(|(line, problem)| (line, format!("`{origin}`: {problem}"))),
            );
            return Ok(());
        }
        let mut writer = self.chain(&origin, &origin)?;
        let mut input = open().map_err(io)?;
        std::io::copy(&mut input, &mut writer).map_err(io)?;
        writer.finish().map(|_| ()).map_err(io)
    }

    /// Every chain so far, in the order they were added.
    pub fn reports(&self) -> Vec<ChainReport> {
        self.stages.iter().map(|s| s.report.clone()).collect()
    }

    /// Problems of merged inputs that belong to no chain, each naming its
    /// file.
    pub fn problems(&self) -> &[(u64, String)] {
        &self.problems
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.stages.iter().all(|s| s.report.broken.is_none())
    }

    /// Writes the merged file: one header line per chain, then every entry
    /// tagged with its chain, interleaved by record time (each chain keeps
    /// its own order; ties go to the chain added first). Returns the bytes
    /// written.
    pub fn write_to(self, out: &mut impl std::io::Write) -> std::io::Result<u64> {
        let mut written = 0u64;
        let mut put = |out: &mut dyn std::io::Write, line: &str| {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            written += line.len() as u64 + 1;
            Ok::<(), std::io::Error>(())
        };
        for stage in &self.stages {
            put(out, &header_line(&stage.report))?;
        }
        let mut heads = Vec::with_capacity(self.stages.len());
        for stage in self.stages {
            let Some(spool) = stage.spool else {
                continue;
            };
            let mut lines = spool.into_lines()?;
            let mut head = Head {
                line: None,
                time: None,
            };
            head.advance(&mut lines)?;
            heads.push((head, lines));
        }
        loop {
            // A handful of chains: a linear scan beats a heap's bookkeeping.
            let next = heads
                .iter()
                .enumerate()
                .filter(|(_, (head, _))| head.line.is_some())
                .min_by_key(|(index, (head, _))| (head.time, *index))
                .map(|(index, _)| index);
            let Some((head, lines)) = next.and_then(|index| heads.get_mut(index)) else {
                break;
            };
            if let Some(line) = head.line.take() {
                put(out, &line)?;
            }
            head.advance(lines)?;
        }
        out.flush()?;
        Ok(written)
    }

    fn check_unique(&self, chain: &str, origin: &str) -> Result<(), MergeError> {
        if self.stages.iter().any(|s| s.report.chain == chain) {
            return Err(MergeError::Duplicate {
                chain: chain.to_owned(),
                origin: origin.to_owned(),
            });
        }
        Ok(())
    }
}

/// Feeds one export into a `Merge`, verifying each line as it arrives.
#[derive(Debug)]
pub struct ChainWriter<'a> {
    merge: &'a mut Merge,
    index: usize,
    pending: Vec<u8>,
    position: u64,
}

impl ChainWriter<'_> {
    /// Takes a last line that has no newline, and reports the chain.
    pub fn finish(mut self) -> std::io::Result<ChainReport> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line)?;
        }
        let stage = self.stage()?;
        stage.finish();
        Ok(stage.report.clone())
    }

    fn stage(&mut self) -> std::io::Result<&mut Stage> {
        self.merge
            .stages
            .get_mut(self.index)
            .ok_or_else(|| std::io::Error::other("the chain being written is gone"))
    }

    fn line(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.position += 1;
        let position = self.position;
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let entry = warden_audit::Entry::parse(text);
        self.stage()?.push(position, entry, text)
    }
}

impl std::io::Write for ChainWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(end);
            if self.pending.is_empty() {
                self.line(line)?;
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.line(&whole)?;
            }
            rest = after.get(1..).unwrap_or_default();
        }
        self.pending.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A chain's next line in the timeline, and the time it sorts by.
struct Head {
    line: Option<String>,
    time: Option<time::OffsetDateTime>,
}

impl Head {
    fn advance(&mut self, lines: &mut std::io::Lines<impl BufRead>) -> std::io::Result<()> {
        self.line = lines.next().transpose()?;
        // A record without a readable time stays where its chain has it,
        // after the one before it.
        if let Some(time) = self.line.as_deref().and_then(record_time) {
            self.time = Some(time);
        }
        Ok(())
    }
}

fn record_time(line: &str) -> Option<time::OffsetDateTime> {
    // Only the time: cheaper than parsing the whole entry again.
    #[derive(serde::Deserialize)]
    struct Line {
        record: Record,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        time: Option<String>,
    }
    let time = serde_json::from_str::<Line>(line).ok()?.record.time?;
    time::OffsetDateTime::parse(&time, &time::format_description::well_known::Rfc3339).ok()
}

fn header_line(report: &ChainReport) -> String {
    let mut header = serde_json::Map::new();
    header.insert("format".into(), MERGE_FORMAT.into());
    header.insert("chain".into(), report.chain.clone().into());
    header.insert("source".into(), report.source.clone().into());
    if let Some(replica) = &report.replica {
        header.insert("replica".into(), replica.clone().into());
    }
    header.insert("entries".into(), report.checked.into());
    header.insert("first_seq".into(), report.first_seq.into());
    header.insert("last_seq".into(), report.last_seq.into());
    header.insert("head_hash".into(), report.head_hash.clone().into());
    warden_audit::canonical(&serde_json::Value::Object(header))
}

/// `line` (an entry as the server exports it) with `chain`'s tag as its
/// first member. The tag sorts before `hash`, so a canonical line stays
/// canonical, and the entry's own members are kept byte for byte.
pub(super) fn tagged(chain: &str, line: &str) -> String {
    let mut out = String::with_capacity(line.len() + chain.len() + 12);
    out.push_str("{\"chain\":");
    warden_audit::write_string(chain, &mut out);
    let members = line
        .trim()
        .strip_prefix('{')
        .unwrap_or_default()
        .trim_start();
    if !members.starts_with('}') {
        out.push(',');
    }
    out.push_str(members);
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use serde_json::{Value as Json, json};

    use super::*;
    use crate::audit::{ChainFault, FileReport, MergedReport, verify_file, verify_merged};
    use warden_audit::Break;

    /// An export of `times.len()` records by `agent`, at those seconds past
    /// ten o'clock.
    fn export(agent: &str, times: &[u32], replica: Option<&str>) -> String {
        let mut prev = warden_audit::GENESIS.to_owned();
        let mut out = String::new();
        for (i, second) in times.iter().enumerate() {
            let mut record = json!({
                "agent_id": agent,
                "decision": "deny",
                "time": format!("2026-12-01T10:00:{second:02}.5Z"),
            });
            if let Some(replica) = replica {
                record["replica"] = replica.into();
            }
            let (line, hash) = warden_audit::Entry::seal_line(
                i as u64 + 1,
                &prev,
                &warden_audit::canonical(&record),
            );
            prev = hash;
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    fn merged(sources: &[(&str, &str)]) -> String {
        let mut merge = Merge::new();
        for (chain, text) in sources {
            let mut writer = merge.chain(chain, &format!("http://{chain}")).unwrap();
            // In uneven pieces, as a stream delivers them.
            for piece in text.as_bytes().chunks(37) {
                writer.write_all(piece).unwrap();
            }
            writer.finish().unwrap();
        }
        assert!(merge.ok(), "{:?}", merge.reports());
        let mut out = Vec::new();
        merge.write_to(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn lines(text: &str) -> Vec<Json> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn broken(report: &MergedReport) -> Vec<(String, u64)> {
        report
            .chains
            .iter()
            .filter_map(|c| c.broken.as_ref().map(|(_, f)| (c.chain.clone(), f.seq())))
            .collect()
    }

    #[test]
    fn a_merge_interleaves_by_time_keeps_each_entry_and_verifies() {
        let a = export("a1", &[0, 2, 4], None);
        let b = export("b1", &[1, 2, 5, 6], Some("replica-b"));
        let text = merged(&[("a:1", &a), ("b:2", &b)]);
        let parsed = lines(&text);
        assert_eq!(parsed[0]["chain"], "a:1");
        assert_eq!(parsed[0]["format"], MERGE_FORMAT);
        assert_eq!(parsed[0]["entries"], 3);
        assert!(parsed[0].get("replica").is_none());
        assert_eq!(parsed[1]["replica"], "replica-b");
        assert_eq!(parsed[1]["last_seq"], 4);
        let order: Vec<(&str, u64)> = parsed[2..]
            .iter()
            .map(|l| (l["chain"].as_str().unwrap(), l["seq"].as_u64().unwrap()))
            .collect();
        // The tie at second 2 goes to the chain given first.
        assert_eq!(
            order,
            [
                ("a:1", 1),
                ("b:2", 1),
                ("a:1", 2),
                ("b:2", 2),
                ("a:1", 3),
                ("b:2", 3),
                ("b:2", 4)
            ]
        );
        // Without its tag, each line is the exported line, byte for byte.
        let untagged: Vec<String> = text
            .lines()
            .skip(2)
            .filter(|l| l.contains("\"a:1\""))
            .map(|l| l.replacen(r#""chain":"a:1","#, "", 1))
            .collect();
        assert_eq!(untagged, a.lines().collect::<Vec<_>>());

        let report = verify_merged(text.as_bytes()).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.chains.len(), 2);
        assert_eq!(report.chains[1].checked, 4);
        assert_eq!(report.chains[1].replica.as_deref(), Some("replica-b"));
        assert_eq!(report.chains[1].source, "http://b:2");
    }

    #[test]
    fn a_changed_dropped_or_reordered_line_is_named_with_its_chain() {
        let a = export("a1", &[0, 2, 4, 6], None);
        let b = export("b1", &[1, 3, 5, 7], None);
        let text = merged(&[("a", &a), ("b", &b)]);
        let original: Vec<String> = text.lines().map(str::to_owned).collect();
        // Headers, then a1 b1 a2 b2 a3 b3 a4 b4.
        let position = |chain: &str, seq: u64| {
            original
                .iter()
                .position(|l| {
                    l.starts_with(&format!(r#"{{"chain":"{chain}","hash""#))
                        && l.ends_with(&format!(r#""seq":{seq}}}"#))
                })
                .unwrap()
        };
        let check = |lines: &[String]| verify_merged(lines.join("\n").as_bytes()).unwrap();

        let mut changed = original.clone();
        let at = position("b", 2);
        changed[at] = changed[at].replace("b1", "b9");
        let report = check(&changed);
        assert_eq!(broken(&report), [("b".to_owned(), 2)]);
        assert_eq!(report.chains[1].broken.as_ref().unwrap().0, at as u64 + 1);
        assert!(
            report.chains[1]
                .broken
                .as_ref()
                .unwrap()
                .1
                .to_string()
                .contains("altered"),
            "{report:?}"
        );

        let mut dropped = original.clone();
        dropped.remove(position("a", 2));
        assert_eq!(broken(&check(&dropped)), [("a".to_owned(), 2)]);

        let mut reordered = original.clone();
        reordered.swap(position("b", 2), position("b", 3));
        assert_eq!(broken(&check(&reordered)), [("b".to_owned(), 2)]);

        // Links alone cannot show a chain's last entry gone; its header can.
        let mut last = original.clone();
        last.remove(position("b", 4));
        let report = check(&last);
        assert_eq!(broken(&report), [("b".to_owned(), 4)]);
        assert!(matches!(
            report.chains[1].broken,
            Some((
                0,
                ChainFault::Truncated {
                    last: 3,
                    expected: 4
                }
            ))
        ));

        // So can it a chain's first.
        let mut first = original.clone();
        first.remove(position("a", 1));
        assert_eq!(broken(&check(&first)), [("a".to_owned(), 1)]);

        // A line moved to the other chain breaks both.
        let mut moved = original.clone();
        let at = position("a", 3);
        moved[at] = moved[at].replacen(r#""chain":"a""#, r#""chain":"b""#, 1);
        assert_eq!(
            broken(&check(&moved)),
            [("a".to_owned(), 3), ("b".to_owned(), 3)]
        );

        // Lines of different chains may trade places: only each chain's own
        // order is sealed.
        let mut swapped = original.clone();
        swapped.swap(position("a", 2), position("b", 2));
        assert!(check(&swapped).ok());

        let mut untagged = original.clone();
        untagged[position("a", 2)] = a.lines().nth(1).unwrap().to_owned();
        let report = check(&untagged);
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert!(report.problems[0].1.contains("names no chain"));
    }

    #[test]
    fn a_broken_export_is_reported_and_not_merged() {
        let b = export("b1", &[1, 3, 5], None).replacen("b1", "b2", 1);
        let mut merge = Merge::new();
        let mut writer = merge.chain("b", "http://b").unwrap();
        writer.write_all(b.as_bytes()).unwrap();
        let report = writer.finish().unwrap();
        assert!(matches!(
            report.broken,
            Some((1, ChainFault::Break(Break::Altered { seq: 1 })))
        ));
        assert!(!merge.ok());
        assert!(matches!(
            merge.chain("b", "elsewhere"),
            Err(MergeError::Duplicate { .. })
        ));
    }

    #[test]
    fn files_of_either_kind_verify_and_merge_again_unchanged() {
        let dir = std::env::temp_dir().join(format!("warden-merge-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let single = dir.join("a.jsonl");
        std::fs::write(&single, export("a1", &[0, 2], None)).unwrap();
        let report = verify_file(&single).unwrap();
        assert!(
            matches!(&report, FileReport::Single(r) if r.broken.is_none() && r.checked == 2),
            "{report:?}"
        );

        let b = dir.join("b.jsonl");
        std::fs::write(&b, export("b1", &[1], None)).unwrap();
        let mut merge = Merge::new();
        merge.add_file(&single).unwrap();
        merge.add_file(&b).unwrap();
        assert!(matches!(
            merge.add_file(&b),
            Err(MergeError::Duplicate { .. })
        ));
        let mut out = Vec::new();
        merge.write_to(&mut out).unwrap();
        let both = dir.join("both.jsonl");
        std::fs::write(&both, &out).unwrap();
        let FileReport::Merged(report) = verify_file(&both).unwrap() else {
            panic!("a merged file read as a single export");
        };
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.chains[0].chain, single.display().to_string());

        let mut again = Merge::new();
        again.add_file(&both).unwrap();
        let mut twice = Vec::new();
        again.write_to(&mut twice).unwrap();
        assert_eq!(twice, out, "merging a merged file changes nothing");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
