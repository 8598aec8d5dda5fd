//! Standard output that a closed reader ends quietly.
//!
//! Rust ignores SIGPIPE, so `println!` panics once the reader is gone
//! (`wardenctl audit tail | head`). A command whose reader left has nothing
//! more to say: it stops as `head`'s own writers would, with success, and
//! any other failure to write is a local failure.

use std::fmt::Arguments;
use std::io::{ErrorKind, Write};
use std::process;

use crate::exit;

/// Writes one line to standard output.
pub fn line(args: Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        gone(&e);
    }
}

/// Ends the process for an error writing standard output.
pub fn gone(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        process::exit(i32::from(exit::SUCCESS));
    }
    eprintln!("wardenctl: cannot write standard output: {e}");
    process::exit(i32::from(exit::FAILED));
}
