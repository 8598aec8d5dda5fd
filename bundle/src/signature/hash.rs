//! The hashes the signature lists for each file.

use sha2::Digest;

use super::canonical;
use super::{SIGNATURES_FILE, SignatureError};

/// Files OPA hashes as JSON values rather than bytes.
fn structured(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(
        name,
        "data.json" | "data.yaml" | ".manifest" | SIGNATURES_FILE
    )
}

/// The hex digest OPA's signer records for a file.
pub fn hash_file(path: &str, content: &[u8], algorithm: &str) -> Result<String, SignatureError> {
    let canonical;
    let bytes = if structured(path) {
        canonical = canonical::encode(content)
            .map_err(|e| SignatureError::Malformed(format!("`{path}`: {e}")))?;
        canonical.as_bytes()
    } else {
        content
    };
    Ok(match algorithm {
        "SHA-256" => hex::encode(sha2::Sha256::digest(bytes)),
        "SHA-384" => hex::encode(sha2::Sha384::digest(bytes)),
        "SHA-512" => hex::encode(sha2::Sha512::digest(bytes)),
        other => {
            return Err(SignatureError::Algorithm {
                file: path.to_owned(),
                algorithm: other.to_owned(),
            });
        }
    })
}
