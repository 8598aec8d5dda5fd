//! Kill switches on the wire: requests to domain specs, switches to messages.

use tonic::Status;
use warden_proto::v1 as pb;

use super::status::invalid_field;
use crate::killswitch::{EndKind, EngageSpec, Mode, Scope, Switch, rfc3339_ms};

/// `ListKillSwitches` returns at most this many ended switches.
pub const MAX_ENDED_LIMIT: u32 = 1000;
const DEFAULT_ENDED_LIMIT: u32 = 20;

pub fn engage_spec(
    request: pb::EngageKillSwitchRequest,
    caller: &str,
) -> Result<EngageSpec, Status> {
    let mode = match pb::KillSwitchMode::try_from(request.mode) {
        Ok(pb::KillSwitchMode::Unspecified | pb::KillSwitchMode::DenyAll) => Mode::DenyAll,
        Ok(pb::KillSwitchMode::DenyMutating) => Mode::DenyMutating,
        Err(_) => {
            return Err(invalid_field(
                "mode",
                "invalid mode: not a kill switch mode",
                "not a kill switch mode",
            ));
        }
    };
    let scope = request.scope.unwrap_or_default();
    let some = |value: String| Some(value);
    Ok(EngageSpec {
        scope: Scope {
            platform: some(scope.platform),
            agent_id: some(scope.agent_id),
            principal_id: some(scope.principal_id),
            action: some(scope.action),
            resource_type: some(scope.resource_type),
            session_id: some(scope.session_id),
        },
        mode: Some(mode),
        reason: request.reason,
        expires_at: request.expires_at,
        ttl_seconds: request.ttl_seconds,
        global: request.global,
        engaged_by: actor(request.engaged_by, caller),
        id: request.id,
    })
}

/// Who made a change, for the record: what the client says (free text,
/// such as the person at the keyboard), and the authenticated caller.
pub fn actor(claimed: String, caller: &str) -> String {
    match (claimed.is_empty(), caller.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!("unknown ({caller})"),
        (false, true) => claimed,
        (false, false) => format!("{claimed} ({caller})"),
    }
}

pub fn ended_limit(requested: u32) -> usize {
    let limit = match requested {
        0 => DEFAULT_ENDED_LIMIT,
        n => n.min(MAX_ENDED_LIMIT),
    };
    limit as usize
}

/// `pending`: made on this replica while etcd was out of reach.
pub fn switch_to_proto(switch: Switch, pending: bool) -> pb::KillSwitch {
    let (state, ended_at, ended_by, end_reason) = match switch.ended {
        None => (
            pb::KillSwitchState::Active,
            String::new(),
            String::new(),
            String::new(),
        ),
        Some(ended) => (
            match ended.kind {
                EndKind::Released => pb::KillSwitchState::Released,
                EndKind::Expired => pb::KillSwitchState::Expired,
            },
            rfc3339_ms(ended.at_ms),
            ended.by,
            ended.reason,
        ),
    };
    pb::KillSwitch {
        id: switch.id,
        scope: Some(scope_to_proto(switch.scope)),
        mode: match switch.mode {
            Mode::DenyAll => pb::KillSwitchMode::DenyAll,
            Mode::DenyMutating => pb::KillSwitchMode::DenyMutating,
        } as i32,
        reason: switch.reason,
        engaged_by: switch.engaged_by,
        engaged_at: rfc3339_ms(switch.engaged_at_ms),
        expires_at: switch.expires_at_ms.map(rfc3339_ms).unwrap_or_default(),
        state: state as i32,
        ended_at,
        ended_by,
        end_reason,
        pending_replication: pending,
    }
}

/// A switch scope on the wire: absent fields are empty strings.
pub fn scope_to_proto(scope: Scope) -> pb::KillSwitchScope {
    pb::KillSwitchScope {
        platform: scope.platform.unwrap_or_default(),
        agent_id: scope.agent_id.unwrap_or_default(),
        principal_id: scope.principal_id.unwrap_or_default(),
        action: scope.action.unwrap_or_default(),
        resource_type: scope.resource_type.unwrap_or_default(),
        session_id: scope.session_id.unwrap_or_default(),
    }
}
