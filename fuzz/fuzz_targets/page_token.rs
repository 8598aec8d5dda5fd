//! A search page token comes back from the caller: any string. Reading one
//! never panics, never accepts what this process did not issue for the
//! same binding, and a token it issued reads back as issued.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::search::token::{Binding, Position, digest, issue, read};

fuzz_target!(|data: &[u8]| {
    let binding = Binding {
        target: 1,
        query: digest([b"query".as_slice()]),
        generation: digest([b"generation".as_slice()]),
    };
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(position) = read(text, &binding)
    {
        // Only an issued token verifies; it is then the one issued.
        assert_eq!(issue(&binding, position), text);
    }
    if data.len() >= 16 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&data[..8]);
        let next = u64::from_le_bytes(word);
        word.copy_from_slice(&data[8..16]);
        let position = Position {
            next,
            returned: u64::from_le_bytes(word),
        };
        let token = issue(&binding, position);
        assert_eq!(read(&token, &binding), Ok(position));
        let other = Binding {
            target: 2,
            ..binding
        };
        assert!(read(&token, &other).is_err());
    }
});
