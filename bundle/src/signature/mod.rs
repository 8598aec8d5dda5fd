//! OPA's bundle signatures: `.signatures.json` holds one JWT whose payload
//! lists every file of the bundle with its hash; the JWT is verified against
//! a configured key, then every file against its listed hash.
//!
//! JSON documents (`data.json`, `.manifest`) are hashed in OPA's canonical
//! form — keys sorted, no insignificant whitespace, numbers as written — so
//! a signature survives reformatting but not a changed value. The crypto is
//! `jsonwebtoken`'s; this module only decides what is checked.

mod canonical;
mod claims;
mod hash;
mod keys;
mod sign;
mod verify;

pub use claims::SignedFile;
pub use hash::hash_file;
pub use keys::{SigningKey, VerificationKey, algorithm};
pub use sign::sign;
pub use verify::verify;

pub const SIGNATURES_FILE: &str = ".signatures.json";

/// Why a bundle's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the bundle is unsigned, and signatures are required")]
    Unsigned,
    #[error("`.signatures.json` is malformed: {0}")]
    Malformed(String),
    #[error("the signature names key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("the signature does not verify with key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("the signature's scope `{found}` is not `{expected}`")]
    Scope { expected: String, found: String },
    #[error("`{0}` is not covered by the signature")]
    Unlisted(String),
    #[error("`{0}` is listed in the signature but not in the bundle")]
    Missing(String),
    #[error("`{file}` does not match its signed hash: it was altered after signing")]
    Altered { file: String },
    #[error(
        "`{file}` is hashed with {algorithm}, which is not accepted (use SHA-256, SHA-384 or SHA-512)"
    )]
    Algorithm { file: String, algorithm: String },
    #[error("key `{key}`: {reason}")]
    Key { key: String, reason: String },
}
