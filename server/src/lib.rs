//! Warden: a policy decision point for AI agents.
//!
//! The core (`decision::decide`) is a pure function of a validated request
//! and one immutable `Generation`; everything else loads, publishes and
//! serves generations.

pub mod api;
pub mod approval;
pub mod approval_requirement;
pub mod audit;
pub mod auth;
pub mod bundle;
pub mod changes;
pub mod cluster;
pub mod config;
pub mod control;
pub mod decision;
pub mod engine;
pub mod generation;
pub mod giveway;
pub mod http;
pub mod input;
pub mod intern;
pub mod killswitch;
#[cfg(test)]
mod layering;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod platform_limits;
pub mod readiness;
pub mod regotest;
pub mod replay;
pub mod request;
pub mod search;
pub mod server;
pub mod settings;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod wasm;
