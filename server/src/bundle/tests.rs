use warden_bundle::testing::{Entry, tar_gz};

use super::*;
use crate::engine::EvalLimits;
use crate::engine::native::NativePolicy;
use crate::input::json_to_rego;

const POLICY: &str = "package warden.authz\n\ndecision := true\n";

fn load(entries: &[Entry<'_>]) -> Result<Bundle, BundleError> {
    Bundle::from_files(read_tar_gz(&tar_gz(entries), &ArchiveLimits::default())?)
}

fn error(entries: &[Entry<'_>]) -> String {
    load(entries)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "loaded".into())
}

#[test]
fn opa_style_bundles_load() {
    let bundle = load(&[
        Entry::File("/.manifest", br#"{"revision":"r7","roots":["warden"]}"#),
        Entry::File("/warden/authz/policy.rego", POLICY.as_bytes()),
        Entry::File("/warden/config/data.json", br#"{"level": 3}"#),
        Entry::File("./data.json", b"{}"),
    ])
    .unwrap();
    assert_eq!(bundle.revision, "r7");
    assert_eq!(bundle.entrypoint, DEFAULT_ENTRYPOINT);
    assert_eq!(bundle.modules[0].path, "warden/authz/policy.rego");
    assert_eq!(
        bundle.data,
        json_to_rego(&serde_json::json!({"warden": {"config": {"level": 3}}}))
    );
}

#[test]
fn a_tar_of_a_directory_with_its_root_entry_loads() {
    // What `tar -C policy -czf bundle.tar.gz .` writes.
    let bundle = load(&[
        Entry::Dir("./"),
        Entry::Dir("./warden/"),
        Entry::File("./warden/policy.rego", POLICY.as_bytes()),
    ])
    .unwrap();
    assert_eq!(bundle.modules[0].path, "warden/policy.rego");
    // The root is the only directory that may go unnamed; a file may not.
    assert!(error(&[Entry::File("./", b"")]).contains("empty path"));
    assert!(error(&[Entry::Dir("../up/")]).contains("points outside the bundle"));
}

#[test]
fn unsafe_entries_are_refused() {
    let policy = Entry::File("p.rego", POLICY.as_bytes());
    for (entries, expected) in [
        (
            vec![Entry::File("../p.rego", POLICY.as_bytes())],
            "points outside the bundle",
        ),
        (
            vec![Entry::File("a/../../p.rego", POLICY.as_bytes())],
            "points outside the bundle",
        ),
        (vec![Entry::Symlink("p.rego", "/etc/passwd")], "Symlink"),
        (vec![Entry::HardLink("p.rego", "q.rego")], "Link"),
        (vec![Entry::CharDevice("tty")], "Char"),
        (
            vec![
                Entry::File("p.rego", POLICY.as_bytes()),
                Entry::File("./p.rego", POLICY.as_bytes()),
            ],
            "appears twice",
        ),
    ] {
        let mut all = vec![Entry::File("ok.rego", POLICY.as_bytes())];
        all.extend(entries);
        let message = error(&all);
        assert!(
            message.contains(expected),
            "expected `{expected}`, got `{message}`"
        );
    }
    assert!(load(&[policy]).is_ok());
}

#[test]
fn sizes_and_counts_are_bounded_on_the_decompressed_stream() {
    let limits = ArchiveLimits {
        max_files: 3,
        max_file_bytes: 1024 * 1024,
        max_total_bytes: 2 * 1024 * 1024,
    };
    // 1 GiB of zeros compresses to about 1 MiB; the header's size is refused
    // before anything is inflated.
    let bomb = tar_gz(&[Entry::Zeros("big.json", 8 * 1024 * 1024)]);
    assert!(
        bomb.len() < 64 * 1024,
        "the test bomb should be small compressed"
    );
    let message = read_tar_gz(&bomb, &limits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("more than the limit"), "{message}");

    let total = tar_gz(&[
        Entry::Zeros("a", 900 * 1024),
        Entry::Zeros("b", 900 * 1024),
        Entry::Zeros("c", 900 * 1024),
    ]);
    let message = read_tar_gz(&total, &limits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("decompressed"), "{message}");

    let many = tar_gz(&[
        Entry::File("a", b""),
        Entry::File("b", b""),
        Entry::File("c", b""),
        Entry::File("d", b""),
    ]);
    let message = read_tar_gz(&many, &limits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("more than 3 entries"), "{message}");

    let garbage = read_tar_gz(b"not a gzip stream", &limits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(garbage.starts_with("bundle archive"), "{garbage}");
}

#[test]
fn data_files_merge_by_directory_and_never_overwrite() {
    let bundle = load(&[
        Entry::File("p.rego", POLICY.as_bytes()),
        Entry::File("a/b/data.json", br#"{"x": 1}"#),
        Entry::File("a/data.json", br#"{"c": 2}"#),
    ])
    .unwrap();
    assert_eq!(
        bundle.data,
        json_to_rego(&serde_json::json!({"a": {"b": {"x": 1}, "c": 2}}))
    );

    let message = error(&[
        Entry::File("p.rego", POLICY.as_bytes()),
        Entry::File("a/b/data.json", br#"{"x": 1}"#),
        Entry::File("a/data.json", br#"{"b": {"x": 2}}"#),
    ]);
    assert!(
        message.contains("overlaps data set by another file"),
        "{message}"
    );
    let message = error(&[
        Entry::File("p.rego", POLICY.as_bytes()),
        Entry::File("data.json", b"[1]"),
    ]);
    assert!(message.contains("must be an object"), "{message}");
    let message = error(&[
        Entry::File("p.rego", POLICY.as_bytes()),
        Entry::File("x/data.json", b"{"),
    ]);
    assert!(
        message.contains("x/data.json") && message.contains("not valid JSON"),
        "{message}"
    );
    let message = error(&[
        Entry::File("p.rego", POLICY.as_bytes()),
        Entry::File("x/data.yaml", b"a: 1"),
    ]);
    assert!(message.contains("YAML"), "{message}");
}

#[test]
fn bundles_cannot_write_where_snapshots_live() {
    let cases: Vec<(Vec<Entry<'_>>, &str)> = vec![
        (
            vec![Entry::File(".manifest", br#"{"roots":["identity"]}"#)],
            "root `identity` overlaps `identity`",
        ),
        (
            vec![Entry::File(".manifest", br#"{"roots":[""]}"#)],
            "overlaps `identity`",
        ),
        (
            vec![Entry::File(
                ".manifest",
                br#"{"roots":["entitlements/extra"]}"#,
            )],
            "overlaps `entitlements`",
        ),
        (
            vec![Entry::File("identity/data.json", br#"{"users": {}}"#)],
            "data.identity",
        ),
        (
            vec![Entry::File(
                "data.json",
                br#"{"entitlements": {"subjects": {}}}"#,
            )],
            "data.entitlements",
        ),
    ];
    for (mut entries, expected) in cases {
        entries.push(Entry::File("p.rego", POLICY.as_bytes()));
        let message = error(&entries);
        assert!(
            message.contains(expected),
            "expected `{expected}`, got `{message}`"
        );
    }
    // A root that merely shares a prefix is fine.
    assert!(
        load(&[
            Entry::File(".manifest", br#"{"roots":["identityx", "warden"]}"#),
            Entry::File("identityx/data.json", b"{}"),
            Entry::File("p.rego", POLICY.as_bytes()),
        ])
        .is_ok()
    );
}

#[test]
fn data_and_packages_stay_inside_the_roots() {
    let message = error(&[
        Entry::File(".manifest", br#"{"roots":["warden"]}"#),
        Entry::File("p.rego", POLICY.as_bytes()),
        Entry::File("other/data.json", br#"{"x": 1}"#),
    ]);
    assert!(
        message.contains("data.other") && message.contains("outside the manifest's roots"),
        "{message}"
    );

    let compile = |entries: &[Entry<'_>]| {
        load(entries)
            .and_then(|b| NativePolicy::compile(&b, EvalLimits::default()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "compiled".into())
    };
    let message = compile(&[
        Entry::File(".manifest", br#"{"roots":["warden/authz"]}"#),
        Entry::File("p.rego", POLICY.as_bytes()),
        Entry::File("q.rego", b"package other\n\nx := 1\n"),
    ]);
    assert!(
        message.contains("q.rego") && message.contains("outside the manifest's roots"),
        "{message}"
    );
    let message = compile(&[
        Entry::File("p.rego", POLICY.as_bytes()),
        Entry::File("q.rego", b"package identity.users\n\nx := 1\n"),
    ]);
    assert!(
        message.contains("q.rego") && message.contains("overlaps Warden's snapshots"),
        "{message}"
    );
}

#[test]
fn compile_errors_name_the_module_and_the_entrypoint() {
    let compile = |entries: &[Entry<'_>]| {
        load(entries)
            .and_then(|b| NativePolicy::compile(&b, EvalLimits::default()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "compiled".into())
    };
    let message = compile(&[Entry::File(
        "broken.rego",
        b"package warden.authz\n\ndecision := {\n",
    )]);
    assert!(message.contains("broken.rego"), "{message}");
    let message = compile(&[Entry::File("p.rego", b"package warden.other\n\nx := 1\n")]);
    assert!(message.contains("data.warden.authz.decision"), "{message}");
    let message = compile(&[
        Entry::File(".manifest", br#"{"metadata":{"entrypoint":"custom/rule"}}"#),
        Entry::File("p.rego", b"package custom\n\nrule := true\n"),
    ]);
    assert_eq!(message, "compiled");
    assert_eq!(
        error(&[Entry::File("README.md", b"hi")]),
        BundleError::Empty.to_string()
    );
}

#[test]
fn revision_defaults_to_the_content_digest() {
    let a = load(&[Entry::File("p.rego", POLICY.as_bytes())]).unwrap();
    let b = load(&[Entry::File(
        "p.rego",
        b"package warden.authz\n\ndecision := false\n",
    )])
    .unwrap();
    assert!(a.revision.starts_with("sha256:"));
    assert_ne!(a.revision, b.revision);
    assert_eq!(
        a.revision,
        load(&[Entry::File("./p.rego", POLICY.as_bytes())])
            .unwrap()
            .revision
    );
}

#[test]
fn directories_load_like_archives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("warden/authz")).unwrap();
    std::fs::write(dir.path().join("warden/authz/p.rego"), POLICY).unwrap();
    std::fs::write(dir.path().join("data.json"), br#"{"warden": {"x": 1}}"#).unwrap();
    let from_dir = Bundle::load(dir.path(), &ArchiveLimits::default()).unwrap();
    let from_tar = load(&[
        Entry::File("warden/authz/p.rego", POLICY.as_bytes()),
        Entry::File("data.json", br#"{"warden": {"x": 1}}"#),
    ])
    .unwrap();
    assert_eq!(from_dir.digest, from_tar.digest);
    assert_eq!(from_dir.data, from_tar.data);

    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link.rego")).unwrap();
    let message = Bundle::load(dir.path(), &ArchiveLimits::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("link.rego") && message.contains("not a regular file"),
        "{message}"
    );
}
