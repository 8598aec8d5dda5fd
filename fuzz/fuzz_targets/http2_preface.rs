//! The first bytes of a connection, as an unauthenticated client sends
//! them: the preface judge must never panic and must judge a prefix the way
//! it judges the whole, and the PING scanner must count the same PINGs
//! however the bytes are cut into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::transport::frames::FrameScanner;
use warden::transport::preface::{PREFACE, complete};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let whole = complete(bytes);
    let cut = usize::from(cut).min(bytes.len());
    // Once the whole is refused or complete, a longer read changes nothing.
    if let Ok(true) = complete(&bytes[..cut]) {
        assert!(matches!(whole, Ok(true)));
    }
    if complete(&bytes[..cut]).is_err() {
        assert!(whole.is_err());
    }

    let mut stream = PREFACE.to_vec();
    stream.extend_from_slice(bytes);
    let mut at_once = FrameScanner::at_preface();
    let expected = at_once.pings(&stream);
    let mut in_reads = FrameScanner::at_preface();
    let step = cut.max(1);
    let seen: usize = stream.chunks(step).map(|chunk| in_reads.pings(chunk)).sum();
    assert_eq!(seen, expected);
});
