//! The embedded store (sled) under the data directory.
//!
//! Opening it also takes sled's lock on the directory, so two servers can
//! never share one data directory by mistake.

use std::path::Path;

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store in `{dir}`: {message}")]
    Open { dir: String, message: String },
    #[error("store: {0}")]
    Io(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// The open store.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    instance_id: String,
}

const INSTANCE_ID: &[u8] = b"instance_id";

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let open_error = |message: String| StoreError::Open {
            dir: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .open()
            .map_err(|e| open_error(e.to_string()))?;
        let meta = db.open_tree("meta")?;
        // The instance id names this server's state in logs and, later, in
        // audit records; it survives restarts.
        let fresh = uuid::Uuid::now_v7().to_string();
        let instance_id = match meta.compare_and_swap(
            INSTANCE_ID,
            None as Option<&[u8]>,
            Some(fresh.as_bytes()),
        )? {
            Ok(()) => fresh,
            Err(existing) => existing
                .current
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or(fresh),
        };
        db.flush()?;
        Ok(Self { db, instance_id })
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Writes everything to disk; called on shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}
