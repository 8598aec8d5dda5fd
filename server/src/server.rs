//! Starting, serving and draining the listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tower::ServiceBuilder;
use tracing::{info, warn};
use warden_proto::v1::decision_service_server::DecisionServiceServer;

use warden_proto::v1::admin_service_server::AdminServiceServer;
use warden_proto::v1::audit_service_server::AuditServiceServer;

use crate::api::{AdminApi, ApprovalApi, ApproverApi, AuditApi, DecisionApi};
use crate::approval::keys::Keys;
use crate::approval::{self, Approvals, TaskRecords, TaskStore};
use crate::audit::record::admin_record;
use crate::audit::{AuditLog, Auditor};
use crate::auth::{AuthLayer, Listener};
use crate::changes::Changes;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::control::records::RecordKind;
use crate::control::{Control, ControlConfig, ControlError, Seed};
use crate::control::{LimitUsageRecords, SwitchRecords};
use crate::http;
use crate::limits::UsageLimits;
use crate::metrics::{self, Metrics};
use crate::ops;
use crate::platform_limits::PlatformLimits;
use crate::readiness::Readiness;
use crate::stats::Stats;
use crate::store::{Store, StoreError};
use crate::transport::oversize::OversizeLayer;
use crate::transport::{self, Grpc, Http1, ListenerStats, Listening};
use warden_proto::v1::approval_service_server::ApprovalServiceServer;
use warden_proto::v1::approver_service_server::ApproverServiceServer;

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot load the policy and snapshots: {0}")]
    Load(#[from] ControlError),
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

/// How the control plane accepts changes, from the configuration.
pub fn control_config(config: &Config) -> ControlConfig {
    ControlConfig {
        engine: config.engine,
        archive: config.archive.clone(),
        max_push_bytes: config.max_push_bytes,
        run_tests: config.run_tests,
        keys: config.keys.clone(),
        require_signed: config.require_signed,
        bundle_keep: config.bundle_keep,
        snapshot_keep: config.snapshot_keep,
        max_age: config.max_age,
        max_id_bytes: config.limits.max_id_bytes,
        read_verbs: config.read_verbs.iter().cloned().collect(),
        session_path: config.session_path.clone(),
    }
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
    let started = Instant::now();
    let store = Store::open(&config.data_dir)?;
    info!(data_dir = %config.data_dir.display(), instance_id = store.instance_id(), "store opened");
    let seed = Seed {
        bundle: config.bundle.clone(),
        identity: config.identity.clone(),
        entitlements: config.entitlements.clone(),
    };
    let control = Arc::new(Control::start(
        control_config(&config),
        store.clone(),
        &seed,
    )?);
    let generations = control.generations();
    {
        let current = generations.current();
        info!(
            revision = current.policy.revision,
            engine = %current.policy.engine(),
            identity_version = current.identity.version,
            entitlements_version = current.entitlements.version,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "policy and snapshots loaded"
        );
    }
    let stats = Arc::new(Stats::default());
    let metrics = Arc::new(Metrics::default());
    let replica = config.cluster.as_ref().map(|cluster| {
        if cluster.replica_id.is_empty() {
            store.instance_id().to_owned()
        } else {
            cluster.replica_id.clone()
        }
    });
    let auditor = Auditor::start(
        AuditLog::open(store.db())?,
        crate::audit::AuditConfig {
            replica: replica.clone(),
            ..config.audit.clone()
        },
        metrics.clone(),
    )?;
    {
        let current = generations.current();
        let record = admin_record(
            "server.started",
            "warden",
            serde_json::json!({
                "instance_id": store.instance_id(),
                "version": env!("CARGO_PKG_VERSION"),
                "policy_revision": current.policy.revision,
                "snapshot_versions": current.snapshot_versions(),
            }),
            std::time::SystemTime::now(),
        );
        if let Err(e) = auditor.record_admin(&record).await {
            warn!(error = %e, "cannot audit the server start");
        }
    }

    let listener_count = 3 + u64::from(config.http_addr.is_some());
    // Room for every listener's connections, plus the store, the audit log
    // and the cluster's own.
    transport::fd_limit::raise_open_files(
        listener_count
            .saturating_mul(config.transport.max_connections as u64)
            .saturating_add(1024),
    );
    let decision_listener = listen("decision", config.decision_addr).await?;
    let admin_listener = listen("admin", config.admin_addr).await?;
    let ops_listener = listen("ops", config.ops_addr).await?;
    let http_listener = match config.http_addr {
        Some(addr) => {
            let listener = listen("http", addr).await?;
            let local = local_addr("http", addr, &listener)?;
            Some((listener, local))
        }
        None => None,
    };
    let decision_addr = local_addr("decision", config.decision_addr, &decision_listener)?;
    let admin_addr = local_addr("admin", config.admin_addr, &admin_listener)?;
    let ops_addr = local_addr("ops", config.ops_addr, &ops_listener)?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<DecisionServiceServer<DecisionApi>>()
        .await;
    health.set_serving::<AdminServiceServer<AdminApi>>().await;

    let limits = config.limits.clone();
    // A batch may carry `max_batch_items` items of `max_request_bytes` each;
    // anything larger is refused by the transport before it is decoded.
    let max_message = limits
        .max_request_bytes
        .saturating_mul(limits.max_batch_items)
        .saturating_add(64 * 1024);
    let readiness = Arc::new(Readiness::default());
    // The kinds of record a cluster replicates as they are.
    let switch_records: Arc<dyn RecordKind> = Arc::new(SwitchRecords(control.clone()));
    let task_store = TaskStore::open(store.db()).map_err(|e| ServeError::Serve {
        listener: "approvals",
        message: e.to_string(),
    })?;
    let task_records: Arc<dyn RecordKind> = Arc::new(TaskRecords(task_store.clone()));
    let usage_limits = Arc::new(
        UsageLimits::new(config.usage_limits.clone(), config.session_path.clone())
            .with_store(store.db().clone()),
    );
    match usage_limits.load(store.db()) {
        Ok(0) => {}
        Ok(keys) => info!(keys, "limit counters restored"),
        Err(e) => warn!(error = %e, "limit counters could not be restored; usage starts again"),
    }
    let cluster = match (&config.cluster, &replica) {
        (Some(settings), Some(replica)) => Some(
            Cluster::new(
                settings,
                replica.clone(),
                control.clone(),
                vec![
                    switch_records.clone(),
                    task_records.clone(),
                    Arc::new(LimitUsageRecords::new(
                        usage_limits.clone(),
                        replica.clone(),
                    )),
                ],
                auditor.clone(),
                readiness.clone(),
            )
            .map_err(|e| ServeError::Serve {
                listener: "cluster",
                message: e.to_string(),
            })?,
        ),
        _ => None,
    };
    let changes = Arc::new(match &cluster {
        Some(cluster) => Changes::clustered(
            control.clone(),
            auditor.clone(),
            cluster.clone(),
            switch_records,
        ),
        None => Changes::single_node(control.clone(), auditor.clone()),
    });
    let approvals = Arc::new(Approvals::new(
        config.approvals.clone(),
        approval_keys(&config, cluster.is_some())?,
        task_store,
        match &cluster {
            Some(cluster) => approval::Backend::Cluster {
                cluster: cluster.clone(),
                kind: task_records,
            },
            None => approval::Backend::Local,
        },
        auditor.clone(),
    ));
    let decisions = DecisionApi::new(
        generations.clone(),
        control.kill_switches(),
        auditor.clone(),
        limits,
        Arc::new(PlatformLimits::new(
            config.platform_quota,
            config.platform_quotas.clone(),
        )),
        stats.clone(),
        metrics.clone(),
    )
    .with_approvals(approvals.clone())
    .with_usage_limits(usage_limits.clone(), changes.clone())
    .with_search_budget(config.transport.check_timeout);
    let decision =
        DecisionServiceServer::new(decisions.clone()).max_decoding_message_size(max_message);
    let approval_service =
        ApprovalServiceServer::new(ApprovalApi::new(approvals.clone(), config.limits.clone()))
            .max_decoding_message_size(max_message);
    let approver_service =
        ApproverServiceServer::new(ApproverApi::new(approvals.clone(), generations.clone()));

    let admin_api = AdminApi::new(
        control.clone(),
        changes.clone(),
        auditor.clone(),
        stats.clone(),
        started,
    )
    .with_approvals(approvals.clone())
    .with_usage_limits(usage_limits.clone())
    .with_replays_giving_way_to(decisions.checks_in_flight());
    // Room for the largest bundle push plus the envelope.
    let admin = AdminServiceServer::new(admin_api)
        .max_decoding_message_size(config.max_push_bytes.saturating_add(1024 * 1024));
    let audit_service = AuditServiceServer::new(AuditApi::new(auditor.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cluster_sync = match &cluster {
        Some(cluster) => {
            info!(replica = cluster.replica(), endpoints = ?config.cluster.as_ref().map(|c| &c.etcd_endpoints), "cluster mode");
            Some(cluster.spawn(stop_rx.clone()))
        }
        None => None,
    };
    // Limits are global in intent: the others count this replica's usage.
    let usage_publisher = cluster
        .as_ref()
        .map(|cluster| cluster.spawn_usage_publisher(usage_limits.clone(), stop_rx.clone()));
    let transport = Arc::new(config.transport.clone());
    let listening = |name: &'static str, tls: Option<Arc<transport::TlsSetup>>| Listening {
        stats: ListenerStats::new(name, transport.admission()),
        tls,
        limits: transport.clone(),
        auth: config.auth.clone(),
    };
    let grpc = |listener: Listener, timeout: std::time::Duration| {
        ServiceBuilder::new()
            .layer(AuthLayer::new(config.auth.clone(), listener, timeout))
            .layer(OversizeLayer)
    };
    let decision_listening = listening("decision", config.tls.clone());
    let admin_listening = listening("admin", config.tls.clone());
    let ops_listening = listening("ops", None);
    let mut listeners = vec![
        decision_listening.stats.clone(),
        admin_listening.stats.clone(),
        ops_listening.stats.clone(),
    ];
    let decision_routes = grpc(Listener::Decision, transport.check_timeout).service(
        Routes::new(health_service.clone())
            .add_service(reflection("decision")?)
            .add_service(decision)
            .add_service(approval_service),
    );
    let decision_server = tokio::spawn(transport::serve(
        decision_listener,
        decision_listening,
        Grpc::new(decision_routes, &transport),
        stop_rx.clone(),
    ));
    let admin_routes = grpc(Listener::Admin, transport.admin_timeout).service(
        Routes::new(health_service)
            .add_service(reflection("admin")?)
            .add_service(admin)
            .add_service(audit_service)
            .add_service(approver_service),
    );
    let admin_server = tokio::spawn(transport::serve(
        admin_listener,
        admin_listening,
        Grpc::new(admin_routes, &transport),
        stop_rx.clone(),
    ));
    let http_server = http_listener.map(|(listener, local)| {
        // Over TLS the AuthZEN listener speaks HTTP/1.1 only.
        let tls = config
            .tls
            .as_ref()
            .map(|tls| Arc::new(tls.with_alpn(&[b"http/1.1"])));
        let http_listening = listening("http", tls);
        listeners.push(http_listening.stats.clone());
        let state = http::HttpState {
            decisions: decisions.clone(),
            auth: config.auth.clone(),
            config: Arc::new(config.authzen.clone()),
            metrics: metrics.clone(),
            tls: config.tls.is_some(),
            timeout: transport.check_timeout,
            approvals: Some(approvals.clone()),
        };
        // JSON is larger than protobuf: room for twice a batch's encoding.
        let max_body = max_message.saturating_mul(2);
        let server = tokio::spawn(transport::serve(
            listener,
            http_listening,
            Http1::new(http::router(state, max_body)),
            stop_rx.clone(),
        ));
        (server, local)
    });
    let ops_server = tokio::spawn(transport::serve(
        ops_listener,
        ops_listening,
        Http1::new(ops::router(
            readiness.clone(),
            Arc::new(metrics::registry(
                &metrics,
                metrics::Sources {
                    generations: generations.clone(),
                    switches: control.kill_switches(),
                    auditor: auditor.clone(),
                    cluster: cluster.clone(),
                    listeners,
                    approvals: approvals.clone(),
                    usage_limits: usage_limits.clone(),
                },
            )),
        )),
        stop_rx.clone(),
    ));

    let expiry = tokio::spawn(expire_switches(changes.clone(), stop_rx.clone()));
    let approval_sweep = tokio::spawn(sweep_approvals(approvals.clone(), stop_rx.clone()));
    let limit_snapshots = tokio::spawn(save_limit_counters(usage_limits.clone(), stop_rx.clone()));

    // Not ready while the kill-switch state is unknown: every check would be
    // denied, so load balancers should send traffic elsewhere.
    match control.kill_switches().current().unavailable_reason() {
        None => readiness.set(true),
        Some(reason) => {
            readiness.set_blocked(format!("kill_switch_state_unavailable: {reason}"));
            health
                .set_not_serving::<DecisionServiceServer<DecisionApi>>()
                .await;
        }
    }
    announce("decision", decision_addr);
    announce("admin", admin_addr);
    if let Some((_, addr)) = &http_server {
        announce("http", *addr);
    }
    announce("ops", ops_addr);
    let auth_mode = if config.auth.is_open() {
        "open"
    } else {
        "credentials"
    };
    let http_addr = http_server.as_ref().map(|(_, addr)| addr.to_string());
    info!(%decision_addr, %admin_addr, %ops_addr, http_addr, tls = config.tls.is_some(), auth = auth_mode, "serving");
    if config.insecure && (config.tls.is_none() || config.auth.is_open()) {
        warn!("server.insecure is set: callers may be unauthenticated or unencrypted");
    }

    shutdown.await;
    info!(grace = ?config.shutdown_grace, "shutting down: draining in-flight requests");
    readiness.set(false);
    health
        .set_not_serving::<DecisionServiceServer<DecisionApi>>()
        .await;
    health
        .set_not_serving::<AdminServiceServer<AdminApi>>()
        .await;
    let _ = stop_tx.send(true);

    let drained = tokio::time::timeout(config.shutdown_grace, async {
        let decision = decision_server.await;
        let admin = admin_server.await;
        let ops = ops_server.await;
        let http = match http_server {
            Some((server, _)) => Some(server.await),
            None => None,
        };
        (decision, admin, ops, http)
    })
    .await;
    let result = match drained {
        Ok((decision, admin, ops, http)) => joined("decision", decision)
            .and(joined("admin", admin))
            .and(joined("ops", ops))
            .and(http.map_or(Ok(()), |http| joined("http", http))),
        Err(_) => {
            warn!("shutdown grace period over; closing remaining connections");
            Ok(())
        }
    };
    expiry.abort();
    approval_sweep.abort();
    limit_snapshots.abort();
    // A clean stop forgets no usage.
    let limits = usage_limits.clone();
    match tokio::task::spawn_blocking(move || limits.persist()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(error = %e, "limit counters could not be saved at shutdown"),
        Err(e) => warn!(error = %e, "limit counters could not be saved at shutdown"),
    }
    if let Some(sync) = cluster_sync {
        sync.abort();
    }
    if let Some(publisher) = usage_publisher {
        publisher.abort();
    }
    // Every record of a check that was answered is written before exit.
    let writer = auditor.clone();
    let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
    store.flush()?;
    info!("stopped");
    result
}

/// Records kill-switch expiries as they fall due. Checks stop matching an
/// expired switch at its `expires_at` on their own; this makes the expiry
/// durable, audited, and visible to policies.
async fn expire_switches(changes: Arc<Changes>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        if let Err(e) = changes.expire_due().await {
            warn!(error = %e, "cannot record kill switch expiries");
        }
    }
}

/// Writes changed limit counters every `limits.counter_snapshot_interval`
/// (the most a crash forgets), and drops idle keys now and then.
async fn save_limit_counters(
    limits: Arc<UsageLimits>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    const EVICT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
    let mut tick = tokio::time::interval(limits.config().snapshot_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut evicted_at = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let evict = evicted_at.elapsed() >= EVICT_EVERY;
        if evict {
            evicted_at = std::time::Instant::now();
        }
        let limits = limits.clone();
        let saved = tokio::task::spawn_blocking(move || {
            if evict {
                limits.evict_idle(crate::killswitch::unix_ms(std::time::SystemTime::now()));
            }
            limits.persist()
        })
        .await;
        match saved {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot save limit counters"),
            Err(e) => warn!(error = %e, "cannot save limit counters"),
        }
    }
}

/// Expires approval tasks nobody decided in time, and drops ended ones
/// past retention.
async fn sweep_approvals(approvals: Arc<Approvals>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        if let Err(e) = approvals.sweep().await {
            warn!(error = %e, "cannot sweep approval tasks");
        }
    }
}

