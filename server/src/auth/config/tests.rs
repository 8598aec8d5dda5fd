use crate::config::tests::refusal;

#[test]
fn credentials_are_checked_before_anything_listens() {
    let digest = crate::auth::hash_token("t");
    let token =
        |roles: &str| format!("[{{ name = \"a\", sha256 = \"{digest}\", roles = {roles} }}]");
    let err = refusal(&[("WARDEN_AUTH_TOKENS", &token(r#"["platform:x", "auditor"]"#))]);
    assert!(err.contains("mixes platform and admin roles"), "{err}");
    let err = refusal(&[("WARDEN_AUTH_TOKENS", &token(r#"["root"]"#))]);
    assert!(err.contains("`root` is not a role"), "{err}");
    let err = refusal(&[(
        "WARDEN_AUTH_TOKENS",
        r#"[{ name = "a", sha256 = "abc", roles = ["auditor"] }]"#,
    )]);
    assert!(err.contains("auth.tokens.sha256"), "{err}");
    let err = refusal(&[(
        "WARDEN_AUTH_CLIENTS",
        r#"[{ name = "a", cn = "a", roles = ["auditor"] }]"#,
    )]);
    assert!(err.contains("tls.client_ca_file"), "{err}");
    let err = refusal(&[("WARDEN_TLS_CERT_FILE", "/nonexistent.pem")]);
    assert!(err.contains("tls.key_file"), "{err}");
    let err = refusal(&[("WARDEN_TLS_CLIENT_AUTH", "sometimes")]);
    assert!(err.contains("tls.client_auth"), "{err}");
    let err = refusal(&[("WARDEN_LIMITS_PLATFORM_RATE", "-1")]);
    assert!(err.contains("limits.platform_rate"), "{err}");
}
