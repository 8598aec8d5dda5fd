//! The keys bundles are verified and signed with.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::SignatureError;

/// A key bundles may be signed with.
#[derive(Clone)]
pub struct VerificationKey {
    pub id: String,
    pub algorithm: Algorithm,
    pub(super) key: DecodingKey,
    /// When set, the signature's `scope` claim must equal it.
    pub scope: Option<String>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The algorithms OPA's signing supports that Warden accepts.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "HS256" => Some(Algorithm::HS256),
        _ => None,
    }
}

impl VerificationKey {
    /// A public key in PEM (RS256, ES256) or a shared secret (HS256).
    pub fn new(
        id: &str,
        algorithm: Algorithm,
        material: &[u8],
        scope: Option<String>,
    ) -> Result<Self, SignatureError> {
        let key_error = |reason: String| SignatureError::Key {
            key: id.to_owned(),
            reason,
        };
        let key = match algorithm {
            Algorithm::RS256 => {
                DecodingKey::from_rsa_pem(material).map_err(|e| key_error(e.to_string()))?
            }
            Algorithm::ES256 => {
                DecodingKey::from_ec_pem(material).map_err(|e| key_error(e.to_string()))?
            }
            Algorithm::HS256 => {
                if material.len() < 32 {
                    return Err(key_error(
                        "an HS256 secret must be at least 32 bytes".into(),
                    ));
                }
                DecodingKey::from_secret(material)
            }
            other => {
                return Err(key_error(format!(
                    "{other:?} is not supported; use RS256, ES256 or HS256"
                )));
            }
        };
        Ok(Self {
            id: id.to_owned(),
            algorithm,
            key,
            scope,
        })
    }
}

/// A key to sign bundles with (`warden sign`).
pub struct SigningKey {
    pub id: String,
    pub algorithm: Algorithm,
    pub(super) key: EncodingKey,
}

impl SigningKey {
    /// A private key in PEM (RS256, ES256) or a shared secret (HS256).
    pub fn new(id: &str, algorithm: Algorithm, material: &[u8]) -> Result<Self, SignatureError> {
        let key_error = |reason: String| SignatureError::Key {
            key: id.to_owned(),
            reason,
        };
        let key = match algorithm {
            Algorithm::RS256 => {
                EncodingKey::from_rsa_pem(material).map_err(|e| key_error(e.to_string()))?
            }
            Algorithm::ES256 => {
                EncodingKey::from_ec_pem(material).map_err(|e| key_error(e.to_string()))?
            }
            Algorithm::HS256 => EncodingKey::from_secret(material),
            other => {
                return Err(key_error(format!(
                    "{other:?} is not supported; use RS256, ES256 or HS256"
                )));
            }
        };
        Ok(Self {
            id: id.to_owned(),
            algorithm,
            key,
        })
    }
}
