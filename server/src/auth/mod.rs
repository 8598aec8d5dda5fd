//! Who is calling and what they may do. A credential (a bearer token, or a
//! client certificate checked when its connection was made) names a caller;
//! the caller's roles decide which RPCs it may make on which listener.
//!
//! With no credentials configured Warden runs open: every caller is
//! `anonymous` with every right. The configuration refuses that on a
//! non-loopback address unless `server.insecure` says it is meant.

pub mod config;
mod layer;
mod peer;
mod rules;
mod tokens;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tonic::Status;

pub use layer::AuthLayer;
pub use peer::{ConnInfo, PeerCert, Proof};
pub use rules::{Listener, Requirement, authorize, requirement};
pub use tokens::{TokenTable, hash_token, new_token};

/// What a credential may do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// Checks on behalf of one platform, on the decision listener only.
    Platform(String),
    /// Bundles and snapshots.
    PolicyAdmin,
    /// Kill switches.
    IncidentResponder,
    /// Reading the audit trail.
    Auditor,
    /// Deciding approval tasks, as the named user of the identity snapshot
    /// (whom the policy's `approval` member must allow).
    Approver(String),
}

impl Role {
    pub fn parse(text: &str) -> Result<Role, String> {
        match text {
            "policy_admin" => Ok(Role::PolicyAdmin),
            "incident_responder" => Ok(Role::IncidentResponder),
            "auditor" => Ok(Role::Auditor),
            _ => {
                let valid = |id: &str| !id.is_empty() && !id.chars().any(|c| c.is_control());
                match (
                    text.strip_prefix("platform:"),
                    text.strip_prefix("approver:"),
                ) {
                    (Some(id), _) if valid(id) => Ok(Role::Platform(id.to_owned())),
                    (_, Some(user)) if valid(user) => Ok(Role::Approver(user.to_owned())),
                    _ => Err(format!(
                        "`{text}` is not a role; expected `platform:<id>`, `policy_admin`, \
                         `incident_responder`, `auditor` or `approver:<user id>`"
                    )),
                }
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Platform(id) => write!(f, "platform:{id}"),
            Role::PolicyAdmin => f.write_str("policy_admin"),
            Role::IncidentResponder => f.write_str("incident_responder"),
            Role::Auditor => f.write_str("auditor"),
            Role::Approver(user) => write!(f, "approver:{user}"),
        }
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Token,
    Certificate,
    /// Open mode: no credentials are configured.
    Open,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Token => "token",
            Via::Certificate => "certificate",
            Via::Open => "unauthenticated",
        }
    }
}

/// A configured caller.
#[derive(Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub roles: Vec<Role>,
}

impl Principal {
    /// A credential is either a platform's or an operator's, never both, so
    /// that a platform credential can never reach the admin plane.
    pub fn new(name: String, roles: Vec<Role>) -> Result<Self, String> {
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            return Err(format!("`{name}` is not a caller name"));
        }
        if roles.is_empty() {
            return Err(format!("caller `{name}` has no roles"));
        }
        let platforms = roles
            .iter()
            .filter(|r| matches!(r, Role::Platform(_)))
            .count();
        if platforms != 0 && platforms != roles.len() {
            return Err(format!(
                "caller `{name}` mixes platform and admin roles; give each its own credential"
            ));
        }
        // A credential approves as one person, or it would be unclear who
        // did.
        if roles
            .iter()
            .filter(|r| matches!(r, Role::Approver(_)))
            .count()
            > 1
        {
            return Err(format!(
                "caller `{name}` names more than one approver; give each person their own credential"
            ));
        }
        Ok(Self { name, roles })
    }

    pub fn is_platform(&self) -> bool {
        self.roles.iter().any(|r| matches!(r, Role::Platform(_)))
    }
}

/// The authenticated caller of one request, attached to it by the auth layer.
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Option<Arc<Principal>>,
    via: Via,
    remote: Option<SocketAddr>,
}

impl Caller {
    fn open(remote: Option<SocketAddr>) -> Self {
        Self {
            principal: None,
            via: Via::Open,
            remote,
        }
    }

    /// A caller of a public method: no credentials looked at, no rights.
    fn public(remote: Option<SocketAddr>) -> Self {
        Self {
            principal: Some(Arc::new(Principal {
                name: "anonymous".into(),
                roles: Vec::new(),
            })),
            via: Via::Open,
            remote,
        }
    }

