//! Where the cluster's state lives in etcd, and the pointers that name
//! blobs.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::control::Target;

/// Where the cluster's state lives under the prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn all(&self) -> String {
        format!("{}/", self.prefix)
    }
    /// Record `id` of the kind named `kind`.
    pub(super) fn record(&self, kind: &str, id: &str) -> String {
        format!("{}/{kind}/{id}", self.prefix)
    }
    /// Where the records of the kind named `kind` are.
    pub(super) fn records(&self, kind: &str) -> String {
        format!("{}/{kind}/", self.prefix)
    }
    pub(super) fn bundle(&self, target: Target) -> String {
        match target {
            Target::Active => format!("{}/bundle/active", self.prefix),
            Target::Shadow => format!("{}/bundle/shadow", self.prefix),
            Target::Stored => format!("{}/bundle/stored", self.prefix),
        }
    }
    pub(super) fn stored_bundle(&self, digest: &str) -> String {
        format!("{}/bundle/stored/{digest}", self.prefix)
    }
    pub(super) fn snapshot(&self, kind: &str) -> String {
        format!("{}/snapshot/{kind}", self.prefix)
    }
    /// Outside the listed and watched `{prefix}/`: contents are fetched
    /// when a pointer names them, never streamed to every replica.
    pub(super) fn blob(&self, sha256: &str) -> String {
        format!("{}{sha256}", self.blobs())
    }
    pub(super) fn blobs(&self) -> String {
        format!("{}-blobs/", self.prefix)
    }
}

/// A bundle named in etcd: which one, and the blob holding its archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BundlePointer {
    pub(super) digest: String,
    pub(super) revision: String,
    pub(super) archive_sha256: String,
    /// Named by a rollback: replicas take it off their history, as a
    /// single node's rollback does, so that a second rollback goes further
    /// back instead of returning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) rollback: bool,
}

/// A snapshot named in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SnapshotPointer {
    pub(super) version: String,
    pub(super) sha256: String,
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
