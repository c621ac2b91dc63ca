//! De-obfuscation before matching, with a map back to the original bytes.
//!
//! Detectors match the normalised text; actions cut the original. The
//! [`OffsetMap`] turns a normalised byte range into the original byte range
//! that produced it. Every original character maps to whole normalised
//! characters and back, so a mapped range always starts and ends on UTF-8
//! boundaries of the original: a redaction never splits a code point.
//!
//! What is undone, in one pass:
//! - invisible characters (zero-width spaces and joiners, soft hyphens, bidi
//!   controls, variation selectors, tag characters) are dropped;
//! - Unicode compatibility forms are folded to ASCII for the ranges that
//!   carry evasions: full-width forms, mathematical alphanumerics, circled
//!   and super/subscript digits, ligatures, exotic spaces and dashes, and
//!   decimal digits of other scripts. This is a hand-rolled subset of NFKC:
//!   a full NFKC table costs hundreds of KiB of wasm for characters that
//!   carry no evasion;
//! - look-alike Cyrillic and Greek letters become their Latin twins;
//! - literal escapes in plain text: `\u0040`, `\u{40}`, `\x40`, `&#64;`,
//!   `&#x40;` and percent-encoding `%40` (multi-byte UTF-8 included).
//!
//! Texts with nothing to undo (the common case) are not copied.

use std::borrow::Cow;

use serde::Deserialize;

use crate::bytemask::all_ascii;

/// `detectors.normalize`: what de-obfuscation runs and how much work a text
/// may cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Fold look-alike Cyrillic and Greek letters to Latin.
    #[serde(default = "yes")]
    pub homoglyphs: bool,
    /// Decode literal `\uXXXX`, `&#NN;` and `%XX` escapes.
    #[serde(default = "yes")]
    pub escapes: bool,
    /// How many times base64 / hex segments are decoded and scanned again
    /// (0 disables; at most 4).
    #[serde(default = "default_decode_depth")]
    pub decode_depth: u8,
    /// Shortest base64 / hex run worth decoding.
    #[serde(default = "default_min_encoded_len")]
    pub min_encoded_len: usize,
    /// Most decoded bytes scanned per text, all segments and depths together.
    #[serde(default = "default_max_decoded_bytes")]
    pub max_decoded_bytes: usize,
    /// Texts are scanned in windows of this many bytes (overlapping), which
    /// bounds the memory one text can take.
    #[serde(default = "default_window_bytes")]
    pub window_bytes: usize,
}

fn yes() -> bool {
    true
}
fn default_decode_depth() -> u8 {
    2
}
fn default_min_encoded_len() -> usize {
    16
}
fn default_max_decoded_bytes() -> usize {
    256 * 1024
}
fn default_window_bytes() -> usize {
    1024 * 1024
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            homoglyphs: true,
            escapes: true,
            decode_depth: default_decode_depth(),
            min_encoded_len: default_min_encoded_len(),
            max_decoded_bytes: default_max_decoded_bytes(),
            window_bytes: default_window_bytes(),
        }
    }
}

/// One stretch of the normalised text and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    /// Start in the normalised text.
    norm: usize,
    /// Original range. For an identity piece its length equals the
    /// normalised length; otherwise the piece is atomic (one replaced
    /// character or escape), and any part of it maps to all of it.
    orig_start: usize,
    orig_end: usize,
    identity: bool,
}

/// Maps normalised byte ranges to original byte ranges. Empty = identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetMap {
    pieces: Vec<Piece>,
}

impl OffsetMap {
    pub fn is_identity(&self) -> bool {
        self.pieces.is_empty()
    }

    fn piece_at(&self, norm: usize) -> Option<&Piece> {
        let idx = self.pieces.partition_point(|p| p.norm <= norm);
        self.pieces.get(idx.checked_sub(1)?)
    }