/// The approval keys, or why approvals are off. A cluster needs one key
/// shared by every replica (an approval given on one is verified on
/// another), so without `approvals.signing_key_file` it runs without
/// approvals rather than with a key only one replica knows.
fn approval_keys(config: &Config, clustered: bool) -> Result<Result<Keys, String>, ServeError> {
    let settings = &config.approvals;
    if !settings.enabled {
        return Ok(Err("approvals.enabled is false".into()));
    }
    if clustered && settings.signing_key_file.is_none() {
        warn!("cluster mode without approvals.signing_key_file: approvals are disabled");
        return Ok(Err(
            "cluster mode needs approvals.signing_key_file, the same key on every replica".into(),
        ));
    }
    Keys::load(
        settings.signing_key_file.as_deref(),
        &config.data_dir,
        settings.algorithm,
        &settings.previous_keys,
    )
    .map(Ok)
    .map_err(|e| ServeError::Serve {
        listener: "approvals",
        message: e.to_string(),
    })
}

/// gRPC reflection for Warden's services and health.
fn reflection(
    listener: &'static str,
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    ServeError,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warden_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Serve {
            listener,
            message: format!("reflection: {e}"),
        })
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

/// A listener's task, ended: only a panic in it is an error.
fn joined(
    listener: &'static str,
    joined: Result<(), tokio::task::JoinError>,
) -> Result<(), ServeError> {
    joined.map_err(|e| ServeError::Serve {
        listener,
        message: e.to_string(),
    })
}
