//! The ops listener: liveness, readiness and Prometheus metrics over plain
//! HTTP, for load balancers, orchestrators and scrapers that do not speak
//! gRPC.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::metrics;
use crate::readiness::Readiness;

#[derive(Clone)]
struct OpsState {
    readiness: Arc<Readiness>,
    registry: Arc<Registry>,
}

pub fn router(readiness: Arc<Readiness>, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .with_state(OpsState {
            readiness,
            registry,
        })
}

async fn scrape(State(state): State<OpsState>) -> Response {
    match metrics::encode(&state.registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

async fn readyz(State(state): State<OpsState>) -> (StatusCode, String) {
    let readiness = &state.readiness;
    if readiness.get() {
        // Still ready: taking every replica out of rotation when etcd is
        // lost would turn an etcd outage into a decision outage.
        match readiness.degraded_reason() {
            Some(reason) => (StatusCode::OK, format!("ready, degraded: {reason}\n")),
            None => (StatusCode::OK, "ready\n".into()),
        }
    } else {
        let reason = readiness
            .blocked_reason()
            .or_else(|| readiness.pending_reason())
            .unwrap_or_default();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready {reason}").trim_end().to_owned() + "\n",
        )
    }
}
