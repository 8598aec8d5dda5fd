//! Tasks as the wire shows them: to their platform (with the approval to
//! send back) and to approvers (with the request as bound, without it).

use warden_proto::v1 as pb;

use super::effective_state;
use super::store::now_ms;
use super::task::{State, Task};
use crate::approval_requirement::Requirement;
use crate::killswitch::rfc3339_ms;

pub fn state(state: State) -> pb::ApprovalTaskState {
    match state {
        State::Pending => pb::ApprovalTaskState::Pending,
        State::Approved => pb::ApprovalTaskState::Approved,
        State::Denied => pb::ApprovalTaskState::Denied,
        State::Expired => pb::ApprovalTaskState::Expired,
        State::Cancelled => pb::ApprovalTaskState::Cancelled,
    }
}

pub fn requirement(r: &Requirement) -> pb::ApprovalRequirement {
    pb::ApprovalRequirement {
        approvers: r.approvers.iter().map(ToString::to_string).collect(),
        self_approval: r.self_approval,
        max_ttl_seconds: r.max_ttl.as_secs(),
        uses: r.uses,
        template: r.template.clone(),
    }
}

/// The task as its platform sees it: never who decided.
pub fn platform_view(task: &Task) -> pb::ApprovalTask {
    let now = now_ms();
    let state = effective_state(task, now);
    pb::ApprovalTask {
        id: task.id.clone(),
        state: self::state(state) as i32,
        created_at: rfc3339_ms(task.created_at_ms),
        expires_at: rfc3339_ms(task.expires_at_ms),
        evaluation_id: task.evaluation_id.clone(),
        decided_at: match (task.decided_at_ms, state) {
            (Some(ms), _) => rfc3339_ms(ms),
            (None, State::Expired) => rfc3339_ms(task.expires_at_ms),
            (None, _) => String::new(),
        },
        approval: match (&task.grant, state) {
            (Some(grant), State::Approved) => Some(pb::ApprovalRef {
                id: grant.id.clone(),
                approved_at: grant.approved_at.clone(),
                approved_until: grant.approved_until.clone(),
                state: grant.state.clone(),
            }),
            _ => None,
        },
        note: task.note.clone(),
    }
}

/// The task as approvers and auditors see it; `can_decide` for the caller.
pub fn detail(task: &Task, can_decide: bool) -> pb::ApprovalTaskDetail {
    let mut view = platform_view(task);
    if let Some(approval) = view.approval.as_mut() {
        approval.state.clear();
    }
    let grant = task.grant.as_ref();
    pb::ApprovalTaskDetail {
        task: Some(view),
        platform: task.platform.clone(),
        agent_id: task.agent_id.clone(),
        principal: task.principal(),
        action: task.action.clone(),
        resource: task.resource.clone(),
        request: match &task.request {
            serde_json::Value::Object(map) => Some(warden_proto::convert::to_struct(map.clone())),
            _ => None,
        },
        requirement: Some(requirement(&task.requirement)),
        justification: task.justification.clone(),
        policy_reasons: task.policy_reasons.clone(),
        requested_by: task.requested_by.clone(),
        decided_by: task.decided_by.clone().unwrap_or_default(),
        uses: grant.map_or(0, |g| g.uses),
        used: grant.map_or(0, |g| g.used),
        revoked_at: grant
            .and_then(|g| g.revoked.as_ref())
            .map(|r| rfc3339_ms(r.at_ms))
            .unwrap_or_default(),
        revoked_by: grant
            .and_then(|g| g.revoked.as_ref())
            .map(|r| r.by.clone())
            .unwrap_or_default(),
        can_decide,
    }
}
