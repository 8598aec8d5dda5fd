//! OPA bundle archives and signatures, shared by the server (which reads
//! and verifies bundles) and `wardenctl` (which builds and signs them).

pub mod archive;
pub mod signature;

pub use archive::{ArchiveError, ArchiveLimits, Files, Limit, read_dir, read_tar_gz, write_tar_gz};

#[cfg(feature = "test-util")]
pub mod testing;
