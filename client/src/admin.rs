//! The admin plane: bundles, snapshots, kill switches, limits, status.

use std::sync::Arc;

use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_client::AdminServiceClient;

use crate::progress::Counting;
use crate::{ClientError, ClientOptions, connect_channel};

/// Called with the size of each chunk of a request body as it is sent.
pub type UploadProgress = Arc<dyn Fn(usize) + Send + Sync>;

type Transport = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    tonic::transport::Error,
>;

pub use warden_proto::v1::{
    BundleInfo, BundleTarget, EngageKillSwitchRequest, GetStatusResponse, KillSwitch,
    KillSwitchMode, KillSwitchScope, KillSwitchState, LimitKeyPart, LimitKeyUsage, LimitRuleInfo,
    ListKillSwitchesResponse, ListLimitsResponse, ReplayBundleEvent, ReplayBundleRequest,
    ReplayChange, ReplayGroup, ReplayProgress, ReplaySummary, SnapshotInfo,
};

/// A connection to Warden's admin listener.
#[derive(Debug, Clone)]
pub struct AdminClient {
    inner: AdminServiceClient<Transport>,
}

impl AdminClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50052`).
    pub async fn connect(
        endpoint: impl Into<String>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        Self::connect_with_progress(endpoint, options, None).await
    }

    /// Connects, reporting the bytes of every request as they are sent
    /// (for progress bars on large bundle pushes).
    pub async fn connect_with_progress(
        endpoint: impl Into<String>,
        options: ClientOptions,
        progress: Option<UploadProgress>,
    ) -> Result<Self, ClientError> {
        let channel = connect_channel(endpoint.into(), &options).await?;
        let transport = ServiceBuilder::new()
            .map_request(
                move |request: http::Request<tonic::body::Body>| match &progress {
                    None => request,
                    Some(progress) => {
                        let progress = progress.clone();
                        request.map(|body| {
                            tonic::body::Body::new(Counting::new(body, move |n| progress(n)))
                        })
                    }
                },
            )
            .map_response(
                |response: http::Response<
                    tonic::service::interceptor::ResponseBody<tonic::body::Body>,
                >| response.map(tonic::body::Body::new),
            )
            .service(channel);
        // Bundles can be large; the server enforces its own limit.
        Ok(Self {
            inner: AdminServiceClient::new(BoxCloneSyncService::new(transport))
                .max_encoding_message_size(usize::MAX)
                .max_decoding_message_size(64 * 1024 * 1024),
        })
    }

    /// Pushes an OPA bundle (`.tar.gz` bytes).
    pub async fn put_bundle(
        &mut self,
        bundle: Vec<u8>,
        target: BundleTarget,
    ) -> Result<BundleInfo, ClientError> {
        let response = self
            .inner
            .put_bundle(pb::PutBundleRequest {
                bundle,
                target: target as i32,
            })
            .await?
            .into_inner();
        response
            .bundle
            .ok_or_else(|| ClientError::Protocol("PutBundle answered without a bundle".into()))
    }

    pub async fn list_bundles(&mut self) -> Result<Vec<BundleInfo>, ClientError> {
        Ok(self
            .inner
            .list_bundles(pb::ListBundlesRequest {})
            .await?
            .into_inner()
            .bundles)
    }

    /// Serves a stored bundle, by digest (or a unique prefix of 8+ digits).
    pub async fn activate(
        &mut self,
        digest: &str,
        target: BundleTarget,
    ) -> Result<BundleInfo, ClientError> {
        let response = self
            .inner
            .activate_bundle(pb::ActivateBundleRequest {
                digest: digest.to_owned(),
                target: target as i32,
            })
            .await?
            .into_inner();
        response
            .bundle
            .ok_or_else(|| ClientError::Protocol("ActivateBundle answered without a bundle".into()))
    }

    /// Serves the previously active bundle again.
    pub async fn rollback(&mut self) -> Result<BundleInfo, ClientError> {
        let response = self
            .inner
            .rollback(pb::RollbackRequest {})
            .await?
            .into_inner();
        response
            .bundle
            .ok_or_else(|| ClientError::Protocol("Rollback answered without a bundle".into()))
    }

    /// Stops evaluating the shadow bundle; returns the one it was (`None`:
    /// there was none).
    pub async fn clear_shadow(&mut self) -> Result<Option<BundleInfo>, ClientError> {
        Ok(self
            .inner
            .clear_shadow_bundle(pb::ClearShadowBundleRequest {})
            .await?
            .into_inner()
            .cleared)
    }

    /// Replaces the `identity` or `entitlements` snapshot.
    pub async fn put_snapshot(
        &mut self,
        kind: &str,
        document: Vec<u8>,
    ) -> Result<SnapshotInfo, ClientError> {
        let response = self
            .inner
            .put_snapshot(pb::PutSnapshotRequest {
                kind: kind.to_owned(),
                document,
            })
            .await?
            .into_inner();
        response
            .snapshot
            .ok_or_else(|| ClientError::Protocol("PutSnapshot answered without a snapshot".into()))
    }

    pub async fn status(&mut self) -> Result<GetStatusResponse, ClientError> {
        Ok(self
            .inner
            .get_status(pb::GetStatusRequest {})
            .await?
            .into_inner())
    }

    /// Engages a kill switch; it is in force once this returns.
    pub async fn engage_kill_switch(
        &mut self,
        request: EngageKillSwitchRequest,
    ) -> Result<KillSwitch, ClientError> {
        let response = self.inner.engage_kill_switch(request).await?.into_inner();
        response.kill_switch.ok_or_else(|| {
            ClientError::Protocol("EngageKillSwitch answered without a switch".into())
        })
    }

    /// Engages a kill switch and returns the whole answer: the switch, and
    /// whether its id was engaged already (`already_engaged`).
    pub async fn engage_kill_switch_answer(
        &mut self,
        request: EngageKillSwitchRequest,
    ) -> Result<pb::EngageKillSwitchResponse, ClientError> {
        Ok(self.inner.engage_kill_switch(request).await?.into_inner())
    }

    /// Releases an engaged kill switch.
    pub async fn release_kill_switch(
        &mut self,
        id: &str,
        reason: &str,
        released_by: &str,
    ) -> Result<KillSwitch, ClientError> {
        let response = self
            .inner
            .release_kill_switch(pb::ReleaseKillSwitchRequest {
                id: id.to_owned(),
                reason: reason.to_owned(),
                released_by: released_by.to_owned(),
            })
            .await?
            .into_inner();
        response.kill_switch.ok_or_else(|| {
            ClientError::Protocol("ReleaseKillSwitch answered without a switch".into())
        })
    }

    /// Engaged switches, and up to `ended_limit` released or expired ones
    /// (0: the server's default).
    pub async fn list_kill_switches(
        &mut self,
        ended_limit: u32,
    ) -> Result<ListKillSwitchesResponse, ClientError> {
        Ok(self
            .inner
            .list_kill_switches(pb::ListKillSwitchesRequest { ended_limit })
            .await?
            .into_inner())
    }

    /// The limit and tripwire rules in force and the `top` hottest keys (0:
    /// the server's default), of every rule or of `rule` only.
    pub async fn list_limits(
        &mut self,
        rule: Option<&str>,
        top: u32,
    ) -> Result<ListLimitsResponse, ClientError> {
        Ok(self
            .inner
            .list_limits(pb::ListLimitsRequest {
                rule: rule.unwrap_or_default().to_owned(),
                top,
            })
            .await?
            .into_inner())
    }

    /// Forgets the usage of `rule`'s keys that have every `(dimension,
    /// value)` of `key` (every key of the rule when empty); returns how
    /// many keys were reset.
    pub async fn reset_limit_key(
        &mut self,
        rule: &str,
        key: &[(&str, &str)],
        reason: &str,
    ) -> Result<u64, ClientError> {
        Ok(self
            .inner
            .reset_limit_key(pb::ResetLimitKeyRequest {
                rule: rule.to_owned(),
                key: key
                    .iter()
                    .map(|(dimension, value)| ((*dimension).to_owned(), (*value).to_owned()))
                    .collect(),
                reason: reason.to_owned(),
            })
            .await?
            .into_inner()
            .keys_reset)
    }

    /// Replays recorded decisions against a candidate bundle: progress
    /// events (and changes, when `include_changes`), then one summary.
    /// Dropping the stream cancels the replay.
    pub async fn replay_bundle(
        &mut self,
        request: ReplayBundleRequest,
    ) -> Result<tonic::Streaming<ReplayBundleEvent>, ClientError> {
        Ok(self.inner.replay_bundle(request).await?.into_inner())
    }

    /// `replay_bundle` run to its end: the summary, and the changes when
    /// the request includes them.
    pub async fn replay_bundle_summary(
        &mut self,
        request: ReplayBundleRequest,
    ) -> Result<(ReplaySummary, Vec<ReplayChange>), ClientError> {
        use pb::replay_bundle_event::Event;
        let mut events = self.replay_bundle(request).await?;
        let mut changes = Vec::new();
        while let Some(event) = events.message().await? {
            match event.event {
                Some(Event::Change(change)) => changes.push(change),
                Some(Event::Summary(summary)) => return Ok((summary, changes)),
                Some(Event::Progress(_)) | None => {}
            }
        }
        Err(ClientError::Protocol(
            "ReplayBundle ended without a summary".into(),
        ))
    }
}
