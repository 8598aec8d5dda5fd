//! The JWT in `.signatures.json` and the claims its payload carries.

use serde::{Deserialize, Serialize};

use super::SignatureError;

/// One file's entry in the signature's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedFile {
    pub name: String,
    pub hash: String,
    pub algorithm: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Claims {
    pub(super) files: Vec<SignedFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) keyid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scope: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SignaturesFile {
    pub(super) signatures: Vec<String>,
}

pub(super) fn unverified_claims(token: &str) -> Result<Claims, SignatureError> {
    use base64::Engine;
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| SignatureError::Malformed("the signature is not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| SignatureError::Malformed(format!("JWT payload: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| SignatureError::Malformed(format!("JWT payload: {e}")))
}
