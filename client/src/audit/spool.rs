//! Temporary files that hold a chain's lines until the merge is written.

use std::io::BufRead;

/// A temporary file holding one chain's tagged lines, removed when dropped.
#[derive(Debug)]
pub(super) struct Spool {
    path: std::path::PathBuf,
    writer: std::io::BufWriter<std::fs::File>,
}

impl Spool {
    pub(super) fn create() -> std::io::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        loop {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "wardenctl-audit-{}-{n}-{nanos}.jsonl",
                std::process::id()
            ));
            // `create_new`: never write through a file someone placed there.
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            // Records hold decision inputs; other users of a shared
            // temporary directory have no business reading them.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        writer: std::io::BufWriter::new(file),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")
    }

    /// Reads the lines back; the file goes when the reader is dropped.
    pub(super) fn into_lines(mut self) -> std::io::Result<std::io::Lines<SpoolReader>> {
        use std::io::Write as _;
        self.writer.flush()?;
        let file = std::fs::File::open(&self.path)?;
        Ok(SpoolReader {
            reader: std::io::BufReader::new(file),
            _spool: self,
        }
        .lines())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads a spool back, keeping it (and so its file) alive until done.
pub(super) struct SpoolReader {
    reader: std::io::BufReader<std::fs::File>,
    _spool: Spool,
}

impl std::io::Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl BufRead for SpoolReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.reader.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.reader.consume(amount)
    }
}