    /// The caller a request was authorized as. Requests reach services only
    /// through the auth layer, so a missing caller means a wiring fault:
    /// it gets a name that says so and no rights.
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller {
                principal: Some(Arc::new(Principal {
                    name: "unidentified".into(),
                    roles: Vec::new(),
                })),
                via: Via::Open,
                remote: None,
            })
    }

    pub fn name(&self) -> &str {
        self.principal.as_ref().map_or("anonymous", |p| &p.name)
    }

    /// Who the caller is for logs and audit records: name, how it proved
    /// it, and where it connected from.
    pub fn label(&self) -> String {
        match self.remote {
            Some(addr) => format!("{} ({}, {addr})", self.name(), self.via.as_str()),
            None => format!("{} ({})", self.name(), self.via.as_str()),
        }
    }

    pub fn has(&self, role: &Role) -> bool {
        match &self.principal {
            None => self.via == Via::Open,
            Some(p) => p.roles.contains(role),
        }
    }

    /// Open mode: no credentials configured, every right but no identity.
    pub fn is_open(&self) -> bool {
        self.principal.is_none() && self.via == Via::Open
    }

    /// The user a credential approves as: its one `approver:<user>` role.
    /// Open mode has none: approving needs a person's own credential.
    pub fn approver(&self) -> Option<&str> {
        let principal = self.principal.as_ref()?;
        let mut users = principal.roles.iter().filter_map(|r| match r {
            Role::Approver(user) => Some(user.as_str()),
            _ => None,
        });
        match (users.next(), users.next()) {
            (Some(user), None) => Some(user),
            _ => None,
        }
    }

    /// Whether the caller may ask for checks on behalf of `platform`.
    pub fn may_act_for(&self, platform: &str) -> bool {
        match &self.principal {
            None => self.via == Via::Open,
            Some(p) => p
                .roles
                .iter()
                .any(|r| matches!(r, Role::Platform(id) if id == platform)),
        }
    }

    /// The platform a credential names, when it names exactly one.
    pub fn sole_platform(&self) -> Option<&str> {
        let mut platforms = self
            .principal
            .as_ref()?
            .roles
            .iter()
            .filter_map(|role| match role {
                Role::Platform(id) => Some(id.as_str()),
                _ => None,
            });
        let first = platforms.next()?;
        platforms.next().is_none().then_some(first)
    }

    /// `PERMISSION_DENIED` unless the caller may check for `platform`.
    /// An empty platform passes here so that validation can name it as
    /// missing.
    pub fn check_platform(&self, platform: &str, field: &str) -> Result<(), Status> {
        if platform.is_empty() || self.may_act_for(platform) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "caller `{}` may not check on behalf of platform `{platform}` ({field})",
            self.name()
        )))
    }
}

/// Which client certificates name which callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertMatch {
    /// The subject's common name.
    CommonName(String),
    /// Any subject alternative name: DNS name, URI or email.
    San(String),
}

#[derive(Debug)]
pub struct CertRule {
    pub matches: CertMatch,
    pub principal: Arc<Principal>,
}

/// Turns credentials into callers.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: TokenTable,
    certs: Vec<CertRule>,
    require_client_cert: bool,
}

impl Authenticator {
    pub fn new(tokens: TokenTable, certs: Vec<CertRule>, require_client_cert: bool) -> Self {
        Self {
            tokens,
            certs,
            require_client_cert,
        }
    }

    /// No credentials configured: every caller is anonymous with every right.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.certs.is_empty() && !self.require_client_cert
    }

    /// The caller a verified certificate names, if any; run once per
    /// connection.
    pub fn certificate_caller(
        &self,
        common_names: &[String],
        sans: &[String],
    ) -> Option<Arc<Principal>> {
        self.certs.iter().find_map(|rule| {
            let hit = match &rule.matches {
                CertMatch::CommonName(cn) => common_names.contains(cn),
                CertMatch::San(san) => sans.contains(san),
            };
            hit.then(|| rule.principal.clone())
        })
    }

    /// The caller behind a request's credentials. Any credential presented
    /// must be valid, even when another one would do: a bad credential is a
    /// sign of a mistake or an attack, never something to skip.
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
        conn: Option<&ConnInfo>,
    ) -> Result<Caller, Status> {
        let remote = conn.and_then(|c| c.remote);
        let peer = conn.map(|c| c.peer.as_ref());
        let from_cert = match peer {
            Some(PeerCert::Rejected(reason)) => {
                return Err(Status::unauthenticated(format!(
                    "client certificate rejected: {reason}"
                )));
            }
            Some(PeerCert::Verified(caller)) => Some(caller.clone()),
            Some(PeerCert::None) | None => {
                if self.require_client_cert {
                    return Err(Status::unauthenticated(
                        "this listener requires a client certificate",
                    ));
                }
                None
            }
        };
        let from_token = match headers.get(http::header::AUTHORIZATION) {
            None => None,
            Some(value) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        Status::unauthenticated("the authorization header is not `Bearer <token>`")
                    })?;
                Some(
                    self.tokens
                        .lookup(token)
                        .ok_or_else(|| Status::unauthenticated("unknown bearer token"))?,
                )
            }
        };
        if self.is_open() {
            return Ok(Caller::open(remote));
        }
        let (principal, via) = match (from_cert.flatten(), from_token) {
            (Some(cert), Some(token)) if !Arc::ptr_eq(&cert, &token) && cert != token => {
                return Err(Status::unauthenticated(format!(
                    "the client certificate names `{}` but the token names `{}`",
                    cert.name, token.name
                )));
            }
            (_, Some(token)) => (token, Via::Token),
            (Some(cert), None) => (cert, Via::Certificate),
            (None, None) => {
                return Err(Status::unauthenticated(
                    "no credentials: send `authorization: Bearer <token>` or a client certificate",
                ));
            }
        };
        Ok(Caller {
            principal: Some(principal),
            via,
            remote,
        })
    }
}

#[cfg(test)]
mod tests;
