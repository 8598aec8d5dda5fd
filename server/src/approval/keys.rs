//! The approval service's keys: one signing key (ES256 or EdDSA, PKCS#8
//! PEM) whose public half is served as a JWKS, and two MAC keys derived
//! from it, for binding tokens and task ids, so there is one secret to keep.

use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value as Json, json};

use super::binding::b64;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("approvals signing key `{path}`: {message}")]
    File { path: PathBuf, message: String },
    #[error("approvals: {0}")]
    Crypto(String),
}

/// The signature algorithm of the signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Es256,
    EdDsa,
}

impl Algorithm {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ES256" => Some(Algorithm::Es256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    fn jws(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

pub struct Keys {
    signer: Signer,
    /// The signing key's public half, raw.
    public: Vec<u8>,
    kid: String,
    jwks: Json,
    bind: ring::hmac::Key,
    task: ring::hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

const PRIVATE: &str = "PRIVATE KEY";
const PUBLIC: &str = "PUBLIC KEY";
// DER prefixes of SubjectPublicKeyInfo for the two key types: what follows
// is the raw public key.
const P256_SPKI: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const ED25519_SPKI: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl Keys {
    /// Loads `file`, or, when it is `None`, the key under `data_dir`,
    /// generating it (mode 0600) on first start.
    pub fn load(
        file: Option<&Path>,
        data_dir: &Path,
        algorithm: Algorithm,
        previous: &[PathBuf],
    ) -> Result<Self, KeyError> {
        let path = match file {
            Some(path) => path.to_owned(),
            None => data_dir.join("approvals").join("signing-key.pem"),
        };
        let file_error = |message: String| KeyError::File {
            path: path.clone(),
            message,
        };
        let rng = SystemRandom::new();
        let der = match std::fs::read_to_string(&path) {
            Ok(text) => pem_decode(&text, PRIVATE).map_err(file_error)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.is_none() => {
                let der = generate(algorithm, &rng)?;
                write_private(&path, &der).map_err(|e| file_error(e.to_string()))?;
                der
            }
            Err(e) => return Err(file_error(e.to_string())),
        };
        let mut previous_jwks = Vec::new();
        for path in previous {
            let text = std::fs::read_to_string(path).map_err(|e| KeyError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let spki = pem_decode(&text, PUBLIC).map_err(|message| KeyError::File {
                path: path.clone(),
                message,
            })?;
            previous_jwks.push(public_jwk(&spki).ok_or_else(|| KeyError::File {
                path: path.clone(),
                message: "not a P-256 or Ed25519 public key".into(),
            })?);
        }
        Self::from_pkcs8(&der, previous_jwks, rng).map_err(file_error)
    }

    /// A key that lives only in memory (benches, fuzzing, tests).
    pub fn ephemeral(algorithm: Algorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let der = generate(algorithm, &rng)?;
        Self::from_pkcs8(&der, Vec::new(), rng).map_err(KeyError::Crypto)
    }

    fn from_pkcs8(der: &[u8], previous: Vec<Json>, rng: SystemRandom) -> Result<Self, String> {
        let (signer, jwk) = if let Ok(pair) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            let point = pair.public_key().as_ref();
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
            (Signer::Es256(pair), jwk)
        } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
            (Signer::EdDsa(pair), jwk)
        } else {
            return Err("not a PKCS#8 P-256 or Ed25519 private key".into());
        };
        let public = match &signer {
            Signer::Es256(pair) => pair.public_key().as_ref().to_vec(),
            Signer::EdDsa(pair) => pair.public_key().as_ref().to_vec(),
        };
        let kid = thumbprint(&jwk);
        let alg = match signer {
            Signer::Es256(_) => Algorithm::Es256,
            Signer::EdDsa(_) => Algorithm::EdDsa,
        };
        let mut keys = vec![with_use(jwk, &kid, alg)];
        keys.extend(previous.into_iter().map(|jwk| {
            let kid = thumbprint(&jwk);
            let alg = if jwk["kty"] == "EC" {
                Algorithm::Es256
            } else {
                Algorithm::EdDsa
            };
            with_use(jwk, &kid, alg)
        }));
        let derive = |label: &[u8]| {
            let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, der);
            ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                ring::hmac::sign(&root, label).as_ref(),
            )
        };
        Ok(Self {
            signer,
            public,
            kid,
            jwks: json!({ "keys": keys }),
            bind: derive(b"warden approvals binding token v1"),
            task: derive(b"warden approvals task id v1"),
            rng,
        })
    }

    pub fn jwks(&self) -> &Json {
        &self.jwks
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.signer {
            Signer::Es256(_) => Algorithm::Es256,
            Signer::EdDsa(_) => Algorithm::EdDsa,
        }
    }

    /// A compact JWS over `claims`.
    pub fn sign(&self, claims: &Json) -> Result<String, KeyError> {
        let header =
            json!({"alg": self.algorithm().jws(), "kid": self.kid, "typ": "warden-approval+jwt"});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match &self.signer {
            Signer::Es256(pair) => pair
                .sign(&self.rng, signing_input.as_bytes())
                .map_err(|_| KeyError::Crypto("ECDSA signing failed".into()))?
                .as_ref()
                .to_vec(),
            Signer::EdDsa(pair) => pair.sign(signing_input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }

    /// The claims of a compact JWS this key signed; `None` for anything
    /// else (another key, an altered token, not a JWS).
    pub fn verified_claims(&self, jws: &str) -> Option<Json> {
        let mut parts = jws.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let signature = super::binding::unb64(signature)?;
        let input = &jws[..header.len() + 1 + claims.len()];
        let algorithm: &dyn signature::VerificationAlgorithm = match self.signer {
            Signer::Es256(_) => &signature::ECDSA_P256_SHA256_FIXED,
            Signer::EdDsa(_) => &signature::ED25519,
        };
        signature::UnparsedPublicKey::new(algorithm, &self.public)
            .verify(input.as_bytes(), &signature)
            .ok()?;
        serde_json::from_slice(&super::binding::unb64(claims)?).ok()
    }

    /// MAC for binding tokens.
    pub fn mac(&self, message: &[u8]) -> Vec<u8> {
        ring::hmac::sign(&self.bind, message).as_ref().to_vec()
    }

    /// Whether `tag` is `message`'s MAC (constant time).
    pub fn mac_verifies(&self, message: &[u8], tag: &[u8]) -> bool {
        ring::hmac::verify(&self.bind, message, tag).is_ok()
    }

    /// The task id for a decision: the same on every replica and for every
    /// resubmission, and unguessable without the key.
    pub fn task_id(&self, evaluation_id: &str) -> String {
        let tag = ring::hmac::sign(&self.task, evaluation_id.as_bytes());
        format!("arq_{}", b64(&tag.as_ref()[..16]))
    }

    /// Random bytes, hex.
    pub fn random_hex(&self, bytes: usize) -> Result<String, KeyError> {
        use ring::rand::SecureRandom;
        let mut buf = vec![0u8; bytes];
        self.rng
            .fill(&mut buf)
            .map_err(|_| KeyError::Crypto("no randomness".into()))?;
        Ok(hex::encode(buf))
    }
}

fn with_use(mut jwk: Json, kid: &str, alg: Algorithm) -> Json {
    if let Some(object) = jwk.as_object_mut() {
        object.insert("kid".into(), json!(kid));
        object.insert("use".into(), json!("sig"));
        object.insert("alg".into(), json!(alg.jws()));
    }
    jwk
}

/// RFC 7638: SHA-256 over the required members in lexicographic order.
fn thumbprint(jwk: &Json) -> String {
    let text = if jwk["kty"] == "EC" {
        format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap_or_default(),
            jwk["y"].as_str().unwrap_or_default()
        )
    } else {
        format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            jwk["x"].as_str().unwrap_or_default()
        )
    };
    b64(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

fn public_jwk(spki: &[u8]) -> Option<Json> {
    if let Some(point) = spki.strip_prefix(P256_SPKI)
        && point.len() == 65
        && point[0] == 4
    {
        return Some(
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}),
        );
    }
    if let Some(key) = spki.strip_prefix(ED25519_SPKI)
        && key.len() == 32
    {
        return Some(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key)}));
    }
    None
}

