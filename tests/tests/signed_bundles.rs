//! Bundle signatures in OPA's format, end to end: `wardenctl bundle build`
//! signs, the server verifies against configured keys and refuses unsigned,
//! wrongly signed and altered bundles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tonic::Code;
use warden_bundle::signature::{self, SigningKey};
use warden_client::admin::BundleTarget;
use warden_e2e::process::{Warden, binaries};
use warden_e2e::repo_root;

fn keys() -> PathBuf {
    repo_root().join("tests/fixtures/keys")
}

/// A config file trusting the fixture keys: RS256 `ci`, ES256 `ec`, HS256 `hs`.
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("warden.toml");
    let key = |name: &str| keys().join(name).display().to_string();
    std::fs::write(
        &path,
        format!(
            "[[bundles.keys]]\nid = \"ci\"\nalgorithm = \"RS256\"\nkey_file = \"{}\"\n\n\
             [[bundles.keys]]\nid = \"ec\"\nalgorithm = \"ES256\"\nkey_file = \"{}\"\n\n\
             [[bundles.keys]]\nid = \"hs\"\nalgorithm = \"HS256\"\nkey_file = \"{}\"\n",
            key("rsa-public.pem"),
            key("ec-public.pem"),
            key("hmac-secret"),
        ),
    )
    .unwrap();
    path
}

/// `wardenctl bundle build` of the default policy, signed as `ci`.
fn signed_seed(dir: &Path) -> PathBuf {
    let output = dir.join("seed.tar.gz");
    let status = Command::new(&binaries().wardenctl)
        .args(["bundle", "build"])
        .arg(repo_root().join("policies"))
        .arg("-o")
        .arg(&output)
        .arg("--signing-key")
        .arg(keys().join("rsa-private.pem"))
        .args(["--signing-alg", "RS256", "--key-id", "ci"])
        .status()
        .unwrap();
    assert!(status.success());
    output
}

fn policy_files(decision: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert(".manifest".to_owned(), br#"{"roots": ["warden"]}"#.to_vec());
    files.insert(
        "warden/authz/policy.rego".to_owned(),
        format!("package warden.authz\n\ndecision := {decision}\n").into_bytes(),
    );
    files
}

fn signed(
    mut files: BTreeMap<String, Vec<u8>>,
    id: &str,
    algorithm: &str,
    key_file: &str,
) -> BTreeMap<String, Vec<u8>> {
    let material = std::fs::read(keys().join(key_file)).unwrap();
    let key = SigningKey::new(id, signature::algorithm(algorithm).unwrap(), &material).unwrap();
    let signatures = signature::sign(&files, &key, None).unwrap();
    files.insert(signature::SIGNATURES_FILE.to_owned(), signatures);
    files
}

fn archive(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    warden_bundle::write_tar_gz(files).unwrap()
}

#[tokio::test]
async fn only_bundles_signed_by_a_configured_key_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let seed = signed_seed(dir.path());
    let warden = Warden::builder()
        .arg("--config")
        .arg(config.to_str().unwrap())
        .arg("--bundle")
        .arg(seed.to_str().unwrap())
        .start()
        .await;
    let mut admin = warden.admin().await;
    assert_eq!(
        admin.status().await.unwrap().active.unwrap().signed_by,
        "ci"
    );

    for (id, algorithm, key) in [
        ("ci", "RS256", "rsa-private.pem"),
        ("ec", "ES256", "ec-private.pem"),
        ("hs", "HS256", "hmac-secret"),
    ] {
        let files = signed(
            policy_files(&format!("{{\"allow\": false, \"reasons\": [\"{id}\"]}}")),
            id,
            algorithm,
            key,
        );
        let info = admin
            .put_bundle(archive(&files), BundleTarget::Active)
            .await
            .unwrap();
        assert_eq!(info.signed_by, id);
    }
    let generation = admin.status().await.unwrap().generation;

    let unsigned = archive(&policy_files("true"));
    let wrong_key = archive(&signed(
        policy_files("true"),
        "ci",
        "RS256",
        "other-rsa-private.pem",
    ));
    let unknown_key = archive(&signed(
        policy_files("true"),
        "intruder",
        "RS256",
        "rsa-private.pem",
    ));
    let mut altered_files = signed(policy_files("false"), "ci", "RS256", "rsa-private.pem");
    altered_files.insert(
        "warden/authz/policy.rego".to_owned(),
        b"package warden.authz\n\ndecision := true\n".to_vec(),
    );
    let altered = archive(&altered_files);
    let mut smuggled_files = signed(policy_files("false"), "ci", "RS256", "rsa-private.pem");
    smuggled_files.insert(
        "warden/authz/extra.rego".to_owned(),
        b"package warden.authz\n\nbackdoor := true\n".to_vec(),
    );
    let smuggled = archive(&smuggled_files);

    for (bundle, expected) in [
        (unsigned, "the bundle is unsigned"),
        (wrong_key, "does not verify with key `ci`"),
        (unknown_key, "names key `intruder`, which is not configured"),
        (
            altered,
            "`warden/authz/policy.rego` does not match its signed hash",
        ),
        (
            smuggled,
            "`warden/authz/extra.rego` is not covered by the signature",
        ),
    ] {
        let error = admin
            .put_bundle(bundle, BundleTarget::Active)
            .await
            .unwrap_err();
        let status = error.status().unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains(expected),
            "expected `{expected}` in `{}`",
            status.message()
        );
        assert_eq!(
            admin.status().await.unwrap().generation,
            generation,
            "a refused bundle changed the generation"
        );
    }
}

#[test]
fn an_unsigned_seed_is_refused_when_keys_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (status, stderr) = Warden::builder()
        .arg("--config")
        .arg(config.to_str().unwrap())
        .start_expecting_failure();
    assert!(!status.success());
    assert!(stderr.contains("the bundle is unsigned"), "{stderr}");
}
