//! Rust client for Warden's decision plane.
//!
//! ```no_run
//! # async fn example() -> Result<(), warden_client::ClientError> {
//! use warden_client::{CheckBuilder, ClientOptions, WardenClient};
//!
//! let mut client = WardenClient::connect("http://127.0.0.1:50051", ClientOptions::default()).await?;
//! let request = CheckBuilder::new("copilot-studio", "expense-assistant", "amelia.hughes", "expenses.submit", "expense")
//!     .resource_id("exp-42")
//!     .build();
//! let response = client.check(request).await?;
//! println!("{:?} {:?}", response.decision(), response.reasons);
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod audit;
mod builder;
mod progress;

use std::time::Duration;

pub use admin::AdminClient;
pub use audit::AuditClient;
pub use builder::CheckBuilder;
use tonic::transport::{Channel, Endpoint};
use warden_proto::v1::decision_service_client::DecisionServiceClient;
pub use warden_proto::v1::{
    BatchCheckRequest, BatchCheckResponse, BatchCheckResult, CheckRequest, CheckResponse, Decision,
    batch_check_result,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint `{endpoint}`: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("cannot connect to {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    #[error("{}", describe(.0))]
    Status(#[from] tonic::Status),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// A status as people read it: code, message, and the field a
/// `google.rpc.BadRequest` detail blames.
fn describe(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    if fields.is_empty() {
        format!("{:?}: {}", status.code(), status.message())
    } else {
        format!(
            "{:?}: {} (field: {})",
            status.code(),
            status.message(),
            fields.join(", ")
        )
    }
}

impl ClientError {
    /// The gRPC status, when the server answered with one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Status(status) => Some(status),
            _ => None,
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for the TCP (and HTTP/2) connection.
    pub connect_timeout: Duration,
    /// Deadline for each call, sent to the server as `grpc-timeout`.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A connection to Warden's decision listener. Cheap to clone; clones share
/// the connection.
#[derive(Debug, Clone)]
pub struct WardenClient {
    inner: DecisionServiceClient<Channel>,
    channel: Channel,
}

impl WardenClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`).
    pub async fn connect(
        endpoint: impl Into<String>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let channel = connect_channel(endpoint.into(), &options).await?;
        Ok(Self {
            inner: DecisionServiceClient::new(channel.clone()),
            channel,
        })
    }

    /// The underlying channel, for other services on the same listener
    /// (health, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Decides one action.
    pub async fn check(&mut self, request: CheckRequest) -> Result<CheckResponse, ClientError> {
        Ok(self.inner.check(request).await?.into_inner())
    }

    /// Decides several actions against one policy generation; results come
    /// back in request order.
    pub async fn batch_check(
        &mut self,
        items: Vec<CheckRequest>,
    ) -> Result<Vec<BatchCheckResult>, ClientError> {
        Ok(self
            .inner
            .batch_check(BatchCheckRequest { items })
            .await?
            .into_inner()
            .results)
    }
}

/// A channel to `endpoint` with the connection settings applied.
pub(crate) async fn connect_channel(
    endpoint: String,
    options: &ClientOptions,
) -> Result<Channel, ClientError> {
    Endpoint::from_shared(endpoint.clone())
        .map_err(|e| ClientError::Endpoint {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| ClientError::Connect {
            endpoint,
            message: source_chain(&e),
        })
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
