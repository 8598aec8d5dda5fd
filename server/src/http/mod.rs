//! The HTTP listener: the AuthZEN Authorization API 1.0 in front of the same
//! decision path as gRPC `Check` — same credentials and platform rules,
//! quotas, kill switches, audit and metrics. It accepts connections through
//! the same transport (connection cap, TLS, client certificates) as the gRPC
//! listeners.

mod arap;
pub mod authzen;
pub mod config;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};
use tonic::Code;
use tonic_types::StatusExt;
use tracing::{Instrument, debug};

use crate::api::DecisionApi;
use crate::api::decision::check_span;
use crate::api::search::{SearchCall, SearchError};
use crate::auth::{Authenticator, Caller, Listener, authorize};
use crate::metrics::{Api, Metrics};
use crate::request::InvalidRequest;
use crate::search::Target;
use crate::transport::ConnInfo;
use crate::transport::min_rate::SlowBody;
use authzen::{BadRequest, BatchLimits, Envelope, Semantic};
use config::AuthzenConfig;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub decisions: DecisionApi,
    pub auth: Arc<Authenticator>,
    pub config: Arc<AuthzenConfig>,
    pub metrics: Arc<Metrics>,
    pub tls: bool,
    pub timeout: Duration,
    /// The approval workflow (ARAP), when on.
    pub approvals: Option<Arc<crate::approval::Approvals>>,
}

const REQUEST_ID: &str = "x-request-id";

/// The router, with the body limit: a batch's worth of checks plus room for
/// the JSON around them. A body that says it is larger is refused on its
/// headers; one without a length (chunked) is cut off as it arrives.
pub fn router(state: HttpState, max_body: usize) -> Router {
    let evaluate = Router::new()
        .route("/access/v1/evaluation", post(evaluation))
        .route("/access/v1/evaluations", post(evaluations))
        .route("/access/v1/search/subject", post(search_subjects))
        .route("/access/v1/search/resource", post(search_resources))
        .route("/access/v1/search/action", post(search_actions))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admit));
    Router::new()
        .merge(evaluate)
        .route("/.well-known/authzen-configuration", get(configuration))
        .route("/access/v1/requests", post(arap::submit))
        .route("/access/v1/requests/{id}", get(arap::status))
        .route("/access/v1/requests/{id}/cancel", post(arap::cancel))
        .route("/access/v1/jwks", get(arap::jwks))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            declared_length,
        ))
        .with_state(state)
}

/// Refuses with 413 a request whose `Content-Length` is over `max_body`,
/// before anything else and without reading the body: otherwise the caller
/// could make the listener read up to the limit (or wait for a body that
/// never comes) for a request that will be refused anyway. hyper has already
/// refused a malformed `Content-Length`.
async fn declared_length(
    State(max_body): State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > u64::try_from(max_body).unwrap_or(u64::MAX) => {
            debug!(
                length,
                max_body, "AuthZEN body over the limit refused on its headers"
            );
            Refusal {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!(
                    "the request body is {length} bytes (Content-Length), more than the limit of {max_body} bytes"
                ),
                retry_after: None,
            }
            .into_response(request.headers().get(REQUEST_ID))
        }
        _ => next.run(request).await,
    }
}

