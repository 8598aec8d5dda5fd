//! Kill switches as replicated records (`RecordKind`): how a cluster
//! backend reads, applies and resyncs them.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use super::records::{Record, RecordKind};
use super::{Control, ControlError, invalid};
use crate::killswitch::Switch;

/// Kill switches as replicated records: what a cluster backend applies as
/// its watch reports them.
#[derive(Debug)]
pub struct SwitchRecords(pub Arc<Control>);

fn parse_switch(value: &[u8]) -> Result<Switch, ControlError> {
    serde_json::from_slice(value).map_err(|e| invalid("switch", format!("not a kill switch: {e}")))
}

impl RecordKind for SwitchRecords {
    fn name(&self) -> &'static str {
        "switches"
    }

    fn noun(&self) -> &'static str {
        "kill switch"
    }

    fn local(&self) -> Result<Vec<Record>, ControlError> {
        self.0
            .store
            .switches()?
            .into_iter()
            .map(|switch| {
                let value = serde_json::to_vec(&switch)
                    .map_err(|e| ControlError::Internal(format!("cannot encode a switch: {e}")))?;
                Ok(Record {
                    id: switch.id,
                    value,
                })
            })
            .collect()
    }

    fn resync(&self, shared: &[Vec<u8>], now: SystemTime) -> Result<(), ControlError> {
        let shared = shared
            .iter()
            .map(|value| parse_switch(value))
            .collect::<Result<Vec<_>, _>>()?;
        self.0.resync_switches(&shared, now)
    }

    fn apply(
        &self,
        value: &[u8],
        now: SystemTime,
    ) -> Result<Option<serde_json::Value>, ControlError> {
        let switch = parse_switch(value)?;
        if !self.0.apply_switch(&switch, now)? {
            return Ok(None);
        }
        let state = if switch.ended.is_some() {
            "ended"
        } else {
            "engaged"
        };
        Ok(Some(
            json!({"id": switch.id, "state": state, "scope": switch.scope}),
        ))
    }

    fn fail(&self, reason: String) {
        self.0.fail_switches(reason);
    }

    fn failed(&self) -> Option<String> {
        self.0.switches_failed()
    }
}
