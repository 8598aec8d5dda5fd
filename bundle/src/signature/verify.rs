//! Verifying a bundle's files against the signed list of their hashes.

use std::collections::{BTreeMap, BTreeSet};

use jsonwebtoken::Validation;

use super::claims::{Claims, SignaturesFile, SignedFile, unverified_claims};
use super::hash::hash_file;
use super::keys::VerificationKey;
use super::{SIGNATURES_FILE, SignatureError};
use crate::Files;

/// Verifies `files` against their signature. Returns the id of the key that
/// signed them, or `None` for an unsigned bundle when `required` is false.
pub fn verify(
    files: &Files,
    keys: &[VerificationKey],
    required: bool,
) -> Result<Option<String>, SignatureError> {
    let Some(raw) = files.get(SIGNATURES_FILE) else {
        return if required {
            Err(SignatureError::Unsigned)
        } else {
            Ok(None)
        };
    };
    let signatures: SignaturesFile =
        serde_json::from_slice(raw).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let [token] = signatures.signatures.as_slice() else {
        return Err(SignatureError::Malformed(format!(
            "expected exactly one JWT, found {}",
            signatures.signatures.len()
        )));
    };

    // The key id is read from the payload before verification, as OPA does;
    // it only selects which configured key must then verify the token.
    let unverified = unverified_claims(token)?;
    let key_id = unverified
        .keyid
        .or_else(|| (keys.len() == 1).then(|| keys[0].id.clone()))
        .ok_or_else(|| SignatureError::Malformed("the JWT names no `keyid`".into()))?;
    let key = keys
        .iter()
        .find(|k| k.id == key_id)
        .ok_or_else(|| SignatureError::UnknownKey(key_id.clone()))?;

    // The configured algorithm is the only one accepted for this key, so a
    // token cannot choose a weaker one (or `none`).
    let mut validation = Validation::new(key.algorithm);
    validation.required_spec_claims = std::collections::HashSet::new();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
        .map_err(|e| SignatureError::Invalid {
            key: key.id.clone(),
            reason: e.to_string(),
        })?
        .claims;
    if let Some(expected) = &key.scope {
        let found = claims.scope.clone().unwrap_or_default();
        if &found != expected {
            return Err(SignatureError::Scope {
                expected: expected.clone(),
                found,
            });
        }
    }

    let mut listed: BTreeMap<String, &SignedFile> = BTreeMap::new();
    for file in &claims.files {
        listed.insert(normalise(&file.name), file);
    }
    let mut seen = BTreeSet::new();
    for (path, content) in files {
        if path == SIGNATURES_FILE {
            continue;
        }
        let entry = listed
            .get(path)
            .ok_or_else(|| SignatureError::Unlisted(path.clone()))?;
        let actual = hash_file(path, content, &entry.algorithm)?;
        if !actual.eq_ignore_ascii_case(&entry.hash) {
            return Err(SignatureError::Altered { file: path.clone() });
        }
        seen.insert(path.clone());
    }
    if let Some(missing) = listed.keys().find(|name| !seen.contains(*name)) {
        return Err(SignatureError::Missing(missing.clone()));
    }
    Ok(Some(key.id.clone()))
}

