//! Signing a bundle: the `.signatures.json` that `verify` accepts.

use jsonwebtoken::Header;

use super::claims::{Claims, SignaturesFile, SignedFile};
use super::hash::hash_file;
use super::keys::SigningKey;
use super::{SIGNATURES_FILE, SignatureError};
use crate::Files;

/// The `.signatures.json` content for `files`, signed with `key`.
pub fn sign(
    files: &Files,
    key: &SigningKey,
    scope: Option<&str>,
) -> Result<Vec<u8>, SignatureError> {
    let mut listed = Vec::new();
    for (path, content) in files {
        if path == SIGNATURES_FILE {
            continue;
        }
        listed.push(SignedFile {
            name: path.clone(),
            hash: hash_file(path, content, "SHA-256")?,
            algorithm: "SHA-256".into(),
        });
    }
    let claims = Claims {
        files: listed,
        keyid: Some(key.id.clone()),
        scope: scope.map(str::to_owned),
    };
    let token =
        jsonwebtoken::encode(&Header::new(key.algorithm), &claims, &key.key).map_err(|e| {
            SignatureError::Key {
                key: key.id.clone(),
                reason: e.to_string(),
            }
        })?;
    serde_json::to_vec_pretty(&SignaturesFile {
        signatures: vec![token],
    })
    .map_err(|e| SignatureError::Malformed(e.to_string()))
}
