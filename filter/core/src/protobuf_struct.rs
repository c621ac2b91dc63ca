//! Decoding Envoy's dynamic metadata from protobuf wire bytes into JSON.
//!
//! Envoy hands the whole dynamic metadata to a wasm filter
//! (`get_property(["metadata"])`) as a serialized
//! `envoy.config.core.v3.Metadata`, whose `filter_metadata` maps a namespace
//! to a `google.protobuf.Struct`; the claims that Envoy's `jwt_authn` verified
//! arrive this way. (Deeper property paths come in a map encoding that does
//! not say which values are numbers, so the message is read whole.) A full
//! protobuf runtime would cost far more module size than these wire types.

use serde_json::{Map, Number, Value};

/// Deeper nesting than this is refused; claims are shallow.
const MAX_DEPTH: usize = 32;

pub use crate::protobuf_wire::DecodeError;
use crate::protobuf_wire::Reader;

/// Finds `filter_metadata[namespace]` in a serialized
/// `envoy.config.core.v3.Metadata` and decodes it; `Ok(None)` if absent.
pub fn decode_filter_metadata(metadata: &[u8], namespace: &str) -> Result<Option<Value>, DecodeError> {
    let mut reader = Reader::new(metadata);
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => {
                let entry = reader.length_delimited()?;
                let mut fields = Reader::new(entry);
                let mut key: &[u8] = &[];
                let mut value: &[u8] = &[];
                while !fields.done() {
                    match fields.tag()? {
                        (1, 2) => key = fields.length_delimited()?,
                        (2, 2) => value = fields.length_delimited()?,
                        (_, wire_type) => fields.skip(wire_type)?,
                    }
                }
                if key == namespace.as_bytes() {
                    return decode_struct(value).map(Some);
                }
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(None)
}

/// Decodes a serialized `google.protobuf.Struct` into a JSON object.
pub fn decode_struct(bytes: &[u8]) -> Result<Value, DecodeError> {
    struct_at(bytes, 0)
}

fn struct_at(bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("nested too deeply"));
    }
    let mut reader = Reader::new(bytes);
    let mut map = Map::new();
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => {
                let entry = reader.length_delimited()?;
                let (key, value) = map_entry(entry, depth)?;
                map.insert(key, value);
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(Value::Object(map))
}

fn map_entry(bytes: &[u8], depth: usize) -> Result<(String, Value), DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut key = String::new();
    let mut value = Value::Null;
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => key = utf8(reader.length_delimited()?)?,
            (2, 2) => value = value_at(reader.length_delimited()?, depth + 1)?,
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok((key, value))
}

fn value_at(bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("nested too deeply"));
    }
    let mut reader = Reader::new(bytes);
    let mut value = Value::Null;
    while !reader.done() {
        value = match reader.tag()? {
            (1, 0) => {
                reader.varint()?;
                Value::Null
            }
            (2, 1) => {
                let raw = reader.take(8)?;
                let mut buf = [0u8; 8];
                buf.copy_from_slice(raw);
                number(f64::from_le_bytes(buf))
            }
            (3, 2) => Value::String(utf8(reader.length_delimited()?)?),
            (4, 0) => Value::Bool(reader.varint()? != 0),
            (5, 2) => struct_at(reader.length_delimited()?, depth + 1)?,
            (6, 2) => list_at(reader.length_delimited()?, depth + 1)?,
            (_, wire_type) => {
                reader.skip(wire_type)?;
                continue;
            }
        };
    }
    Ok(value)
}

fn list_at(bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut items = Vec::new();
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => items.push(value_at(reader.length_delimited()?, depth + 1)?),
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(Value::Array(items))
}

/// Struct numbers are doubles; whole ones (timestamps like `exp`) become
/// JSON integers so claim checks read them as such.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("invalid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A tiny encoder, only for building test inputs.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn field(num: u64, wire: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | wire, out);
        if wire == 2 {
            varint(payload.len() as u64, out);
        }
        out.extend_from_slice(payload);
    }
    fn encode_value(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match v {
            Value::Null => field(1, 0, &[0], &mut out),
            Value::Number(n) => field(2, 1, &n.as_f64().unwrap().to_le_bytes(), &mut out),
            Value::String(s) => field(3, 2, s.as_bytes(), &mut out),
            Value::Bool(b) => field(4, 0, &[u8::from(*b)], &mut out),
            Value::Object(_) => field(5, 2, &encode_struct(v), &mut out),
            Value::Array(items) => {
                let mut list = Vec::new();
                for item in items {
                    field(1, 2, &encode_value(item), &mut list);
                }
                field(6, 2, &list, &mut out);
            }
        }
        out
    }
    fn encode_struct(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, item) in v.as_object().unwrap() {
            let mut entry = Vec::new();
            field(1, 2, k.as_bytes(), &mut entry);
            field(2, 2, &encode_value(item), &mut entry);
            field(1, 2, &entry, &mut out);
        }
        out
    }

    #[test]
    fn round_trips_a_jwt_payload() {
        let payload = json!({"payload": {"iss": "https://idp", "sub": "alice", "exp": 1795000000, "aud": ["a", "b"],
            "groups": ["finance"], "email_verified": true, "nested": {"x": null, "ratio": 0.5}}});
        assert_eq!(decode_struct(&encode_struct(&payload)).unwrap(), payload);
    }

    #[test]
    fn finds_a_namespace_in_envoy_metadata() {
        let claims = json!({"jwt_payload": {"sub": "alice", "exp": 1795000000}});
        let mut metadata = Vec::new();
        for (ns, value) in [("other.filter", json!({"x": "y"})), ("envoy.filters.http.jwt_authn", claims.clone())] {
            let mut entry = Vec::new();
            field(1, 2, ns.as_bytes(), &mut entry);
            field(2, 2, &encode_struct(&value), &mut entry);
            field(1, 2, &entry, &mut metadata);
        }
        assert_eq!(decode_filter_metadata(&metadata, "envoy.filters.http.jwt_authn").unwrap(), Some(claims));
        assert_eq!(decode_filter_metadata(&metadata, "absent").unwrap(), None);
        assert_eq!(decode_filter_metadata(&[], "absent").unwrap(), None);
    }

    #[test]
    fn rejects_truncated_and_deep_input() {
        let bytes = encode_struct(&json!({"k": "value"}));
        assert!(decode_struct(&bytes[..bytes.len() - 2]).is_err());
        let mut deep = json!({"leaf": 1});
        for _ in 0..40 {
            deep = json!({ "n": deep });
        }
        assert_eq!(decode_struct(&encode_struct(&deep)), Err(DecodeError("nested too deeply")));
        assert!(decode_struct(&[0xff; 12]).is_err());
    }
}
