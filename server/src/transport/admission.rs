//! Which connections a listener keeps when it is full.
//!
//! A socket that is merely open has proved nothing, so when the listener is
//! at `max_connections` (or a source address at its own share) a new
//! connection takes the place of the oldest one that has never carried an
//! admitted call, rather than being refused. Only when every connection in
//! the way has carried one is the newcomer refused. A flood of idle or
//! half-open sockets therefore cannot keep out callers with credentials:
//! it only evicts itself.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::auth::Proof;

/// A listener's connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    pub max_connections: usize,
    pub max_per_source: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The listener is at `max_connections` and every connection has
    /// carried an admitted call.
    Listener,
    /// The source address is at its share, all of them proven.
    Source,
}

/// A place taken for a newcomer: who was evicted for it, if anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evicted {
    None,
    /// The oldest unproven connection of the listener.
    Listener,
    /// The oldest unproven connection of the same source address.
    Source,
}

struct Entry {
    source: IpAddr,
    proof: Arc<Proof>,
    evict: Arc<Notify>,
}

#[derive(Default)]
struct Source {
    open: usize,
    /// Ids that had not carried a call when last looked at, oldest first.
    unproven: BTreeSet<u64>,
}

#[derive(Default)]
struct Inner {
    open: HashMap<u64, Entry>,
    unproven: BTreeSet<u64>,
    sources: HashMap<IpAddr, Source>,
}

impl Inner {
    /// Forgets `id`; false if it was already gone (evicted).
    fn remove(&mut self, id: u64) -> bool {
        let Some(entry) = self.open.remove(&id) else {
            return false;
        };
        self.unproven.remove(&id);
        if let Some(source) = self.sources.get_mut(&entry.source) {
            source.unproven.remove(&id);
            source.open = source.open.saturating_sub(1);
            if source.open == 0 {
                self.sources.remove(&entry.source);
            }
        }
        true
    }

    /// Evicts the oldest connection that has carried no admitted call,
    /// within `source` or the whole listener. Proven ones met on the way
    /// leave the candidate sets for good (a proof is never withdrawn), so
    /// each connection is looked at a bounded number of times.
    fn evict_oldest(&mut self, source: Option<IpAddr>) -> bool {
        loop {
            let candidate = match source {
                Some(ip) => self
                    .sources
                    .get(&ip)
                    .and_then(|s| s.unproven.first().copied()),
                None => self.unproven.first().copied(),
            };
            let Some(id) = candidate else {
                return false;
            };
            match self.open.get(&id) {
                Some(entry) if !entry.proof.is_proven() => {
                    let evict = entry.evict.clone();
                    self.remove(id);
                    evict.notify_one();
                    return true;
                }
                Some(entry) => {
                    let ip = entry.source;
                    self.unproven.remove(&id);
                    if let Some(source) = self.sources.get_mut(&ip) {
                        source.unproven.remove(&id);
                    }
                }
                // `remove` keeps the sets in step with `open`; this is only
                // a guard against looping forever.
                None => {
                    self.unproven.remove(&id);
                    if let Some(source) = source.and_then(|ip| self.sources.get_mut(&ip)) {
                        source.unproven.remove(&id);
                    }
                }
            }
        }
    }
}

/// One listener's open connections.
pub struct Admission {
    limits: AdmissionLimits,
    next: AtomicU64,
    inner: Mutex<Inner>,
}

/// A connection's place in the listener, given back when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    evict: Arc<Notify>,
}

