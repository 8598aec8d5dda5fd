//! The open-file limit, raised to what the listeners may hold. A process out
//! of descriptors cannot accept the connection that would evict an idle
//! one, so a limit below the connection caps would hand the listeners back
//! to whoever opens sockets fastest.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// Raises the soft limit to the hard one (as Go's runtime does) and warns
/// when even that is below `needed`.
pub fn raise_open_files(needed: u64) {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum;
    if limit.current != hard {
        let raised = Rlimit {
            current: hard,
            maximum: hard,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    let soft = getrlimit(Resource::Nofile).current;
    match soft {
        Some(soft) if soft < needed => warn!(
            open_files = soft,
            needed,
            "the open-file limit is below what limits.max_connections lets the listeners hold; \
             raise it (ulimit -n, LimitNOFILE=) or lower limits.max_connections"
        ),
        _ => info!(open_files = ?soft, needed, "open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        raise_open_files(0);
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(limit.current, limit.maximum);
    }
}
