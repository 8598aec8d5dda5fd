//! `[bundles]`: pushed bundles and the keys that may sign them, as written,
//! and their validation into `BundleConfig`.

use serde::{Deserialize, Serialize};

use super::signature::{self, VerificationKey};
use crate::settings::{ConfigError, positive};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBundles {
    /// Largest pushed bundle archive, compressed.
    pub max_push_bytes: u64,
    /// How many pushed bundles the store keeps (active, shadow and rollback
    /// targets are always kept).
    pub keep: u64,
    /// Run a pushed bundle's own `test_*` rules and refuse it if one fails.
    pub run_tests: bool,
    /// `auto` (required when keys are configured), `true` or `false`.
    pub require_signed: String,
    /// Keys that may sign bundles.
    pub keys: Vec<RawKey>,
}

impl Default for RawBundles {
    fn default() -> Self {
        Self {
            max_push_bytes: 64 * 1024 * 1024,
            keep: 10,
            run_tests: true,
            require_signed: "auto".into(),
            keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// The key id signatures name (`keyid`).
    pub id: String,
    /// `RS256`, `ES256` or `HS256`.
    pub algorithm: String,
    /// PEM public key (RS256, ES256) or file holding the shared secret (HS256).
    pub key_file: String,
    /// When set, signatures must carry this scope.
    #[serde(default)]
    pub scope: String,
}

/// `[bundles]`, validated.
#[derive(Debug, Clone)]
pub struct BundleConfig {
    pub max_push_bytes: usize,
    pub keep: usize,
    pub run_tests: bool,
    pub keys: Vec<VerificationKey>,
    pub require_signed: bool,
}

pub fn bundle_config(raw: &RawBundles) -> Result<BundleConfig, ConfigError> {
    let keys = raw
        .keys
        .iter()
        .map(|key| {
            let algorithm =
                signature::algorithm(&key.algorithm).ok_or_else(|| ConfigError::Invalid {
                    key: "bundles.keys.algorithm",
                    message: format!(
                        "`{}` is not supported; expected RS256, ES256 or HS256",
                        key.algorithm
                    ),
                })?;
            let material = std::fs::read(&key.key_file).map_err(|e| ConfigError::Invalid {
                key: "bundles.keys.key_file",
                message: format!("cannot read `{}`: {e}", key.key_file),
            })?;
            let scope = (!key.scope.is_empty()).then(|| key.scope.clone());
            VerificationKey::new(&key.id, algorithm, &material, scope).map_err(|e| {
                ConfigError::Invalid {
                    key: "bundles.keys",
                    message: e.to_string(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let require_signed = match raw.require_signed.as_str() {
        "auto" => !keys.is_empty(),
        "true" => true,
        "false" => false,
        other => {
            return Err(ConfigError::Invalid {
                key: "bundles.require_signed",
                message: format!("`{other}` is not `auto`, `true` or `false`"),
            });
        }
    };
    if require_signed && keys.is_empty() {
        return Err(ConfigError::Invalid {
            key: "bundles.require_signed",
            message: "signatures are required but no keys are configured".into(),
        });
    }
    Ok(BundleConfig {
        max_push_bytes: positive("bundles.max_push_bytes", raw.max_push_bytes)?,
        keep: positive("bundles.keep", raw.keep)?,
        run_tests: raw.run_tests,
        keys,
        require_signed,
    })
}
