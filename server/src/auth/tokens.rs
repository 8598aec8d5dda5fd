//! Bearer tokens. The configuration holds only their SHA-256, so a leaked
//! config file leaks no credential; tokens are long random strings, for
//! which a plain hash is as good as a password hash. A presented token is
//! compared with every configured digest in constant time.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Principal;

#[derive(Debug, Default)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Arc<Principal>)>,
}

impl TokenTable {
    /// `sha256_hex` is the digest of the token, in hex, as `warden token`
    /// prints it.
    pub fn add(&mut self, sha256_hex: &str, principal: Arc<Principal>) -> Result<(), String> {
        let digest: [u8; 32] = hex::decode(sha256_hex.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "the token digest of `{}` is not 64 hex digits (a SHA-256)",
                    principal.name
                )
            })?;
        if self.entries.iter().any(|(d, _)| *d == digest) {
            return Err(format!(
                "the token of `{}` is configured twice",
                principal.name
            ));
        }
        self.entries.push((digest, principal));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller `token` belongs to. Every entry is compared, whether or
    /// not an earlier one matched, so timing says nothing about which.
    pub fn lookup(&self, token: &str) -> Option<Arc<Principal>> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (digest, principal) in &self.entries {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some(principal.clone());
            }
        }
        found
    }
}

/// The digest the configuration stores for `token`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh token: 256 bits from the operating system's generator.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("wdn_{}", hex::encode(bytes)))
}
