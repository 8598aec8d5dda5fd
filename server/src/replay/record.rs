//! A decision record, read back for replay.

use serde_json::Value as Json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::decision::Verdict;
use crate::request::CheckRequest;

/// What settled a recorded decision when the policy's answer was not the
/// last word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Settled {
    KillSwitch,
    StaleSnapshot,
    Limit,
    Approval,
}

impl Settled {
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::KillSwitch => "kill_switch",
            Settled::StaleSnapshot => "stale_snapshot",
            Settled::Limit => "limit",
            Settled::Approval => "approval",
        }
    }

    /// From the record's switch, approval and first reason, as the
    /// decision path writes them.
    fn of(record: &Json, reasons: &[String]) -> Option<Self> {
        let first = reasons.first().map(String::as_str).unwrap_or_default();
        if !record["kill_switch_id"].is_null() || first == "kill_switch_state_unavailable" {
            Some(Settled::KillSwitch)
        } else if first.starts_with("stale_snapshot:") {
            Some(Settled::StaleSnapshot)
        } else if first.starts_with("limit_") || first.starts_with("tripwire:") {
            Some(Settled::Limit)
        } else if record.get("approval_id").is_some()
            || first.starts_with("approved:")
            || first.starts_with("approval_")
        {
            Some(Settled::Approval)
        } else {
            None
        }
    }
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub seq: u64,
    pub decision_id: String,
    pub time: OffsetDateTime,
    pub platform: String,
    pub agent_id: String,
    pub principal: String,
    pub resource: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// The request, read back from the stored input.
    pub request: CheckRequest,
    /// Input paths the audit log dropped or hashed.
    pub redacted: Vec<String>,
    pub settled: Option<Settled>,
}

impl Recorded {
    /// Reads record `seq`; `None` for a record that is not a decision.
    pub fn from_record(seq: u64, record: &Json) -> Result<Option<Self>, String> {
        if record["type"] != "decision" {
            return Ok(None);
        }
        let text = |name: &str| -> Result<String, String> {
            record[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("`{name}` is not a string"))
        };
        let strings = |name: &str| -> Result<Vec<String>, String> {
            match record.get(name) {
                None => Ok(Vec::new()),
                Some(Json::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("`{name}` holds a value that is not a string")),
                Some(_) => Err(format!("`{name}` is not a list")),
            }
        };
        let verdict = text("decision")?;
        let verdict = Verdict::parse(&verdict)
            .ok_or_else(|| format!("`decision` is `{verdict}`, not a verdict"))?;
        let time = OffsetDateTime::parse(&text("time")?, &Rfc3339)
            .map_err(|e| format!("`time` is not an RFC 3339 time: {e}"))?;
        let reasons = strings("reasons")?;
        let request = crate::input::from_json(&record["input"]).map_err(|e| e.to_string())?;
        Ok(Some(Self {
            seq,
            decision_id: text("decision_id")?,
            time,
            platform: text("platform")?,
            agent_id: text("agent_id")?,
            principal: text("principal")?,
            resource: text("resource")?,
            verdict,
            settled: Settled::of(record, &reasons),
            reasons,
            request,
            redacted: strings("redacted")?,
        }))
    }
}

/// The first path a decision record says was redacted from its input.
pub(super) fn first_redacted(record: &Json) -> Option<String> {
    if record["type"] != "decision" {
        return None;
    }
    record["redacted"].get(0)?.as_str().map(str::to_owned)
}
