//! `warden.v1.ApprovalService` (platforms, decision listener) and
//! `warden.v1.ApproverService` (people, admin listener).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use warden_proto::v1 as pb;
use warden_proto::v1::approval_service_server::ApprovalService;
use warden_proto::v1::approver_service_server::ApproverService;

use super::status::invalid_field;
use crate::approval::ApprovalError;
use crate::approval::store::now_ms;
use crate::approval::task::{State, Task};
use crate::approval::{Approvals, detail, effective_state, may_decide, platform_view};
use crate::auth::{Caller, Role};
use crate::generation::Generations;
use crate::killswitch::action_pattern_matches as action_matches;
use crate::request::{Limits, validate};
use crate::snapshot::SnapshotKind;

type TaskStream = Pin<Box<dyn Stream<Item = Result<pb::ApprovalTask, Status>> + Send>>;
type DetailStream = Pin<Box<dyn Stream<Item = Result<pb::ApprovalTaskDetail, Status>> + Send>>;

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid_field(
            field,
            &format!("invalid {field}: is required"),
            "is required",
        ));
    }
    Ok(())
}

impl From<ApprovalError> for Status {
    fn from(e: ApprovalError) -> Self {
        let message = e.to_string();
        match e {
            ApprovalError::NotRequestable(_)
            | ApprovalError::ExpiredDenial(_)
            | ApprovalError::TaskState(_) => Status::failed_precondition(message),
            ApprovalError::Invalid { field, reason } => invalid_field(&field, &message, &reason),
            ApprovalError::Binding(reason) => invalid_field("binding_token", &message, &reason),
            ApprovalError::Duplicate(_) => Status::already_exists(message),
            ApprovalError::UnknownTask(_) => Status::not_found(message),
            ApprovalError::Forbidden(_) => Status::permission_denied(message),
            ApprovalError::Unavailable(_) => Status::unavailable(message),
            ApprovalError::Internal(_) => Status::internal(message),
        }
    }
}

/// Platforms ask for approval and follow their tasks.
#[derive(Debug, Clone)]
pub struct ApprovalApi {
    approvals: Arc<Approvals>,
    limits: Arc<Limits>,
}

impl ApprovalApi {
    pub fn new(approvals: Arc<Approvals>, limits: Limits) -> Self {
        Self {
            approvals,
            limits: Arc::new(limits),
        }
    }

    fn own_task(&self, caller: &Caller, id: &str) -> Result<Task, Status> {
        required("task_id", id)?;
        Ok(self
            .approvals
            .task_for(|platform| caller.may_act_for(platform), id)?)
    }
}

