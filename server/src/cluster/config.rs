//! `[cluster]`: the section as written, and its validation into
//! `ClusterConfig` (etcd's endpoints, and the TLS files read and checked).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tls::{EtcdFile, EtcdTls};
use crate::killswitch::Mode;
use crate::settings::{ConfigError, nonzero_duration};

/// `[cluster]`: replicas sharing kill switches, the active bundle and the
/// snapshots through etcd. No endpoints: a single node (the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCluster {
    /// etcd client URLs, e.g. `["http://10.0.0.5:2379"]`.
    pub etcd_endpoints: Vec<String>,
    /// Key prefix, so that several Warden clusters can share one etcd.
    pub prefix: String,
    /// This replica's name in audit records; empty: the store's instance id.
    pub replica_id: String,
    /// How long an etcd call may take before the replica counts etcd as lost.
    pub etcd_timeout: String,
    /// How long a blob (bundle archive, snapshot) no pointer names stays in
    /// etcd after it was last written, before replicas remove it.
    pub blob_grace: String,
    /// PEM CA certificates etcd's serving certificate must chain to; set
    /// for `https://` endpoints.
    pub etcd_ca_file: String,
    /// PEM client certificate chain (and its key) presented to etcd, which
    /// authenticates Warden with them (`--client-cert-auth`).
    pub etcd_cert_file: String,
    pub etcd_key_file: String,
    /// Allow etcd endpoints off loopback without TLS and a client
    /// certificate: etcd must then sit on a network only Warden's replicas
    /// reach.
    pub insecure_etcd: bool,
    /// How long a replica may be out of touch with etcd before
    /// `on_partition` applies.
    pub partition_grace: String,
    /// What a replica cut off from etcd for longer than `partition_grace`
    /// does: `serve` (its last known state), `deny_mutating` or `deny_all`.
    pub on_partition: String,
}

impl Default for RawCluster {
    fn default() -> Self {
        Self {
            etcd_endpoints: Vec::new(),
            prefix: "/warden".into(),
            replica_id: String::new(),
            etcd_timeout: "2s".into(),
            blob_grace: "1h".into(),
            etcd_ca_file: String::new(),
            etcd_cert_file: String::new(),
            etcd_key_file: String::new(),
            insecure_etcd: false,
            partition_grace: "30s".into(),
            on_partition: "deny_mutating".into(),
        }
    }
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub etcd_endpoints: Vec<String>,
    /// Without a trailing `/`.
    pub prefix: String,
    /// Empty: the store's instance id.
    pub replica_id: String,
    pub etcd_timeout: Duration,
    pub blob_grace: Duration,
    /// `Some` for `https://` endpoints.
    pub etcd_tls: Option<EtcdTls>,
    pub partition_grace: Duration,
    /// `None`: `serve`.
    pub on_partition: Option<Mode>,
}

