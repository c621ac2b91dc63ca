//! Encoded segments: base64 (standard and URL-safe) and hex runs that decode
//! to readable text are scanned again, so `am9obkBleGFtcGxlLmNvbQ==` is
//! caught as the email it carries. A finding inside a segment covers the
//! whole segment: the encoded bytes are what must not leave.

use crate::bytemask::{below_or_equal, BLOCK};

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
    base64_decode_unless(input, |_| false)
}

/// [`base64_decode`], given up (`None`) at the first decoded byte `stop`
/// rejects: most runs are keys and hashes, which decode to random bytes,
/// and a byte that already rules the result out saves decoding the rest.
fn base64_decode_unless(input: &str, stop: impl Fn(u8) -> bool) -> Option<Vec<u8>> {
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
            let byte = u8::try_from((acc >> bits) & 0xFF).ok()?;
            if stop(byte) {
                return None;
            }
            out.push(byte);
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

/// An ASCII control byte other than whitespace: wherever it is, the bytes
/// are not [`readable`] (as UTF-8 it is a control character; a byte below
/// 0x80 is never inside a multi-byte character).
fn is_unreadable_ascii(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t')) || b == 0x7f
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

/// A byte that surely ends a run: below `+` (space, controls, most
/// punctuation), `,`, `.` or not ASCII.
fn is_breaker(c: u8) -> bool {
    !(b'+'..0x80).contains(&c) || c == b',' || c == b'.'
}

/// [`is_breaker`] for each byte of a block.
fn breakers(block: &[u8; BLOCK]) -> u32 {
    below_or_equal(block, b'+', [b',', b'.'])
}

/// Stretches of `b` between surely-ending bytes ([`is_breaker`]) that are
/// at least `min` long, a block at a time: prose breaks every few bytes,
/// so only long words and encoded runs are looked at byte by byte. `each`
/// returns false to stop.
fn long_stretches(b: &[u8], min: usize, mut each: impl FnMut(usize, usize) -> bool) {
    let mut from = 0;
    let mut at = 0;
    while let Some(block) = b.get(at..at + BLOCK).and_then(|c| <&[u8; BLOCK]>::try_from(c).ok()) {
        let m = breakers(block);
        let mut rest = m;
        while rest != 0 {
            let pos = at + rest.trailing_zeros() as usize;
            if pos - from >= min && !each(from, pos) {
                return;
            }
            from = pos + 1;
            rest &= rest - 1;
            // Two breaks of one block are at most `BLOCK - 2` bytes apart:
            // past the first, only a smaller `min` needs each of them.
            if min > BLOCK - 2 && rest != 0 {
                from = at + (31 - m.leading_zeros() as usize) + 1;
                break;
            }
        }
        at += BLOCK;
    }
    for (pos, &c) in b.iter().enumerate().skip(at) {
        if is_breaker(c) {
            if pos - from >= min && !each(from, pos) {
                return;
            }
            from = pos + 1;
        }
    }
    if b.len().saturating_sub(from) >= min {
        each(from, b.len());
    }
}

/// Finds encoded runs of at least `min_len` characters (padding included)
/// whose decoding is readable text, decoding at most `budget` bytes in
/// total.
pub fn segments(text: &str, min_len: usize, budget: &mut usize) -> Vec<Segment> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let min_len = min_len.max(8);
    // Up to two `=` of padding count towards the length; `=` breaks no
    // stretch, so a segment's stretch is at least `min_len` long.
    let min_run = min_len - 2;
    if *budget == 0 {
        return found;
    }
    long_stretches(b, min_len, |from, to| {
        let mut i = from;
        while i < to {
            let Some(start) = (i..to).find(|&k| b.get(k).copied().is_some_and(is_run_byte)) else {
                break;
            };
            let mut run_end = start;
            while run_end < to && b.get(run_end).copied().is_some_and(is_run_byte) {
                run_end += 1;
            }
            i = run_end + 1;
            if run_end - start < min_run {
                continue;
            }
            let mut end = run_end;
            while end < b.len() && end - run_end < 2 && b.get(end) == Some(&b'=') {
                end += 1;
            }
            if end - start < min_len {
                continue;
            }
            let Some(run) = text.get(start..end) else {
                continue;
            };
            if let Some(decoded) = decode_run(run) {
                if decoded.len() > *budget {
                    *budget = 0;
                    return false;
                }
                *budget -= decoded.len();
                found.push(Segment { start, end, decoded });
                if *budget == 0 {
                    return false;
                }
            }
        }
        true
    });
    found
}

/// A run's readable decoding: hex when it is all hex digits, else base64
/// when it is not a plain word.
fn decode_run(run: &str) -> Option<String> {
    let all_hex = run.bytes().all(|c| c.is_ascii_hexdigit());
    let decoded = if all_hex && run.len() % 2 == 0 { hex_decode(run) } else { None };
    decoded.and_then(readable).or_else(|| {
        // Long words are base64-alphabet runs too; they decode to
        // garbage and are dropped by `readable`.
        let mixed = run.bytes().any(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || matches!(c, b'+' | b'/' | b'='));
        if mixed {
            base64_decode_unless(run, is_unreadable_ascii).and_then(readable)
        } else {
            None
        }
    })
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

    /// Giving up at an unreadable byte changes no result: random runs
    /// (random bytes, mostly given up early), runs of encoded text (never
    /// given up) and encoded text with one control byte in it.
    #[test]
    fn early_give_up_keeps_what_readable_keeps() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";
        let mut next = crate::test_rng::xorshift(0x3c6e_f372_fe94_f82b);
        let mut kept = 0;
        for round in 0..20_000 {
            let run: String = if round % 2 == 0 {
                let len = (next() % 60) as usize;
                (0..len).map(|_| char::from(alphabet[(next() % alphabet.len() as u64) as usize])).collect()
            } else {
                let mut plain: Vec<u8> = (0..(next() % 40)).map(|_| b"john@ex.io \n\tA\xc3\xa9"[(next() % 15) as usize]).collect();
                if round % 4 == 1 && !plain.is_empty() {
                    let at = (next() as usize) % plain.len();
                    plain[at] = [0u8, 7, 0x1f, 0x7f, b'\r'][(next() % 5) as usize];
                }
                encode_base64(&plain)
            };
            let want = base64_decode(&run).and_then(readable);
            kept += usize::from(want.is_some());
            assert_eq!(base64_decode_unless(&run, is_unreadable_ascii).and_then(readable), want, "{run:?}");
        }
        assert!(kept > 1_000, "only {kept} readable");
        for b in 0..=255u8 {
            let alone = readable(vec![b'a', b'b', b'c', b]).is_none();
            assert!(!is_unreadable_ascii(b) || alone, "{b:#x}");
        }
    }

    fn encode_base64(bytes: &[u8]) -> String {
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(table[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
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
    fn breakers_are_exact_and_never_run_bytes() {
        for c in 0..=255u8 {
            assert!(!is_breaker(c) || !is_run_byte(c), "{c:#x}");
            for pos in 0..BLOCK {
                let mut block = [b'a'; BLOCK];
                block[pos] = c;
                assert_eq!(breakers(&block), u32::from(is_breaker(c)) << pos, "{c:#x} at {pos}");
            }
        }
    }

    /// Every maximal run of at least `min_len - 2` run bytes that its
    /// padding brings to `min_len` is found, wherever it sits: the same
    /// runs as a byte-by-byte reference, on random texts.
    #[test]
    fn finds_every_long_run_like_a_plain_scan() {
        fn reference(text: &str, min_len: usize) -> Vec<(usize, usize)> {
            let b = text.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if !is_run_byte(b[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < b.len() && is_run_byte(b[i]) {
                    i += 1;
                }
                let mut end = i;
                while end < b.len() && end - i < 2 && b[end] == b'=' {
                    end += 1;
                }
                if i - start >= min_len - 2 && end - start >= min_len {
                    out.push((start, end));
                }
            }
            out
        }
        let pieces = ["am9obkBleGFtcGxlLmNvbQ", "aGk", "==", "=", " ", ",", ".", "é", "x", "AB", "-_", "\n", "1234"];
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for round in 0..3000 {
            let text: String = (0..(next() % 24)).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect();
            let min_len = if round % 2 == 0 { 8 } else { 16 };
            // Every run decodes to something readable or not; compare the
            // runs looked at, through a budget large enough for all.
            let mut seen = Vec::new();
            long_stretches(text.as_bytes(), min_len, |from, to| {
                seen.push((from, to));
                true
            });
            for (s, e) in reference(&text, min_len) {
                assert!(seen.iter().any(|&(f, t)| f <= s && s < t), "run {s}..{e} of {text:?} not in a stretch {seen:?}");
            }
            let mut budget = 1 << 20;
            let got: Vec<(usize, usize)> = segments(&text, min_len, &mut budget).iter().map(|g| (g.start, g.end)).collect();
            let want: Vec<(usize, usize)> = reference(&text, min_len).into_iter().filter(|&(s, e)| decode_run(&text[s..e]).is_some()).collect();
            assert_eq!(got, want, "{text:?} min_len {min_len}");
        }
    }

    /// The block scan reports exactly the stretches a byte-by-byte scan
    /// does, for every `min` and wherever the breaks fall in a block.
    #[test]
    fn long_stretches_are_those_of_a_byte_scan() {
        fn reference(b: &[u8], min: usize) -> Vec<(usize, usize)> {
            let mut out = Vec::new();
            let mut from = 0;
            for (pos, &c) in b.iter().enumerate() {
                if is_breaker(c) {
                    if pos - from >= min {
                        out.push((from, pos));
                    }
                    from = pos + 1;
                }
            }
            if b.len().saturating_sub(from) >= min {
                out.push((from, b.len()));
            }
            out
        }
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d_u64);
        for round in 0..4000u64 {
            let len = (next() % 400) as usize;
            // Breaks from every few bytes to a few per hundred.
            let every = 2 + next() % (4 + round % 60);
            let b: Vec<u8> = (0..len).map(|_| if next() % every == 0 { b" ,.\n\xc3"[(next() % 5) as usize] } else { b'a' + (next() % 26) as u8 }).collect();
            let min = [1, 2, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100][(round % 13) as usize];
            let mut got = Vec::new();
            long_stretches(&b, min, |f, t| {
                got.push((f, t));
                true
            });
            assert_eq!(got, reference(&b, min), "min {min}: {:?}", String::from_utf8_lossy(&b));
            // Stopping at the first stretch stops there.
            let mut first = Vec::new();
            long_stretches(&b, min, |f, t| {
                first.push((f, t));
                false
            });
            assert_eq!(first, reference(&b, min).into_iter().take(1).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_short_run_with_padding_is_found_at_any_offset() {
        // 14 characters and `==`: 16 with the padding (min_len 16).
        let encoded = "am9obkBleC5pbw==";
        assert_eq!(base64_decode(encoded).as_deref(), Some(&b"john@ex.io"[..]));
        for pad in 0..16 {
            let text = format!("{}{encoded} and more words", "w ".repeat(pad));
            let mut budget = 1 << 20;
            let segs = segments(&text, 16, &mut budget);
            assert_eq!(segs.first().map(|s| s.decoded.as_str()), Some("john@ex.io"), "{text:?}");
        }
    }

    #[test]
    fn budget_bounds_decoding() {
        let mut budget = 4;
        let text = "am9obkBleGFtcGxlLmNvbQ==";
        assert!(segments(text, 16, &mut budget).is_empty());
        assert_eq!(budget, 0);
    }
}
