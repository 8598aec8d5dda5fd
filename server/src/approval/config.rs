//! `[approvals]`: the section as written, and its validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::binding::DEFAULT_EXCLUDED_CONTEXT;
use super::keys::Algorithm;
use crate::settings::{ConfigError, duration};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApprovals {
    /// Off: REQUIRE_APPROVAL answers carry no access request, and the
    /// approval services refuse every call.
    pub enabled: bool,
    /// How long after a REQUIRE_APPROVAL decision a request may be submitted.
    pub request_ttl: String,
    /// How long a submitted task stays pending before it expires.
    pub task_ttl: String,
    /// How long ended tasks (and used-up or expired approvals) are kept.
    pub retention: String,
    /// PKCS#8 PEM (P-256 or Ed25519); empty: generated under the data dir.
    pub signing_key_file: String,
    /// For a generated key: `ES256` or `EdDSA`.
    pub algorithm: String,
    /// Public keys (PEM) still served in the JWKS after a key rotation.
    pub previous_keys: Vec<String>,
    /// `iss` and `aud` of approval states.
    pub issuer: String,
    /// Context members left out of the binding: volatile per-call facts.
    pub exclude_context: Vec<String>,
}

impl Default for RawApprovals {
    fn default() -> Self {
        Self {
            enabled: true,
            request_ttl: "15m".into(),
            task_ttl: "24h".into(),
            retention: "24h".into(),
            signing_key_file: String::new(),
            algorithm: "ES256".into(),
            previous_keys: Vec::new(),
            issuer: "warden".into(),
            exclude_context: DEFAULT_EXCLUDED_CONTEXT
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalsConfig {
    pub enabled: bool,
    pub request_ttl: Duration,
    pub task_ttl: Duration,
    pub retention: Duration,
    pub signing_key_file: Option<PathBuf>,
    pub algorithm: Algorithm,
    pub previous_keys: Vec<PathBuf>,
    pub issuer: String,
    pub exclude_context: Vec<String>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        // The defaults are valid by construction; a test holds it.
        approvals_config(&RawApprovals::default()).unwrap_or(ApprovalsConfig {
            enabled: false,
            request_ttl: Duration::from_secs(900),
            task_ttl: Duration::from_secs(86400),
            retention: Duration::from_secs(86400),
            signing_key_file: None,
            algorithm: Algorithm::Es256,
            previous_keys: Vec::new(),
            issuer: "warden".into(),
            exclude_context: Vec::new(),
        })
    }
}

pub fn approvals_config(raw: &RawApprovals) -> Result<ApprovalsConfig, ConfigError> {
    let positive = |key: &'static str, value: &str| {
        let d = duration(key, value)?;
        if d.is_zero() {
            return Err(ConfigError::Invalid {
                key,
                message: "must be above 0".into(),
            });
        }
        Ok(d)
    };
    let algorithm = Algorithm::parse(&raw.algorithm).ok_or_else(|| ConfigError::Invalid {
        key: "approvals.algorithm",
        message: format!("`{}` is not `ES256` or `EdDSA`", raw.algorithm),
    })?;
    if raw.issuer.is_empty() {
        return Err(ConfigError::Invalid {
            key: "approvals.issuer",
            message: "must not be empty".into(),
        });
    }
    Ok(ApprovalsConfig {
        enabled: raw.enabled,
        request_ttl: positive("approvals.request_ttl", &raw.request_ttl)?,
        task_ttl: positive("approvals.task_ttl", &raw.task_ttl)?,
        retention: positive("approvals.retention", &raw.retention)?,
        signing_key_file: (!raw.signing_key_file.is_empty())
            .then(|| PathBuf::from(&raw.signing_key_file)),
        algorithm,
        previous_keys: raw.previous_keys.iter().map(PathBuf::from).collect(),
        issuer: raw.issuer.clone(),
        exclude_context: raw.exclude_context.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = approvals_config(&RawApprovals::default()).unwrap();
        assert!(config.enabled);
        assert_eq!(config.request_ttl, Duration::from_secs(900));
        let bad = RawApprovals {
            algorithm: "HS256".into(),
            ..RawApprovals::default()
        };
        assert!(approvals_config(&bad).is_err());
    }
}
