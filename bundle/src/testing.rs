//! Crafting archives for tests, including the hostile shapes the `tar`
//! crate's safe API refuses to write (`..` paths, links, devices).

use std::io::Write;

/// One tar entry.
pub enum Entry<'a> {
    File(&'a str, &'a [u8]),
    /// A regular file of `size` zero bytes.
    Zeros(&'a str, u64),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDevice(&'a str),
    Dir(&'a str),
}

/// A gzip-compressed tar of `entries`, names written verbatim.
pub fn tar_gz(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        let (path, kind, data): (&str, tar::EntryType, Vec<u8>) = match entry {
            Entry::File(path, data) => (path, tar::EntryType::Regular, data.to_vec()),
            Entry::Zeros(path, size) => (
                path,
                tar::EntryType::Regular,
                vec![0; usize::try_from(*size).unwrap_or(0)],
            ),
            Entry::Symlink(path, _) => (path, tar::EntryType::Symlink, Vec::new()),
            Entry::HardLink(path, _) => (path, tar::EntryType::Link, Vec::new()),
            Entry::CharDevice(path) => (path, tar::EntryType::Char, Vec::new()),
            Entry::Dir(path) => (path, tar::EntryType::Directory, Vec::new()),
        };
        let name = &mut header.as_old_mut().name;
        let len = path.len().min(name.len());
        name[..len].copy_from_slice(&path.as_bytes()[..len]);
        header.set_entry_type(kind);
        if let Entry::Symlink(_, target) | Entry::HardLink(_, target) = entry {
            let link = &mut header.as_old_mut().linkname;
            let len = target.len().min(link.len());
            link[..len].copy_from_slice(&target.as_bytes()[..len]);
        }
        header.set_size(data.len() as u64);
        header.set_cksum();
        if builder.append(&header, data.as_slice()).is_err() {
            return Vec::new();
        }
    }
    let Ok(tar) = builder.into_inner() else {
        return Vec::new();
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if gz.write_all(&tar).is_err() {
        return Vec::new();
    }
    gz.finish().unwrap_or_default()
}
