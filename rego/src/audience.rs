//! `warden.audience_gaps`: who in an audience may not read a resource.
//!
//! The definition is the naive one (expand every group, test every member's
//! entitlements the way the default policy tests the principal's); this
//! module gets the same answer from an index built once per identity and
//! entitlement document, so an audience of a 20,000-member group costs a few
//! passes over bitsets instead of 20,000 entitlement lookups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use regorus::{Rc, Value};

/// How many lacking members an answer names; the count covers all of them.
pub const SAMPLE: usize = 10;

/// Most (type, action) pairs whose "every resource" readers are cached per
/// index; beyond it they are computed per call, so the cache stays bounded
/// whatever the callers ask for.
const STAR_CACHE_ENTRIES: usize = 256;

/// A fixed set of users, one bit each, in user-id order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(users: usize) -> Self {
        Bits(vec![0; users.div_ceil(64)])
    }

    fn set(&mut self, user: u32) {
        let user = user as usize;
        if let Some(word) = self.0.get_mut(user / 64) {
            *word |= 1 << (user % 64);
        }
    }

    fn or(&mut self, other: &Bits) {
        for (word, other) in self.0.iter_mut().zip(&other.0) {
            *word |= other;
        }
    }
}

/// A group's members: a sorted list, or a bitset once that is smaller.
#[derive(Debug, Clone)]
enum Members {
    Sparse(Vec<u32>),
    Dense(Bits),
}

impl Members {
    fn add_to(&self, bits: &mut Bits) {
        match self {
            Members::Sparse(users) => users.iter().for_each(|&user| bits.set(user)),
            Members::Dense(dense) => bits.or(dense),
        }
    }
}

/// Who holds a grant: a user, or a group (by index into `members`).
#[derive(Debug, Clone, Copy)]
enum Holder {
    User(u32),
    Group(usize),
}

type Grants = Vec<(Holder, Vec<Rc<str>>)>;

/// Readers of every resource of a type, per (type, action).
type EveryReaders = HashMap<(Rc<str>, Rc<str>), Arc<Bits>>;

/// Grants on one resource type: on every resource (`*`) and per resource id.
#[derive(Debug, Default)]
struct TypeGrants {
    every: Grants,
    by_id: HashMap<Rc<str>, Grants>,
}

/// Users, groups and grants, indexed for audience questions.
#[derive(Debug)]
pub struct AudienceIndex {
    users: HashMap<Rc<str>, u32>,
    /// User ids by index, sorted.
    ids: Vec<Rc<str>>,
    groups: HashMap<Rc<str>, usize>,
    members: Vec<Members>,
    grants: HashMap<Rc<str>, TypeGrants>,
    every_readers: Mutex<EveryReaders>,
}

/// The answer for one audience: how many distinct members it has, how many
/// of them lack access, and the first few of those (as `user:ID`, sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gaps {
    pub members: usize,
    pub lacking_count: usize,
    pub lacking: Vec<String>,
}

impl Gaps {
    pub fn to_value(&self) -> Value {
        let mut object = std::collections::BTreeMap::new();
        object.insert(Value::from("members"), Value::from(self.members));
        object.insert(
            Value::from("lacking_count"),
            Value::from(self.lacking_count),
        );
        object.insert(
            Value::from("lacking"),
            Value::from(
                self.lacking
                    .iter()
                    .map(|id| Value::from(id.as_str()))
                    .collect::<Vec<_>>(),
            ),
        );
        Value::from(object)
    }
}

