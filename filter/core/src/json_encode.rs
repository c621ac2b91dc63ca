//! Re-encoding a parsed body after a rewrite: the bytes `serde_json::to_vec`
//! writes, with the string escape scan done eight bytes at a time. serde_json
//! looks every byte up in its escape table; in V8 that made re-encoding a
//! rewritten 256 KB prompt cost about as much as the union pass over its
//! trigger windows, while prompts hold almost nothing to escape.

use std::io::Write;

use serde_json::Value;

/// `value` as compact JSON, byte for byte what `serde_json::to_vec` writes.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes is a control character, `"` or `\`.
fn needs_escape(chunk: u64) -> bool {
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    // Exact for "any byte below 0x20": a borrow starts only at such a byte.
    let below_space = chunk.wrapping_sub(0x20 * ONES) & !chunk & HIGH != 0;
    below_space || has_zero(chunk ^ (u64::from(b'"') * ONES)) || has_zero(chunk ^ (u64::from(b'\\') * ONES))
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    // `b[clean..i]` holds no byte to escape and is not yet written.
    let (mut clean, mut i) = (0, 0);
    while i < b.len() {
        if let Some(chunk) = b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(b.len());
        for j in i..end {
            let Some(&c) = b.get(j) else { break };
            if let Some(escaped) = escape(c) {
                out.extend_from_slice(b.get(clean..j).unwrap_or_default());
                out.extend_from_slice(escaped.0.get(..escaped.1).unwrap_or_default());
                clean = j + 1;
            }
        }
        i = end;
    }
    out.extend_from_slice(b.get(clean..).unwrap_or_default());
    out.push(b'"');
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
            assert_eq!(to_vec(&value), serde_json::to_vec(&value).unwrap(), "{value:?}");
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
        assert_eq!(to_vec(&body), serde_json::to_vec(&body).unwrap());
        for text in ["0.1", "123456789012345678901234567890", "-9223372036854775808", "1E5", "2.5e-7"] {
            let n: Value = serde_json::from_str(text).unwrap();
            assert_eq!(to_vec(&n), serde_json::to_vec(&n).unwrap(), "{text}");
        }
    }

    #[test]
    fn the_word_test_finds_every_byte_to_escape() {
        for c in 0u8..=255 {
            for at in 0..8 {
                let mut w = [b'a'; 8];
                w[at] = c;
                let expected = c < 0x20 || c == b'"' || c == b'\\';
                assert_eq!(needs_escape(u64::from_le_bytes(w)), expected, "byte {c:#x} at {at}");
            }
        }
    }
}
