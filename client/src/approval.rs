//! Deciding approval tasks: the approver service on Warden's admin
//! listener, for people with the role `approver:<user id>` (who see and
//! decide the tasks the policy lets their user decide), auditors (who see
//! all, decide none) and incident responders (who may revoke).
//!
//! Platforms ask for approval on the decision listener instead, with
//! [`WardenClient::request_approval`](crate::WardenClient::request_approval).

use std::time::Duration;

use serde_json::{Map, Number, Value as Json};
use tonic::Streaming;
use warden_proto::v1 as pb;
use warden_proto::v1::approver_service_client::ApproverServiceClient;

use crate::{ClientError, ClientOptions, Transport, connect_channel};

pub use warden_proto::v1::{
    ApprovalRef, ApprovalRequirement, ApprovalTask, ApprovalTaskDetail, ApprovalTaskState,
    ListApprovalTasksRequest, ListApprovalTasksResponse,
};

/// The most tasks the server returns in one page.
const MAX_PAGE: usize = 1000;

/// A connection to the approver service on Warden's admin listener.
#[derive(Debug, Clone)]
pub struct ApproverClient {
    inner: ApproverServiceClient<Transport>,
}

impl ApproverClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50052`).
    pub async fn connect(
        endpoint: impl Into<String>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let channel = connect_channel(endpoint.into(), &options).await?;
        Ok(Self {
            inner: ApproverServiceClient::new(channel),
        })
    }

    /// One page of the tasks the caller may see that match every filter,
    /// oldest first, and the token for the next page (empty: no more).
    pub async fn list(
        &mut self,
        request: ListApprovalTasksRequest,
    ) -> Result<(Vec<ApprovalTaskDetail>, String), ClientError> {
        let response = self.inner.list_approval_tasks(request).await?.into_inner();
        Ok((response.tasks, response.next_page_token))
    }

    /// Matching tasks, following page tokens up to `limit` tasks; with the
    /// token that continues after the last one returned (empty: no more).
    pub async fn list_all(
        &mut self,
        mut request: ListApprovalTasksRequest,
        limit: usize,
    ) -> Result<(Vec<ApprovalTaskDetail>, String), ClientError> {
        let mut tasks = Vec::new();
        loop {
            // Never more than is still wanted, so the token the server
            // gives continues exactly after the last task kept.
            let wanted = limit.saturating_sub(tasks.len()).min(MAX_PAGE);
            if wanted == 0 {
                return Ok((tasks, request.page_token));
            }
            request.page_size = u32::try_from(wanted).unwrap_or(u32::MAX);
            let (page, next) = self.list(request.clone()).await?;
            tasks.extend(page);
            if next.is_empty() {
                return Ok((tasks, next));
            }
            request.page_token = next;
        }
    }

    /// One task, whole: the request as bound, who may decide, and its
    /// outcome.
    pub async fn detail(&mut self, task_id: &str) -> Result<ApprovalTaskDetail, ClientError> {
        Ok(self
            .inner
            .get_approval_task_detail(pb::GetApprovalTaskDetailRequest {
                task_id: task_id.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// Approves a pending task as the caller's user. `valid_for`: how long
    /// the approval holds (`None`: the policy's longest, `max_ttl`; more
    /// than that is refused). Whole seconds; anything shorter is one.
    pub async fn approve(
        &mut self,
        task_id: &str,
        note: &str,
        valid_for: Option<Duration>,
    ) -> Result<ApprovalTaskDetail, ClientError> {
        Ok(self
            .inner
            .approve(pb::ApproveRequest {
                task_id: task_id.to_owned(),
                note: note.to_owned(),
                valid_for_seconds: valid_for.map_or(0, |d| d.as_secs().max(1)),
            })
            .await?
            .into_inner())
    }

    /// Denies a pending task as the caller's user.
    pub async fn deny(
        &mut self,
        task_id: &str,
        note: &str,
    ) -> Result<ApprovalTaskDetail, ClientError> {
        Ok(self
            .inner
            .deny(pb::DenyRequest {
                task_id: task_id.to_owned(),
                note: note.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// Withdraws the approval a task gave; checks that carry it are denied
    /// from then on.
    pub async fn revoke(
        &mut self,
        task_id: &str,
        reason: &str,
    ) -> Result<ApprovalTaskDetail, ClientError> {
        Ok(self
            .inner
            .revoke(pb::RevokeApprovalRequest {
                task_id: task_id.to_owned(),
                reason: reason.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// Pending tasks as they are submitted (with `include_existing`, those
    /// pending already first), until the client goes away.
    pub async fn watch_pending(
        &mut self,
        include_existing: bool,
    ) -> Result<Streaming<ApprovalTaskDetail>, ClientError> {
        Ok(self
            .inner
            .watch_pending_tasks(pb::WatchPendingTasksRequest { include_existing })
            .await?
            .into_inner())
    }
}

/// A task state as a word: `pending`, `approved`, `denied`, `expired`,
/// `cancelled` (`unknown` for anything else).
pub fn state_name(state: ApprovalTaskState) -> &'static str {
    match state {
        ApprovalTaskState::Pending => "pending",
        ApprovalTaskState::Approved => "approved",
        ApprovalTaskState::Denied => "denied",
        ApprovalTaskState::Expired => "expired",
        ApprovalTaskState::Cancelled => "cancelled",
        ApprovalTaskState::Unspecified => "unknown",
    }
}

/// A `google.protobuf.Struct` (such as a task's bound request) as a JSON
/// object. Whole numbers come back as integers; numbers JSON cannot hold
/// (NaN, infinities) as `null`.
pub fn struct_to_json(value: &prost_types::Struct) -> Json {
    Json::Object(
        value
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect::<Map<String, Json>>(),
    )
}

/// A `google.protobuf.Value` as JSON; see [`struct_to_json`].
pub fn value_to_json(value: &prost_types::Value) -> Json {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(object)) => struct_to_json(object),
    }
}

fn number(n: f64) -> Json {
    /// Integers up to 2^53 are exact in an `f64`.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        // A whole number within ±2^53 converts without loss.
        return Json::from(n as i64);
    }
    Number::from_f64(n).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structs_come_back_as_the_json_they_were_built_from() {
        let original = json!({
            "action": {"name": "permissions.grant", "attributes": {"level": "read", "count": 3}},
            "ratio": 0.25,
            "flags": [true, null, "x", -7],
            "nested": {"empty": {}},
        });
        let Json::Object(map) = original.clone() else {
            panic!("an object")
        };
        let converted = struct_to_json(&warden_proto::convert::to_struct(map));
        assert_eq!(converted, original);
    }

    #[test]
    fn numbers_json_cannot_hold_are_null() {
        assert_eq!(number(f64::NAN), Json::Null);
        assert_eq!(number(f64::INFINITY), Json::Null);
        assert_eq!(number(1e300), json!(1e300));
        assert_eq!(number(-0.0), json!(0));
    }
}