fn strings(value: &Value) -> Vec<&Rc<str>> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Set(items) => items.iter().collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn entries(value: &Value) -> Vec<(&Rc<str>, &Value)> {
    match value {
        Value::Object(object) => object
            .iter()
            .filter_map(|(key, value)| match key {
                Value::String(key) => Some((key, value)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Every pattern that matches `action`, as the default policy's
/// `action_patterns` computes them: the name, `*`, each dotted prefix with
/// `.*`, and `*.` with each dotted suffix.
pub fn action_patterns(action: &str) -> Vec<String> {
    let parts: Vec<&str> = action.split('.').collect();
    let mut patterns = vec![action.to_owned(), "*".to_owned()];
    for i in 1..parts.len() {
        patterns.push(format!("{}.*", parts[..i].join(".")));
        patterns.push(format!("*.{}", parts[i..].join(".")));
    }
    patterns
}

impl AudienceIndex {
    /// Indexes `identity` (`data.identity`) and `entitlements`
    /// (`data.entitlements`). Members of a shape the snapshots never have
    /// are skipped: the Rego definition finds nothing there either.
    pub fn build(identity: &Value, entitlements: &Value) -> Self {
        let user_docs = entries(&identity["users"]);
        let mut ids: Vec<Rc<str>> = user_docs.iter().map(|(id, _)| (*id).clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let users: HashMap<Rc<str>, u32> = ids
            .iter()
            .zip(0u32..)
            .map(|(id, i)| (id.clone(), i))
            .collect();

        let mut lists: HashMap<Rc<str>, Vec<u32>> = HashMap::new();
        for (id, doc) in &user_docs {
            let Some(&user) = users.get(id.as_ref()) else {
                continue;
            };
            for group in strings(&doc["groups"]) {
                lists.entry(group.clone()).or_default().push(user);
            }
        }
        let dense_from = ids.len() / 32;
        let mut groups = HashMap::with_capacity(lists.len());
        let mut members = Vec::with_capacity(lists.len());
        for (group, mut list) in lists {
            list.sort_unstable();
            list.dedup();
            let set = if dense_from > 0 && list.len() > dense_from {
                let mut bits = Bits::new(ids.len());
                list.iter().for_each(|&user| bits.set(user));
                Members::Dense(bits)
            } else {
                Members::Sparse(list)
            };
            groups.insert(group, members.len());
            members.push(set);
        }

        let mut grants: HashMap<Rc<str>, TypeGrants> = HashMap::new();
        for (subject, types) in entries(&entitlements["subjects"]) {
            // Holders no audience member can be (unknown users, groups no
            // user belongs to, other subject kinds) entitle nobody here.
            let holder = if let Some(id) = subject.strip_prefix("user:") {
                users.get(id).map(|&user| Holder::User(user))
            } else if let Some(group) = subject.strip_prefix("group:") {
                groups.get(group).map(|&group| Holder::Group(group))
            } else {
                None
            };
            let Some(holder) = holder else { continue };
            for (kind, resources) in entries(types) {
                for (resource, patterns) in entries(resources) {
                    let patterns: Vec<Rc<str>> = strings(patterns).into_iter().cloned().collect();
                    if patterns.is_empty() {
                        continue;
                    }
                    let by_type = grants.entry(kind.clone()).or_default();
                    if resource.as_ref() == "*" {
                        by_type.every.push((holder, patterns));
                    } else {
                        by_type
                            .by_id
                            .entry(resource.clone())
                            .or_default()
                            .push((holder, patterns));
                    }
                }
            }
        }
        Self {
            users,
            ids,
            groups,
            members,
            grants,
            every_readers: Mutex::new(HashMap::new()),
        }
    }

    /// Users in the index.
    pub fn users(&self) -> usize {
        self.ids.len()
    }

    /// Bytes the index holds, roughly: what a generation pays for it.
    pub fn approximate_bytes(&self) -> usize {
        let words = |bits: &Bits| bits.0.len() * 8;
        let members: usize = self
            .members
            .iter()
            .map(|m| match m {
                Members::Sparse(list) => list.len() * 4,
                Members::Dense(bits) => words(bits),
            })
            .sum();
        let grants: usize = self
            .grants
            .values()
            .map(|g| {
                (g.every.len() + g.by_id.values().map(Vec::len).sum::<usize>()) * 48
                    + g.by_id.len() * 48
            })
            .sum();
        let cached: usize = match self.every_readers.lock() {
            Ok(cache) => cache.values().map(|bits| words(bits)).sum(),
            Err(_) => 0,
        };
        self.ids.len() * 48 + self.groups.len() * 48 + members + grants + cached
    }

    fn add_holders(&self, bits: &mut Bits, grants: &Grants, patterns: &[String]) -> bool {
        let mut any = false;
        for (holder, granted) in grants {
            if !granted
                .iter()
                .any(|p| patterns.iter().any(|q| q.as_str() == p.as_ref()))
            {
                continue;
            }
            any = true;
            match *holder {
                Holder::User(user) => bits.set(user),
                Holder::Group(group) => {
                    if let Some(members) = self.members.get(group) {
                        members.add_to(bits);
                    }
                }
            }
        }
        any
    }

    /// Users entitled to `action` on every resource of `kind`.
    fn every_readers(&self, kind: &str, action: &str, patterns: &[String]) -> Arc<Bits> {
        let key: (Rc<str>, Rc<str>) = (kind.into(), action.into());
        if let Ok(cache) = self.every_readers.lock()
            && let Some(bits) = cache.get(&key)
        {
            return bits.clone();
        }
        let mut bits = Bits::new(self.ids.len());
        if let Some(grants) = self.grants.get(kind) {
            self.add_holders(&mut bits, &grants.every, patterns);
        }
        let bits = Arc::new(bits);
        if let Ok(mut cache) = self.every_readers.lock()
            && cache.len() < STAR_CACHE_ENTRIES
        {
            cache.insert(key, bits.clone());
        }
        bits
    }

    /// Who in `audience` (entries `user:ID` and `group:ID`; others are not
    /// members) may not take `action` on `resource` (`{type, id}`).
    pub fn gaps(&self, audience: &Value, resource: &Value, action: &str) -> Gaps {
        let mut audience_bits = Bits::new(self.ids.len());
        for entry in strings(audience) {
            if let Some(id) = entry.strip_prefix("user:") {
                if let Some(&user) = self.users.get(id) {
                    audience_bits.set(user);
                }
            } else if let Some(group) = entry.strip_prefix("group:")
                && let Some(members) = self.groups.get(group).and_then(|&g| self.members.get(g))
            {
                members.add_to(&mut audience_bits);
            }
        }

        let patterns = action_patterns(action);
        let Value::String(kind) = &resource["type"] else {
            return self.report(&audience_bits, &Bits::new(self.ids.len()));
        };
        let every = self.every_readers(kind, action, &patterns);
        let by_id = match (&resource["id"], self.grants.get(kind.as_ref())) {
            (Value::String(id), Some(grants)) => grants.by_id.get(id.as_ref()),
            _ => None,
        };
        match by_id {
            Some(grants) => {
                let mut readers = every.as_ref().clone();
                self.add_holders(&mut readers, grants, &patterns);
                self.report(&audience_bits, &readers)
            }
            None => self.report(&audience_bits, &every),
        }
    }

    fn report(&self, audience: &Bits, readers: &Bits) -> Gaps {
        let mut members = 0usize;
        let mut lacking_count = 0usize;
        let mut lacking = Vec::new();
        for (i, (&word, &read)) in audience.0.iter().zip(&readers.0).enumerate() {
            members += word.count_ones() as usize;
            let mut gap = word & !read;
            lacking_count += gap.count_ones() as usize;
            while gap != 0 && lacking.len() < SAMPLE {
                let bit = gap.trailing_zeros() as usize;
                gap &= gap - 1;
                if let Some(id) = self.ids.get(i * 64 + bit) {
                    lacking.push(format!("user:{id}"));
                }
            }
        }
        Gaps {
            members,
            lacking_count,
            lacking,
        }
    }
}
