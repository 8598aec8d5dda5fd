//! gRPC services: thin adapters between the wire types and the core.

pub mod decision;
mod status;

pub use decision::DecisionApi;
