//! gRPC services: thin adapters between the wire types and the core.

pub mod admin;
pub mod audit;
pub mod decision;
mod killswitch;
mod status;

pub use admin::AdminApi;
pub use audit::AuditApi;
pub use decision::DecisionApi;