    /// Where original offset `orig` lands in the normalised text (of
    /// length `norm_len`): inside a replaced character or escape, at its
    /// start; on a dropped character, at what follows.
    pub fn to_normalized(&self, orig: usize, norm_len: usize) -> usize {
        if self.pieces.is_empty() {
            return orig.min(norm_len);
        }
        let idx = self.pieces.partition_point(|p| p.orig_start <= orig);
        match idx.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            Some(p) if orig < p.orig_end => {
                if p.identity {
                    p.norm + (orig - p.orig_start)
                } else {
                    p.norm
                }
            }
            _ => self.pieces.get(idx).map_or(norm_len, |p| p.norm),
        }
    }

    /// The original range that produced normalised `[start, end)`.
    pub fn to_original(&self, start: usize, end: usize) -> (usize, usize) {
        if self.pieces.is_empty() {
            return (start, end);
        }
        let s = match self.piece_at(start) {
            Some(p) if p.identity => p.orig_start + (start - p.norm),
            Some(p) => p.orig_start,
            None => 0,
        };
        let last = end.saturating_sub(1).max(start);
        let e = match self.piece_at(last) {
            Some(p) if p.identity => p.orig_start + (end.max(p.norm) - p.norm),
            Some(p) => p.orig_end,
            None => s,
        };
        (s, e.max(s))
    }
}

/// A normalised text and its map.
#[derive(Debug, Clone)]
pub struct Normalized<'a> {
    pub text: Cow<'a, str>,
    pub map: OffsetMap,
}

impl Normalized<'_> {
    pub fn to_original(&self, start: usize, end: usize) -> (usize, usize) {
        self.map.to_original(start, end)
    }
}

/// What one input character becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    Keep,
    Drop,
    Char(char),
    Str(&'static str),
}

