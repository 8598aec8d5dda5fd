//! A pushed bundle is untrusted bytes: reading it as a gzip tar and then as
//! an OPA bundle must never panic, whatever it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::bundle::{ArchiveLimits, Bundle, read_tar_gz};

fuzz_target!(|data: &[u8]| {
    let limits = ArchiveLimits {
        max_files: 64,
        max_file_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    if let Ok(files) = read_tar_gz(data, &limits)
        && let Ok(bundle) = Bundle::from_files(files)
    {
        // The bundle's Rego is untrusted source too.
        let _ = bundle.parse_modules();
    }
});
