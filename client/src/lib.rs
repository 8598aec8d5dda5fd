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
//!
//! A REQUIRE_APPROVAL decision that names who may approve carries an
//! `access_request`: submit it, wait for a person, and check again with the
//! approval.
//!
//! ```no_run
//! # async fn example(mut client: warden_client::WardenClient, request: warden_client::CheckRequest)
//! # -> Result<(), warden_client::ClientError> {
//! use warden_client::{ApprovalTaskState, Decision};
//!
//! let response = client.check(request.clone()).await?;
//! if let (Decision::RequireApproval, Some(access)) =
//!     (response.decision(), response.access_request.as_ref())
//! {
//!     let task = client
//!         .request_approval(request.clone(), access, "quarter close needs it")
//!         .await?;
//!     let ended = client.wait_approval_task(&task.id).await?;
//!     if let (ApprovalTaskState::Approved, Some(approval)) = (ended.state(), ended.approval) {
//!         let mut again = request;
//!         again.approval = Some(approval);
//!         let allowed = client.check(again).await?;
//!         println!("{:?} {:?}", allowed.decision(), allowed.reasons);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod approval;
pub mod audit;
mod builder;
mod progress;

use std::time::Duration;

pub use admin::AdminClient;
pub use approval::ApproverClient;
pub use audit::AuditClient;
pub use builder::CheckBuilder;
use tonic::Streaming;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use warden_proto::v1::approval_service_client::ApprovalServiceClient;
use warden_proto::v1::decision_service_client::DecisionServiceClient;
pub use warden_proto::v1::{
    AccessRequest, ActionResult, ApprovalRef, ApprovalRequirement, ApprovalTask, ApprovalTaskState,
    ApprovalUse, BatchCheckRequest, BatchCheckResponse, BatchCheckResult,
    CancelApprovalTaskRequest, CheckRequest, CheckResponse, Decision, GetApprovalTaskRequest,
    PageRequest, PageResponse, RequestApprovalRequest, ResourceResult, SearchActionsRequest,
    SearchActionsResponse, SearchResourcesRequest, SearchResourcesResponse, SearchSubjectsRequest,
    SearchSubjectsResponse, SubjectResult, batch_check_result,
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
    approvals: ApprovalServiceClient<Transport>,
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
            approvals: ApprovalServiceClient::new(channel.clone()),
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

    /// One page of an action search: with `candidates` (the platform's
    /// tools), each one's outcome, in order; without, the actions Warden
    /// finds allowed (or requiring approval).
    pub async fn search_actions(
        &mut self,
        request: SearchActionsRequest,
    ) -> Result<SearchActionsResponse, ClientError> {
        Ok(self.inner.search_actions(request).await?.into_inner())
    }

    /// Every page of an action search, followed to its end: the tool
    /// filter. For `n` candidates, `n` outcomes in their order.
    pub async fn search_actions_all(
        &mut self,
        mut request: SearchActionsRequest,
    ) -> Result<Vec<ActionResult>, ClientError> {
        let mut results = Vec::new();
        loop {
            let page = self.search_actions(request.clone()).await?;
            results.extend(page.results);
            match page.page.map(|p| p.next_token).filter(|t| !t.is_empty()) {
                None => return Ok(results),
                Some(token) => {
                    let limit = request.page.as_ref().map_or(0, |p| p.limit);
                    request.page = Some(PageRequest { token, limit });
                }
            }
        }
    }

    /// One page of a resource search.
    pub async fn search_resources(
        &mut self,
        request: SearchResourcesRequest,
    ) -> Result<SearchResourcesResponse, ClientError> {
        Ok(self.inner.search_resources(request).await?.into_inner())
    }

    /// One page of a subject search.
    pub async fn search_subjects(
        &mut self,
        request: SearchSubjectsRequest,
    ) -> Result<SearchSubjectsResponse, ClientError> {
        Ok(self.inner.search_subjects(request).await?.into_inner())
    }

    /// Asks a person to approve a REQUIRE_APPROVAL decision: `request` is
    /// the check that got it, unchanged, and `access` the decision's
    /// `access_request`. Returns the task (pending), whose id the other
    /// approval calls take. Submitting the same decision again returns the
    /// same task.
    pub async fn request_approval(
        &mut self,
        request: CheckRequest,
        access: &AccessRequest,
        justification: impl Into<String>,
    ) -> Result<ApprovalTask, ClientError> {
        let request = RequestApprovalRequest {
            request: Some(request),
            evaluation_id: access.evaluation_id.clone(),
            binding_token: access.binding_token.clone(),
            justification: justification.into(),
        };
        // The same submission answers with the same task: safe to repeat.
        let answered = match self.approvals.request_approval(request.clone()).await {
            Err(status) if connection_lost(&status) => {
                self.approvals.request_approval(request).await
            }
            answered => answered,
        };
        Ok(answered?.into_inner())
    }

    /// The task now; once approved it carries the approval to send back in
    /// `CheckRequest.approval` (see [`CheckBuilder::approval`]).
    pub async fn get_approval_task(&mut self, task_id: &str) -> Result<ApprovalTask, ClientError> {
        let request = GetApprovalTaskRequest {
            task_id: task_id.to_owned(),
        };
        let answered = match self.approvals.get_approval_task(request.clone()).await {
            Err(status) if connection_lost(&status) => {
                self.approvals.get_approval_task(request).await
            }
            answered => answered,
        };
        Ok(answered?.into_inner())
    }

    /// The task now, then each change, until it ends (approved, denied,
    /// expired or cancelled). The per-call timeout bounds only the start of
    /// the watch, not how long a person takes.
    pub async fn watch_approval_task(
        &mut self,
        task_id: &str,
    ) -> Result<Streaming<ApprovalTask>, ClientError> {
        let request = GetApprovalTaskRequest {
            task_id: task_id.to_owned(),
        };
        let answered = match self.approvals.watch_approval_task(request.clone()).await {
            Err(status) if connection_lost(&status) => {
                self.approvals.watch_approval_task(request).await
            }
            answered => answered,
        };
        Ok(answered?.into_inner())
    }

    /// Watches the task until it ends and returns it as it ended. A watch
    /// the server closes before the end (a restart, a drain) is an error;
    /// [`get_approval_task`](Self::get_approval_task) or a new wait picks
    /// up from there.
    pub async fn wait_approval_task(&mut self, task_id: &str) -> Result<ApprovalTask, ClientError> {
        let mut watch = self.watch_approval_task(task_id).await?;
        while let Some(task) = watch.message().await? {
            if task_ended(&task) {
                return Ok(task);
            }
        }
        Err(ClientError::Protocol(format!(
            "the watch of task `{task_id}` ended while it was still pending"
        )))
    }

    /// Withdraws a pending task. Not repeated on a lost connection: a
    /// cancel that took effect would then fail as no longer pending.
    pub async fn cancel_approval_task(
        &mut self,
        task_id: &str,
        reason: &str,
    ) -> Result<ApprovalTask, ClientError> {
        Ok(self
            .approvals
            .cancel_approval_task(CancelApprovalTaskRequest {
                task_id: task_id.to_owned(),
                reason: reason.to_owned(),
            })
            .await?
            .into_inner())
    }
}

/// Whether a task has ended: approved, denied, expired or cancelled.
pub fn task_ended(task: &ApprovalTask) -> bool {
    !matches!(
        task.state(),
        ApprovalTaskState::Pending | ApprovalTaskState::Unspecified
    )
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