impl Ticket {
    /// Resolves when a newcomer took this connection's place; the
    /// connection should then close at once.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.lock().remove(self.id);
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            next: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under this lock can panic halfway through a change; a
        // poisoned lock still holds consistent books.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// Takes a place for a connection from `source` whose calls will record
    /// on `proof`, evicting an unproven connection if the listener or the
    /// source is full.
    pub fn admit(
        self: &Arc<Self>,
        source: IpAddr,
        proof: Arc<Proof>,
    ) -> Result<(Ticket, Evicted), Full> {
        // An IPv4 client reaching a dual-stack socket is the same source as
        // it would be on an IPv4 one.
        let source = source.to_canonical();
        let mut inner = self.lock();
        let mut evicted = Evicted::None;
        let from_source = inner.sources.get(&source).map_or(0, |s| s.open);
        if from_source >= self.limits.max_per_source {
            if !inner.evict_oldest(Some(source)) {
                return Err(Full::Source);
            }
            evicted = Evicted::Source;
        }
        if inner.open.len() >= self.limits.max_connections {
            if !inner.evict_oldest(None) {
                return Err(Full::Listener);
            }
            evicted = Evicted::Listener;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        inner.open.insert(
            id,
            Entry {
                source,
                proof,
                evict: evict.clone(),
            },
        );
        inner.unproven.insert(id);
        let from = inner.sources.entry(source).or_default();
        from.open += 1;
        from.unproven.insert(id);
        drop(inner);
        Ok((
            Ticket {
                admission: self.clone(),
                id,
                evict,
            },
            evicted,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn limits(max_connections: usize, max_per_source: usize) -> Arc<Admission> {
        Admission::new(AdmissionLimits {
            max_connections,
            max_per_source,
        })
    }

    fn evicted_now(ticket: &Ticket) -> bool {
        futures::FutureExt::now_or_never(ticket.evicted()).is_some()
    }

    #[test]
    fn a_full_listener_evicts_its_oldest_unproven_connection() {
        let admission = limits(3, 10);
        let proven = Arc::new(Proof::default());
        let (a, _) = admission.admit(ip(1), proven.clone()).unwrap();
        proven.record();
        let (b, _) = admission.admit(ip(2), Arc::default()).unwrap();
        let (c, _) = admission.admit(ip(3), Arc::default()).unwrap();
        let (d, evicted) = admission.admit(ip(4), Arc::default()).unwrap();
        assert_eq!(evicted, Evicted::Listener);
        assert!(!evicted_now(&a), "a proven connection is never evicted");
        assert!(evicted_now(&b), "the oldest unproven one goes");
        assert!(!evicted_now(&c));
        assert_eq!(admission.open(), 3);
        drop(b);
        assert_eq!(
            admission.open(),
            3,
            "dropping an evicted ticket frees nothing twice"
        );
        drop((c, d));
        assert_eq!(admission.open(), 1);
    }

    #[test]
    fn a_listener_of_proven_connections_refuses_newcomers() {
        let admission = limits(2, 10);
        let mut held = Vec::new();
        for n in 0..2 {
            let proof = Arc::new(Proof::default());
            proof.record();
            held.push(admission.admit(ip(n), proof).map(|(t, _)| t));
        }
        assert!(matches!(
            admission.admit(ip(9), Arc::default()),
            Err(Full::Listener)
        ));
        assert_eq!(admission.open(), 2);
    }

    #[test]
    fn a_full_source_evicts_only_its_own() {
        let admission = limits(10, 2);
        let (other, _) = admission.admit(ip(2), Arc::default()).unwrap();
        let (first, _) = admission.admit(ip(1), Arc::default()).unwrap();
        let (_second, _) = admission.admit(ip(1), Arc::default()).unwrap();
        let (_third, evicted) = admission.admit(ip(1), Arc::default()).unwrap();
        assert_eq!(evicted, Evicted::Source);
        assert!(evicted_now(&first));
        assert!(!evicted_now(&other), "another source's connection stays");
        let proof = Arc::new(Proof::default());
        proof.record();
        let full = limits(10, 1);
        let _held = full.admit(ip(1), proof).map(|(t, _)| t);
        assert!(matches!(
            full.admit(ip(1), Arc::default()),
            Err(Full::Source)
        ));
        assert!(full.admit(ip(2), Arc::default()).is_ok());
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_source() {
        let admission = limits(10, 1);
        let proof = Arc::new(Proof::default());
        proof.record();
        let _held = admission.admit(ip(1), proof).map(|(t, _)| t);
        let mapped = match ip(1) {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            v6 => v6,
        };
        assert!(matches!(
            admission.admit(mapped, Arc::default()),
            Err(Full::Source)
        ));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Open(u8),
        Prove(usize),
        Close(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..4).prop_map(Step::Open),
            (0usize..64).prop_map(Step::Prove),
            (0usize..64).prop_map(Step::Close),
        ]
    }

    proptest! {
        /// Whatever the order of opens, proofs and closes: the limits hold,
        /// a proven connection is never evicted, and a newcomer is refused
        /// only when everything in its way is proven.
        #[test]
        fn the_books_balance(steps in proptest::collection::vec(step(), 1..200)) {
            let admission = limits(6, 3);
            let mut live: Vec<(Ticket, Arc<Proof>, IpAddr)> = Vec::new();
            for step in steps {
                match step {
                    Step::Open(n) => {
                        let proof = Arc::new(Proof::default());
                        match admission.admit(ip(n), proof.clone()) {
                            Ok((ticket, _)) => {
                                let gone: Vec<bool> =
                                    live.iter().map(|(t, _, _)| evicted_now(t)).collect();
                                for ((_, proof, _), gone) in live.iter().zip(&gone) {
                                    prop_assert!(!(*gone && proof.is_proven()));
                                }
                                let mut gone = gone.into_iter();
                                live.retain(|_| !gone.next().unwrap_or(false));
                                live.push((ticket, proof, ip(n)));
                            }
                            Err(Full::Source) => {
                                let mine = live.iter().filter(|(_, _, s)| *s == ip(n));
                                prop_assert!(mine.clone().count() >= 3);
                                prop_assert!(mine.into_iter().all(|(_, p, _)| p.is_proven()));
                            }
                            Err(Full::Listener) => {
                                prop_assert!(live.len() >= 6);
                                prop_assert!(live.iter().all(|(_, p, _)| p.is_proven()));
                            }
                        }
                    }
                    Step::Prove(i) => {
                        if let Some((_, proof, _)) = live.get(i % live.len().max(1)) {
                            proof.record();
                        }
                    }
                    Step::Close(i) => {
                        if !live.is_empty() {
                            live.remove(i % live.len());
                        }
                    }
                }
                prop_assert_eq!(admission.open(), live.len());
                prop_assert!(live.len() <= 6);
                for n in 0..4 {
                    prop_assert!(live.iter().filter(|(_, _, s)| *s == ip(n)).count() <= 3);
                }
            }
        }
    }
}
