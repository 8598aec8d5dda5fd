//! A pushed snapshot is untrusted JSON: schema checking it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::snapshot::{Snapshot, SnapshotKind};

fuzz_target!(|data: &[u8]| {
    for kind in SnapshotKind::ALL {
        let _ = Snapshot::parse(kind, data, 256);
    }
});
