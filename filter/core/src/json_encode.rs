//! Re-encoding a parsed body after a rewrite: the bytes `serde_json::to_vec`
//! writes, with the string escape scan done 16 bytes at a time (SIMD128 in
//! the filter's wasm). serde_json looks every byte up in its escape table;
//! in V8 that made re-encoding a rewritten 256 KB prompt cost about as much
//! as the union pass over its trigger windows, while prompts hold almost
//! nothing to escape.

use std::io::Write;

use serde_json::Value;

use crate::bytemask::{control_or_equal, BLOCK};

/// `value` as compact JSON, byte for byte what `serde_json::to_vec` writes.
/// `size_hint` is the size expected (the body `value` was parsed from):
/// the buffer then seldom grows, and each growth copies what it holds.
pub fn to_vec(value: &Value, size_hint: usize) -> Vec<u8> {
    // Room for placeholders longer than what they replace.
    let mut out = Vec::with_capacity(size_hint.saturating_add(size_hint / 8).max(128));
    write_value(&mut out, value);
    out
}

// Recursion is bounded: a `Value` comes from serde_json's parser, which
// refuses nesting deeper than 128.
fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // `Number`'s Display is serde_json's own number encoding (itoa, ryu).
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            out.push(b'{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    // `b[clean..]` is not yet written; up to the next escape it is copied whole.
    let mut clean = 0;
    let mut blocks = b.chunks_exact(BLOCK);
    for (n, block) in (&mut blocks).enumerate() {
        let Ok(block) = <&[u8; BLOCK]>::try_from(block) else { continue };
        let mut found = control_or_equal(block, [b'"', b'\\']);
        while found != 0 {
            write_escaped(out, b, &mut clean, n * BLOCK + found.trailing_zeros() as usize);
            found &= found - 1;
        }
    }
    for j in b.len() - blocks.remainder().len()..b.len() {
        write_escaped(out, b, &mut clean, j);
    }
    out.extend_from_slice(b.get(clean..).unwrap_or_default());
    out.push(b'"');
}

/// If `b[j]` needs an escape: writes `b[clean..j]` and the escape, and
/// moves `clean` past it.
fn write_escaped(out: &mut Vec<u8>, b: &[u8], clean: &mut usize, j: usize) {
    let Some((escaped, len)) = b.get(j).and_then(|&c| escape(c)) else { return };
    out.extend_from_slice(b.get(*clean..j).unwrap_or_default());
    out.extend_from_slice(escaped.get(..len).unwrap_or_default());
    *clean = j + 1;
}

/// serde_json's escape for `c`, if it has one: the short forms, else
/// `\u00XX` with lower-case hex. Returns the bytes and their count.
fn escape(c: u8) -> Option<([u8; 6], usize)> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = |x: u8| Some(([b'\\', x, 0, 0, 0, 0], 2));
    match c {
        b'"' => short(b'"'),
        b'\\' => short(b'\\'),
        0x08 => short(b'b'),
        0x09 => short(b't'),
        0x0a => short(b'n'),
        0x0c => short(b'f'),
        0x0d => short(b'r'),
        0x00..=0x1f => Some(([b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]], 6)),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_encode_as_serde_json_does() {
        let pieces: Vec<String> = (0u8..0x20)
            .map(|c| char::from(c).to_string())
            .chain(["\"", "\\", "/", "\u{7f}", "é", "日本", "😀", "\u{2028}", "a", "plain text ", "0123456789abcdef"].map(String::from))
            .collect();
        let mut next = crate::test_rng::xorshift(0x7a3c_1e95_d402_b86f);
        for _ in 0..5000 {
            let count = (next() % 24) as usize;
            let s: String = (0..count).map(|_| pieces[(next() % pieces.len() as u64) as usize].as_str()).collect();
            let value = Value::String(s);
            assert_eq!(to_vec(&value, 0), serde_json::to_vec(&value).unwrap(), "{value:?}");
        }
    }

    #[test]
    fn bodies_encode_as_serde_json_does() {
        let body = json!({
            "model": "gpt-4o-mini", "stream": true, "temperature": 0.7, "top_p": 1e-300, "n": -3, "seed": u64::MAX,
            "max": 1.5e300, "neg_zero": -0.0, "tiny": 5e-324, "empty": {}, "none": [], "null": null, "flag": false,
            "messages": [{"role": "user", "content": "line\n\t\"quoted\" \\ back \u{1} é"}, {"role": "system", "content": ""}],
            "nested": [[[1, 2.25, "x"]], {"k\"ey": {"deep": [true, null]}}],
        });
        assert_eq!(to_vec(&body, 10), serde_json::to_vec(&body).unwrap());
        for text in ["0.1", "123456789012345678901234567890", "-9223372036854775808", "1E5", "2.5e-7"] {
            let n: Value = serde_json::from_str(text).unwrap();
            assert_eq!(to_vec(&n, 1 << 20), serde_json::to_vec(&n).unwrap(), "{text}");
        }
    }
}
