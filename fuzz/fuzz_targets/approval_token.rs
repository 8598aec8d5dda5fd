//! What a platform hands back to Warden in the approval workflow: binding
//! tokens (submissions), approval states (re-checks) and the policy's
//! `approval` member. None may panic; only what this key minted or signed
//! opens, and a minted token opens to exactly its claims.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use warden::approval::keys::{Algorithm, Keys};
use warden::approval::token;

static KEYS: LazyLock<Option<Keys>> = LazyLock::new(|| Keys::ephemeral(Algorithm::Es256).ok());

fuzz_target!(|data: &[u8]| {
    let Some(keys) = KEYS.as_ref() else { return };
    let text = String::from_utf8_lossy(data);
    // Nothing the fuzzer makes carries this key's MAC or signature.
    assert!(token::open(keys, &text).is_err());
    assert!(keys.verified_claims(&text).is_none());
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(requirement) = warden::approval_requirement::parse(&value) {
            let claims = token::Claims {
                v: 1,
                eid: text.to_string(),
                iat: 1,
                exp: 2,
                pl: "p".into(),
                h: "h".into(),
                req: requirement,
                r: vec![text.to_string()],
            };
            let minted = token::mint(keys, &claims).expect("claims encode");
            assert_eq!(token::open(keys, &minted).ok(), Some(claims));
        }
    }
});