/// A refusal: status, message, and the request id to echo.
struct Refusal {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn bad_request(error: &BadRequest) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: error.to_string(),
            retry_after: None,
        }
    }

    /// The gRPC status the shared decision path refused with, in HTTP terms.
    fn from_status(status: &tonic::Status) -> Self {
        let code = match status.code() {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                StatusCode::BAD_REQUEST
            }
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status: code,
            message: status.message().to_owned(),
            retry_after: status
                .get_details_retry_info()
                .and_then(|retry| retry.retry_delay),
        }
    }

    /// The body could not be read: too large (413), too slow (408), or
    /// cut off (400).
    fn unread_body(rejection: &BytesRejection) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
        while let Some(error) = source {
            if let Some(slow) = error.downcast_ref::<SlowBody>() {
                return Self {
                    status: StatusCode::REQUEST_TIMEOUT,
                    message: slow.to_string(),
                    retry_after: None,
                };
            }
            source = error.source();
        }
        Self {
            status: rejection.status(),
            message: rejection.body_text(),
            retry_after: None,
        }
    }

    fn into_response(self, request_id: Option<&HeaderValue>) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message + "\n",
        )
            .into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"warden\""),
            );
        }
        if let Some(delay) = self.retry_after {
            // Whole seconds, rounded up: Retry-After has no finer unit.
            let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let Some(id) = request_id {
            headers.insert(REQUEST_ID, id.clone());
        }
        response
    }
}

fn answer(body: Json, request_id: Option<&HeaderValue>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(id) = request_id {
        response.headers_mut().insert(REQUEST_ID, id.clone());
    }
    response
}

/// A header's value as text; a value that is not visible ASCII is refused
/// rather than guessed at.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, BadRequest> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok(text) if !text.is_empty() => Ok(Some(text.to_owned())),
            _ => Err(BadRequest {
                field: format!("header {name}"),
                reason: "is empty or not visible ASCII".into(),
            }),
        },
    }
}

fn json_content(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Who is asking and what the headers say, settled before the body is read.
#[derive(Clone)]
struct Admitted {
    caller: Caller,
    envelope: Envelope,
}

/// Runs in front of the evaluation endpoints, on the headers alone: the
/// content type, the caller (authenticated and authorized as the gRPC
/// decision listener would), the envelope. Only then is the body read, and
/// the whole exchange — upload, decision, audit — is bounded by the
/// listener's call timeout, like a gRPC call.
async fn admit(
    State(state): State<HttpState>,
    Extension(conn): Extension<ConnInfo>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let request_id = headers.get(REQUEST_ID).cloned();
    let admitted = (|| {
        if !json_content(headers) {
            // AuthZEN answers any malformed request with 400, a content
            // type it does not speak included.
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                message: "Content-Type must be application/json".into(),
                retry_after: None,
            });
        }
        // With no credentials configured there is nothing a token could
        // prove, and AuthZEN clients send one anyway (the interop runner
        // sends `Authorization: undefined`): it is ignored, not refused.
        let unauthenticated;
        let presented = if state.auth.is_open() && headers.contains_key(header::AUTHORIZATION) {
            let mut without = headers.clone();
            without.remove(header::AUTHORIZATION);
            unauthenticated = without;
            &unauthenticated
        } else {
            headers
        };
        let caller = state
            .auth
            .authenticate(presented, Some(&conn))
            .and_then(|caller| {
                authorize(
                    &caller,
                    Listener::Decision,
                    "/warden.v1.DecisionService/Check",
                )
                .map(|()| caller)
            })
            .map_err(|status| Refusal::from_status(&status))?;
        conn.proof.record();
        let text = |name: &str| header_text(headers, name).map_err(|e| Refusal::bad_request(&e));
        let envelope = Envelope {
            platform_header: text(state.config.platform_header.as_str())?,
            agent_header: text(state.config.agent_header.as_str())?,
            caller_platform: caller.sole_platform().map(str::to_owned),
            request_id: text(REQUEST_ID)?,
        };
        Ok(Admitted { caller, envelope })
    })();
    let admitted = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            debug!(
                status = refusal.status.as_u16(),
                reason = refusal.message,
                "AuthZEN call refused"
            );
            return refusal.into_response(request_id.as_ref());
        }
    };
    request.extensions_mut().insert(admitted);
    match tokio::time::timeout(state.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Refusal {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!(
                "the call took longer than the server's limit of {:?}",
                state.timeout
            ),
            retry_after: None,
        }
        .into_response(request_id.as_ref()),
    }
}

