//! The binding token a requestable decision carries:
//! `wbt1.<base64url(claims)>.<base64url(HMAC-SHA256)>`. A MAC rather than a
//! signature because one is minted on every requestable decision, and only
//! Warden itself ever verifies it (ARAP allows any integrity-protected
//! format).

use serde::{Deserialize, Serialize};

use super::binding::{b64, unb64};
use super::error::ApprovalError;
use super::keys::Keys;
use crate::approval_requirement::Requirement;

const PREFIX: &str = "wbt1.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub v: u32,
    /// The decision (evaluation) id.
    pub eid: String,
    /// Issued and expires, Unix ms.
    pub iat: u64,
    pub exp: u64,
    pub pl: String,
    /// The binding hash of the request.
    pub h: String,
    pub req: Requirement,
    /// The policy's reasons.
    pub r: Vec<String>,
}

pub fn mint(keys: &Keys, claims: &Claims) -> Option<String> {
    let payload = b64(&serde_json::to_vec(claims).ok()?);
    let signed = format!("{PREFIX}{payload}");
    let tag = b64(&keys.mac(signed.as_bytes()));
    Some(format!("{signed}.{tag}"))
}

pub fn open(keys: &Keys, token: &str) -> Result<Claims, ApprovalError> {
    let bad = |why: &str| ApprovalError::Binding(why.to_owned());
    let rest = token
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("not a Warden binding token"))?;
    let (payload, tag) = rest
        .split_once('.')
        .ok_or_else(|| bad("not a Warden binding token"))?;
    let tag = unb64(tag).ok_or_else(|| bad("not a Warden binding token"))?;
    let signed = &token[..PREFIX.len() + payload.len()];
    if !keys.mac_verifies(signed.as_bytes(), &tag) {
        return Err(bad("it was not issued by this Warden, or was altered"));
    }
    let bytes = unb64(payload).ok_or_else(|| bad("its claims do not decode"))?;
    let claims: Claims =
        serde_json::from_slice(&bytes).map_err(|_| bad("its claims do not decode"))?;
    if claims.v != 1 {
        return Err(bad("unknown token version"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::keys::Algorithm;

    #[test]
    fn a_token_opens_only_unaltered_and_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load(None, dir.path(), Algorithm::Es256, &[]).unwrap();
        let claims = Claims {
            v: 1,
            eid: "e".into(),
            iat: 1,
            exp: 2,
            pl: "p".into(),
            h: "h".into(),
            req: crate::approval_requirement::parse(&serde_json::json!({"self": true})).unwrap(),
            r: vec!["sensitive_action".into()],
        };
        let token = mint(&keys, &claims).unwrap();
        assert_eq!(open(&keys, &token).unwrap(), claims);
        let mut altered = token.clone().into_bytes();
        altered[8] ^= 1;
        assert!(open(&keys, &String::from_utf8_lossy(&altered)).is_err());
        let other_dir = tempfile::tempdir().unwrap();
        let other = Keys::load(None, other_dir.path(), Algorithm::Es256, &[]).unwrap();
        assert!(open(&other, &token).is_err());
        assert!(open(&keys, "wbt1.x").is_err());
        assert!(open(&keys, "").is_err());
    }
}
