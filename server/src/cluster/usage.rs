//! Publishing this replica's limit usage: every
//! `limits.usage_publish_interval` its `Publication` is written to
//! `{prefix}/limit_usage/{replica}`, which the other replicas' watches
//! apply (`control::LimitUsageRecords`). The write is an unconditional put
//! on its own timer, off the check path: only this replica writes that key,
//! so there is nothing to compare against, and the audit path is not for
//! state that changes four times a second.
//!
//! Without etcd the publication is skipped: this replica goes on enforcing
//! against its own usage plus the last it heard from the others, and the
//! next write after etcd is back carries everything (a publication is the
//! whole usage, not a delta).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::Cluster;
use crate::control::LIMIT_USAGE;
use crate::killswitch::unix_ms;
use crate::limits::UsageLimits;
use crate::limits::persist::Saved;
use crate::limits::publish::Publication;

/// How often an unchanged, non-empty publication is written again: a
/// replica that dropped it (a `ResetLimitKey` there, an etcd restored
/// without it) counts it again within this.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The most a publication may take in etcd: below its default request
/// limit (1.5 MiB), with room for the request around it.
const MAX_PUBLICATION_BYTES: usize = 1024 * 1024;

impl Cluster {
    /// Publishes `limits`' usage every interval until `stop`.
    pub fn spawn_usage_publisher(
        self: &Arc<Self>,
        limits: Arc<UsageLimits>,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(self.clone(), limits, stop))
    }
}

async fn run(cluster: Arc<Cluster>, limits: Arc<UsageLimits>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(limits.config().publish_interval);
    // After a slow write, the next publication a full interval later: a
    // burst of catch-up writes would carry the same usage.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let key = cluster.keys.record(LIMIT_USAGE, &cluster.replica);
    // The keys last written and when; `None` until a write succeeds.
    let mut written: Option<(Vec<Saved>, Instant)> = None;
    let mut unreachable = false;
    let mut trimmed = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        // Reading every key locks each counter shard in turn: on a blocking
        // thread, so that a large table does not hold up the runtime.
        let (reader, replica) = (limits.clone(), cluster.replica.clone());
        let publication = match tokio::task::spawn_blocking(move || {
            reader.publication(&replica, unix_ms(SystemTime::now()))
        })
        .await
        {
            Ok(publication) => publication,
            Err(e) => {
                debug!(error = %e, "limits: usage not read for publishing");
                continue;
            }
        };
        // The same usage again (an idle replica, most often none at all)
        // would change nothing on the others: windows are epoch-aligned
        // buckets, so an old publication expires there as it does here.
        if let Some((keys, at)) = &written
            && *keys == publication.keys
            && (keys.is_empty() || at.elapsed() < REFRESH_EVERY)
        {
            continue;
        }
        let (value, kept) = encode(&publication);
        if value.is_empty() {
            // Not JSON-encodable (it always is): an empty value would only
            // be skipped as unreadable by every other replica.
            debug!("limits: usage could not be encoded for publishing");
            continue;
        }
        match (kept < publication.keys.len(), trimmed) {
            (true, false) => warn!(
                keys = publication.keys.len(),
                published = kept,
                "limits: usage is too large to publish in one etcd value; publishing the most \
                 used keys only (the others are not counted by the other replicas)"
            ),
            (false, true) => info!("limits: usage fits in one etcd value again"),
            _ => {}
        }
        trimmed = kept < publication.keys.len();
        match cluster.etcd.put(&key, value).await {
            Ok(_) => {
                if unreachable {
                    debug!("limits: usage published again");
                    unreachable = false;
                }
                written = Some((publication.keys, Instant::now()));
            }
            // The sync loop reports etcd's loss (status, readiness, logs);
            // once per outage here, at debug level.
            Err(e) => {
                if !unreachable {
                    debug!(error = %e, "limits: usage not published; etcd is out of reach");
                    unreachable = true;
                }
            }
        }
    }
}

/// The publication as JSON, with as many keys as fit in
/// `MAX_PUBLICATION_BYTES`, the most used first; and how many it holds.
fn encode(publication: &Publication) -> (Vec<u8>, usize) {
    let whole = serde_json::to_vec(publication).unwrap_or_default();
    if whole.len() <= MAX_PUBLICATION_BYTES {
        return (whole, publication.keys.len());
    }
    let used = |saved: &Saved| {
        saved
            .b
            .iter()
            .map(|(_, n)| *n)
            .fold(0u64, u64::saturating_add)
    };
    let mut keys: Vec<&Saved> = publication.keys.iter().collect();
    keys.sort_by_key(|saved| std::cmp::Reverse(used(saved)));
    let envelope = serde_json::to_vec(&Publication {
        keys: Vec::new(),
        ..publication.clone()
    })
    .map_or(0, |v| v.len());
    let mut room = MAX_PUBLICATION_BYTES.saturating_sub(envelope);
    let mut kept = Vec::new();
    for saved in keys {
        // Its JSON and the comma before it.
        let size = serde_json::to_vec(saved).map_or(usize::MAX, |v| v.len().saturating_add(1));
        if size > room {
            break;
        }
        room -= size;
        kept.push(saved.clone());
    }
    let count = kept.len();
    let trimmed = Publication {
        replica: publication.replica.clone(),
        at_ms: publication.at_ms,
        keys: kept,
    };
    (serde_json::to_vec(&trimmed).unwrap_or_default(), count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64, used: u64) -> Saved {
        Saved {
            k: format!("rule\u{1f}agent-{n:08}"),
            t: 0,
            f: 7,
            w: 180_000,
            b: vec![(n, used)],
            fired: None,
        }
    }

    #[test]
    fn a_publication_too_large_for_etcd_keeps_the_most_used_keys_that_fit() {
        let small = Publication {
            replica: "r1".into(),
            at_ms: 1,
            keys: (0..10).map(|n| key(n, n)).collect(),
        };
        assert_eq!(encode(&small).1, 10);

        let large = Publication {
            replica: "r1".into(),
            at_ms: 1,
            keys: (0..40_000).map(|n| key(n, n % 1000)).collect(),
        };
        let (value, kept) = encode(&large);
        assert!(value.len() <= MAX_PUBLICATION_BYTES, "{}", value.len());
        assert!(kept > 1000 && kept < 40_000, "{kept}");
        let decoded: Publication = serde_json::from_slice(&value).unwrap();
        assert_eq!(decoded.keys.len(), kept);
        let least_kept = decoded.keys.iter().map(|s| s.b[0].1).min().unwrap();
        let published: std::collections::HashSet<&str> =
            decoded.keys.iter().map(|s| s.k.as_str()).collect();
        let most_dropped = large
            .keys
            .iter()
            .filter(|s| !published.contains(s.k.as_str()))
            .map(|s| s.b[0].1)
            .max()
            .unwrap();
        assert!(least_kept >= most_dropped);
    }
}