/// Runs the shared decision path for `requests`, stopping where `semantic`
/// says.
async fn decide(
    state: &HttpState,
    items: Vec<Result<warden_proto::v1::CheckRequest, BadRequest>>,
    caller: &Caller,
    semantic: Semantic,
) -> Result<Vec<Json>, Refusal> {
    let until = |result: Result<&warden_proto::v1::CheckResponse, &_>| match result {
        Ok(response) => semantic.stops_at(authzen::permitted(response)),
        Err(_) => semantic.stops_at(false),
    };
    // A malformed item is refused as an invalid check is; its field is
    // already in AuthZEN's terms.
    let items: Vec<Result<_, InvalidRequest>> = items
        .into_iter()
        .map(|item| item.map_err(|bad| InvalidRequest::new(bad.field, bad.reason)))
        .collect();
    let requests = &items;
    let decided = state
        .decisions
        .decide_prepared(
            requests,
            |item| item.as_ref(),
            Some("evaluations"),
            caller,
            until,
        )
        .instrument(check_span(Api::AuthzenEvaluations, requests.len()))
        .await
        .map_err(|status| Refusal::from_status(&status))?;
    Ok(decided
        .into_iter()
        .map(|result| match result {
            Ok(response) => authzen::decision(&response),
            Err(invalid) => authzen::item_error(
                &authzen::authzen_field(&invalid.field),
                &invalid.to_string(),
            ),
        })
        .collect())
}

/// One check answered as one AuthZEN decision; an invalid request is a 400.
async fn single(
    state: &HttpState,
    request: warden_proto::v1::CheckRequest,
    caller: &Caller,
    api: Api,
) -> Result<Json, Refusal> {
    let requests = [request];
    let result = state
        .decisions
        .decide_items(&requests, None, caller)
        .instrument(check_span(api, 1))
        .await
        .map_err(|status| Refusal::from_status(&status))?;
    match result.into_iter().next() {
        Some(Ok(response)) => Ok(authzen::decision(&response)),
        Some(Err(invalid)) => Err(Refusal::bad_request(&BadRequest {
            field: authzen::authzen_field(&invalid.field),
            reason: invalid.reason,
        })),
        None => Err(Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "no answer".into(),
            retry_after: None,
        }),
    }
}

/// The answer, or the refusal, with the request id echoed; the latency of
/// a call that was decided goes to the metrics.
fn respond(
    state: &HttpState,
    api: Api,
    started: Instant,
    headers: &HeaderMap,
    result: Result<Json, Refusal>,
) -> Response {
    let request_id = headers.get(REQUEST_ID);
    match result {
        Ok(body) => {
            state.metrics.answered(api, started.elapsed());
            answer(body, request_id)
        }
        Err(refusal) => refusal.into_response(request_id),
    }
}

async fn evaluation(
    State(state): State<HttpState>,
    Extension(admitted): Extension<Admitted>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let body = body.map_err(|e| Refusal::unread_body(&e))?;
        let body = authzen::parse_body(&body).map_err(|e| Refusal::bad_request(&e))?;
        let request = authzen::evaluation(&body, &admitted.envelope, &state.config)
            .map_err(|e| Refusal::bad_request(&e))?;
        single(&state, request, &admitted.caller, Api::AuthzenEvaluation).await
    }
    .await;
    respond(&state, Api::AuthzenEvaluation, started, &headers, result)
}