pub fn cluster_config(raw: &RawCluster) -> Result<Option<ClusterConfig>, ConfigError> {
    if raw.etcd_endpoints.is_empty() {
        return Ok(None);
    }
    let mut https = None;
    let mut remote = None;
    for endpoint in &raw.etcd_endpoints {
        let invalid = |message: String| ConfigError::Invalid {
            key: "cluster.etcd_endpoints",
            message,
        };
        let uri = endpoint
            .parse::<http::Uri>()
            .ok()
            .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")));
        let Some((scheme, host)) = uri.as_ref().and_then(|u| u.scheme_str().zip(u.host())) else {
            return Err(invalid(format!(
                "`{endpoint}` is not an http:// or https:// URL with a host"
            )));
        };
        let is_https = scheme == "https";
        if https.is_some_and(|earlier| earlier != is_https) {
            return Err(invalid(
                "mixes http:// and https:// endpoints; one etcd cluster takes one".into(),
            ));
        }
        https = Some(is_https);
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && remote.is_none() {
            remote = Some(endpoint);
        }
    }
    let etcd_tls = etcd_tls(raw, https == Some(true))?;
    // Whoever can write to etcd can release every kill switch: off
    // loopback, etcd must know it is Warden (a client certificate over
    // TLS), unless the operator vouches for the network.
    let authenticated = etcd_tls
        .as_ref()
        .is_some_and(EtcdTls::has_client_certificate);
    if let Some(endpoint) = remote.filter(|_| !authenticated && !raw.insecure_etcd) {
        return Err(ConfigError::Invalid {
            key: "cluster.etcd_endpoints",
            message: format!(
                "`{endpoint}` is not on loopback, and Warden would reach it without TLS and a \
                 client certificate; use https:// with cluster.etcd_ca_file, \
                 cluster.etcd_cert_file and cluster.etcd_key_file (etcd's --client-cert-auth), \
                 or put etcd on a network only the replicas reach and set \
                 cluster.insecure_etcd = true"
            ),
        });
    }
    let prefix = raw.prefix.trim_end_matches('/');
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.chars().any(char::is_control) {
        return Err(ConfigError::Invalid {
            key: "cluster.prefix",
            message: format!("`{}` is not a key prefix such as `/warden`", raw.prefix),
        });
    }
    if raw.replica_id.chars().any(char::is_control) || raw.replica_id.len() > 256 {
        return Err(ConfigError::Invalid {
            key: "cluster.replica_id",
            message: "must be at most 256 bytes without control characters".into(),
        });
    }
    let etcd_timeout = nonzero_duration("cluster.etcd_timeout", &raw.etcd_timeout)?;
    // A writer names a blob within a few etcd calls of renewing it; the
    // grace must outlast that, or a collector could take it in between.
    let blob_grace = nonzero_duration("cluster.blob_grace", &raw.blob_grace)?;
    if blob_grace < etcd_timeout.saturating_mul(2) {
        return Err(ConfigError::Invalid {
            key: "cluster.blob_grace",
            message: format!(
                "must be at least twice cluster.etcd_timeout ({})",
                raw.etcd_timeout
            ),
        });
    }
    let partition_grace = nonzero_duration("cluster.partition_grace", &raw.partition_grace)?;
    // Shorter than one etcd call, a slow answer would already count as a
    // partition.
    if partition_grace < etcd_timeout {
        return Err(ConfigError::Invalid {
            key: "cluster.partition_grace",
            message: format!(
                "must be at least cluster.etcd_timeout ({})",
                raw.etcd_timeout
            ),
        });
    }
    let on_partition = match raw.on_partition.as_str() {
        "serve" => None,
        "deny_mutating" => Some(Mode::DenyMutating),
        "deny_all" => Some(Mode::DenyAll),
        other => {
            return Err(ConfigError::Invalid {
                key: "cluster.on_partition",
                message: format!("`{other}` is not `serve`, `deny_mutating` or `deny_all`"),
            });
        }
    };
    Ok(Some(ClusterConfig {
        etcd_endpoints: raw.etcd_endpoints.clone(),
        prefix: prefix.to_owned(),
        replica_id: raw.replica_id.clone(),
        etcd_timeout,
        blob_grace,
        etcd_tls,
        partition_grace,
        on_partition,
    }))
}

/// `cluster.etcd_*_file`, read and checked; they belong with `https://`.
fn etcd_tls(raw: &RawCluster, https: bool) -> Result<Option<EtcdTls>, ConfigError> {
    let optional = |value: &str| (!value.is_empty()).then(|| PathBuf::from(value));
    let ca = optional(&raw.etcd_ca_file);
    let identity = match (optional(&raw.etcd_cert_file), optional(&raw.etcd_key_file)) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((cert, key)),
        (Some(_), None) => {
            return Err(ConfigError::Invalid {
                key: "cluster.etcd_key_file",
                message: "cluster.etcd_cert_file is set but its key is not".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "cluster.etcd_cert_file",
                message: "cluster.etcd_key_file is set but the certificate is not".into(),
            });
        }
    };
    if !https {
        let key = match (&ca, &identity) {
            (Some(_), _) => "cluster.etcd_ca_file",
            (None, Some(_)) => "cluster.etcd_cert_file",
            (None, None) => return Ok(None),
        };
        return Err(ConfigError::Invalid {
            key,
            message: "TLS to etcd needs https:// endpoints in cluster.etcd_endpoints".into(),
        });
    }
    let Some(ca) = ca else {
        return Err(ConfigError::Invalid {
            key: "cluster.etcd_ca_file",
            message: "https:// endpoints need the CA that signed etcd's certificate".into(),
        });
    };
    EtcdTls::load(
        &ca,
        identity
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path())),
    )
    .map(Some)
    .map_err(|(file, e)| ConfigError::Invalid {
        key: match file {
            EtcdFile::Ca => "cluster.etcd_ca_file",
            EtcdFile::Cert => "cluster.etcd_cert_file",
            EtcdFile::Key => "cluster.etcd_key_file",
        },
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