#[tonic::async_trait]
impl ApprovalService for ApprovalApi {
    async fn request_approval(
        &self,
        request: Request<pb::RequestApprovalRequest>,
    ) -> Result<Response<pb::ApprovalTask>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let Some(check) = request.request.as_ref() else {
            return Err(invalid_field(
                "request",
                "invalid request: is required",
                "is required",
            ));
        };
        caller.check_platform(&check.platform, "request.platform")?;
        let valid = validate(check, &self.limits).map_err(|invalid| {
            let field = format!("request.{}", invalid.field);
            invalid_field(
                &field,
                &format!("invalid {field}: {}", invalid.reason),
                &invalid.reason,
            )
        })?;
        required("evaluation_id", &request.evaluation_id)?;
        required("binding_token", &request.binding_token)?;
        let task = self
            .approvals
            .submit(
                &caller.label(),
                &valid,
                &request.evaluation_id,
                &request.binding_token,
                &request.justification,
            )
            .await?;
        Ok(Response::new(platform_view(&task)))
    }

    async fn get_approval_task(
        &self,
        request: Request<pb::GetApprovalTaskRequest>,
    ) -> Result<Response<pb::ApprovalTask>, Status> {
        let caller = Caller::of(&request);
        let task = self.own_task(&caller, &request.get_ref().task_id)?;
        Ok(Response::new(platform_view(&task)))
    }

    type WatchApprovalTaskStream = TaskStream;

    async fn watch_approval_task(
        &self,
        request: Request<pb::GetApprovalTaskRequest>,
    ) -> Result<Response<TaskStream>, Status> {
        let caller = Caller::of(&request);
        let id = request.into_inner().task_id;
        // Subscribed before the first read, so no change falls in between.
        let mut changes = self.approvals.store().subscribe();
        let task = self.own_task(&caller, &id)?;
        let approvals = self.approvals.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut last = platform_view(&task);
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            let mut task = task;
            loop {
                if effective_state(&task, now_ms()) != State::Pending {
                    return;
                }
                // Wakes for its own changes, and at its expiry.
                let until_expiry =
                    Duration::from_millis(task.expires_at_ms.saturating_sub(now_ms()) + 1);
                let next = tokio::select! {
                    changed = changes.recv() => match changed {
                        Ok(changed) if changed.id == id => Some(changed),
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => approvals.store().get(&id).ok().flatten(),
                        Err(RecvError::Closed) => return,
                    },
                    () = tokio::time::sleep(until_expiry) => Some(task.clone()),
                    () = tx.closed() => return,
                };
                let Some(next) = next else { return };
                task = next;
                let view = platform_view(&task);
                if view != last {
                    last = view.clone();
                    if tx.send(Ok(view)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn cancel_approval_task(
        &self,
        request: Request<pb::CancelApprovalTaskRequest>,
    ) -> Result<Response<pb::ApprovalTask>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let task = self.own_task(&caller, &request.task_id)?;
        let task = self
            .approvals
            .cancel(&caller.label(), task, &request.reason)
            .await?;
        Ok(Response::new(platform_view(&task)))
    }
}

/// People decide tasks.
#[derive(Debug, Clone)]
pub struct ApproverApi {
    approvals: Arc<Approvals>,
    generations: Arc<Generations>,
}

/// Who is looking at tasks, and which they may see.
enum Viewer<'a> {
    /// Decides tasks the policy lets this user decide, and sees those.
    Approver(&'a str),
    /// Sees every task, decides none (auditors, open mode).
    Reader,
}

impl ApproverApi {
    pub fn new(approvals: Arc<Approvals>, generations: Arc<Generations>) -> Self {
        Self {
            approvals,
            generations,
        }
    }

    fn viewer(caller: &Caller) -> Viewer<'_> {
        match caller.approver() {
            Some(user) => Viewer::Approver(user),
            None => Viewer::Reader,
        }
    }

    fn can_decide(&self, viewer: &Viewer<'_>, task: &Task) -> bool {
        match viewer {
            Viewer::Reader => false,
            Viewer::Approver(user) => {
                let generation = self.generations.current();
                let identity = generation.snapshot(SnapshotKind::Identity);
                may_decide(&task.requirement, task, user, identity).is_ok()
            }
        }
    }

    /// The task's detail, if `caller` may see it: an approver sees the
    /// tasks they may decide (and those they decided), a reader all.
    fn visible(&self, caller: &Caller, task: &Task) -> Option<pb::ApprovalTaskDetail> {
        let viewer = Self::viewer(caller);
        let can_decide = self.can_decide(&viewer, task);
        let sees = match viewer {
            Viewer::Reader => {
                caller.has(&Role::Auditor)
                    || caller.is_open()
                    || caller.has(&Role::IncidentResponder)
            }
            Viewer::Approver(user) => can_decide || task.decided_by.as_deref() == Some(user),
        };
        sees.then(|| {
            detail(
                task,
                can_decide && effective_state(task, now_ms()) == State::Pending,
            )
        })
    }

    fn person(caller: &Caller) -> Result<&str, Status> {
        caller.approver().ok_or_else(|| {
            Status::failed_precondition(
                "deciding a task needs a credential that names one person (role `approver:<user id>`)",
            )
        })
    }

    fn task(&self, id: &str) -> Result<Task, Status> {
        required("task_id", id)?;
        Ok(self.approvals.task(id)?)
    }
}

#[tonic::async_trait]
impl ApproverService for ApproverApi {
    async fn list_approval_tasks(
        &self,
        request: Request<pb::ListApprovalTasksRequest>,
    ) -> Result<Response<pb::ListApprovalTasksResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let state = match request.state() {
            pb::ApprovalTaskState::Unspecified => pb::ApprovalTaskState::Pending,
            state => state,
        };
        let page_size = match request.page_size {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let skip = match request.page_token.as_str() {
            "" => 0,
            token => token.parse::<usize>().map_err(|_| {
                invalid_field(
                    "page_token",
                    "invalid page_token: not one this server gave",
                    "unknown token",
                )
            })?,
        };
        let now = now_ms();
        let mut tasks: Vec<Task> = self
            .approvals
            .tasks()?
            .into_iter()
            .filter(|t| crate::approval::views::state(effective_state(t, now)) == state)
            .filter(|t| request.platform.is_empty() || t.platform == request.platform)
            .filter(|t| {
                request.principal_id.is_empty()
                    || t.principal_id == request.principal_id
                    || t.principal() == request.principal_id
            })
            .filter(|t| request.action.is_empty() || action_matches(&request.action, &t.action))
            .collect();
        tasks.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        let visible: Vec<pb::ApprovalTaskDetail> = tasks
            .iter()
            .filter_map(|t| self.visible(&caller, t))
            .collect();
        let page: Vec<_> = visible.iter().skip(skip).take(page_size).cloned().collect();
        let next = skip + page.len();
        Ok(Response::new(pb::ListApprovalTasksResponse {
            tasks: page,
            next_page_token: if next < visible.len() {
                next.to_string()
            } else {
                String::new()
            },
        }))
    }

    async fn get_approval_task_detail(
        &self,
        request: Request<pb::GetApprovalTaskDetailRequest>,
    ) -> Result<Response<pb::ApprovalTaskDetail>, Status> {
        let caller = Caller::of(&request);
        let task = self.task(&request.get_ref().task_id)?;
        self.visible(&caller, &task)
            .map(Response::new)
            .ok_or_else(|| {
                Status::permission_denied(format!(
                    "caller `{}` may not decide task `{}`",
                    caller.name(),
                    task.id
                ))
            })
    }

    async fn approve(
        &self,
        request: Request<pb::ApproveRequest>,
    ) -> Result<Response<pb::ApprovalTaskDetail>, Status> {
        let caller = Caller::of(&request);
        let user = Self::person(&caller)?;
        let request = request.get_ref();
        required("task_id", &request.task_id)?;
        let generation = self.generations.current();
        let task = self
            .approvals
            .approve(
                &caller.label(),
                user,
                generation.snapshot(SnapshotKind::Identity),
                &request.task_id,
                &request.note,
                Duration::from_secs(request.valid_for_seconds),
            )
            .await?;
        Ok(Response::new(detail(&task, false)))
    }

    async fn deny(
        &self,
        request: Request<pb::DenyRequest>,
    ) -> Result<Response<pb::ApprovalTaskDetail>, Status> {
        let caller = Caller::of(&request);
        let user = Self::person(&caller)?;
        let request = request.get_ref();
        required("task_id", &request.task_id)?;
        let generation = self.generations.current();
        let task = self
            .approvals
            .deny(
                &caller.label(),
                user,
                generation.snapshot(SnapshotKind::Identity),
                &request.task_id,
                &request.note,
            )
            .await?;
        Ok(Response::new(detail(&task, false)))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeApprovalRequest>,
    ) -> Result<Response<pb::ApprovalTaskDetail>, Status> {
        let caller = Caller::of(&request);
        let request = request.get_ref();
        required("task_id", &request.task_id)?;
        let task = self.approvals.current(&request.task_id).await?;
        // Responders may withdraw any approval; an approver, those they
        // could have given.
        let by = if caller.has(&Role::IncidentResponder) {
            caller.name().to_owned()
        } else {
            let user = Self::person(&caller)?;
            let generation = self.generations.current();
            may_decide(
                &task.requirement,
                &task,
                user,
                generation.snapshot(SnapshotKind::Identity),
            )?;
            user.to_owned()
        };
        let task = self
            .approvals
            .revoke(&caller.label(), &by, &task.id, &request.reason)
            .await?;
        Ok(Response::new(detail(&task, false)))
    }

    type WatchPendingTasksStream = DetailStream;

    async fn watch_pending_tasks(
        &self,
        request: Request<pb::WatchPendingTasksRequest>,
    ) -> Result<Response<DetailStream>, Status> {
        let caller = Caller::of(&request);
        let mut changes = self.approvals.store().subscribe();
        let existing: Vec<pb::ApprovalTaskDetail> = if request.get_ref().include_existing {
            let now = now_ms();
            let mut tasks: Vec<Task> = self
                .approvals
                .tasks()?
                .into_iter()
                .filter(|t| effective_state(t, now) == State::Pending)
                .collect();
            tasks.sort_by_key(|t| t.created_at_ms);
            tasks
                .iter()
                .filter_map(|t| self.visible(&caller, t))
                .collect()
        } else {
            self.approvals.keys()?;
            Vec::new()
        };
        let api = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            for task in existing {
                if tx.send(Ok(task)).await.is_err() {
                    return;
                }
            }
            loop {
                let task = tokio::select! {
                    changed = changes.recv() => match changed {
                        Ok(task) => task,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    },
                    () = tx.closed() => return,
                };
                // New tasks only: the first version of a pending one.
                if task.state != State::Pending || task.version != 1 {
                    continue;
                }
                if let Some(view) = api.visible(&caller, &task)
                    && tx.send(Ok(view)).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
