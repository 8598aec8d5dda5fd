//! gRPC services: thin adapters between the wire types and the core.

pub mod admin;
pub mod approval;
pub mod audit;
pub mod decision;
mod killswitch;
mod limits;
pub mod replay;
pub mod replay_stream;
pub mod search;
pub(crate) mod status;

pub use admin::AdminApi;
pub use approval::{ApprovalApi, ApproverApi};
pub use audit::AuditApi;
pub use decision::DecisionApi;
