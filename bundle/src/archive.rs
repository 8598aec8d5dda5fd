//! Reading bundle files from a `.tar.gz` or a directory, defensively.
//!
//! Bundles come from operators but may have been built anywhere, so nothing in
//! one is trusted: no `..`, no links or devices, and hard
//! limits on entry count and sizes, counted on the decompressed stream so a
//! gzip bomb stops at the limit instead of filling memory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};

/// Why an archive or directory could not be read as a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ArchiveError {
    pub reason: String,
    /// The bound it went over, if that is why: callers name their setting.
    pub limit: Option<Limit>,
}

/// One of the bounds of [`ArchiveLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Files,
    FileBytes,
    TotalBytes,
}

impl ArchiveError {
    pub fn new(reason: impl Into<String>) -> Self {
        ArchiveError {
            reason: reason.into(),
            limit: None,
        }
    }

    fn over(limit: Limit, reason: String) -> Self {
        ArchiveError {
            reason,
            limit: Some(limit),
        }
    }
}

/// Bounds on what a bundle may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most files (and directories) in one bundle.
    pub max_files: usize,
    /// Largest single file, decompressed.
    pub max_file_bytes: u64,
    /// Largest total of all files, decompressed.
    pub max_total_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_files: 10_000,
            max_file_bytes: 256 * 1024 * 1024,
            max_total_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Bundle files by their path inside the bundle (`/`-separated, no leading
/// `/` or `./`: OPA's `/data.json` and tar's `./data.json` are `data.json`).
pub type Files = BTreeMap<String, Vec<u8>>;

/// Reads every regular file of a gzip-compressed tar archive.
pub fn read_tar_gz(bytes: &[u8], limits: &ArchiveLimits) -> Result<Files, ArchiveError> {
    // The decoder can produce at most this much, whatever the headers claim.
    let decoded = flate2::read::GzDecoder::new(bytes)
        .take(limits.max_total_bytes.saturating_add(64 * 1024 * 1024));
    let mut archive = tar::Archive::new(decoded);
    let mut files = Files::new();
    let mut total: u64 = 0;
    let mut entries_seen = 0usize;
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::new(format!("cannot read tar: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| ArchiveError::new(format!("cannot read tar entry: {e}")))?;
        entries_seen += 1;
        if entries_seen > limits.max_files {
            return Err(ArchiveError::over(
                Limit::Files,
                format!("has more than {} entries", limits.max_files),
            ));
        }
        let raw_path = entry
            .path()
            .map_err(|e| ArchiveError::new(format!("entry has an unreadable path: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        // `tar -C dir -czf bundle.tar.gz .` opens with the root itself, `./`:
        // a directory with no name inside the bundle.
        if kind.is_dir() && is_root(&raw_path) {
            continue;
        }
        let path = clean_path(&raw_path)?;
        // `git archive` opens with a pax global header; it holds metadata only.
        if kind.is_dir() || kind.is_pax_global_extensions() {
            continue;
        }
        if !kind.is_file() {
            return Err(ArchiveError::new(format!(
                "`{path}` is a {kind:?} entry; bundles may contain only regular files and directories"
            )));
        }
        let size = entry
            .header()
            .size()
            .map_err(|e| ArchiveError::new(format!("`{path}` has a bad size: {e}")))?;
        if size > limits.max_file_bytes {
            return Err(ArchiveError::over(
                Limit::FileBytes,
                format!(
                    "`{path}` is {size} bytes decompressed, more than the limit of {} bytes",
                    limits.max_file_bytes
                ),
            ));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::over(
                Limit::TotalBytes,
                format!(
                    "holds more than {} bytes decompressed",
                    limits.max_total_bytes
                ),
            ));
        }
        // The header's size was checked; `take` makes sure the reader cannot
        // hand back more than that either.
        let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut entry)
            .take(size)
            .read_to_end(&mut content)
            .map_err(|e| ArchiveError::new(format!("cannot read `{path}`: {e}")))?;
        if files.insert(path.clone(), content).is_some() {
            return Err(ArchiveError::new(format!("`{path}` appears twice")));
        }
    }
    Ok(files)
}

/// Reads every file under a directory, refusing symbolic links and anything
/// that is not a regular file or a directory.
pub fn read_dir(root: &Path, limits: &ArchiveLimits) -> Result<Files, ArchiveError> {
    let mut files = Files::new();
    let mut total: u64 = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            ArchiveError::new(format!("cannot read directory `{}`: {e}", dir.display()))
        })?;
        for entry in entries {
            let entry = entry
                .map_err(|e| ArchiveError::new(format!("cannot read `{}`: {e}", dir.display())))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| ArchiveError::new(format!("cannot stat `{}`: {e}", path.display())))?;
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = clean_path(relative)?;
            if !kind.is_file() {
                return Err(ArchiveError::new(format!(
                    "`{name}` is not a regular file; bundles may contain only regular files and directories"
                )));
            }
            if files.len() >= limits.max_files {
                return Err(ArchiveError::over(
                    Limit::Files,
                    format!("has more than {} files", limits.max_files),
                ));
            }
            let size = entry
                .metadata()
                .map_err(|e| ArchiveError::new(format!("cannot stat `{name}`: {e}")))?
                .len();
            if size > limits.max_file_bytes {
                return Err(ArchiveError::over(
                    Limit::FileBytes,
                    format!(
                        "`{name}` is {size} bytes, more than the limit of {} bytes",
                        limits.max_file_bytes
                    ),
                ));
            }
            total = total.saturating_add(size);
            if total > limits.max_total_bytes {
                return Err(ArchiveError::over(
                    Limit::TotalBytes,
                    format!("holds more than {} bytes", limits.max_total_bytes),
                ));
            }
            let content = std::fs::read(&path)
                .map_err(|e| ArchiveError::new(format!("cannot read `{name}`: {e}")))?;
            files.insert(name, content);
        }
    }
    Ok(files)
}

/// Whether `path` names the bundle's root (`./`, `/`, `.`).
fn is_root(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::CurDir | Component::RootDir))
}

/// Normalises a path inside a bundle, refusing anything that could point
/// outside it.
fn clean_path(path: &Path) -> Result<String, ArchiveError> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_str().ok_or_else(|| {
                    ArchiveError::new(format!("`{}` is not a UTF-8 path", path.display()))
                })?;
                parts.push(part);
            }
            // OPA writes its bundles with a leading `/` (`/policy.wasm`),
            // meaning the bundle's root; nothing is ever extracted to disk.
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ArchiveError::new(format!(
                    "`{}` points outside the bundle; paths must be relative and free of `..`",
                    path.display()
                )));
            }
        }
    }
    if parts.is_empty() {
        return Err(ArchiveError::new("an entry has an empty path"));
    }
    Ok(parts.join("/"))
}

/// Writes `files` as a gzip-compressed tar with fixed metadata (mode 0644,
/// time 0, owner 0), in path order, so equal files give equal bytes.
pub fn write_tar_gz(files: &Files) -> Result<Vec<u8>, std::io::Error> {
    use std::io::Write;
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, content.as_slice())?;
    }
    let tar = tar.into_inner()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    gz.finish()
}
