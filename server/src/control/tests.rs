use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use warden_bundle::testing::{Entry, tar_gz};

use super::*;
use crate::engine::EngineOptions;

const POLICY: &[u8] = b"package warden.authz\n\ndecision := {\"allow\": false}\n";
const MIB: u64 = 1024 * 1024;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A control plane seeded with the default bundle, unpacking at most
/// 1 MiB per bundle.
fn control(dir: &Path) -> Control {
    let config = ControlConfig {
        engine: EngineOptions::default(),
        archive: ArchiveLimits {
            max_files: 100,
            max_file_bytes: MIB,
            max_total_bytes: MIB,
        },
        max_push_bytes: 64 * MIB as usize,
        run_tests: true,
        keys: Vec::new(),
        require_signed: false,
        bundle_keep: 10,
        snapshot_keep: 10,
        max_age: MaxAge::default(),
        max_id_bytes: 256,
        read_verbs: Arc::from(Vec::new()),
        session_path: Arc::default(),
    };
    let seed = Seed {
        bundle: repo().join("policies"),
        identity: repo().join("policies/demo/identity.json"),
        entitlements: repo().join("policies/demo/entitlements.json"),
    };
    let store = Store::open(&dir.join("data")).unwrap();
    Control::start(config, store, &seed).unwrap()
}

#[test]
fn a_decompression_bomb_is_refused_and_the_active_bundle_stays() {
    let dir = tempfile::tempdir().unwrap();
    let control = control(dir.path());
    let good = control
        .put_bundle(
            tar_gz(&[
                Entry::File("warden/authz/p.rego", POLICY),
                Entry::File("warden/data.json", br#"{"level": 1}"#),
            ]),
            Target::Active,
            &control.heavy_turn_blocking(),
        )
        .unwrap();
    let serving = control.store().serving().unwrap();
    assert_eq!(serving.active.as_deref(), Some(good.digest.as_str()));

    // 16 MiB in one file, or 1.2 MiB over two, each compressed to under
    // 128 KiB: refused from the tar headers, before anything is inflated.
    let one_file = tar_gz(&[
        Entry::File("warden/authz/p.rego", POLICY),
        Entry::Zeros("warden/data.json", 16 * MIB),
    ]);
    let two_files = tar_gz(&[
        Entry::File("warden/authz/p.rego", POLICY),
        Entry::Zeros("warden/a/data.json", 600 * 1024),
        Entry::Zeros("warden/b/data.json", 600 * 1024),
    ]);
    for (bomb, expected) in [
        (
            one_file,
            "`warden/data.json` is 16777216 bytes decompressed",
        ),
        (two_files, "holds more than 1048576 bytes decompressed"),
    ] {
        assert!(bomb.len() < 128 * 1024, "{} bytes", bomb.len());
        let refused = control
            .put_bundle(bomb, Target::Active, &control.heavy_turn_blocking())
            .unwrap_err();
        let ControlError::Invalid { field, reason } = &refused else {
            panic!("expected INVALID_ARGUMENT, got {refused:?}");
        };
        assert_eq!(field, "bundle");
        assert!(
            reason.contains(expected) && reason.ends_with("(limits.max_bundle_bytes)"),
            "{reason}"
        );
        assert_eq!(control.generations().current().policy.digest, good.digest);
        assert_eq!(control.store().serving().unwrap(), serving);
        assert_eq!(control.store().bundles().unwrap().len(), 2);
    }
}

#[test]
fn heavy_turns_are_taken_one_at_a_time_and_a_waiter_can_give_up() {
    let dir = tempfile::tempdir().unwrap();
    let control = control(dir.path());
    let first = control.heavy_turn_blocking();
    assert!(control.heavy_turn().now_or_never().is_none());
    // A waiter dropped while queued (its call timed out) leaves no trace.
    let mut waiter = Box::pin(control.heavy_turn());
    assert!((&mut waiter).now_or_never().is_none());
    drop(waiter);
    drop(first);
    let second = control.heavy_turn().now_or_never();
    assert!(second.is_some());
}
