//! Page tokens: where the next page of a search starts, bound to the query
//! and to the policy and snapshots it was answered under.
//!
//! A token is opaque to callers and authenticated with a key this process
//! draws at start (HMAC-SHA256), so an altered token is refused rather than
//! read. The key is not shared: a token is good on the replica that issued
//! it until it restarts; elsewhere it is refused and the search starts
//! again, as documented.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: u8 = 1;
const DIGEST: usize = 16;
const MAC: usize = 16;
const PAYLOAD: usize = 1 + 1 + DIGEST + DIGEST + 8 + 8;

/// What a token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The next candidate to evaluate.
    pub next: u64,
    /// Results returned by the pages before.
    pub returned: u64,
}

/// Why a token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("is not a page token this server issued (or it was altered)")]
    Forged,
    #[error("was issued for another query; send the same query with its token, or no token")]
    OtherQuery,
    #[error("was issued under another policy or snapshot; start the search again without a token")]
    Stale,
}

/// Identifies a query (`target`, and a digest of its fixed part) and the
/// generation content it is answered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub target: u8,
    pub query: [u8; DIGEST],
    pub generation: [u8; DIGEST],
}

fn key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = [0u8; 32];
        // Without entropy no token verifies, which only restarts searches.
        if SystemRandom::new().fill(&mut bytes).is_err() {
            tracing::warn!("no system randomness for page tokens; pagination restarts");
        }
        hmac::Key::new(hmac::HMAC_SHA256, &bytes)
    })
}

/// The token for the page that starts at `position`.
pub fn issue(binding: &Binding, position: Position) -> String {
    let mut bytes = Vec::with_capacity(PAYLOAD + MAC);
    bytes.push(VERSION);
    bytes.push(binding.target);
    bytes.extend_from_slice(&binding.query);
    bytes.extend_from_slice(&binding.generation);
    bytes.extend_from_slice(&position.next.to_be_bytes());
    bytes.extend_from_slice(&position.returned.to_be_bytes());
    let tag = hmac::sign(key(), &bytes);
    bytes.extend_from_slice(&tag.as_ref()[..MAC]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads `token`, which must have been issued for `binding`.
pub fn read(token: &str, binding: &Binding) -> Result<Position, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| TokenError::Forged)?;
    if bytes.len() != PAYLOAD + MAC || bytes[0] != VERSION {
        return Err(TokenError::Forged);
    }
    let (payload, tag) = bytes.split_at(PAYLOAD);
    let expected = hmac::sign(key(), payload);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        &expected.as_ref()[..MAC],
        tag,
    )) {
        return Err(TokenError::Forged);
    }
    if payload[1] != binding.target || payload[2..2 + DIGEST] != binding.query {
        return Err(TokenError::OtherQuery);
    }
    if payload[2 + DIGEST..2 + 2 * DIGEST] != binding.generation {
        return Err(TokenError::Stale);
    }
    let number = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&payload[at..at + 8]);
        u64::from_be_bytes(word)
    };
    Ok(Position {
        next: number(2 + 2 * DIGEST),
        returned: number(2 + 2 * DIGEST + 8),
    })
}

/// The first `DIGEST` bytes of SHA-256 over `parts`, each length-prefixed.
pub fn digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; DIGEST] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let mut out = [0u8; DIGEST];
    out.copy_from_slice(&hasher.finalize()[..DIGEST]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binding(target: u8, query: &str, generation: &str) -> Binding {
        Binding {
            target,
            query: digest([query.as_bytes()]),
            generation: digest([generation.as_bytes()]),
        }
    }

    proptest! {
        #[test]
        fn a_token_reads_back_only_for_its_binding(next: u64, returned: u64, flip in 0usize..(PAYLOAD + MAC) * 8) {
            let ours = binding(1, "q", "g");
            let position = Position { next, returned };
            let token = issue(&ours, position);
            prop_assert_eq!(read(&token, &ours), Ok(position));
            prop_assert_eq!(read(&token, &binding(1, "other", "g")), Err(TokenError::OtherQuery));
            prop_assert_eq!(read(&token, &binding(2, "q", "g")), Err(TokenError::OtherQuery));
            prop_assert_eq!(read(&token, &binding(1, "q", "g2")), Err(TokenError::Stale));
            // Any one bit changed is refused.
            let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
            bytes[flip / 8] ^= 1 << (flip % 8);
            prop_assert_eq!(read(&URL_SAFE_NO_PAD.encode(bytes), &ours), Err(TokenError::Forged));
        }
    }

    #[test]
    fn garbage_is_forged() {
        let ours = binding(1, "q", "g");
        for token in [
            "",
            "x",
            "not base64!",
            &URL_SAFE_NO_PAD.encode([0u8; PAYLOAD + MAC]),
        ] {
            assert_eq!(read(token, &ours), Err(TokenError::Forged), "{token}");
        }
    }
}
