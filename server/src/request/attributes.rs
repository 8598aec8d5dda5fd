//! `google.protobuf.Struct` to JSON, checked on the way.

use prost_types::{ListValue, Struct, Value as ProtoValue, value::Kind};
use serde_json::{Map, Number, Value as Json};

use super::validate::InvalidRequest;

/// Integers up to 2^53 are exact in an `f64`; within that range an integral
/// number is written as a JSON integer, so that `3` arrives as `3` and not
/// `3.0`, the way every JSON client would have sent it.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Converts a Struct into a JSON object, refusing non-finite numbers, values
/// without a kind, and nesting deeper than `max_depth`.
///
/// `field` names the Struct in errors (`agent.attributes`); the path inside it
/// is appended (`agent.attributes.tags[2]`).
pub fn struct_to_json(
    value: &Struct,
    field: &str,
    max_depth: usize,
) -> Result<Map<String, Json>, InvalidRequest> {
    let mut path = Vec::new();
    object(value, max_depth, &mut path).map_err(|reason| {
        let mut name = field.to_owned();
        // Segments were pushed while unwinding, innermost first.
        for segment in path.iter().rev() {
            match segment {
                Segment::Key(key) => {
                    name.push('.');
                    name.push_str(key);
                }
                Segment::Index(index) => {
                    name.push('[');
                    name.push_str(&index.to_string());
                    name.push(']');
                }
            }
        }
        InvalidRequest::new(name, reason)
    })
}

/// The way from the Struct's root to a bad value, built only when one is
/// found: the hot path allocates nothing for it.
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn object<'a>(
    value: &'a Struct,
    depth_left: usize,
    path: &mut Vec<Segment<'a>>,
) -> Result<Map<String, Json>, &'static str> {
    let mut out = Map::with_capacity(value.fields.len());
    for (key, item) in &value.fields {
        match json(item, depth_left, path) {
            Ok(converted) => {
                out.insert(key.clone(), converted);
            }
            Err(reason) => {
                path.push(Segment::Key(key));
                return Err(reason);
            }
        }
    }
    Ok(out)
}

fn list<'a>(
    value: &'a ListValue,
    depth_left: usize,
    path: &mut Vec<Segment<'a>>,
) -> Result<Vec<Json>, &'static str> {
    let mut out = Vec::with_capacity(value.values.len());
    for (index, item) in value.values.iter().enumerate() {
        match json(item, depth_left, path) {
            Ok(converted) => out.push(converted),
            Err(reason) => {
                path.push(Segment::Index(index));
                return Err(reason);
            }
        }
    }
    Ok(out)
}

fn json<'a>(
    value: &'a ProtoValue,
    depth_left: usize,
    path: &mut Vec<Segment<'a>>,
) -> Result<Json, &'static str> {
    Ok(match &value.kind {
        None => return Err("value has no kind"),
        Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::NumberValue(n)) => Json::Number(number(*n)?),
        Some(Kind::StructValue(s)) => {
            let depth_left = depth_left.checked_sub(1).ok_or("nested too deeply")?;
            Json::Object(object(s, depth_left, path)?)
        }
        Some(Kind::ListValue(l)) => {
            let depth_left = depth_left.checked_sub(1).ok_or("nested too deeply")?;
            Json::Array(list(l, depth_left, path)?)
        }
    })
}

fn number(n: f64) -> Result<Number, &'static str> {
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INTEGER {
        // INVARIANT: integral and within ±2^53, so the cast is exact.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "n is integral and within ±2^53"
        )]
        return Ok(Number::from(n as i64));
    }
    Number::from_f64(n).ok_or("number must be finite")
}
