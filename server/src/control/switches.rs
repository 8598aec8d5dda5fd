//! Engaging, releasing and expiring kill switches.
//!
//! Order matters for the guarantees operators rely on. A change is written
//! to the store, the new switch index is published (from then on every check
//! that starts sees it), the store is flushed, and only then is the change
//! acknowledged: effective within microseconds, durable before the answer.
//! If the flush fails, the record and the index are put back and the caller
//! gets the error; checks that ran in between erred on the side of denying.
//! Rebinding the policy so that `data.killswitch` shows the change comes
//! last, so a slow rebind never delays a denial.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{error, info, warn};

use super::{Control, ControlConfig, ControlError, invalid};
use crate::generation::{Generation, kill_switch_document};
use crate::killswitch::{
    EndKind, Ended, EngageSpec, KillSwitches, Switch, SwitchIndex, rfc3339_ms, spec, unix_ms,
};
use crate::store::Store;

/// An engage's outcome: the switch in force under the id, and whether it
/// was in force already (an engage sent again, or to several replicas).
#[derive(Debug, Clone)]
pub struct Engaged {
    pub switch: Switch,
    pub already: bool,
}

/// An id engaged again: the same switch (scope and mode), still in force,
/// is already engaged; anything else under that id is refused.
pub fn already_engaged(
    existing: Switch,
    wanted: &Switch,
    now: SystemTime,
) -> Result<Switch, ControlError> {
    let id = &existing.id;
    if let Some(ended) = &existing.ended {
        return Err(ControlError::FailedPrecondition(format!(
            "kill switch `{id}` already {} at {}",
            end_word(ended.kind),
            rfc3339_ms(ended.at_ms)
        )));
    }
    if existing.scope != wanted.scope || existing.mode != wanted.mode {
        return Err(ControlError::FailedPrecondition(format!(
            "kill switch `{id}` is engaged with another scope or mode; choose another id"
        )));
    }
    if !existing.in_force(unix_ms(now)) {
        return Err(ControlError::FailedPrecondition(format!(
            "kill switch `{id}` already expired at {}",
            existing.expires_at_ms.map(rfc3339_ms).unwrap_or_default()
        )));
    }
    Ok(existing)
}

/// Switches as `ListKillSwitches` reports them.
#[derive(Debug, Clone, Default)]
pub struct SwitchList {
    /// In force, oldest first.
    pub active: Vec<Switch>,
    /// Released or expired, most recently ended first.
    pub ended: Vec<Switch>,
}

/// Reads the stored switches at start-up. When they cannot be read, every
/// check must be denied until the store is repaired: a switch that cannot be
/// read might be the one that should stop an agent.
pub(super) fn load(store: &Store, config: &ControlConfig) -> SwitchIndex {
    match store.switches() {
        Ok(switches) => {
            let index = SwitchIndex::build(
                switches.into_iter().map(Arc::new),
                config.read_verbs.clone(),
                config.session_path.clone(),
            );
            info!(engaged = index.switches().len(), "kill switches loaded");
            index
        }
        Err(e) => {
            error!(error = %e, "cannot read the kill switches; denying every check until the store is repaired");
            SwitchIndex::unavailable(e.to_string())
        }
    }
}

impl Control {
    /// Denies every check until `resync_switches` succeeds: a switch this
    /// replica was told about could not be put in force, and an unknown
    /// switch might be the one that should stop an agent. Sticky: nothing
    /// else this replica publishes replaces the denial meanwhile.
    pub fn fail_switches(&self, reason: String) {
        error!(reason, "kill switch state lost; denying every check");
        // Set and published under one guard: a resync clearing the failure
        // publishes under the same guard, so the two cannot interleave.
        let mut failure = self.failure();
        *failure = Some(reason.clone());
        self.switches.publish(SwitchIndex::unavailable(reason));
    }

