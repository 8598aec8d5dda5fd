use std::time::Duration;

use crate::config::tests::{config, refusal};

#[test]
fn cluster_mode_needs_a_loopback_etcd_unless_told_otherwise() {
    assert!(config(&[]).is_ok_and(|c| c.cluster.is_none()));
    let local = config(&[(
        "WARDEN_CLUSTER_ETCD_ENDPOINTS",
        r#"["http://127.0.0.1:2379", "http://localhost:2380"]"#,
    )]);
    let local = local.ok().and_then(|c| c.cluster);
    assert!(local.as_ref().is_some_and(|c| c.prefix == "/warden"
        && c.etcd_timeout == Duration::from_secs(2)
        && c.etcd_endpoints.len() == 2));
    let remote = [(
        "WARDEN_CLUSTER_ETCD_ENDPOINTS",
        r#"["http://10.0.0.5:2379"]"#,
    )];
    let err = refusal(&remote);
    assert!(
        err.contains("cluster.etcd_endpoints") && err.contains("insecure_etcd"),
        "{err}"
    );
    assert!(
        config(&[remote[0], ("WARDEN_CLUSTER_INSECURE_ETCD", "true")])
            .is_ok_and(|c| c.cluster.is_some())
    );
    for (name, value, key) in [
        (
            "WARDEN_CLUSTER_ETCD_ENDPOINTS",
            r#"["etcd:2379"]"#,
            "cluster.etcd_endpoints",
        ),
        (
            "WARDEN_CLUSTER_ETCD_ENDPOINTS",
            r#"["https://127.0.0.1:2379"]"#,
            "cluster.etcd_ca_file",
        ),
        (
            "WARDEN_CLUSTER_ETCD_ENDPOINTS",
            r#"["http://127.0.0.1:2379", "https://127.0.0.1:2380"]"#,
            "cluster.etcd_endpoints",
        ),
        (
            "WARDEN_CLUSTER_ETCD_CA_FILE",
            "ca.pem",
            "cluster.etcd_ca_file",
        ),
        (
            "WARDEN_CLUSTER_ETCD_CERT_FILE",
            "c.pem",
            "cluster.etcd_key_file",
        ),
        (
            "WARDEN_CLUSTER_ETCD_KEY_FILE",
            "c.key",
            "cluster.etcd_cert_file",
        ),
        ("WARDEN_CLUSTER_PREFIX", "warden", "cluster.prefix"),
        ("WARDEN_CLUSTER_ETCD_TIMEOUT", "0s", "cluster.etcd_timeout"),
        ("WARDEN_CLUSTER_BLOB_GRACE", "0s", "cluster.blob_grace"),
        ("WARDEN_CLUSTER_BLOB_GRACE", "3s", "cluster.blob_grace"),
    ] {
        let err = refusal(&[
            (
                "WARDEN_CLUSTER_ETCD_ENDPOINTS",
                r#"["http://127.0.0.1:2379"]"#,
            ),
            (name, value),
        ]);
        assert!(err.contains(key), "{name}={value}: {err}");
    }
}

#[test]
fn etcd_off_loopback_needs_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::cluster::tls::issued();
    let write = |name: &str, contents: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    };
    let (ca_file, cert_file, key_file) = (
        write("ca.pem", ca),
        write("client.pem", cert),
        write("client.key", key),
    );
    let remote = (
        "WARDEN_CLUSTER_ETCD_ENDPOINTS",
        r#"["https://etcd-1:2379"]"#,
    );
    let ca_only = [remote, ("WARDEN_CLUSTER_ETCD_CA_FILE", ca_file.as_str())];
    let err = refusal(&ca_only);
    assert!(
        err.contains("client certificate") && err.contains("insecure_etcd"),
        "{err}"
    );
    let cluster = config(&[
        ca_only[0],
        ca_only[1],
        ("WARDEN_CLUSTER_ETCD_CERT_FILE", cert_file.as_str()),
        ("WARDEN_CLUSTER_ETCD_KEY_FILE", key_file.as_str()),
    ])
    .ok()
    .and_then(|c| c.cluster);
    assert!(cluster.is_some_and(|c| c.etcd_tls.is_some_and(|tls| tls.has_client_certificate())));
    // The server's CA as the client's key: refused at start-up, naming it.
    let err = refusal(&[
        ca_only[0],
        ca_only[1],
        ("WARDEN_CLUSTER_ETCD_CERT_FILE", cert_file.as_str()),
        ("WARDEN_CLUSTER_ETCD_KEY_FILE", ca_file.as_str()),
    ]);
    assert!(
        err.contains("ca.pem") && err.contains("private key"),
        "{err}"
    );
}

#[test]
fn partition_mode_defaults_to_deny_mutating_after_thirty_seconds_and_is_checked() {
    use crate::killswitch::Mode;
    let endpoints = (
        "WARDEN_CLUSTER_ETCD_ENDPOINTS",
        r#"["http://127.0.0.1:2379"]"#,
    );
    let cluster = config(&[endpoints]).ok().and_then(|c| c.cluster);
    assert!(
        cluster
            .as_ref()
            .is_some_and(|c| c.partition_grace == Duration::from_secs(30)
                && c.on_partition == Some(Mode::DenyMutating))
    );
    for (value, mode) in [
        ("serve", None),
        ("deny_all", Some(Mode::DenyAll)),
        ("deny_mutating", Some(Mode::DenyMutating)),
    ] {
        let cluster = config(&[endpoints, ("WARDEN_CLUSTER_ON_PARTITION", value)])
            .ok()
            .and_then(|c| c.cluster);
        assert_eq!(cluster.map(|c| c.on_partition), Some(mode), "{value}");
    }
    let err = refusal(&[endpoints, ("WARDEN_CLUSTER_ON_PARTITION", "allow_all")]);
    assert!(err.contains("cluster.on_partition"), "{err}");
    let err = refusal(&[endpoints, ("WARDEN_CLUSTER_PARTITION_GRACE", "500ms")]);
    assert!(
        err.contains("cluster.partition_grace") && err.contains("etcd_timeout"),
        "{err}"
    );
}
