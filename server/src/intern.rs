//! Parsing JSON straight into regorus values with every string interned.
//!
//! Snapshots repeat the same strings endlessly — action patterns, group
//! names, departments, resource types — and the same short lists (a grant's
//! `["documents.*"]`, a user's groups); regorus gives each its own
//! allocation. Sharing one allocation per distinct string and per distinct
//! short list of scalars keeps a snapshot of a million grants a fraction of
//! the size it would otherwise be. Values are immutable once parsed, so the
//! sharing is invisible to policies.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use regorus::{Rc, Value};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Parses `bytes` as JSON into a value whose equal strings share storage.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut table = Table::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Seed { table: &mut table }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Lists longer than this are rarely repeated; they are not looked up.
const SHARED_LIST_MAX: usize = 8;

#[derive(Default)]
struct Table {
    strings: HashSet<Rc<str>>,
    lists: BTreeMap<Vec<Value>, Value>,
}

struct Seed<'t> {
    table: &'t mut Table,
}

impl Seed<'_> {
    fn intern(&mut self, s: &str) -> Value {
        match self.table.strings.get(s) {
            Some(shared) => Value::String(shared.clone()),
            None => {
                let shared: Rc<str> = Rc::from(s);
                self.table.strings.insert(shared.clone());
                Value::String(shared)
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        Ok(self.intern(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Seed {
            table: &mut *self.table,
        })? {
            items.push(item);
        }
        let scalars = items.len() <= SHARED_LIST_MAX
            && items.iter().all(|v| {
                matches!(
                    v,
                    Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
                )
            });
        if !scalars {
            return Ok(Value::from(items));
        }
        if let Some(shared) = self.table.lists.get(&items) {
            return Ok(shared.clone());
        }
        let list = Value::from(items.clone());
        self.table.lists.insert(items, list.clone());
        Ok(list)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let key = self.intern(&key);
            let value = map.next_value_seed(Seed {
                table: &mut *self.table,
            })?;
            fields.insert(key, value);
        }
        // A BTreeMap becomes regorus's compact, frozen object storage.
        Ok(Value::from(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn equals_regorus_own_parsing() {
        let json = br#"{"a": [1, -2, 3.5, "x", "x", null, true], "b": {"x": "x", "": {}}, "c": 18446744073709551615}"#;
        assert_eq!(
            parse(json).unwrap(),
            regorus::Value::from_json_str(std::str::from_utf8(json).unwrap()).unwrap()
        );
        assert!(parse(b"{").is_err());
        assert!(parse(b"{} {}").is_err());
    }
}
