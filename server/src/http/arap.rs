//! AuthZEN's Access Request and Approval Profile on the HTTP listener: a
//! platform submits a requestable denial (`POST /access/v1/requests`),
//! follows its task (`GET /access/v1/requests/{id}`), may cancel it, and
//! verifies approvals against `/access/v1/jwks`. The same credentials and
//! rules as gRPC `ApprovalService` (the rule table names the gRPC methods).
//! Errors are `application/problem+json` with ARAP's error types.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::authzen::{self, Envelope};
use super::{HttpState, REQUEST_ID, Refusal, header_text, json_content};
use crate::approval::{ApprovalError, Approvals, platform_view};
use crate::auth::{Caller, Listener, authorize};
use crate::request::validate;
use crate::transport::ConnInfo;

const ERROR_TYPE: &str = "urn:openid:authzen:access-request:error:";

/// An ARAP problem document.
fn problem(kind: &str, status: u16, detail: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({
        "type": format!("{ERROR_TYPE}{kind}"),
        "title": code.canonical_reason().unwrap_or("error"),
        "status": status,
        "detail": detail,
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn refused(error: &ApprovalError) -> Response {
    let (kind, status) = error.arap();
    problem(kind, status, &error.to_string())
}

fn from_refusal(refusal: Refusal, request_id: Option<&HeaderValue>) -> Response {
    refusal.into_response(request_id)
}

/// Authenticates the caller and authorizes it for `method` of
/// `ApprovalService`, exactly as on the gRPC decision listener.
fn admit(
    state: &HttpState,
    conn: &ConnInfo,
    headers: &HeaderMap,
    method: &str,
) -> Result<(Caller, Arc<Approvals>), Box<Response>> {
    let request_id = headers.get(REQUEST_ID);
    let caller = state
        .auth
        .authenticate(headers, Some(conn))
        .and_then(|caller| {
            authorize(
                &caller,
                Listener::Decision,
                &format!("/warden.v1.ApprovalService/{method}"),
            )
            .map(|()| caller)
        })
        .map_err(|status| Box::new(from_refusal(Refusal::from_status(&status), request_id)))?;
    conn.proof.record();
    let approvals = state.approvals.clone().ok_or_else(|| {
        problem(
            "not_requestable",
            400,
            "approvals are disabled on this server",
        )
    })?;
    Ok((caller, approvals))
}

/// The task as ARAP shows it, with its links on this PDP.
fn task_json(task: &crate::approval::task::Task, base: &str) -> Json {
    let view = platform_view(task);
    let status = match view.state() {
        warden_proto::v1::ApprovalTaskState::Pending => "pending",
        warden_proto::v1::ApprovalTaskState::Approved => "approved",
        warden_proto::v1::ApprovalTaskState::Denied => "denied",
        warden_proto::v1::ApprovalTaskState::Expired => "expired",
        warden_proto::v1::ApprovalTaskState::Cancelled => "cancelled",
        warden_proto::v1::ApprovalTaskState::Unspecified => "failed",
    };
    let endpoint = format!("{base}/access/v1/requests/{}", view.id);
    let mut body = json!({
        "task": {
            "id": view.id, "status": status, "status_endpoint": endpoint,
            "evaluation_id": view.evaluation_id,
            "created_at": view.created_at, "expires_at": view.expires_at,
            "links": {"cancel": format!("{endpoint}/cancel")},
        }
    });
    if !view.decided_at.is_empty() {
        body["task"]["decided_at"] = json!(view.decided_at);
    }
    if !view.note.is_empty() {
        body["task"]["note"] = json!(view.note);
    }
    if let Some(approval) = view.approval {
        body["result"] = json!({
            "mode": "reevaluate",
            "approval": {"id": approval.id, "approved_at": approval.approved_at,
                "approved_until": approval.approved_until, "state": approval.state},
        });
    }
    body
}

fn with_task(status: StatusCode, body: &Json, location: Option<&str>) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if body["task"]["status"] == "pending" {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// `POST /access/v1/requests`.
pub async fn submit(
    State(state): State<HttpState>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = headers.get(REQUEST_ID);
    let (caller, approvals) = match admit(&state, &conn, &headers, "RequestApproval") {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    if !json_content(&headers) {
        return from_refusal(
            Refusal {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "Content-Type must be application/json".into(),
                retry_after: None,
            },
            request_id,
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(e) => return from_refusal(Refusal::unread_body(&e), request_id),
    };
    let mut body = match authzen::parse_body(&body) {
        Ok(body) => body,
        Err(e) => return problem("invalid_request", 400, &e.to_string()),
    };
    if body.contains_key("items") {
        return problem(
            "not_requestable",
            400,
            "bulk access requests (`items`) are not supported; submit each denial on its own",
        );
    }
    let denial = match body.get("denial") {
        Some(Json::Object(denial)) => denial.clone(),
        _ => return problem("not_requestable", 400, "`denial` (an object) is required"),
    };
    let text = |object: &Map<String, Json>, key: &str| {
        object
            .get(key)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (evaluation_id, binding_token) = (
        text(&denial, "evaluation_id"),
        text(&denial, "binding_token"),
    );
    if evaluation_id.is_empty() || binding_token.is_empty() {
        return problem(
            "not_requestable",
            400,
            "`denial.evaluation_id` and `denial.binding_token` are required",
        );
    }
    // The justification is the submission's, not the request's: it must not
    // take part in the binding.
    let mut justification = String::new();
    if let Some(Json::Object(context)) = body.get_mut("context") {
        for key in ["justification", "business_justification"] {
            if let Some(Json::String(text)) = context.remove(key) {
                justification = text;
            }
        }
    }
    let envelope = match envelope(&state, &headers, &caller) {
        Ok(envelope) => envelope,
        Err(e) => return problem("invalid_request", 400, &e.to_string()),
    };
    let request = match authzen::evaluation(&body, &envelope, &state.config) {
        Ok(request) => request,
        Err(e) => return problem("invalid_request", 400, &e.to_string()),
    };
    if let Err(status) = caller.check_platform(&request.platform, "platform") {
        return from_refusal(Refusal::from_status(&status), request_id);
    }
    let valid = match validate(&request, state.decisions.limits()) {
        Ok(valid) => valid,
        Err(invalid) => {
            return problem(
                "invalid_request",
                400,
                &format!(
                    "{}: {}",
                    authzen::authzen_field(&invalid.field),
                    invalid.reason
                ),
            );
        }
    };
    let result = tokio::time::timeout(
        state.timeout,
        approvals.submit(
            &caller.label(),
            &valid,
            &evaluation_id,
            &binding_token,
            &justification,
        ),
    )
    .await;
    match result {
        Ok(Ok(task)) => {
            let base = super::base_url(&state, &headers).unwrap_or_default();
            let body = task_json(&task, &base);
            let location = body["task"]["status_endpoint"].as_str().map(str::to_owned);
            with_task(StatusCode::ACCEPTED, &body, location.as_deref())
        }
        Ok(Err(e)) => refused(&e),
        Err(_) => problem("temporarily_unavailable", 503, "the call timed out"),
    }
}

fn envelope(
    state: &HttpState,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Envelope, authzen::BadRequest> {
    Ok(Envelope {
        platform_header: header_text(headers, state.config.platform_header.as_str())?,
        agent_header: header_text(headers, state.config.agent_header.as_str())?,
        caller_platform: caller.sole_platform().map(str::to_owned),
        request_id: header_text(headers, REQUEST_ID)?,
    })
}

/// `GET /access/v1/requests/{id}`.
pub async fn status(
    State(state): State<HttpState>,
    Extension(conn): Extension<ConnInfo>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (caller, approvals) = match admit(&state, &conn, &headers, "GetApprovalTask") {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    match approvals.task_for(|platform| caller.may_act_for(platform), &id) {
        Ok(task) => {
            let base = super::base_url(&state, &headers).unwrap_or_default();
            with_task(StatusCode::OK, &task_json(&task, &base), None)
        }
        Err(e) => refused(&e),
    }
}

/// `POST /access/v1/requests/{id}/cancel`.
pub async fn cancel(
    State(state): State<HttpState>,
    Extension(conn): Extension<ConnInfo>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, approvals) = match admit(&state, &conn, &headers, "CancelApprovalTask") {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let reason = serde_json::from_slice::<Json>(&body)
        .ok()
        .and_then(|b| b["reason"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let task = match approvals.task_for(|platform| caller.may_act_for(platform), &id) {
        Ok(task) => task,
        Err(e) => return refused(&e),
    };
    match approvals.cancel(&caller.label(), task, &reason).await {
        Ok(task) => {
            let base = super::base_url(&state, &headers).unwrap_or_default();
            with_task(StatusCode::OK, &task_json(&task, &base), None)
        }
        Err(e) => refused(&e),
    }
}

/// `GET /access/v1/jwks`: public, like the metadata.
pub async fn jwks(State(state): State<HttpState>) -> Response {
    match state.approvals.as_ref().map(|a| a.keys()) {
        Some(Ok(keys)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            keys.jwks().to_string(),
        )
            .into_response(),
        _ => problem(
            "not_requestable",
            404,
            "approvals are disabled on this server",
        ),
    }
}