fn is_invisible(c: u32) -> bool {
    matches!(c,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

fn homoglyph(c: u32) -> Option<char> {
    Some(match c {
        // Cyrillic lower case
        0x0430 => 'a', 0x0435 => 'e', 0x043E => 'o', 0x0440 => 'p', 0x0441 => 'c', 0x0443 => 'y',
        0x0445 => 'x', 0x0455 => 's', 0x0456 => 'i', 0x0458 => 'j', 0x0501 => 'd', 0x051B => 'q',
        0x051D => 'w', 0x04BB => 'h', 0x04CF => 'l', 0x0461 => 'w',
        // Cyrillic upper case
        0x0410 => 'A', 0x0412 => 'B', 0x0415 => 'E', 0x041A => 'K', 0x041C => 'M', 0x041D => 'H',
        0x041E => 'O', 0x0420 => 'P', 0x0421 => 'C', 0x0422 => 'T', 0x0425 => 'X', 0x0423 => 'Y',
        0x0405 => 'S', 0x0406 => 'I', 0x0408 => 'J', 0x051A => 'Q', 0x051C => 'W', 0x04AE => 'Y',
        0x04C0 => 'I',
        // Greek
        0x0391 => 'A', 0x0392 => 'B', 0x0395 => 'E', 0x0396 => 'Z', 0x0397 => 'H', 0x0399 => 'I',
        0x039A => 'K', 0x039C => 'M', 0x039D => 'N', 0x039F => 'O', 0x03A1 => 'P', 0x03A4 => 'T',
        0x03A5 => 'Y', 0x03A7 => 'X', 0x03BF => 'o', 0x03BD => 'v', 0x03C1 => 'p', 0x03B1 => 'a',
        0x03B9 => 'i', 0x03BA => 'k', 0x03C5 => 'u', 0x03F2 => 'c', 0x03F3 => 'j',
        // Latin look-alikes and Armenian
        0x0131 => 'i', 0x0237 => 'j', 0x0251 => 'a', 0x0261 => 'g', 0x0585 => 'o', 0x0578 => 'n',
        0x057D => 'u',
        _ => return None,
    })
}

/// Compatibility folds that NFKC would make (and a few it would not, like
/// other scripts' digits, because they are used to dodge digit patterns).
fn compat(c: u32) -> Fold {
    let from = |base: u32, ascii: u8| char::from(ascii + u8::try_from(c - base).unwrap_or(0));
    match c {
        0xFF01..=0xFF5E => char::from_u32(c - 0xFEE0).map_or(Fold::Keep, Fold::Char),
        0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => Fold::Char(' '),
        0x2010..=0x2015 | 0x2212 | 0xFE58 | 0xFE63 => Fold::Char('-'),
        0xFE52 => Fold::Char('.'),
        0xFE55 => Fold::Char(':'),
        0xFE6B => Fold::Char('@'),
        0x2024 => Fold::Char('.'),
        0x2070 => Fold::Char('0'),
        0x00B9 => Fold::Char('1'),
        0x00B2 => Fold::Char('2'),
        0x00B3 => Fold::Char('3'),
        0x2074..=0x2079 => Fold::Char(from(0x2074, b'4')),
        0x2080..=0x2089 => Fold::Char(from(0x2080, b'0')),
        0x2460..=0x2468 => Fold::Char(from(0x2460, b'1')),
        0x24EA => Fold::Char('0'),
        0x24B6..=0x24CF => Fold::Char(from(0x24B6, b'A')),
        0x24D0..=0x24E9 => Fold::Char(from(0x24D0, b'a')),
        0x0660..=0x0669 => Fold::Char(from(0x0660, b'0')),
        0x06F0..=0x06F9 => Fold::Char(from(0x06F0, b'0')),
        0x0966..=0x096F => Fold::Char(from(0x0966, b'0')),
        0x09E6..=0x09EF => Fold::Char(from(0x09E6, b'0')),
        0x1D400..=0x1D6A3 => {
            let i = (c - 0x1D400) % 52;
            if i < 26 {
                Fold::Char(from(0, b'A' + u8::try_from(i).unwrap_or(0)))
            } else {
                Fold::Char(from(0, b'a' + u8::try_from(i - 26).unwrap_or(0)))
            }
        }
        0x1D7CE..=0x1D7FF => Fold::Char(char::from(b'0' + u8::try_from((c - 0x1D7CE) % 10).unwrap_or(0))),
        0x1F100..=0x1F10A => Fold::Char(char::from(b'0' + u8::try_from((c - 0x1F100).min(9)).unwrap_or(0))),
        0xFB00 => Fold::Str("ff"),
        0xFB01 => Fold::Str("fi"),
        0xFB02 => Fold::Str("fl"),
        0xFB03 => Fold::Str("ffi"),
        0xFB04 => Fold::Str("ffl"),
        0xFB05 | 0xFB06 => Fold::Str("st"),
        _ => Fold::Keep,
    }
}

fn fold(ch: char, homoglyphs: bool) -> Fold {
    let c = u32::from(ch);
    if c < 0x80 {
        return Fold::Keep;
    }
    if is_invisible(c) {
        return Fold::Drop;
    }
    match compat(c) {
        Fold::Keep => {}
        other => return other,
    }
    if homoglyphs {
        if let Some(latin) = homoglyph(c) {
            return Fold::Char(latin);
        }
    }
    Fold::Keep
}

fn hex_val(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

fn hex_at(bytes: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for i in 0..n {
        v = v * 16 + hex_val(*bytes.get(at + i)?)?;
    }
    Some(v)
}

/// Tries to decode an escape starting at `i` (which holds `\`, `&` or `%`).
/// Returns the decoded character and the escape's length in bytes.
fn escape_at(text: &str, i: usize) -> Option<(char, usize)> {
    let b = text.as_bytes();
    match b.get(i)? {
        b'\\' => match b.get(i + 1)? {
            b'u' if b.get(i + 2) == Some(&b'{') => {
                let close = (i + 3..(i + 10).min(b.len())).find(|&j| b.get(j) == Some(&b'}'))?;
                let v = u32::from_str_radix(text.get(i + 3..close)?, 16).ok()?;
                Some((char::from_u32(v)?, close + 1 - i))
            }
            b'u' => {
                let hi = hex_at(b, i + 2, 4)?;
                if (0xD800..0xDC00).contains(&hi) {
                    // A surrogate pair: \uD83D\uDE00.
                    if b.get(i + 6) != Some(&b'\\') || b.get(i + 7) != Some(&b'u') {
                        return None;
                    }
                    let lo = hex_at(b, i + 8, 4)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    let v = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return Some((char::from_u32(v)?, 12));
                }
                Some((char::from_u32(hi)?, 6))
            }
            b'x' => {
                let v = hex_at(b, i + 2, 2)?;
                (v < 0x80).then(|| (char::from(u8::try_from(v).unwrap_or(b'?')), 4))
            }
            _ => None,
        },
        b'&' => {
            if b.get(i + 1) != Some(&b'#') {
                return None;
            }
            let (radix, start) = if matches!(b.get(i + 2), Some(b'x' | b'X')) { (16, i + 3) } else { (10, i + 2) };
            let semi = (start..(start + 8).min(b.len())).find(|&j| b.get(j) == Some(&b';'))?;
            let v = u32::from_str_radix(text.get(start..semi)?, radix).ok()?;
            Some((char::from_u32(v)?, semi + 1 - i))
        }
        b'%' => {
            let first = hex_at(b, i + 1, 2)?;
            if first < 0x80 {
                return Some((char::from(u8::try_from(first).ok()?), 3));
            }
            // A UTF-8 sequence written as %XX%XX...
            let need = match first {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => return None,
            };
            let mut buf = [0u8; 4];
            for (k, slot) in buf.iter_mut().enumerate().take(need) {
                let at = i + 3 * k;
                if b.get(at) != Some(&b'%') {
                    return None;
                }
                *slot = u8::try_from(hex_at(b, at + 1, 2)?).ok()?;
            }
            let s = std::str::from_utf8(buf.get(..need)?).ok()?;
            Some((s.chars().next()?, 3 * need))
        }
        _ => None,
    }
}

/// Whether a text can be scanned as is: ASCII without decodable escapes.
fn needs_work(text: &str, cfg: &NormalizeConfig) -> bool {
    let b = text.as_bytes();
    if !all_ascii(b) {
        return true;
    }
    cfg.escapes && memchr::memchr3_iter(b'\\', b'%', b'&', b).any(|i| escape_at(text, i).is_some())
}

fn is_special(c: u8, escapes: bool) -> bool {
    c >= 0x80 || (escapes && matches!(c, b'\\' | b'%' | b'&'))
}

struct Builder {
    out: String,
    pieces: Vec<Piece>,
    /// Start of the current identity run: (normalised, original).
    run: Option<(usize, usize)>,
}

impl Builder {
    fn close_run(&mut self, orig_now: usize) {
        if let Some((norm, orig)) = self.run.take() {
            if orig_now > orig {
                self.pieces.push(Piece { norm, orig_start: orig, orig_end: orig_now, identity: true });
            }
        }
    }

    fn keep(&mut self, orig: usize, s: &str) {
        if self.run.is_none() {
            self.run = Some((self.out.len(), orig));
        }
        self.out.push_str(s);
    }

    fn replace(&mut self, orig_start: usize, orig_end: usize, with: &str) {
        self.close_run(orig_start);
        if !with.is_empty() {
            self.pieces.push(Piece { norm: self.out.len(), orig_start, orig_end, identity: false });
            self.out.push_str(with);
        }
    }
}

/// Normalises `text` (see the module doc).
pub fn normalize<'a>(text: &'a str, cfg: &NormalizeConfig) -> Normalized<'a> {
    if !needs_work(text, cfg) {
        return Normalized { text: Cow::Borrowed(text), map: OffsetMap::default() };
    }
    let mut b = Builder { out: String::with_capacity(text.len()), pieces: Vec::new(), run: None };
    let mut changed = false;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        // Copy plain ASCII stretches in one go.
        let plain = bytes.get(i..).and_then(|rest| rest.iter().position(|&c| is_special(c, cfg.escapes))).map_or(text.len(), |p| i + p);
        if plain > i {
            if let Some(s) = text.get(i..plain) {
                b.keep(i, s);
            }
            i = plain;
            continue;
        }
        let Some(ch) = text.get(i..).and_then(|s| s.chars().next()) else {
            break;
        };
        let len = ch.len_utf8();
        if cfg.escapes && matches!(ch, '\\' | '&' | '%') {
            if let Some((decoded, esc_len)) = escape_at(text, i) {
                let mut buf = [0u8; 4];
                let folded = match fold(decoded, cfg.homoglyphs) {
                    Fold::Keep => decoded.encode_utf8(&mut buf) as &str,
                    Fold::Drop => "",
                    Fold::Char(c) => c.encode_utf8(&mut buf) as &str,
                    Fold::Str(s) => s,
                };
                b.replace(i, i + esc_len, folded);
                changed = true;
                i += esc_len;
                continue;
            }
        }
        match fold(ch, cfg.homoglyphs) {
            Fold::Keep => {
                if let Some(s) = text.get(i..i + len) {
                    b.keep(i, s);
                }
            }
            Fold::Drop => {
                b.replace(i, i + len, "");
                changed = true;
            }
            Fold::Char(c) => {
                let mut buf = [0u8; 4];
                b.replace(i, i + len, c.encode_utf8(&mut buf));
                changed = true;
            }
            Fold::Str(s) => {
                b.replace(i, i + len, s);
                changed = true;
            }
        }
        i += len;
    }
    if !changed {
        return Normalized { text: Cow::Borrowed(text), map: OffsetMap::default() };
    }
    b.close_run(text.len());
    Normalized { text: Cow::Owned(b.out), map: OffsetMap { pieces: b.pieces } }
}

