use std::sync::Arc;

use proptest::prelude::*;
use tonic::Code;

use super::rules::authorize;
use super::*;
use crate::auth::{ConnInfo, PeerCert};

fn principal(name: &str, roles: &[&str]) -> Arc<Principal> {
    let roles = roles.iter().filter_map(|r| Role::parse(r).ok()).collect();
    Arc::new(Principal {
        name: name.into(),
        roles,
    })
}

fn authenticator(tokens: &[(&str, Arc<Principal>)]) -> Authenticator {
    let mut table = TokenTable::default();
    for (token, principal) in tokens {
        assert!(table.add(&hash_token(token), principal.clone()).is_ok());
    }
    Authenticator::new(table, Vec::new(), false)
}

fn headers(token: Option<&str>) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    if let Some(token) = token
        && let Ok(value) = http::HeaderValue::from_str(token)
    {
        map.insert(http::header::AUTHORIZATION, value);
    }
    map
}

fn code<T>(result: Result<T, tonic::Status>) -> Option<Code> {
    result.err().map(|s| s.code())
}

#[test]
fn roles_parse_and_print_round_trip() {
    for text in [
        "platform:copilot",
        "policy_admin",
        "incident_responder",
        "auditor",
    ] {
        assert_eq!(
            Role::parse(text).map(|r| r.to_string()),
            Ok(text.to_owned())
        );
    }
    for bad in ["platform:", "admin", "", "Auditor", "platform:a\nb"] {
        assert!(Role::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_credential_is_a_platform_or_an_operator_never_both() {
    let mixed = Principal::new(
        "x".into(),
        vec![Role::Platform("a".into()), Role::PolicyAdmin],
    );
    assert!(mixed.is_err_and(|e| e.contains("mixes")));
    assert!(Principal::new("x".into(), Vec::new()).is_err());
    assert!(Principal::new("x".into(), vec![Role::Auditor, Role::PolicyAdmin]).is_ok());
}

#[test]
fn tokens_are_matched_by_digest() {
    let alice = principal("alice", &["auditor"]);
    let auth = authenticator(&[("s3cret-token-alice", alice.clone())]);
    let caller = auth.authenticate(&headers(Some("Bearer s3cret-token-alice")), None);
    assert_eq!(
        caller.map(|c| c.name().to_owned()).ok(),
        Some("alice".into())
    );
    for bad in [
        "Bearer s3cret-token-alicE",
        "Bearer ",
        "s3cret-token-alice",
        "Basic czNjcmV0",
    ] {
        assert_eq!(
            code(auth.authenticate(&headers(Some(bad)), None)),
            Some(Code::Unauthenticated),
            "{bad}"
        );
    }
    assert_eq!(
        code(auth.authenticate(&headers(None), None)),
        Some(Code::Unauthenticated)
    );
}

#[test]
fn a_table_refuses_bad_and_duplicate_digests() {
    let mut table = TokenTable::default();
    assert!(table.add("abc", principal("a", &["auditor"])).is_err());
    let digest = hash_token("t");
    assert!(table.add(&digest, principal("a", &["auditor"])).is_ok());
    assert!(table.add(&digest, principal("b", &["auditor"])).is_err());
}

#[test]
fn a_rejected_certificate_refuses_even_with_a_good_token() {
    let auth = authenticator(&[("tok", principal("a", &["auditor"]))]);
    let conn = ConnInfo::new(None, PeerCert::Rejected("certificate expired".into()));
    let refused = auth.authenticate(&headers(Some("Bearer tok")), Some(&conn));
    assert!(refused.is_err_and(
        |s| s.code() == Code::Unauthenticated && s.message().contains("certificate expired")
    ));
}

#[test]
fn certificate_and_token_must_name_the_same_caller() {
    let a = principal("a", &["auditor"]);
    let b = principal("b", &["auditor"]);
    let auth = authenticator(&[("tok-b", b)]);
    let conn = ConnInfo::new(None, PeerCert::Verified(Some(a.clone())));
    assert_eq!(
        code(auth.authenticate(&headers(Some("Bearer tok-b")), Some(&conn))),
        Some(Code::Unauthenticated)
    );
    let caller = auth.authenticate(&headers(None), Some(&conn));
    assert_eq!(caller.map(|c| c.name().to_owned()).ok(), Some("a".into()));
}

#[test]
fn open_mode_lets_anyone_do_anything_but_still_refuses_bad_tokens() -> Result<(), tonic::Status> {
    let auth = Authenticator::default();
    assert!(auth.is_open());
    let caller = auth.authenticate(&headers(None), None)?;
    assert!(caller.may_act_for("any"));
    assert!(
        authorize(
            &caller,
            Listener::Admin,
            "/warden.v1.AdminService/PutBundle"
        )
        .is_ok()
    );
    assert_eq!(
        code(auth.authenticate(&headers(Some("Bearer nope")), None)),
        Some(Code::Unauthenticated)
    );
    Ok(())
}

#[test]
fn platform_callers_act_only_for_their_platforms() -> Result<(), tonic::Status> {
    let auth = authenticator(&[("t", principal("p", &["platform:a", "platform:b"]))]);
    let caller = auth.authenticate(&headers(Some("Bearer t")), None)?;
    assert!(caller.may_act_for("a") && caller.may_act_for("b"));
    assert_eq!(
        code(caller.check_platform("c", "platform")),
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        code(authorize(
            &caller,
            Listener::Admin,
            "/warden.v1.AdminService/GetStatus"
        )),
        Some(Code::PermissionDenied)
    );
    assert!(
        authorize(
            &caller,
            Listener::Decision,
            "/warden.v1.DecisionService/Check"
        )
        .is_ok()
    );
    assert!(authorize(&caller, Listener::Admin, "/grpc.health.v1.Health/Check").is_ok());
    Ok(())
}

#[test]
fn unknown_methods_are_refused() {
    let caller = Caller::open(None);
    assert_eq!(
        code(authorize(
            &caller,
            Listener::Decision,
            "/warden.v1.AdminService/PutBundle"
        )),
        Some(Code::Unimplemented)
    );
    assert_eq!(
        code(authorize(
            &caller,
            Listener::Admin,
            "/warden.v1.AdminService/Nope"
        )),
        Some(Code::Unimplemented)
    );
    assert!(requirement(Listener::Admin, "garbage").is_none());
}

#[test]
fn every_warden_method_has_a_rule_on_its_listener() {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(warden_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = 0;
    for file in &set.file {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            let listener = match name.as_str() {
                "warden.v1.DecisionService" | "warden.v1.ApprovalService" => Listener::Decision,
                "warden.v1.AdminService"
                | "warden.v1.AuditService"
                | "warden.v1.ApproverService" => Listener::Admin,
                other => panic!("a service no listener serves: {other}"),
            };
            for method in &service.method {
                let path = format!("/{name}/{}", method.name());
                assert!(requirement(listener, &path).is_some(), "{path} has no rule");
                methods += 1;
            }
        }
    }
    assert!(methods >= 15, "{methods}");
}

proptest! {
    #[test]
    fn only_the_configured_token_is_accepted(token in "[ -~]{1,64}", other in "[ -~]{1,64}") {
        let auth = authenticator(&[(&token, principal("a", &["auditor"]))]);
        let presented = format!("Bearer {other}");
        let accepted = auth.authenticate(&headers(Some(&presented)), None).is_ok();
        prop_assert_eq!(accepted, other.trim() == token);
    }

    #[test]
    fn role_parsing_never_accepts_what_it_cannot_print(text in "\\PC{0,24}") {
        if let Ok(role) = Role::parse(&text) {
            prop_assert_eq!(role.to_string(), text);
        }
    }
}
