//! An audit export handed to the offline verifier is untrusted: verifying
//! it must never panic, and an entry it accepts must re-encode to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_audit::{Entry, Verifier, canonical};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut verifier = Verifier::from_first_entry();
    for (i, line) in text.lines().enumerate() {
        if verifier.push_line(i as u64 + 1, line).is_err() {
            break;
        }
    }
    if let Ok(entry) = Entry::parse(text) {
        let encoded = canonical(&entry.record);
        let reparsed: serde_json::Value =
            serde_json::from_str(&encoded).unwrap_or(serde_json::Value::Null);
        assert_eq!(canonical(&reparsed), encoded);
    }
});
