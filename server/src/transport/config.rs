//! `[tls]` as written, and the validation of it and of the listeners'
//! connection and call limits (`limits.*`, read from the shared `[limits]`
//! table by the loader).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::admission::AdmissionLimits;
use super::min_rate::MinRate;
use super::tls::TlsSetup;
use crate::settings::{ConfigError, nonzero_duration, positive};

/// `[tls]`: TLS on both gRPC listeners. Empty files: plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM CA certificates that client certificates must chain to; empty:
    /// client certificates are not asked for.
    pub client_ca_file: String,
    /// `optional` (a certificate, when sent, must verify) or `required`.
    pub client_auth: String,
    /// A connection that has not finished its handshake by then is closed.
    pub handshake_timeout: String,
}

impl Default for RawTls {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            client_ca_file: String::new(),
            client_auth: "optional".into(),
            handshake_timeout: "10s".into(),
        }
    }
}

/// Connection and call limits of the listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportLimits {
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub max_streams_per_connection: u32,
    pub handshake_timeout: Duration,
    /// For the HTTP/2 preface and first frame after accept (or the TLS
    /// handshake); also how long a connection that has carried no admitted
    /// call may stay quiet.
    pub preface_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body: MinRate,
    pub idle_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub check_timeout: Duration,
    pub admin_timeout: Duration,
}

impl TransportLimits {
    pub fn admission(&self) -> AdmissionLimits {
        AdmissionLimits {
            max_connections: self.max_connections,
            max_per_source: self.max_connections_per_source,
        }
    }
}

/// The `[limits]` keys the transport reads, as written.
#[derive(Debug, Clone, Copy)]
pub struct RawTransportLimits<'a> {
    pub max_connections: u64,
    pub max_connections_per_source: u64,
    pub max_streams_per_connection: u64,
    pub preface_timeout: &'a str,
    pub header_read_timeout: &'a str,
    pub body_timeout: &'a str,
    pub body_min_rate: u64,
    pub idle_timeout: &'a str,
    pub keepalive_interval: &'a str,
    pub keepalive_timeout: &'a str,
    pub check_timeout: &'a str,
    pub admin_timeout: &'a str,
}

/// The listeners' limits from `[limits]`, and `tls.handshake_timeout`.
pub fn transport_limits(
    tls: &RawTls,
    raw: RawTransportLimits<'_>,
) -> Result<TransportLimits, ConfigError> {
    Ok(TransportLimits {
        max_connections: positive("limits.max_connections", raw.max_connections)?,
        max_connections_per_source: positive(
            "limits.max_connections_per_source",
            raw.max_connections_per_source,
        )?,
        max_streams_per_connection: u32::try_from(positive(
            "limits.max_streams_per_connection",
            raw.max_streams_per_connection,
        )?)
        .unwrap_or(u32::MAX),
        handshake_timeout: nonzero_duration("tls.handshake_timeout", &tls.handshake_timeout)?,
        preface_timeout: nonzero_duration("limits.preface_timeout", raw.preface_timeout)?,
        header_read_timeout: nonzero_duration(
            "limits.header_read_timeout",
            raw.header_read_timeout,
        )?,
        body: MinRate {
            grace: nonzero_duration("limits.body_timeout", raw.body_timeout)?,
            min_rate: positive("limits.body_min_rate", raw.body_min_rate)? as u64,
        },
        idle_timeout: nonzero_duration("limits.idle_timeout", raw.idle_timeout)?,
        keepalive_interval: nonzero_duration("limits.keepalive_interval", raw.keepalive_interval)?,
        keepalive_timeout: nonzero_duration("limits.keepalive_timeout", raw.keepalive_timeout)?,
        check_timeout: nonzero_duration("limits.check_timeout", raw.check_timeout)?,
        admin_timeout: nonzero_duration("limits.admin_timeout", raw.admin_timeout)?,
    })
}

pub fn tls_setup(raw: &RawTls) -> Result<Option<Arc<TlsSetup>>, ConfigError> {
    let optional = |value: &str| (!value.is_empty()).then(|| PathBuf::from(value));
    let client_ca = optional(&raw.client_ca_file);
    match (optional(&raw.cert_file), optional(&raw.key_file)) {
        (None, None) => {
            if client_ca.is_some() {
                return Err(ConfigError::Invalid {
                    key: "tls.client_ca_file",
                    message: "client certificates need TLS: set tls.cert_file and tls.key_file"
                        .into(),
                });
            }
            Ok(None)
        }
        (Some(cert), Some(key)) => TlsSetup::load(&cert, &key, client_ca.as_deref())
            .map(|setup| Some(Arc::new(setup)))
            .map_err(|e| ConfigError::Invalid {
                key: "tls",
                message: e.to_string(),
            }),
        (Some(_), None) => Err(ConfigError::Invalid {
            key: "tls.key_file",
            message: "tls.cert_file is set but its key is not".into(),
        }),
        (None, Some(_)) => Err(ConfigError::Invalid {
            key: "tls.cert_file",
            message: "tls.key_file is set but the certificate is not".into(),
        }),
    }
}
