//! Which caller may make which RPC on which listener. Every method is named
//! here; anything not named is refused, so a new RPC is closed until it is
//! given a rule.

use tonic::Status;

use super::{Caller, Role};

/// The gRPC listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Decision,
    Admin,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Decision => "decision",
            Listener::Admin => "admin",
        }
    }
}

/// What a method asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Health: load balancers probe without credentials.
    Public,
    /// Any authenticated caller (reflection: the schema is not a secret,
    /// but strangers have no use for it).
    Authenticated,
    /// A platform role; which platform is checked against the request body.
    Platform,
    /// Any one of these roles.
    AnyOf(&'static [RoleKind]),
}

/// Roles without their platform id, for the table below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    PolicyAdmin,
    IncidentResponder,
    Auditor,
    /// `approver:<user>`, whoever the user.
    Approver,
}

impl RoleKind {
    fn name(self) -> &'static str {
        match self {
            RoleKind::PolicyAdmin => "policy_admin",
            RoleKind::IncidentResponder => "incident_responder",
            RoleKind::Auditor => "auditor",
            RoleKind::Approver => "approver:<user>",
        }
    }

    fn held_by(self, caller: &Caller) -> bool {
        match self {
            RoleKind::PolicyAdmin => caller.has(&Role::PolicyAdmin),
            RoleKind::IncidentResponder => caller.has(&Role::IncidentResponder),
            RoleKind::Auditor => caller.has(&Role::Auditor),
            RoleKind::Approver => caller.is_open() || caller.approver().is_some(),
        }
    }
}

const POLICY: &[RoleKind] = &[RoleKind::PolicyAdmin];
const INCIDENT: &[RoleKind] = &[RoleKind::IncidentResponder];
const AUDIT: &[RoleKind] = &[RoleKind::Auditor];
/// Reading switches helps both the responder and whoever reviews later.
const SWITCH_READ: &[RoleKind] = &[RoleKind::IncidentResponder, RoleKind::Auditor];
const APPROVER: &[RoleKind] = &[RoleKind::Approver];
/// Approvers see the tasks they may decide; auditors, all of them.
const APPROVAL_READ: &[RoleKind] = &[RoleKind::Approver, RoleKind::Auditor];
/// Withdrawing an approval only tightens: approvers and responders.
const APPROVAL_REVOKE: &[RoleKind] = &[RoleKind::Approver, RoleKind::IncidentResponder];
const ANY_OPERATOR: &[RoleKind] = &[
    RoleKind::PolicyAdmin,
    RoleKind::IncidentResponder,
    RoleKind::Auditor,
];

/// The rule for `path` (`/package.Service/Method`) on `listener`; `None`
/// when the method is not served there.
pub fn requirement(listener: Listener, path: &str) -> Option<Requirement> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let requirement = match (listener, service, method) {
        (_, "grpc.health.v1.Health", "Check" | "Watch") => Requirement::Public,
        (_, "grpc.reflection.v1.ServerReflection", "ServerReflectionInfo") => {
            Requirement::Authenticated
        }
        (
            Listener::Decision,
            "warden.v1.DecisionService",
            "Check" | "BatchCheck" | "SearchActions" | "SearchResources" | "SearchSubjects",
        ) => Requirement::Platform,
        (
            Listener::Admin,
            "warden.v1.AdminService",
            "PutBundle" | "ListBundles" | "ActivateBundle" | "Rollback" | "ClearShadowBundle"
            | "PutSnapshot" | "ReplayBundle",
        ) => Requirement::AnyOf(POLICY),
        (Listener::Admin, "warden.v1.AdminService", "GetStatus") => {
            Requirement::AnyOf(ANY_OPERATOR)
        }
        (Listener::Admin, "warden.v1.AdminService", "EngageKillSwitch" | "ReleaseKillSwitch") => {
            Requirement::AnyOf(INCIDENT)
        }
        (Listener::Admin, "warden.v1.AdminService", "ListKillSwitches" | "ListLimits") => {
            Requirement::AnyOf(SWITCH_READ)
        }
        // Forgetting usage loosens a budget, as releasing a switch does.
        (Listener::Admin, "warden.v1.AdminService", "ResetLimitKey") => {
            Requirement::AnyOf(INCIDENT)
        }
        (Listener::Admin, "warden.v1.AuditService", "Query" | "Tail" | "Export" | "Verify") => {
            Requirement::AnyOf(AUDIT)
        }
        (
            Listener::Decision,
            "warden.v1.ApprovalService",
            "RequestApproval" | "GetApprovalTask" | "WatchApprovalTask" | "CancelApprovalTask",
        ) => Requirement::Platform,
        (
            Listener::Admin,
            "warden.v1.ApproverService",
            "ListApprovalTasks" | "GetApprovalTaskDetail" | "WatchPendingTasks",
        ) => Requirement::AnyOf(APPROVAL_READ),
        (Listener::Admin, "warden.v1.ApproverService", "Approve" | "Deny") => {
            Requirement::AnyOf(APPROVER)
        }
        (Listener::Admin, "warden.v1.ApproverService", "Revoke") => {
            Requirement::AnyOf(APPROVAL_REVOKE)
        }
        _ => return None,
    };
    Some(requirement)
}

/// Whether `caller` may call `path` on `listener`; the refusal says why.
pub fn authorize(caller: &Caller, listener: Listener, path: &str) -> Result<(), Status> {
    let Some(requirement) = requirement(listener, path) else {
        return Err(Status::unimplemented(format!(
            "`{path}` is not served on the {} listener",
            listener.as_str()
        )));
    };
    if requirement == Requirement::Public {
        return Ok(());
    }
    let is_platform = caller.principal.as_ref().is_some_and(|p| p.is_platform());
    if listener == Listener::Admin && is_platform {
        return Err(Status::permission_denied(format!(
            "caller `{}` holds a platform credential, which the admin listener does not accept",
            caller.name()
        )));
    }
    let allowed = match requirement {
        Requirement::Public | Requirement::Authenticated => true,
        Requirement::Platform => caller.principal.is_none() || is_platform,
        Requirement::AnyOf(kinds) => kinds.iter().any(|kind| kind.held_by(caller)),
    };
    if allowed {
        return Ok(());
    }
    let needed = match requirement {
        Requirement::AnyOf(kinds) => kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "a platform role".to_owned(),
    };
    Err(Status::permission_denied(format!(
        "caller `{}` lacks the role `{path}` needs: {needed}",
        caller.name()
    )))
}