fn normalise(name: &str) -> String {
    name.trim_start_matches("./")
        .trim_start_matches('/')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{SigningKey, sign};
    use jsonwebtoken::Algorithm;

    fn key_file(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/keys")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn files() -> Files {
        let mut files = Files::new();
        files.insert(".manifest".into(), br#"{"roots": ["warden"]}"#.to_vec());
        files.insert(
            "warden/authz/p.rego".into(),
            b"package warden.authz\n\ndecision := true\n".to_vec(),
        );
        files.insert(
            "data.json".into(),
            br#"{"warden": {"x": [1, 2.0]}}"#.to_vec(),
        );
        files
    }

    fn signed(files: &Files, key: &SigningKey) -> Files {
        let mut signed = files.clone();
        signed.insert(SIGNATURES_FILE.into(), sign(files, key, None).unwrap());
        signed
    }

    fn rsa() -> (SigningKey, VerificationKey) {
        (
            SigningKey::new("ci", Algorithm::RS256, &key_file("rsa-private.pem")).unwrap(),
            VerificationKey::new("ci", Algorithm::RS256, &key_file("rsa-public.pem"), None)
                .unwrap(),
        )
    }

    #[test]
    fn every_algorithm_signs_and_verifies() {
        let (rsa_sign, rsa_verify) = rsa();
        let ec_sign = SigningKey::new("ec", Algorithm::ES256, &key_file("ec-private.pem")).unwrap();
        let ec_verify =
            VerificationKey::new("ec", Algorithm::ES256, &key_file("ec-public.pem"), None).unwrap();
        let secret = key_file("hmac-secret");
        let hs_sign = SigningKey::new("hs", Algorithm::HS256, &secret).unwrap();
        let hs_verify = VerificationKey::new("hs", Algorithm::HS256, &secret, None).unwrap();
        let keys = [rsa_verify, ec_verify, hs_verify];
        for key in [&rsa_sign, &ec_sign, &hs_sign] {
            assert_eq!(
                verify(&signed(&files(), key), &keys, true).unwrap(),
                Some(key.id.clone())
            );
        }
    }

    #[test]
    fn unsigned_bundles_pass_only_when_signatures_are_optional() {
        let (_, key) = rsa();
        assert_eq!(
            verify(&files(), std::slice::from_ref(&key), false).unwrap(),
            None
        );
        assert_eq!(
            verify(&files(), &[key], true).unwrap_err(),
            SignatureError::Unsigned
        );
    }

    #[test]
    fn tampering_is_caught() {
        let (sign_key, verify_key) = rsa();
        let keys = [verify_key];
        let good = signed(&files(), &sign_key);

        let mut altered = good.clone();
        altered.insert(
            "warden/authz/p.rego".into(),
            b"package warden.authz\n\ndecision := false\n".to_vec(),
        );
        assert!(matches!(
            verify(&altered, &keys, true),
            Err(SignatureError::Altered { .. })
        ));

        let mut added = good.clone();
        added.insert(
            "warden/authz/extra.rego".into(),
            b"package warden.authz\n".to_vec(),
        );
        assert_eq!(
            verify(&added, &keys, true).unwrap_err(),
            SignatureError::Unlisted("warden/authz/extra.rego".into())
        );

        let mut removed = good.clone();
        removed.remove("data.json");
        assert_eq!(
            verify(&removed, &keys, true).unwrap_err(),
            SignatureError::Missing("data.json".into())
        );

        let other =
            SigningKey::new("ci", Algorithm::RS256, &key_file("other-rsa-private.pem")).unwrap();
        assert!(matches!(
            verify(&signed(&files(), &other), &keys, true),
            Err(SignatureError::Invalid { .. })
        ));

        let stranger =
            SigningKey::new("stranger", Algorithm::RS256, &key_file("rsa-private.pem")).unwrap();
        assert_eq!(
            verify(&signed(&files(), &stranger), &keys, true).unwrap_err(),
            SignatureError::UnknownKey("stranger".into())
        );

        // Algorithm confusion: HS256 with the public key as the secret.
        let confused =
            SigningKey::new("ci", Algorithm::HS256, &key_file("rsa-public.pem")).unwrap();
        assert!(matches!(
            verify(&signed(&files(), &confused), &keys, true),
            Err(SignatureError::Invalid { .. })
        ));
    }

    #[test]
    fn json_files_are_signed_by_value_not_layout() {
        let (sign_key, verify_key) = rsa();
        let mut good = signed(&files(), &sign_key);
        // Reformatted, same value: still valid.
        good.insert(
            "data.json".into(),
            b"{ \"warden\" : { \"x\" : [ 1 , 2.0 ] } }\n".to_vec(),
        );
        assert!(verify(&good, std::slice::from_ref(&verify_key), true).is_ok());
        // A changed number: altered. (`2.0` and `2` differ as OPA writes them.)
        good.insert("data.json".into(), br#"{"warden": {"x": [1, 2]}}"#.to_vec());
        assert!(matches!(
            verify(&good, &[verify_key], true),
            Err(SignatureError::Altered { .. })
        ));
    }

    #[test]
    fn scope_is_enforced_when_configured() {
        let (sign_key, _) = rsa();
        let scoped = VerificationKey::new(
            "ci",
            Algorithm::RS256,
            &key_file("rsa-public.pem"),
            Some("write".into()),
        )
        .unwrap();
        let mut bundle = files();
        bundle.insert(
            SIGNATURES_FILE.into(),
            sign(&files(), &sign_key, Some("read")).unwrap(),
        );
        assert!(matches!(
            verify(&bundle, std::slice::from_ref(&scoped), true),
            Err(SignatureError::Scope { .. })
        ));
        bundle.insert(
            SIGNATURES_FILE.into(),
            sign(&files(), &sign_key, Some("write")).unwrap(),
        );
        assert!(verify(&bundle, &[scoped], true).is_ok());
    }
}
