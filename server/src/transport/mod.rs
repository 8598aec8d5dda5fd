//! The listeners' connections, from accept to close: who gets a place when
//! a listener is full (`admission`), TLS (`tls`), the deadlines a connection
//! must meet before it has proved anything (`preface`, hyper's header-read
//! timeout, `min_rate`), the idle timeout after (`activity`, `frames`), and
//! serving with hyper (`serve`). The gRPC listeners and the HTTP ones go
//! through the same path.

pub mod activity;
pub mod admission;
pub mod config;
pub mod conn;
pub mod fd_limit;
pub mod frames;
pub mod min_rate;
pub mod oversize;
pub mod preface;
pub mod serve;
pub mod stats;
pub mod tls;

pub use crate::auth::{ConnInfo, PeerCert};
pub use serve::{Grpc, Http1, Listening, serve};
pub use stats::ListenerStats;
pub use tls::{TlsError, TlsSetup};
