//! The classifier's input contract: hashed character and word n-grams, the
//! same bit for bit as `filter/core/models/featurize.py` (which trains the
//! model), checked by `tests/classify_parity.rs` on a committed fixture.
//!
//! Text → sorted `(index, value)` pairs over a 2^18 hashed space:
//! 1. at most [`MAX_BYTES`] of UTF-8, cut at a character boundary;
//! 2. ASCII letters lower-cased, ASCII digits folded to `0`; other ASCII and
//!    a fixed list of Unicode spaces and punctuation separate words; every
//!    other character belongs to a word (so Python's and Rust's Unicode
//!    tables never matter);
//! 3. words joined by single spaces, one space of padding each side;
//! 4. character 3-, 4- and 5-grams of that string plus word unigrams and
//!    bigrams, each hashed with 64-bit FNV-1a over a tag byte and its bytes;
//! 5. value per index `1 + ln(count)`, L2-normalised (f64, emitted as f32).

/// Name of this contract; models carry it in their `meshguard.features`
/// metadata.
pub const VERSION: &str = "mg-hash-v1";
pub const BITS: u32 = 18;
pub const DIM: usize = 1 << BITS;
/// Longest text featurised at once; longer texts are scored in windows.
pub const MAX_BYTES: usize = 4096;

const CHAR_NGRAMS: [usize; 3] = [3, 4, 5];
const TAG_UNIGRAM: u8 = b'w';
const TAG_BIGRAM: u8 = b'b';
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Non-ASCII code points that separate words (inclusive ranges).
const SEPARATOR_RANGES: [(u32, u32); 12] = [
    (0x0085, 0x0085),
    (0x00a0, 0x00a0),
    (0x00ab, 0x00ab),
    (0x00bb, 0x00bb),
    (0x1680, 0x1680),
    (0x2000, 0x200f),
    (0x2010, 0x2027),
    (0x2028, 0x202f),
    (0x2030, 0x205e),
    (0x205f, 0x206f),
    (0x3000, 0x3002),
    (0xfeff, 0xfeff),
];

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_alphanumeric();
    }
    let cp = u32::from(c);
    SEPARATOR_RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&cp))
}

/// The longest prefix of `text` of at most `max` bytes ending on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.get(..cut).unwrap_or("")
}

/// Step 2–3: the canonical padded string (` word word `) and the word
/// boundaries in it. Empty when the text has no word.
fn canonical(text: &str, out: &mut String, words: &mut Vec<(usize, usize)>) {
    out.clear();
    words.clear();
    out.push(' ');
    let mut start: Option<usize> = None;
    for c in truncate(text, MAX_BYTES).chars() {
        if is_separator(c) {
            if let Some(s) = start.take() {
                words.push((s, out.len()));
                out.push(' ');
            }
            continue;
        }
        if start.is_none() {
            start = Some(out.len());
        }
        out.push(if c.is_ascii_digit() { '0' } else { c.to_ascii_lowercase() });
    }
    if let Some(s) = start {
        words.push((s, out.len()));
        out.push(' ');
    }
}

fn fnv1a(tag: u8, parts: &[&[u8]]) -> u64 {
    let mut h = (FNV_OFFSET ^ u64::from(tag)).wrapping_mul(FNV_PRIME);
    for part in parts {
        for &b in *part {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// Reusable buffers, so scoring many texts allocates once.
#[derive(Debug, Default)]
pub struct Featurizer {
    text: String,
    words: Vec<(usize, usize)>,
    char_starts: Vec<usize>,
    hashes: Vec<u32>,
}

/// Sparse features of one text, indices ascending and unique.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Features {
    pub indices: Vec<i64>,
    pub values: Vec<f32>,
}

impl Features {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

impl Featurizer {
    pub fn features(&mut self, text: &str, out: &mut Features) {
        out.indices.clear();
        out.values.clear();
        canonical(text, &mut self.text, &mut self.words);
        if self.words.is_empty() {
            return;
        }
        let mask = (DIM - 1) as u64;
        let s = self.text.as_bytes();
        self.hashes.clear();
        self.char_starts.clear();
        self.char_starts.extend(self.text.char_indices().map(|(i, _)| i));
        self.char_starts.push(s.len());
        let chars = self.char_starts.len() - 1;
        for n in CHAR_NGRAMS {
            for start in 0..chars.saturating_sub(n - 1) {
                let (Some(&a), Some(&b)) = (self.char_starts.get(start), self.char_starts.get(start + n)) else { continue };
                let gram = s.get(a..b).unwrap_or_default();
                self.hashes.push((fnv1a(n as u8, &[gram]) & mask) as u32);
            }
        }
        for (i, &(a, b)) in self.words.iter().enumerate() {
            let word = s.get(a..b).unwrap_or_default();
            self.hashes.push((fnv1a(TAG_UNIGRAM, &[word]) & mask) as u32);
            if let Some(&(c, d)) = self.words.get(i + 1) {
                let next = s.get(c..d).unwrap_or_default();
                self.hashes.push((fnv1a(TAG_BIGRAM, &[word, b" ", next]) & mask) as u32);
            }
        }
        self.hashes.sort_unstable();
        let mut weighted: Vec<(u32, f64)> = Vec::with_capacity(self.hashes.len());
        let mut i = 0;
        while let Some(&index) = self.hashes.get(i) {
            let run = self.hashes.get(i..).map_or(0, |rest| rest.iter().take_while(|&&h| h == index).count()).max(1);
            // ln(1) is exactly 0, and most n-grams occur once: skip the log.
            weighted.push((index, if run == 1 { 1.0 } else { 1.0 + (run as f64).ln() }));
            i += run;
        }
        let norm = weighted.iter().map(|&(_, v)| v * v).sum::<f64>().sqrt();
        for (index, value) in weighted {
            out.indices.push(i64::from(index));
            out.values.push((value / norm) as f32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(text: &str) -> Vec<String> {
        let (mut s, mut w) = (String::new(), Vec::new());
        canonical(text, &mut s, &mut w);
        w.iter().map(|&(a, b)| s[a..b].to_string()).collect()
    }

    #[test]
    fn canonical_words_fold_case_digits_and_separators() {
        assert_eq!(words_of("Ignore ALL previous, 2024!"), ["ignore", "all", "previous", "0000"]);
        assert_eq!(words_of("naïve\u{00a0}café “quoted”"), ["naïve", "café", "quoted"]);
        assert!(words_of(" \t!? ").is_empty());
    }

    #[test]
    fn features_are_sorted_unique_and_unit_length() {
        let mut f = Featurizer::default();
        let mut out = Features::default();
        f.features("ignore ignore the previous instructions", &mut out);
        assert!(out.indices.windows(2).all(|w| w[0] < w[1]));
        assert!(out.indices.iter().all(|&i| (0..DIM as i64).contains(&i)));
        let norm: f32 = out.values.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        f.features("", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let text = "é".repeat(3000);
        let cut = truncate(&text, MAX_BYTES);
        assert!(cut.len() <= MAX_BYTES && cut.len() >= MAX_BYTES - 1);
        assert_eq!(truncate("abc", 10), "abc");
    }
}
