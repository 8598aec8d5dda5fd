//! JSON to `google.protobuf.Struct`, for clients that build attributes from
//! JSON. (The server converts the other way, with validation.)

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Value as Json};

/// A JSON object as a Struct.
pub fn to_struct(fields: Map<String, Json>) -> Struct {
    Struct {
        fields: fields.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

/// A JSON value as a protobuf Value. Numbers become `f64`, as the Struct
/// format requires; integers beyond ±2^53 lose precision.
pub fn to_value(value: Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        Json::Object(fields) => Kind::StructValue(to_struct(fields)),
    };
    Value { kind: Some(kind) }
}
