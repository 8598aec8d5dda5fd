//! `AdminService.ReplayBundle`: a candidate bundle judged on this
//! replica's recorded decisions (see `crate::replay`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tonic::{Request, Response, Status};
use warden_proto::v1 as pb;

use super::admin::AdminApi;
use super::replay_stream::{Event, ReplayStream};
use super::status::invalid_field;
use crate::audit::record::admin_record;
use crate::auth::{Caller, Role};
use crate::control::invalid;
use crate::giveway::{GiveWay, lower_priority};
use crate::replay::{self, Change, Progress, ReplayError, Replayer, Report, Selection};

/// How long a replay runs before it gives way to checks (see [`GiveWay`]).
const YIELD_EVERY: Duration = Duration::from_micros(200);
/// Groups in a summary when the request does not say.
const TOP_GROUPS: usize = 10;

fn selection(request: &pb::ReplayBundleRequest) -> Result<Selection, Status> {
    let since = if request.since.is_empty() {
        None
    } else {
        let age = humantime::parse_duration(&request.since).map_err(|e| {
            let reason = format!("is not a duration such as `24h`: {e}");
            invalid_field("since", &format!("invalid since: {reason}"), &reason)
        })?;
        let at = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Some(time::OffsetDateTime::from(at))
    };
    if request.to_seq != 0 && request.to_seq < request.from_seq {
        let reason = "is before from_seq";
        return Err(invalid_field(
            "to_seq",
            &format!("invalid to_seq: {reason}"),
            reason,
        ));
    }
    let text = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    Ok(Selection {
        from_seq: request.from_seq,
        to_seq: request.to_seq,
        since,
        platform: text(&request.platform),
        agent: text(&request.agent_id),
        limit: request.limit,
    })
}

/// Sends progress and changes to the client; a client gone cancels.
struct Sender {
    events: mpsc::Sender<Event>,
    changes: bool,
}

impl Sender {
    fn send(&self, event: pb::replay_bundle_event::Event) -> Result<(), ReplayError> {
        self.events
            .blocking_send(Ok(pb::ReplayBundleEvent { event: Some(event) }))
            .map_err(|_| ReplayError::Cancelled)
    }
}

impl Progress for Sender {
    fn progress(&mut self, report: &Report) -> Result<(), ReplayError> {
        self.send(pb::replay_bundle_event::Event::Progress(report.progress()))
    }

    fn changed(&mut self, change: &Change) -> Result<(), ReplayError> {
        if !self.changes {
            return Ok(());
        }
        self.send(pb::replay_bundle_event::Event::Change(change.clone()))
    }
}

impl AdminApi {
    pub(super) async fn replay_bundle(
        &self,
        request: Request<pb::ReplayBundleRequest>,
    ) -> Result<Response<ReplayStream>, Status> {
        let who = Caller::of(&request);
        let caller = who.label();
        let mut request = request.into_inner();
        // Changed decisions name principals and resources, which only the
        // audit trail's readers may see; counts and groups do not.
        if request.include_changes && !who.has(&Role::Auditor) {
            return Err(Status::permission_denied(
                "include_changes streams recorded decisions: it needs the auditor role as well",
            ));
        }
        let selection = selection(&request)?;
        let replays = self.replays.clone();
        let permit: OwnedSemaphorePermit =
            replays.running.clone().try_acquire_owned().map_err(|_| {
                Status::resource_exhausted("a replay is already running on this replica")
            })?;
        let archive = std::mem::take(&mut request.bundle);
        let as_recorded_policy = request.as_recorded_policy;
        // Compiling and binding take a while: off the runtime, one at a
        // time with pushes (as much memory as one), and before anything
        // streams, so a bad candidate is the call's status.
        let turn = self.control().heavy_turn().await;
        let (replayer, generation) = self
            .read(move |control| {
                let candidate = control.candidate(&archive)?;
                let generation = control.generations().current();
                let replayer = Replayer::new(
                    candidate,
                    as_recorded_policy.then(|| generation.policy.clone()),
                    generation.identity.clone(),
                    generation.entitlements.clone(),
                )
                .map_err(|e| invalid("bundle", e))?;
                Ok((Arc::new(replayer), generation))
            })
            .await?;
        drop(turn);
        let candidate = (
            replayer.candidate().revision.clone(),
            replayer.candidate().digest.clone(),
        );

        let (tx, rx) = mpsc::channel(64);
        let cancel = Arc::new(AtomicBool::new(false));
        let log = self.auditor.log().clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let worker = {
            let replayer = replayer.clone();
            let tx = tx.clone();
            let cancel = cancel.clone();
            let checks = replays.checks.clone();
            let changes = request.include_changes;
            move || {
                lower_priority();
                let mut sender = Sender {
                    events: tx,
                    changes,
                };
                let give_way = GiveWay::new(YIELD_EVERY, checks);
                let result = replay::run(
                    log.range(selection.from_seq)
                        .map(|item| item.map(|(_, line)| line)),
                    &selection,
                    &replayer,
                    Some(give_way),
                    &cancel,
                    &mut sender,
                );
                // Free before the caller hears the end, so that it may
                // start the next replay at once.
                drop(permit);
                let _ = done_tx.send(result);
            }
        };
        std::thread::Builder::new()
            .name("warden-replay".into())
            .spawn(worker)
            .map_err(|e| Status::unavailable(format!("cannot start a replay thread: {e}")))?;

        let auditor = self.auditor.clone();
        let top = match request.top_groups {
            0 => TOP_GROUPS,
            n => n as usize,
        };
        let facts = serde_json::json!({
            "candidate_revision": candidate.0,
            "candidate_digest": candidate.1,
            "active_revision": generation.policy.revision,
            "from_seq": request.from_seq,
            "to_seq": request.to_seq,
            "since": request.since,
            "platform": request.platform,
            "agent_id": request.agent_id,
            "limit": request.limit,
            "as_recorded_policy": request.as_recorded_policy,
        });
        tokio::spawn(async move {
            let outcome = done_rx
                .await
                .unwrap_or_else(|_| Err(ReplayError::Source("the replay thread stopped".into())));
            let mut details = facts;
            let event = match &outcome {
                Ok(report) => {
                    let summary = replayer.summary(report, top, &generation.policy.revision);
                    details["replayed"] = summary.replayed.into();
                    details["changed"] = summary.changed.into();
                    details["not_replayable"] = summary.not_replayable.into();
                    Ok(pb::ReplayBundleEvent {
                        event: Some(pb::replay_bundle_event::Event::Summary(summary)),
                    })
                }
                Err(ReplayError::Cancelled) => {
                    details["cancelled"] = true.into();
                    Err(Status::cancelled("the replay was cancelled"))
                }
                Err(e) => {
                    details["error"] = e.to_string().into();
                    Err(Status::internal(format!("replay: {e}")))
                }
            };
            let record = admin_record("bundle.replayed", &caller, details, SystemTime::now());
            if let Err(e) = auditor.record_admin(&record).await {
                tracing::error!(error = %e, "a replay ran but could not be audited");
            }
            tracing::info!(
                candidate = candidate.0,
                outcome = ?outcome.as_ref().map(|r| (r.replayed(), r.changed())),
                "bundle replayed"
            );
            let _ = tx.send(event).await;
        });
        Ok(Response::new(ReplayStream::new(rx, cancel)))
    }
}