/// Normalises a keyword or context word the way texts are normalised, so
/// that an operator's `ＳＥＣＲＥＴ` and `secret` are the same word.
pub fn normalize_word(word: &str) -> String {
    normalize(word, &NormalizeConfig::default()).text.into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Normalized<'_> {
        normalize(s, &NormalizeConfig::default())
    }

    #[test]
    fn plain_ascii_is_borrowed() {
        let n = norm("hello world 4111");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert!(n.map.is_identity());
        assert_eq!(n.to_original(6, 11), (6, 11));
    }

    #[test]
    fn fullwidth_and_zero_width() {
        let s = "a\u{200B}ｂc";
        let n = norm(s);
        assert_eq!(n.text, "abc");
        // "b" came from the 3-byte full-width letter at 4..7.
        assert_eq!(n.to_original(1, 2), (4, 7));
        assert_eq!(n.to_original(0, 3), (0, s.len()));
    }

    #[test]
    fn escapes_map_to_whole_escape() {
        let s = r"john\u0040example.com";
        let n = norm(s);
        assert_eq!(n.text, "john@example.com");
        assert_eq!(n.to_original(4, 5), (4, 10));
        assert_eq!(n.to_original(0, n.text.len()), (0, s.len()));
        assert_eq!(norm("a%40b").text, "a@b");
        assert_eq!(norm("a&#64;b&#x40;c").text, "a@b@c");
        assert_eq!(norm("%E2%82%AC").text, "€");
        assert_eq!(norm(r"\uD83D\uDE00").text, "😀");
        assert_eq!(norm("100% sure").text, "100% sure");
    }

    #[test]
    fn homoglyphs_fold() {
        assert_eq!(norm("рassword").text, "password");
        assert_eq!(norm("ΑΚΙΑ").text, "AKIA");
        let off = NormalizeConfig { homoglyphs: false, ..NormalizeConfig::default() };
        assert_eq!(normalize("рassword", &off).text, "рassword");
    }

    #[test]
    fn compat_digits_and_ligatures() {
        assert_eq!(norm("４１１１").text, "4111");
        assert_eq!(norm("𝟒𝟏①").text, "411");
        assert_eq!(norm("ﬁle").text, "file");
        assert_eq!(norm("𝐀𝐊𝐈𝐀").text, "AKIA");
    }

    #[test]
    fn mapped_ranges_are_char_boundaries() {
        let s = "é\u{200D}ｘ%41\u{FB01}ñ";
        let n = norm(s);
        let bounds: Vec<usize> = (0..=n.text.len()).filter(|&i| n.text.is_char_boundary(i)).collect();
        for &a in &bounds {
            for &b in bounds.iter().filter(|&&b| b >= a) {
                let (x, y) = n.to_original(a, b);
                assert!(s.is_char_boundary(x) && s.is_char_boundary(y), "{a}..{b} -> {x}..{y}");
                assert!(x <= y && y <= s.len());
            }
        }
    }
}
