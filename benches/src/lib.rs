//! Shared pieces of Warden's benchmarks and tests: a deterministic workload
//! generator.

pub mod rng;
pub mod workload;
