//! Encoded segments: base64 (standard and URL-safe) and hex runs that decode
//! to readable text are scanned again, so `am9obkBleGFtcGxlLmNvbQ==` is
//! caught as the email it carries. A finding inside a segment covers the
//! whole segment: the encoded bytes are what must not leave.

/// One encoded run found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub end: usize,
    pub decoded: String,
}

fn b64_value(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    }))
}

/// Decodes base64 in either alphabet, padding optional. `None` when a
/// character is outside both alphabets or the length cannot be base64.
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let body = input.trim_end_matches('=');
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in body.as_bytes() {
        acc = (acc << 6) | b64_value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xFF).ok()?);
        }
        acc &= (1 << bits) - 1;
    }
    Some(out)
}

pub fn hex_decode(input: &str) -> Option<Vec<u8>> {
    let b = input.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Decoded bytes worth scanning: valid UTF-8, no control characters other
/// than whitespace. Random bytes (what most long runs — keys, hashes — decode
/// to) fail this at once.
fn readable(bytes: Vec<u8>) -> Option<String> {
    let s = String::from_utf8(bytes).ok()?;
    let ok = s.len() >= 4 && s.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    ok.then_some(s)
}

/// Bytes of base64 (both alphabets) and hex runs, as a table: the run
/// finder tests most bytes of every text.
static RUN_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
        c += 1;
    }
    t
};

fn is_run_byte(c: u8) -> bool {
    RUN_BYTE.get(usize::from(c)).copied().unwrap_or(false)
}

/// Finds encoded runs of at least `min_len` characters whose decoding is
/// readable text, decoding at most `budget` bytes in total.
pub fn segments(text: &str, min_len: usize, budget: &mut usize) -> Vec<Segment> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let min_len = min_len.max(8);
    let mut i = 0;
    while i < b.len() && *budget > 0 {
        // A run of `min_len` starting anywhere in [i, i + min_len) covers
        // byte i + min_len - 1: when that byte is not a run byte, skip the
        // whole stretch. Prose is mostly short words, so most bytes are
        // never looked at.
        let probe = i + min_len - 1;
        if probe >= b.len() {
            break;
        }
        if !b.get(probe).copied().is_some_and(is_run_byte) {
            i = probe + 1;
            continue;
        }
        let mut start = probe;
        while start > i && b.get(start - 1).copied().is_some_and(is_run_byte) {
            start -= 1;
        }
        i = probe;
        while b.get(i).copied().is_some_and(is_run_byte) {
            i += 1;
        }
        let mut end = i;
        while end < b.len() && end - i < 2 && b.get(end) == Some(&b'=') {
            end += 1;
        }
        i = end;
        if end - start < min_len {
            continue;
        }
        let Some(run) = text.get(start..end) else {
            continue;
        };
        let all_hex = run.bytes().all(|c| c.is_ascii_hexdigit());
        let decoded = if all_hex && run.len() % 2 == 0 { hex_decode(run) } else { None };
        let decoded = decoded.and_then(readable).or_else(|| {
            // Long words are base64-alphabet runs too; they decode to
            // garbage and are dropped by `readable`.
            let mixed = run.bytes().any(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || matches!(c, b'+' | b'/' | b'='));
            if mixed {
                base64_decode(run).and_then(readable)
            } else {
                None
            }
        });
        if let Some(decoded) = decoded {
            if decoded.len() > *budget {
                *budget = 0;
                break;
            }
            *budget -= decoded.len();
            found.push(Segment { start, end, decoded });
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn base64_both_alphabets() {
        assert_eq!(base64_decode("am9obkBleGFtcGxlLmNvbQ==").as_deref(), Some(&b"john@example.com"[..]));
        assert_eq!(base64_decode("am9obkBleGFtcGxlLmNvbQ").as_deref(), Some(&b"john@example.com"[..]));
        assert_eq!(base64_decode("-_-_").map(|v| v.len()), Some(3));
        assert_eq!(base64_decode("abcde"), None);
        assert_eq!(base64_decode("ab$d"), None);
    }

    #[test]
    fn finds_readable_segments_only() {
        let mut budget = 1 << 20;
        let text = "see am9obkBleGFtcGxlLmNvbQ== and 6a6f686e406578616d706c652e636f6d and wJalrXUtnFEMIK7MDENGbPxRfiCY";
        let segs = segments(text, 16, &mut budget);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs.first().map(|s| s.decoded.as_str()), Some("john@example.com"));
        assert_eq!(segs.first().map(|s| (s.start, s.end)), Some((4, 28)));
        assert_eq!(segs.get(1).map(|s| s.decoded.as_str()), Some("john@example.com"));
    }

    #[test]
    fn budget_bounds_decoding() {
        let mut budget = 4;
        let text = "am9obkBleGFtcGxlLmNvbQ==";
        assert!(segments(text, 16, &mut budget).is_empty());
        assert_eq!(budget, 0);
    }
}
