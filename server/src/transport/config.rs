//! `[tls]` as written, and the validation of it and of the gRPC listeners'
//! connection and call limits (`limits.*`, read from the shared `[limits]`
//! table by the loader).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// Connection and call limits of the gRPC listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportLimits {
    pub max_connections: usize,
    pub max_streams_per_connection: u32,
    pub handshake_timeout: Duration,
    pub check_timeout: Duration,
    pub admin_timeout: Duration,
}

/// The listeners' limits: `limits.max_connections`,
/// `limits.max_streams_per_connection`, `limits.check_timeout`,
/// `limits.admin_timeout`, and `tls.handshake_timeout` from `raw`.
pub fn transport_limits(
    raw: &RawTls,
    max_connections: u64,
    max_streams_per_connection: u64,
    check_timeout: &str,
    admin_timeout: &str,
) -> Result<TransportLimits, ConfigError> {
    Ok(TransportLimits {
        max_connections: positive("limits.max_connections", max_connections)?,
        max_streams_per_connection: u32::try_from(positive(
            "limits.max_streams_per_connection",
            max_streams_per_connection,
        )?)
        .unwrap_or(u32::MAX),
        handshake_timeout: nonzero_duration("tls.handshake_timeout", &raw.handshake_timeout)?,
        check_timeout: nonzero_duration("limits.check_timeout", check_timeout)?,
        admin_timeout: nonzero_duration("limits.admin_timeout", admin_timeout)?,
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
