//! Starting, serving and draining the listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};
use warden_proto::v1::decision_service_server::DecisionServiceServer;

use crate::api::DecisionApi;
use crate::bundle::{Bundle, BundleError};
use crate::config::Config;
use crate::engine::BindError;
use crate::generation::{Generation, Generations, LoadedPolicy};
use crate::ops::{self, Readiness};
use crate::snapshot::{Snapshot, SnapshotError, SnapshotKind};
use crate::store::{Store, StoreError};

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("policy bundle `{path}`: {source}")]
    Bundle { path: String, source: BundleError },
    #[error("cannot read snapshot `{path}`: {message}")]
    SnapshotFile { path: String, message: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot listen on {addr} ({listener}): {message}")]
    Listen {
        listener: &'static str,
        addr: SocketAddr,
        message: String,
    },
    #[error("{listener} listener failed: {message}")]
    Serve {
        listener: &'static str,
        message: String,
    },
}

/// Loads the configured bundle and snapshots into the first generation.
pub fn initial_generation(config: &Config) -> Result<Generation, ServeError> {
    let started = Instant::now();
    let bundle_error = |source| ServeError::Bundle {
        path: config.bundle.display().to_string(),
        source,
    };
    let bundle = Bundle::load(&config.bundle, &config.archive).map_err(bundle_error)?;
    let policy = LoadedPolicy::compile(&bundle, &config.engine).map_err(bundle_error)?;
    let identity = read_snapshot(config, SnapshotKind::Identity, &config.identity)?;
    let entitlements = read_snapshot(config, SnapshotKind::Entitlements, &config.entitlements)?;
    let generation = Generation::build(
        1,
        Arc::new(policy),
        Arc::new(identity),
        Arc::new(entitlements),
        config.max_age,
    )?;
    info!(
        revision = generation.policy.revision,
        engine = %generation.policy.engine(),
        identity_version = generation.identity.version,
        entitlements_version = generation.entitlements.version,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "policy and snapshots loaded"
    );
    Ok(generation)
}

fn read_snapshot(
    config: &Config,
    kind: SnapshotKind,
    path: &std::path::Path,
) -> Result<Snapshot, ServeError> {
    let bytes = std::fs::read(path).map_err(|e| ServeError::SnapshotFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(Snapshot::parse(kind, &bytes, config.limits.max_id_bytes)?)
}

/// Runs the server until `shutdown` resolves, then drains: the listeners stop
/// accepting, in-flight checks get `config.shutdown_grace` to finish, and the
/// store is flushed.
///
/// `announce` is called with each listener's name and bound address once it
/// listens, before the first request can arrive.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    announce: impl Fn(&'static str, SocketAddr),
) -> Result<(), ServeError> {
    let store = Store::open(&config.data_dir)?;
    info!(data_dir = %config.data_dir.display(), instance_id = store.instance_id(), "store opened");
    let generations = Arc::new(Generations::new(initial_generation(&config)?));

    let decision_listener = listen("decision", config.decision_addr).await?;
    let ops_listener = listen("ops", config.ops_addr).await?;
    let decision_addr = local_addr("decision", config.decision_addr, &decision_listener)?;
    let ops_addr = local_addr("ops", config.ops_addr, &ops_listener)?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<DecisionServiceServer<DecisionApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warden_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Serve {
            listener: "decision",
            message: format!("reflection: {e}"),
        })?;

    let limits = config.limits.clone();
    // A batch may carry `max_batch_items` items of `max_request_bytes` each;
    // anything larger is refused by the transport before it is decoded.
    let max_message = limits
        .max_request_bytes
        .saturating_mul(limits.max_batch_items)
        .saturating_add(64 * 1024);
    let decision = DecisionServiceServer::new(DecisionApi::new(generations.clone(), limits))
        .max_decoding_message_size(max_message);

    let readiness = Arc::new(Readiness::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let mut stop = stop_rx.clone();
    let decision_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(decision)
            .serve_with_incoming_shutdown(TcpListenerStream::new(decision_listener), async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }),
    );
    let mut stop = stop_rx.clone();
    let ops_server = tokio::spawn(
        axum::serve(ops_listener, ops::router(readiness.clone()))
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .into_future(),
    );

    readiness.set(true);
    announce("decision", decision_addr);
    announce("ops", ops_addr);
    info!(%decision_addr, %ops_addr, "serving");

    shutdown.await;
    info!(grace = ?config.shutdown_grace, "shutting down: draining in-flight requests");
    readiness.set(false);
    health
        .set_not_serving::<DecisionServiceServer<DecisionApi>>()
        .await;
    let _ = stop_tx.send(true);

    let drained = tokio::time::timeout(config.shutdown_grace, async {
        let decision = decision_server.await;
        let ops = ops_server.await;
        (decision, ops)
    })
    .await;
    let result = match drained {
        Ok((decision, ops)) => flatten("decision", decision.map(|r| r.map_err(|e| e.to_string())))
            .and(flatten("ops", ops.map(|r| r.map_err(|e| e.to_string())))),
        Err(_) => {
            warn!("shutdown grace period over; closing remaining connections");
            Ok(())
        }
    };
    store.flush()?;
    info!("stopped");
    result
}

async fn listen(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Listen {
            listener,
            addr,
            message: e.to_string(),
        })
}

fn local_addr(
    listener: &'static str,
    addr: SocketAddr,
    socket: &TcpListener,
) -> Result<SocketAddr, ServeError> {
    socket.local_addr().map_err(|e| ServeError::Listen {
        listener,
        addr,
        message: e.to_string(),
    })
}

fn flatten(
    listener: &'static str,
    joined: Result<Result<(), String>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(ServeError::Serve { listener, message }),
        Err(e) => Err(ServeError::Serve {
            listener,
            message: e.to_string(),
        }),
    }
}
