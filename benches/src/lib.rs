//! Shared pieces of Warden's benchmarks and tests: a deterministic workload
//! generator, and real OPA loaded as an oracle.

pub mod inproc;
pub mod oracle;
pub mod rng;
pub mod workload;
