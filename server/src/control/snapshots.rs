//! Snapshots: a pushed identity or entitlements document, checked to be
//! newer and to bind to the serving policies before it is served.

use std::sync::Arc;

use tracing::info;

use super::{Control, ControlError, HeavyTurn, invalid};
use crate::generation::Generation;
use crate::snapshot::{Snapshot, SnapshotKind};

impl Control {
    /// Replaces one snapshot; its version must be newer than the current one.
    pub fn put_snapshot(
        &self,
        kind: &str,
        document: Vec<u8>,
        _turn: &HeavyTurn,
    ) -> Result<Arc<Snapshot>, ControlError> {
        let snapshot = self.parse_snapshot(kind, &document)?;
        let _guard = self.lock();
        let (snapshot, next) = self.snapshot_successor(snapshot)?;
        self.store.put_snapshot(
            snapshot.kind,
            self.store.next_seq()?,
            &document,
            self.config.snapshot_keep,
        )?;
        self.generations.publish(next);
        info!(kind = %snapshot.kind, version = snapshot.version, "snapshot loaded");
        Ok(snapshot)
    }

    /// Whether `put_snapshot` would accept `document` now, without changing
    /// anything: in a cluster a snapshot is checked here before it is
    /// shared, and applied when it comes back from etcd.
    pub fn check_snapshot(
        &self,
        kind: &str,
        document: &[u8],
        _turn: &HeavyTurn,
    ) -> Result<Arc<Snapshot>, ControlError> {
        let snapshot = self.parse_snapshot(kind, document)?;
        let _guard = self.lock();
        self.snapshot_successor(snapshot)
            .map(|(snapshot, _)| snapshot)
    }

    pub(super) fn parse_snapshot(
        &self,
        kind: &str,
        document: &[u8],
    ) -> Result<Arc<Snapshot>, ControlError> {
        let kind = SnapshotKind::parse(kind).ok_or_else(|| {
            invalid(
                "kind",
                format!("`{kind}` is not a snapshot kind; expected `identity` or `entitlements`"),
            )
        })?;
        if document.is_empty() {
            return Err(invalid("document", "is required"));
        }
        Ok(Arc::new(
            Snapshot::parse(kind, document, self.config.max_id_bytes)
                .map_err(|e| invalid("document", e))?,
        ))
    }

    /// The generation serving `snapshot`, if it is newer than the current
    /// one of its kind and binds to the policy. Called under the lock.
    pub(super) fn snapshot_successor(
        &self,
        snapshot: Arc<Snapshot>,
    ) -> Result<(Arc<Snapshot>, Generation), ControlError> {
        let kind = snapshot.kind;
        let current = self.generations.current();
        let existing = current.snapshot(kind);
        if compare_versions(&snapshot.version, &existing.version) != std::cmp::Ordering::Greater {
            return Err(ControlError::FailedPrecondition(format!(
                "{kind} snapshot version `{}` is not newer than the current `{}`",
                snapshot.version, existing.version
            )));
        }
        let (identity, entitlements) = match kind {
            SnapshotKind::Identity => (snapshot.clone(), current.entitlements.clone()),
            SnapshotKind::Entitlements => (current.identity.clone(), snapshot.clone()),
        };
        let shadow = current.shadow_policy();
        let next = Generation::build_with_switches(
            self.generations.next_id(),
            current.policy.clone(),
            identity,
            entitlements,
            current.max_age,
            current.kill_switches.clone(),
        )
        .and_then(|g| g.with_shadow(shadow))
        .map_err(|e| invalid("document", e))?;
        Ok((snapshot, next))
    }
}

/// Orders snapshot versions naturally: runs of digits compare as numbers,
/// so `v10` is newer than `v9` and `2026-11-25.2` than `2026-11-25.1`.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let chunks = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, chunk)) if *d == digit => chunk.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    };
    let (a, b) = (chunks(a), chunks(b));
    for (x, y) in a.iter().zip(&b) {
        let order = match (x.0, y.0) {
            (true, true) => {
                let (xs, ys) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys))
            }
            _ => x.1.cmp(&y.1),
        };
        if order != std::cmp::Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::compare_versions;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_naturally() {
        assert_eq!(compare_versions("v10", "v9"), Greater);
        assert_eq!(compare_versions("2026-11-25.2", "2026-11-25.10"), Less);
        assert_eq!(compare_versions("7", "7"), Equal);
        assert_eq!(compare_versions("007", "7"), Equal);
        assert_eq!(compare_versions("a", "b"), Less);
        assert_eq!(compare_versions("identity-7-300", "identity-7-301"), Less);
        assert_eq!(compare_versions("1.2", "1.2.1"), Less);
    }
}
