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
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
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
    #[error("client configuration: {0}")]
    Config(String),
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
#[derive(Clone)]
pub struct ClientOptions {
    /// How long to wait for the TCP (and HTTP/2) connection.
    pub connect_timeout: Duration,
    /// Deadline for each call, sent to the server as `grpc-timeout`.
    pub request_timeout: Duration,
    /// TLS; when set, `http://` endpoints are dialled as `https://`.
    pub tls: Option<TlsOptions>,
    /// Sent as `authorization: Bearer <token>` on every call.
    pub token: Option<String>,
    /// HTTP/2 PINGs this often while the connection is idle. The server
    /// closes a connection that carried calls but has been quiet for
    /// `limits.idle_timeout` (5 minutes by default); pinging more often
    /// than that keeps it open, so the next call skips a new connection
    /// and TLS handshake. `None`: no pings, and the client reconnects on
    /// the next call after an idle close.
    pub keepalive: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            tls: None,
            token: None,
            keepalive: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("tls", &self.tls)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

/// TLS settings, as PEM.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// CA certificates that the server's certificate must chain to.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key, for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name the server's certificate must carry, when it differs from
    /// the endpoint's host.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsOptions {
    /// Reads the CA and, when both are given, the client certificate and key.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> Result<Self, ClientError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
        };
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            (None, None) => None,
            _ => {
                return Err(ClientError::Config(
                    "a client certificate needs both its certificate and its key".into(),
                ));
            }
        };
        Ok(Self {
            ca_pem: ca.map(read).transpose()?,
            identity,
            server_name: None,
        })
    }
}

/// Adds the bearer token to every call.
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<AsciiMetadataValue>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let authorization = token
            .map(|token| {
                let mut value: AsciiMetadataValue =
                    MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                        ClientError::Config("the token is not printable ASCII".into())
                    })?;
                value.set_sensitive(true);
                Ok::<_, ClientError>(value)
            })
            .transpose()?;
        Ok(Self { authorization })
    }
}

impl Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connection with the caller's credentials attached.
pub type Transport = InterceptedService<Channel, Credentials>;

/// A connection to Warden's decision listener. Cheap to clone; clones share
/// the connection.
#[derive(Debug, Clone)]
pub struct WardenClient {
    inner: DecisionServiceClient<Transport>,
    channel: Transport,
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

    /// The underlying connection, for other services on the same listener
    /// (health, reflection).
    pub fn channel(&self) -> Transport {
        self.channel.clone()
    }

    /// Decides one action.
    pub async fn check(&mut self, request: CheckRequest) -> Result<CheckResponse, ClientError> {
        match self.inner.check(request.clone()).await {
            Err(status) if connection_lost(&status) => {
                Ok(self.inner.check(request).await?.into_inner())
            }
            answered => Ok(answered?.into_inner()),
        }
    }

    /// Decides several actions against one policy generation; results come
    /// back in request order.
    pub async fn batch_check(
        &mut self,
        items: Vec<CheckRequest>,
    ) -> Result<Vec<BatchCheckResult>, ClientError> {
        let request = BatchCheckRequest { items };
        let answered = match self.inner.batch_check(request.clone()).await {
            Err(status) if connection_lost(&status) => self.inner.batch_check(request).await,
            answered => answered,
        };
        Ok(answered?.into_inner().results)
    }
}

/// Whether a call failed on the connection rather than being answered: the
/// server closed it (idle timeout, drain) while the channel still held it
/// ready, which fails one call before the channel reconnects. A decision
/// has no effect but its audit record, so it is asked once more.
fn connection_lost(status: &tonic::Status) -> bool {
    use std::error::Error;
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<tonic::transport::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// A connection to `endpoint` with the connection settings and credentials
/// applied.
pub async fn connect_channel(
    endpoint: String,
    options: &ClientOptions,
) -> Result<Transport, ClientError> {
    let credentials = Credentials::new(options.token.as_deref())?;
    let endpoint = match (&options.tls, endpoint.strip_prefix("http://")) {
        (Some(_), Some(rest)) => format!("https://{rest}"),
        _ => endpoint,
    };
    let endpoint_error = |message: String| ClientError::Endpoint {
        endpoint: endpoint.clone(),
        message,
    };
    let mut builder = Endpoint::from_shared(endpoint.clone())
        .map_err(|e| endpoint_error(e.to_string()))?
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .tcp_nodelay(true);
    if let Some(interval) = options.keepalive {
        builder = builder
            .http2_keep_alive_interval(interval)
            .keep_alive_while_idle(true);
    }
    if let Some(tls) = &options.tls {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca_pem {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &tls.server_name {
            config = config.domain_name(name.clone());
        }
        builder = builder
            .tls_config(config)
            .map_err(|e| endpoint_error(source_chain(&e)))?;
    }
    let channel = builder.connect().await.map_err(|e| ClientError::Connect {
        endpoint,
        message: source_chain(&e),
    })?;
    Ok(InterceptedService::new(channel, credentials))
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
