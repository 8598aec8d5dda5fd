//! OPA's bundle signatures: `.signatures.json` holds one JWT whose payload
//! lists every file of the bundle with its hash; the JWT is verified against
//! a configured key, then every file against its listed hash.
//!
//! JSON documents (`data.json`, `.manifest`) are hashed in OPA's canonical
//! form — keys sorted, no insignificant whitespace, numbers as written — so
//! a signature survives reformatting but not a changed value. The crypto is
//! `jsonwebtoken`'s; this module only decides what is checked.

use std::collections::{BTreeMap, BTreeSet};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::Files;

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

/// A key bundles may be signed with.
#[derive(Clone)]
pub struct VerificationKey {
    pub id: String,
    pub algorithm: Algorithm,
    key: DecodingKey,
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

/// One file's entry in the signature's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedFile {
    pub name: String,
    pub hash: String,
    pub algorithm: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    files: Vec<SignedFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keyid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SignaturesFile {
    signatures: Vec<String>,
}

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

fn unverified_claims(token: &str) -> Result<Claims, SignatureError> {
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

fn normalise(name: &str) -> String {
    name.trim_start_matches("./")
        .trim_start_matches('/')
        .to_owned()
}

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

/// A key to sign bundles with (`warden sign`).
pub struct SigningKey {
    pub id: String,
    pub algorithm: Algorithm,
    key: EncodingKey,
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

mod canonical {
    //! OPA's canonical JSON for hashing: compact, object keys in byte
    //! order, strings escaped as Go's encoder does without HTML escaping,
    //! numbers exactly as written.

    pub fn encode(input: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(input).map_err(|e| e.to_string())?;
        let mut parser = Parser {
            bytes: text.as_bytes(),
            text,
            at: 0,
            depth: 0,
        };
        parser.skip_space();
        let value = parser.value()?;
        parser.skip_space();
        if parser.at != parser.bytes.len() {
            return Err(format!("trailing characters at byte {}", parser.at));
        }
        let mut out = String::with_capacity(input.len());
        write(&value, &mut out);
        Ok(out)
    }

    enum Value<'a> {
        Literal(&'a str),
        Number(&'a str),
        String(String),
        Array(Vec<Value<'a>>),
        Object(Vec<(String, Value<'a>)>),
    }

    const MAX_DEPTH: usize = 512;

    struct Parser<'a> {
        bytes: &'a [u8],
        text: &'a str,
        at: usize,
        depth: usize,
    }

    impl<'a> Parser<'a> {
        fn skip_space(&mut self) {
            while self.at < self.bytes.len()
                && matches!(self.bytes[self.at], b' ' | b'\t' | b'\n' | b'\r')
            {
                self.at += 1;
            }
        }

        fn expect(&mut self, byte: u8) -> Result<(), String> {
            if self.bytes.get(self.at) == Some(&byte) {
                self.at += 1;
                Ok(())
            } else {
                Err(format!("expected `{}` at byte {}", byte as char, self.at))
            }
        }

        fn value(&mut self) -> Result<Value<'a>, String> {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err("nested too deeply".into());
            }
            let value = match self.bytes.get(self.at) {
                Some(b'{') => self.object()?,
                Some(b'[') => self.array()?,
                Some(b'"') => Value::String(self.string()?),
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(format!("unexpected input at byte {}", self.at)),
            };
            self.depth -= 1;
            Ok(value)
        }

        fn literal(&mut self, word: &'static str) -> Result<Value<'a>, String> {
            if self.text[self.at..].starts_with(word) {
                self.at += word.len();
                Ok(Value::Literal(word))
            } else {
                Err(format!("unexpected input at byte {}", self.at))
            }
        }

        fn number(&mut self) -> Result<Value<'a>, String> {
            let start = self.at;
            let digits = |p: &mut Self| {
                let from = p.at;
                while p.at < p.bytes.len() && p.bytes[p.at].is_ascii_digit() {
                    p.at += 1;
                }
                p.at > from
            };
            if self.bytes.get(self.at) == Some(&b'-') {
                self.at += 1;
            }
            if self.bytes.get(self.at) == Some(&b'0') {
                self.at += 1;
            } else if !digits(self) {
                return Err(format!("bad number at byte {start}"));
            }
            if self.bytes.get(self.at) == Some(&b'.') {
                self.at += 1;
                if !digits(self) {
                    return Err(format!("bad number at byte {start}"));
                }
            }
            if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
                self.at += 1;
                if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                    self.at += 1;
                }
                if !digits(self) {
                    return Err(format!("bad number at byte {start}"));
                }
            }
            Ok(Value::Number(&self.text[start..self.at]))
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut out = String::new();
            loop {
                let rest = &self.text[self.at..];
                let Some(offset) = rest.find(['"', '\\']) else {
                    return Err("unterminated string".into());
                };
                let chunk = &rest[..offset];
                if chunk.chars().any(|c| (c as u32) < 0x20) {
                    return Err(format!(
                        "control character in string before byte {}",
                        self.at + offset
                    ));
                }
                out.push_str(chunk);
                self.at += offset;
                if self.bytes[self.at] == b'"' {
                    self.at += 1;
                    return Ok(out);
                }
                self.at += 1;
                let escape = *self.bytes.get(self.at).ok_or("unterminated escape")?;
                self.at += 1;
                match escape {
                    b'"' => out.push('"'),
                    b'\\' => out.push('\\'),
                    b'/' => out.push('/'),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'u' => {
                        let first = self.hex4()?;
                        let code = if (0xD800..0xDC00).contains(&first) {
                            // A surrogate pair; a lone surrogate becomes U+FFFD, as in Go.
                            if self.text[self.at..].starts_with("\\u") {
                                self.at += 2;
                                let second = self.hex4()?;
                                if (0xDC00..0xE000).contains(&second) {
                                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                                } else {
                                    out.push('\u{fffd}');
                                    second
                                }
                            } else {
                                0xFFFD
                            }
                        } else {
                            first
                        };
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    _ => return Err(format!("bad escape at byte {}", self.at - 1)),
                }
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let digits = self
                .text
                .get(self.at..self.at + 4)
                .ok_or("short \\u escape")?;
            let code = u32::from_str_radix(digits, 16)
                .map_err(|_| format!("bad \\u escape at byte {}", self.at))?;
            self.at += 4;
            Ok(code)
        }

        fn array(&mut self) -> Result<Value<'a>, String> {
            self.expect(b'[')?;
            let mut items = Vec::new();
            self.skip_space();
            if self.bytes.get(self.at) == Some(&b']') {
                self.at += 1;
                return Ok(Value::Array(items));
            }
            loop {
                self.skip_space();
                items.push(self.value()?);
                self.skip_space();
                match self.bytes.get(self.at) {
                    Some(b',') => self.at += 1,
                    Some(b']') => {
                        self.at += 1;
                        return Ok(Value::Array(items));
                    }
                    _ => return Err(format!("expected `,` or `]` at byte {}", self.at)),
                }
            }
        }

        fn object(&mut self) -> Result<Value<'a>, String> {
            self.expect(b'{')?;
            let mut fields: Vec<(String, Value<'a>)> = Vec::new();
            self.skip_space();
            if self.bytes.get(self.at) == Some(&b'}') {
                self.at += 1;
                return Ok(Value::Object(fields));
            }
            loop {
                self.skip_space();
                let key = self.string()?;
                self.skip_space();
                self.expect(b':')?;
                self.skip_space();
                let value = self.value()?;
                // A repeated key keeps its last value, as Go's decoder does.
                fields.retain(|(k, _)| k != &key);
                fields.push((key, value));
                self.skip_space();
                match self.bytes.get(self.at) {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                        return Ok(Value::Object(fields));
                    }
                    _ => return Err(format!("expected `,` or `}}` at byte {}", self.at)),
                }
            }
        }
    }

    fn write(value: &Value<'_>, out: &mut String) {
        match value {
            Value::Literal(word) | Value::Number(word) => out.push_str(word),
            Value::String(s) => write_string(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (i, (key, item)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(key, out);
                    out.push(':');
                    write(item, out);
                }
                out.push('}');
            }
        }
    }

    fn write_string(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c => out.push(c),
            }
        }
        out.push('"');
    }

    #[cfg(test)]
    mod tests {
        use super::encode;

        #[test]
        fn canonical_form_sorts_keys_and_keeps_numbers() {
            assert_eq!(
                encode(br#" { "b" : [1, 2.50, -0, 1e3], "a": {"y": null, "x": true}, "\u00e9": "\u2028\n" } "#).unwrap(),
                "{\"a\":{\"x\":true,\"y\":null},\"b\":[1,2.50,-0,1e3],\"\u{e9}\":\"\\u2028\\n\"}"
            );
            assert_eq!(encode(b"{\"k\":\"<&>\\/\"}").unwrap(), "{\"k\":\"<&>/\"}");
            for bad in [&b"{"[..], b"[1,]", b"01", b"\"a", b"{} x", b"1.", b"tru"] {
                assert!(encode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