    /// Whether `fail_switches` is in effect.
    pub fn switches_failed(&self) -> Option<String> {
        self.failure().clone()
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.switch_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the switches in force exactly the stored ones updated with
    /// `shared` (the cluster's), under one lock and one publish; on success
    /// a failure recorded by `fail_switches` is cleared. The first end
    /// recorded for a switch stands.
    pub fn resync_switches(&self, shared: &[Switch], now: SystemTime) -> Result<(), ControlError> {
        let _guard = self.lock();
        for switch in shared {
            match self.store.switch(&switch.id)? {
                Some(stored) if stored == *switch || stored.ended.is_some() => {}
                _ => {
                    self.store.stage_switch(switch)?;
                }
            }
        }
        self.store.flush()?;
        let index = load(&self.store, &self.config);
        if let Some(reason) = index.unavailable_reason() {
            return Err(ControlError::FailedPrecondition(format!(
                "the stored kill switches cannot be read: {reason}"
            )));
        }
        let index = self.overlaid(Arc::new(index));
        {
            let mut failure = self.failure();
            *failure = None;
            self.switches.publish_arc(index.clone());
        }
        self.publish_switch_data(&index, now);
        Ok(())
    }

    /// The published kill switches, shared with the decision plane.
    pub fn kill_switches(&self) -> Arc<KillSwitches> {
        self.switches.clone()
    }

    /// The switch an engage request describes, validated and given its id,
    /// not yet in force (in a cluster it is written to etcd first).
    pub fn prepare_engage(
        &self,
        request: EngageSpec,
        now: SystemTime,
    ) -> Result<Switch, ControlError> {
        let valid = spec::validate_engage(request, self.config.max_id_bytes, now)?;
        self.available_switches()?;
        Ok(Switch {
            id: valid
                .id
                .unwrap_or_else(|| format!("ks-{}", uuid::Uuid::now_v7())),
            scope: valid.scope,
            mode: valid.mode,
            reason: valid.reason,
            engaged_by: valid.engaged_by,
            engaged_at_ms: unix_ms(now),
            expires_at_ms: valid.expires_at_ms,
            ended: None,
        })
    }

    /// Makes `switch` (engaged, or ended) what this replica enforces under
    /// its id: durable and in force, or out of force, when this returns.
    /// An ended switch never comes back: a record of its engagement that
    /// arrives after its release (replicas apply changes as they hear of
    /// them) changes nothing. Returns whether anything changed.
    pub fn apply_switch(&self, switch: &Switch, now: SystemTime) -> Result<bool, ControlError> {
        let _guard = self.lock();
        self.apply_switch_locked(switch, now)
    }

    fn apply_switch_locked(&self, switch: &Switch, now: SystemTime) -> Result<bool, ControlError> {
        let current = self.available_switches()?;
        let stored = self.store.switch(&switch.id)?;
        match &stored {
            Some(stored) if stored == switch => return Ok(false),
            // The first end recorded stands.
            Some(stored) if stored.ended.is_some() => return Ok(false),
            _ => {}
        }
        let kept = current
            .switches()
            .iter()
            .filter(|s| s.id != switch.id)
            .cloned();
        let next = match switch.ended {
            None => SwitchIndex::build(
                kept.chain([Arc::new(switch.clone())]),
                self.config.read_verbs.clone(),
                self.config.session_path.clone(),
            ),
            Some(_) => SwitchIndex::build(
                kept,
                self.config.read_verbs.clone(),
                self.config.session_path.clone(),
            ),
        };
        self.commit_switch(switch, &current, next, now)?;
        Ok(true)
    }

    /// Engages a switch; it is durable and in force when this returns.
    pub fn engage(&self, request: EngageSpec, now: SystemTime) -> Result<Engaged, ControlError> {
        let switch = self.prepare_engage(request, now)?;
        self.engage_prepared(switch, now)
    }

    /// Engages a switch `prepare_engage` made; an id already engaged with
    /// the same scope and mode is that switch, left as it is.
    pub fn engage_prepared(
        &self,
        switch: Switch,
        now: SystemTime,
    ) -> Result<Engaged, ControlError> {
        let _guard = self.lock();
        if let Some(existing) = self.store.switch(&switch.id)? {
            return Ok(Engaged {
                switch: already_engaged(existing, &switch, now)?,
                already: true,
            });
        }
        self.apply_switch_locked(&switch, now)?;
        info!(
            target: "warden::audit",
            event = "kill_switch.engaged",
            id = switch.id,
            scope = ?switch.scope,
            mode = switch.mode.as_str(),
            reason = switch.reason,
            engaged_by = switch.engaged_by,
            expires_at = switch.expires_at_ms.map(rfc3339_ms),
            "kill switch engaged"
        );
        Ok(Engaged {
            switch,
            already: false,
        })
    }

    /// Releases an engaged switch; durable and out of force when this
    /// returns.
    pub fn release(
        &self,
        id: &str,
        reason: String,
        released_by: String,
        now: SystemTime,
    ) -> Result<Switch, ControlError> {
        // Under the lock from check to commit, so that of two concurrent
        // releases the second is told the switch is already released.
        let _guard = self.lock();
        let released = self.prepare_release(id, reason, released_by, now)?;
        self.apply_switch_locked(&released, now)?;
        info!(
            target: "warden::audit",
            event = "kill_switch.released",
            id,
            released_by = released.ended.as_ref().map(|e| e.by.as_str()),
            reason = released.ended.as_ref().map(|e| e.reason.as_str()),
            "kill switch released"
        );
        Ok(released)
    }

    /// The released record of an engaged switch, validated, not yet applied.
    pub fn prepare_release(
        &self,
        id: &str,
        reason: String,
        released_by: String,
        now: SystemTime,
    ) -> Result<Switch, ControlError> {
        if id.is_empty() {
            return Err(invalid("id", "is required"));
        }
        let reason = spec::text_field("reason", reason, true)?;
        let released_by = spec::text_field("released_by", released_by, false)?;
        let current = self.available_switches()?;
        let now_ms = unix_ms(now);
        let Some(engaged) = current.switches().iter().find(|s| s.id == id) else {
            return match self.store.switches()?.into_iter().find(|s| s.id == id) {
                Some(Switch {
                    ended: Some(ended), ..
                }) => Err(ControlError::FailedPrecondition(format!(
                    "kill switch `{id}` already {} at {}",
                    end_word(ended.kind),
                    rfc3339_ms(ended.at_ms)
                ))),
                _ => Err(ControlError::NotFound(format!(
                    "no kill switch has id `{id}`"
                ))),
            };
        };
        if !engaged.in_force(now_ms) {
            return Err(ControlError::FailedPrecondition(format!(
                "kill switch `{id}` already expired at {}",
                engaged.expires_at_ms.map(rfc3339_ms).unwrap_or_default()
            )));
        }
        let mut released = engaged.as_ref().clone();
        released.ended = Some(Ended {
            kind: EndKind::Released,
            at_ms: now_ms,
            by: released_by,
            reason,
        });
        Ok(released)
    }

    /// Records the expiry of every switch whose `expires_at` has passed.
    /// Checks stop matching them at `expires_at` whether or not this has run;
    /// this makes the expiry durable, audited, and visible to policies.
    pub fn expire_due(&self, now: SystemTime) -> Result<Vec<Switch>, ControlError> {
        let now_ms = unix_ms(now);
        let current = self.switches.current();
        if current.unavailable_reason().is_some()
            || current.next_expiry_ms().is_none_or(|at| at > now_ms)
        {
            return Ok(Vec::new());
        }
        let _guard = self.lock();
        let current = self.switches.current();
        let (due, keep): (Vec<_>, Vec<_>) = current
            .switches()
            .iter()
            .cloned()
            .partition(|s| !s.in_force(now_ms));
        let mut recorded = Vec::with_capacity(due.len());
        for switch in &due {
            let mut expired = switch.as_ref().clone();
            let at_ms = switch.expires_at_ms.unwrap_or(now_ms);
            expired.ended = Some(Ended {
                kind: EndKind::Expired,
                at_ms,
                by: String::new(),
                reason: String::new(),
            });
            self.store.put_switch(&expired)?;
            recorded.push(expired);
            info!(
                target: "warden::audit",
                event = "kill_switch.expired",
                id = switch.id,
                expired_at = rfc3339_ms(at_ms),
                "kill switch expired"
            );
        }
        if !due.is_empty() {
            self.publish_switches(
                SwitchIndex::build(
                    keep,
                    self.config.read_verbs.clone(),
                    self.config.session_path.clone(),
                ),
                now,
            );
        }
        Ok(recorded)
    }

    /// The switches in force at `now`, and the `ended_limit` most recently
    /// ended.
    pub fn list_switches(
        &self,
        ended_limit: usize,
        now: SystemTime,
    ) -> Result<SwitchList, ControlError> {
        let now_ms = unix_ms(now);
        let mut list = SwitchList::default();
        for mut switch in self.store.switches()? {
            if switch.in_force(now_ms) {
                list.active.push(switch);
            } else {
                if switch.ended.is_none() {
                    // Past its expiry, not yet recorded by the expiry task.
                    switch.ended = Some(Ended {
                        kind: EndKind::Expired,
                        at_ms: switch.expires_at_ms.unwrap_or(now_ms),
                        by: String::new(),
                        reason: String::new(),
                    });
                }
                list.ended.push(switch);
            }
        }
        list.active.sort_by(|a, b| a.id.cmp(&b.id));
        list.ended
            .sort_by_key(|s| std::cmp::Reverse(s.ended.as_ref().map_or(0, |e| e.at_ms)));
        list.ended.truncate(ended_limit);
        Ok(list)
    }

    /// The current index, unless the switch state is unknown: then no
    /// change can be made safely.
    fn available_switches(&self) -> Result<Arc<SwitchIndex>, ControlError> {
        let current = self.switches.current();
        match current.unavailable_reason() {
            Some(reason) => Err(ControlError::FailedPrecondition(format!(
                "the kill switch state could not be read ({reason}); every check is denied until the store is repaired"
            ))),
            None => Ok(current),
        }
    }

    /// Writes `record`, publishes `next` for checks, makes the record
    /// durable, then shows `next` to policies. On failure, `previous` is
    /// published again and the record restored.
    fn commit_switch(
        &self,
        record: &Switch,
        previous: &Arc<SwitchIndex>,
        next: SwitchIndex,
        now: SystemTime,
    ) -> Result<(), ControlError> {
        let replaced = self.store.stage_switch(record)?;
        let next = self.overlaid(Arc::new(next));
        self.publish_for_checks(next.clone());
        if let Err(e) = self.store.flush() {
            self.publish_for_checks(previous.clone());
            if let Err(undo) = self.store.unstage_switch(&record.id, replaced) {
                error!(id = record.id, error = %undo, "cannot undo a kill switch change whose flush failed");
            }
            return Err(e.into());
        }
        self.publish_switch_data(&next, now);
        Ok(())
    }

    /// Publishes `index` for checks, then the policies' view of it.
    pub(super) fn publish_switches(&self, index: SwitchIndex, now: SystemTime) {
        let index = self.overlaid(Arc::new(index));
        self.publish_for_checks(index.clone());
        self.publish_switch_data(&index, now);
    }

    /// Publishes `index` for checks, unless a failed switch is pending:
    /// then the denial stays.
    fn publish_for_checks(&self, index: Arc<SwitchIndex>) {
        match &*self.failure() {
            None => self.switches.publish_arc(index),
            Some(reason) => self
                .switches
                .publish(SwitchIndex::unavailable(reason.clone())),
        }
    }

    /// Rebinds the active (and shadow) policy with `data.killswitch` showing
    /// `index`. A failure here leaves the previous view in place; the denial
    /// itself is already in force.
    pub(super) fn publish_switch_data(&self, index: &SwitchIndex, now: SystemTime) {
        let current = self.generations.current();
        let document = kill_switch_document(index.in_force(unix_ms(now)).map(Arc::as_ref));
        let next = Generation::build_with_switches(
            self.generations.next_id(),
            current.policy.clone(),
            current.identity.clone(),
            current.entitlements.clone(),
            current.max_age,
            document,
        )
        .and_then(|g| g.with_shadow(current.shadow_policy()));
        match next {
            Ok(next) => self.generations.publish(next),
            Err(e) => warn!(error = %e, "cannot show the kill switches to the policy"),
        }
    }
}

fn end_word(kind: EndKind) -> &'static str {
    match kind {
        EndKind::Released => "released",
        EndKind::Expired => "expired",
    }
}