fn generate(algorithm: Algorithm, rng: &SystemRandom) -> Result<Vec<u8>, KeyError> {
    let document = match algorithm {
        Algorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        }
        Algorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(rng),
    }
    .map_err(|_| KeyError::Crypto("cannot generate a signing key".into()))?;
    Ok(document.as_ref().to_vec())
}

fn write_private(path: &Path, der: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(pem_encode(der, PRIVATE).as_bytes())?;
    file.sync_all()
}

fn pem_encode(der: &[u8], label: &str) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(text: &str, label: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no `{begin}` block (PKCS#8 PEM expected)"))?;
    let rest = &text[start + begin.len()..];
    let stop = rest.find(&end).ok_or_else(|| format!("no `{end}`"))?;
    let body: String = rest[..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("bad base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_loads_the_same_key() {
        for algorithm in [Algorithm::Es256, Algorithm::EdDsa] {
            let dir = tempfile::tempdir().unwrap();
            let a = Keys::load(None, dir.path(), algorithm, &[]).unwrap();
            let b = Keys::load(None, dir.path(), algorithm, &[]).unwrap();
            assert_eq!(a.kid(), b.kid());
            assert_eq!(a.algorithm(), algorithm);
            assert_eq!(a.task_id("e1"), b.task_id("e1"));
            assert_ne!(a.task_id("e1"), a.task_id("e2"));
            let jws = a.sign(&json!({"x": 1})).unwrap();
            assert_eq!(jws.split('.').count(), 3);
            assert_eq!(b.verified_claims(&jws), Some(json!({"x": 1})));
            let mut altered = jws.clone();
            altered.insert(jws.len() - 2, 'A');
            assert_eq!(b.verified_claims(&altered), None);
            let other = tempfile::tempdir().unwrap();
            let stranger = Keys::load(None, other.path(), algorithm, &[]).unwrap();
            assert_eq!(stranger.verified_claims(&jws), None);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir.path().join("approvals/signing-key.pem"))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
    }

    /// Keys as `openssl genpkey` / `openssl pkey -pubout` write them (the
    /// documented way to make one).
    const OPENSSL_EC: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxd1NJzAAjcMb1yRy\nzg/MF4uT+q0VjcDs8xODEWx8Q7+hRANCAATTDw/bH1ZNxg76soEaUgNcYV1w8ntQ\nxycLpTpusqf1SoFH1//ndVl1RbQrCsTqdnCJenJC+yCSGElDkA6s5jfX\n-----END PRIVATE KEY-----\n";
    const OPENSSL_EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0w8P2x9WTcYO+rKBGlIDXGFdcPJ7\nUMcnC6U6brKn9UqBR9f/53VZdUW0KwrE6nZwiXpyQvsgkhhJQ5AOrOY31w==\n-----END PUBLIC KEY-----\n";
    const OPENSSL_ED25519: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIF/8Yjx0KYjr7CKlU1DrKHAhR4g3I8vsUgCqWO9fBxVV\n-----END PRIVATE KEY-----\n";
    const OPENSSL_ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA9WwELA4pYcIsAw4nZujwpfb83ztDjGS9RJKArdnbz/Y=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn loads_keys_openssl_writes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ec = write("ec.pem", OPENSSL_EC);
        let ed = write("ed.pem", OPENSSL_ED25519);
        let previous = [
            write("ec.pub", OPENSSL_EC_PUBLIC),
            write("ed.pub", OPENSSL_ED25519_PUBLIC),
        ];
        let keys = Keys::load(Some(&ec), dir.path(), Algorithm::EdDsa, &previous).unwrap();
        assert_eq!(keys.algorithm(), Algorithm::Es256);
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 3);
        // The EC key is its own previous key too: one thumbprint, two entries.
        assert_eq!(keys.jwks()["keys"][0]["kid"], keys.jwks()["keys"][1]["kid"]);
        let keys = Keys::load(Some(&ed), dir.path(), Algorithm::Es256, &[]).unwrap();
        assert_eq!(keys.algorithm(), Algorithm::EdDsa);
        assert_eq!(keys.jwks()["keys"][0]["crv"], "Ed25519");
        let jws = keys.sign(&json!({"a": 1})).unwrap();
        assert_eq!(keys.verified_claims(&jws), Some(json!({"a": 1})));
    }

    #[test]
    fn a_named_key_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        assert!(Keys::load(Some(&missing), dir.path(), Algorithm::Es256, &[]).is_err());
    }
}