async fn evaluations(
    State(state): State<HttpState>,
    Extension(admitted): Extension<Admitted>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let body = body.map_err(|e| Refusal::unread_body(&e))?;
        let body = authzen::parse_body(&body).map_err(|e| Refusal::bad_request(&e))?;
        let limits = BatchLimits {
            max_items: state.decisions.max_batch_items(),
            max_default_bytes: state.decisions.max_request_bytes(),
        };
        let (items, semantic) =
            authzen::evaluations(&body, &admitted.envelope, &state.config, limits)
                .map_err(|e| Refusal::bad_request(&e))?;
        match items {
            // No items: the body is one evaluation, answered as one.
            None => {
                let request = authzen::evaluation(&body, &admitted.envelope, &state.config)
                    .map_err(|e| Refusal::bad_request(&e))?;
                single(&state, request, &admitted.caller, Api::AuthzenEvaluations).await
            }
            Some(items) => {
                let decided = decide(&state, items, &admitted.caller, semantic).await?;
                Ok(json!({ "evaluations": decided }))
            }
        }
    }
    .await;
    respond(&state, Api::AuthzenEvaluations, started, &headers, result)
}

async fn search_subjects(
    state: State<HttpState>,
    admitted: Extension<Admitted>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    search(Target::Subjects, state, admitted, headers, body).await
}

async fn search_resources(
    state: State<HttpState>,
    admitted: Extension<Admitted>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    search(Target::Resources, state, admitted, headers, body).await
}

async fn search_actions(
    state: State<HttpState>,
    admitted: Extension<Admitted>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    search(Target::Actions, state, admitted, headers, body).await
}

/// AuthZEN's search APIs, on the same search path as gRPC's.
async fn search(
    target: Target,
    State(state): State<HttpState>,
    Extension(admitted): Extension<Admitted>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let body = body.map_err(|e| Refusal::unread_body(&e))?;
        let body = authzen::parse_body(&body).map_err(|e| Refusal::bad_request(&e))?;
        let searched = authzen::search(target, &body, &admitted.envelope, &state.config)
            .map_err(|e| Refusal::bad_request(&e))?;
        let kind = match target {
            Target::Subjects => searched
                .request
                .principal
                .as_ref()
                .map(|p| p.r#type.clone())
                .unwrap_or_default(),
            Target::Resources | Target::Actions => searched
                .request
                .resource
                .as_ref()
                .map(|r| r.r#type.clone())
                .unwrap_or_default(),
        };
        let call = SearchCall {
            target,
            request: searched.request,
            candidates: Vec::new(),
            token: searched.token,
            limit: searched.limit,
        };
        let answer = state
            .decisions
            .search(call, &admitted.caller)
            .instrument(tracing::info_span!("search", target = target.rule()))
            .await
            .map_err(|e| match e {
                SearchError::Invalid(invalid) => Refusal::bad_request(&BadRequest {
                    field: authzen::authzen_field(&invalid.field),
                    reason: invalid.reason,
                }),
                SearchError::Status(status) => Refusal::from_status(&status),
            })?;
        Ok(authzen::search_results(target, &kind, &answer))
    }
    .await;
    respond(&state, Api::AuthzenSearch, started, &headers, result)
}

/// PDP metadata. The PDP's identifier is `authzen.base_url` when set, else
/// the URL the caller reached: the scheme this listener serves and the
/// `Host` it was asked for (the response then varies by `Host`, so that no
/// shared cache hands one caller's answer to another).
async fn configuration(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let request_id = headers.get(REQUEST_ID);
    let approvals = state.approvals.as_ref().is_some_and(|a| a.keys().is_ok());
    let Some(base) = base_url(&state, &headers) else {
        return Refusal {
            status: StatusCode::BAD_REQUEST,
            message: "the request has no usable Host header".into(),
            retry_after: None,
        }
        .into_response(request_id);
    };
    let mut response = answer(authzen::metadata(&base, approvals), request_id);
    if state.config.base_url.is_none() {
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("host"));
    }
    response
}

/// This PDP's URL: `authzen.base_url`, else the scheme this listener serves
/// and the `Host` the caller asked for (when it is a plausible host).
fn base_url(state: &HttpState, headers: &HeaderMap) -> Option<String> {
    if let Some(base) = &state.config.base_url {
        return Some(base.clone());
    }
    let scheme = if state.tls { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })?;
    Some(format!("{scheme}://{host}"))
}
