//! The classifier's input contract: hashed byte and word n-grams, the same
//! bit for bit as `filter/core/models/featurize.py` (which trains the
//! model), checked by `tests/classify_parity.rs` on a committed fixture.
//!
//! Text → `(index, value)` pairs over a 2^18 hashed space, indices unique:
//! 1. at most [`MAX_BYTES`] of UTF-8, cut at a character boundary;
//! 2. ASCII letters lower-cased, ASCII digits folded to `0`; other ASCII and
//!    a fixed list of Unicode spaces and punctuation separate words; every
//!    other character belongs to a word (so Python's and Rust's Unicode
//!    tables never matter);
//! 3. words joined by single spaces, one space of padding each side;
//! 4. byte n-grams of that string ([`BYTE_NGRAMS`]), each the n bytes read
//!    as a little-endian integer with n in the top byte, hashed by one
//!    multiplication (the top 18 bits of the 64-bit product); word n-grams
//!    ([`WORD_NGRAMS`]), hashed with 64-bit FNV-1a over a tag byte and the
//!    words joined by spaces (the low 18 bits);
//! 5. every index present gets the same value, `1 / sqrt(distinct indices)`
//!    (unit length, f64 emitted as f32): presence, not counts, so a gram
//!    repeated to bury an injection gains nothing.
//!
//! Byte grams cost one load, a mask and a multiply each; presence is one
//! bit in a 32 KiB set, marked without a branch; a linear model's dot
//! product is the sum of the present grams' weights
//! ([`Featurizer::linear_dot`]), with nothing sorted or built. That is what
//! lets the filter score a message in microseconds inside V8. (The previous
//! contract, `mg-hash-v2`, counted grams with `1 + ln(count)` values over
//! four byte-gram lengths: twice the work for no better validation score;
//! see docs/classifier.md.)

/// Name of this contract; models carry it in their `meshguard.features`
/// metadata.
pub const VERSION: &str = "mg-hash-v3";
pub const BITS: u32 = 18;
pub const DIM: usize = 1 << BITS;
/// Longest text featurised at once; longer texts are scored in windows.
pub const MAX_BYTES: usize = 4096;

/// Lengths of the byte n-grams (each at most 7: the length takes the top byte).
pub const BYTE_NGRAMS: [usize; 2] = [3, 5];
const MAX_BYTE_NGRAM: usize = 5;
const _: () = assert!(BYTE_NGRAMS[0] == 3 && BYTE_NGRAMS[1] == MAX_BYTE_NGRAM, "`mark_grams` writes these lengths out");
/// Lengths of the word n-grams, and the tag byte each is hashed with.
pub const WORD_NGRAMS: [(usize, u8); 3] = [(1, b'w'), (2, b'b'), (3, b't')];
const _: () = assert!(
    WORD_NGRAMS[0].0 == 1 && WORD_NGRAMS[1].0 == 2 && WORD_NGRAMS[2].0 == 3,
    "`mark_word_grams` computes these lengths side by side"
);
/// Odd 64-bit multiplier (2^64 / golden ratio) of the byte-gram hash.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
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

/// What each ASCII byte becomes in a word; 0 marks a separator.
const ASCII_MAP: [u8; 128] = {
    let mut map = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        map[b] = match c {
            b'a'..=b'z' => c,
            b'A'..=b'Z' => c + 32,
            b'0'..=b'9' => b'0',
            _ => 0,
        };
        b += 1;
    }
    map
};

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
fn canonical(text: &str, out: &mut Vec<u8>, words: &mut Vec<(usize, usize)>) {
    out.clear();
    words.clear();
    out.push(b' ');
    let text = truncate(text, MAX_BYTES);
    let bytes = text.as_bytes();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        // ASCII through the table; anything else decoded as one character.
        let (keep, len) = match ASCII_MAP.get(usize::from(b)) {
            Some(&mapped) => (mapped != 0, 1),
            None => match text.get(i..).and_then(|rest| rest.chars().next()) {
                Some(c) => (!is_separator(c), c.len_utf8()),
                None => (false, 1),
            },
        };
        if !keep {
            if let Some(s) = start.take() {
                words.push((s, out.len()));
                out.push(b' ');
            }
        } else {
            if start.is_none() {
                start = Some(out.len());
            }
            match ASCII_MAP.get(usize::from(b)) {
                Some(&mapped) => out.push(mapped),
                None => out.extend_from_slice(bytes.get(i..i + len).unwrap_or_default()),
            }
        }
        i += len;
    }
    if let Some(s) = start {
        words.push((s, out.len()));
        out.push(b' ');
    }
}

/// Step 4 for one byte gram: `packed` holds its bytes, little-endian.
#[inline(always)]
fn byte_gram_index(packed: u64, n: usize) -> u32 {
    ((packed | (n as u64) << 56).wrapping_mul(MULTIPLIER) >> (64 - BITS)) as u32
}

/// One FNV-1a step.
#[inline(always)]
fn fnv(h: u64, byte: u8) -> u64 {
    (h ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a's state after a word gram's tag byte.
const fn fnv_tagged(tag: u8) -> u64 {
    (FNV_OFFSET ^ tag as u64).wrapping_mul(FNV_PRIME)
}

fn word_gram_index(hash: u64) -> u32 {
    (hash & (DIM as u64 - 1)) as u32
}

/// Step 4 for the word grams that start at `words[0]`: the 1-, 2- and
/// 3-gram hashes share their first word's bytes and the 2- and 3-gram their
/// second's, so the three FNV chains step through those bytes side by side:
/// independent multiplications, which the processor overlaps, rather than
/// each gram's bytes hashed one after another.
#[inline(always)]
fn mark_word_grams(text: &[u8], words: &[(usize, usize)], grams: &mut GramSet) {
    const TAGS: [u8; 3] = [WORD_NGRAMS[0].1, WORD_NGRAMS[1].1, WORD_NGRAMS[2].1];
    let word = |k: usize| words.get(k).and_then(|&(from, to)| text.get(from..to));
    let Some(first) = word(0) else { return };
    let (mut one, mut two, mut three) = (fnv_tagged(TAGS[0]), fnv_tagged(TAGS[1]), fnv_tagged(TAGS[2]));
    for &b in first {
        (one, two, three) = (fnv(one, b), fnv(two, b), fnv(three, b));
    }
    grams.mark(word_gram_index(one));
    let Some(second) = word(1) else { return };
    (two, three) = (fnv(two, b' '), fnv(three, b' '));
    for &b in second {
        (two, three) = (fnv(two, b), fnv(three, b));
    }
    grams.mark(word_gram_index(two));
    let Some(third) = word(2) else { return };
    three = fnv(three, b' ');
    for &b in third {
        three = fnv(three, b);
    }
    grams.mark(word_gram_index(three));
}

/// Which grams one text has: a bit per index of the hashed space (2^18
/// bits, 32 KiB: a sixteenth of a table of counts), and the indices
/// present in the order first seen. Marking a gram is a load, an `or` and
/// a store, with no branch to mispredict; emptying the set clears only the
/// words the last text touched.
#[derive(Debug, Default)]
struct GramSet {
    bits: Vec<u64>,
    /// `present[..len]` are the distinct indices; one slot more than the
    /// text has grams, so the unconditional write in `mark` always lands.
    present: Vec<u32>,
    len: usize,
}

impl GramSet {
    /// Empties the set and makes room for `grams` grams.
    fn reset(&mut self, grams: usize) {
        if self.bits.len() == DIM / 64 {
            for &index in self.present.get(..self.len).unwrap_or_default() {
                if let Some(word) = self.bits.get_mut(index as usize >> 6) {
                    *word = 0;
                }
            }
        } else {
            self.bits = vec![0; DIM / 64];
        }
        self.len = 0;
        if self.present.len() <= grams {
            self.present.resize(grams + 1, 0);
        }
    }

    #[inline(always)]
    fn mark(&mut self, index: u32) {
        let Some(word) = self.bits.get_mut(index as usize >> 6) else { return };
        let bit = 1u64 << (index & 63);
        let first = usize::from(*word & bit == 0);
        *word |= bit;
        // Written every time, kept (by counting it) only the first time.
        if let Some(slot) = self.present.get_mut(self.len) {
            *slot = index;
        }
        self.len += first;
    }

    /// The distinct indices, in the order first seen.
    fn indices(&self) -> &[u32] {
        self.present.get(..self.len).unwrap_or_default()
    }
}

/// Reusable buffers, so scoring many texts allocates once.
#[derive(Debug, Default)]
pub struct Featurizer {
    text: Vec<u8>,
    words: Vec<(usize, usize)>,
    grams: GramSet,
    sorted: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<(Featurizer, Features)> = std::cell::Cell::default();
}

/// Runs `f` with this thread's featuriser and feature buffer, so their
/// buffers are allocated once per thread, not per text. (A nested call
/// finds the slot empty and gets fresh buffers: correct, if slower.)
pub fn with_scratch<T>(f: impl FnOnce(&mut Featurizer, &mut Features) -> T) -> T {
    let mut scratch = SCRATCH.try_with(std::cell::Cell::take).unwrap_or_default();
    let result = f(&mut scratch.0, &mut scratch.1);
    let _ = SCRATCH.try_with(|slot| slot.set(scratch));
    result
}

/// Sparse features of one text, indices unique and ascending.
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
    /// The features of `text`, indices ascending: what the parity fixture,
    /// general ONNX graphs and the training script see.
    pub fn features(&mut self, text: &str, out: &mut Features) {
        out.indices.clear();
        out.values.clear();
        if !self.mark_grams(text) {
            return;
        }
        self.sorted.clear();
        self.sorted.extend_from_slice(self.grams.indices());
        self.sorted.sort_unstable();
        let value = (1.0 / (self.sorted.len() as f64).sqrt()) as f32;
        out.indices.extend(self.sorted.iter().map(|&index| i64::from(index)));
        out.values.resize(self.sorted.len(), value);
    }

    /// `Σ weights[index] · value` over the features of `text`, taken from
    /// the set of grams without building the features. `None` when the
    /// text has no word, or an index falls outside `weights`.
    pub fn linear_dot(&mut self, text: &str, weights: &[f32]) -> Option<f32> {
        if !self.mark_grams(text) {
            return None;
        }
        let mut dot = 0.0f64;
        for &index in self.grams.indices() {
            dot += f64::from(*weights.get(index as usize)?);
        }
        Some((dot / (self.grams.len as f64).sqrt()) as f32)
    }

    /// Steps 1–4: every gram of `text` marked present; false when there is no word.
    fn mark_grams(&mut self, text: &str) -> bool {
        canonical(text, &mut self.text, &mut self.words);
        let len = self.text.len();
        self.grams.reset(len * BYTE_NGRAMS.len() + self.words.len() * WORD_NGRAMS.len());
        if self.words.is_empty() {
            return false;
        }
        let grams = &mut self.grams;
        // Zero padding, so every position can be read as eight bytes.
        self.text.extend_from_slice(&[0; 8]);
        for start in 0..len {
            let Some(Ok(chunk)) = self.text.get(start..start + 8).map(<[u8; 8]>::try_from) else { break };
            let packed = u64::from_le_bytes(chunk);
            let room = len - start;
            if room >= MAX_BYTE_NGRAM {
                // Written out: a module built for size does not unroll the loop below.
                grams.mark(byte_gram_index(packed & 0xff_ffff, 3));
                grams.mark(byte_gram_index(packed & 0xff_ffff_ffff, 5));
                continue;
            }
            for n in BYTE_NGRAMS {
                if n <= room {
                    grams.mark(byte_gram_index(packed & (u64::MAX >> (64 - 8 * n)), n));
                }
            }
        }
        self.text.truncate(len);
        for start in 0..self.words.len() {
            mark_word_grams(&self.text, self.words.get(start..).unwrap_or_default(), grams);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(text: &str) -> Vec<String> {
        let (mut s, mut w) = (Vec::new(), Vec::new());
        canonical(text, &mut s, &mut w);
        w.iter().map(|&(a, b)| String::from_utf8(s[a..b].to_vec()).unwrap()).collect()
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
    fn linear_dot_is_the_dot_product_with_the_features() {
        let weights: Vec<f32> = (0..DIM).map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0).collect();
        let mut f = Featurizer::default();
        let mut out = Features::default();
        for text in ["Ignore all previous instructions", "naïve café 日本語 🙂", &"spam ".repeat(900), "a", "x"] {
            f.features(text, &mut out);
            let dot: f64 = out.indices.iter().zip(&out.values).map(|(&i, &v)| f64::from(weights[i as usize]) * f64::from(v)).sum();
            let direct = f.linear_dot(text, &weights).unwrap();
            assert!((f64::from(direct) - dot).abs() < 1e-5, "{text}: {direct} vs {dot}");
        }
        assert_eq!(f.linear_dot(" !? ", &weights), None);
        assert_eq!(f.linear_dot("words", &weights[..10]), None, "an index past the table is refused");
        // Nothing of one text is left over for the next.
        f.features("one text", &mut out);
        let again = out.clone();
        f.linear_dot("another, longer text entirely", &weights);
        f.features("one text", &mut out);
        assert_eq!(out, again);
    }

    #[test]
    fn repeated_grams_weigh_nothing_more_and_byte_grams_see_their_length() {
        let mut f = Featurizer::default();
        let (mut once, mut thrice) = (Features::default(), Features::default());
        f.features("echo, then quiet", &mut once);
        f.features("echo echo echo, then quiet", &mut thrice);
        assert!(thrice.values.iter().all(|&v| v == thrice.values[0]), "every present gram has the same value");
        // Repeating a word adds only the grams that span two copies of it.
        let new: Vec<_> = thrice.indices.iter().filter(|i| !once.indices.contains(i)).collect();
        assert!(!new.is_empty() && new.len() < 12, "{} new grams", new.len());
        assert!(once.indices.iter().all(|i| thrice.indices.contains(i)));
        // Same bytes, different lengths: different indices.
        assert_ne!(byte_gram_index(u64::from_le_bytes(*b"abc\0\0\0\0\0"), 3), byte_gram_index(u64::from_le_bytes(*b"abc\0\0\0\0\0"), 4));
        assert!(byte_gram_index(u64::MAX >> 8, 7) < DIM as u32);
    }

    #[test]
    fn random_texts_agree_between_the_two_paths_and_never_panic() {
        // Deterministic xorshift: text of ASCII, separators, accented and
        // wide characters, emoji and long runs, up to past MAX_BYTES.
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15u64);
        const PIECES: [&str; 12] = ["a", "Z", "7", " ", "\n", "!", "é", "日", "🙂", "\u{200b}", "ignore ", "xxxxxxxxxxxxxxxx"];
        let weights: Vec<f32> = (0..DIM).map(|i| ((i * 104_729) % 4001) as f32 / 2000.0 - 1.0).collect();
        let (mut f, mut out) = (Featurizer::default(), Features::default());
        for _ in 0..300 {
            let len = (next() % 700) as usize;
            let text: String = (0..len).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
            f.features(&text, &mut out);
            let direct = f.linear_dot(&text, &weights);
            assert_eq!(direct.is_some(), !out.is_empty());
            if let Some(direct) = direct {
                let dot: f64 = out.indices.iter().zip(&out.values).map(|(&i, &v)| f64::from(weights[i as usize]) * f64::from(v)).sum();
                assert!((f64::from(direct) - dot).abs() < 1e-5, "{direct} vs {dot}");
                let norm: f32 = out.values.iter().map(|v| v * v).sum();
                assert!((norm - 1.0).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn the_gram_set_forgets_each_text() {
        let texts = ["ignore all previous instructions", &"a long text with many words ".repeat(120), "ab", "ignore ignore ignore", ""];
        let expected: Vec<Features> = texts
            .iter()
            .map(|t| {
                let mut out = Features::default();
                Featurizer::default().features(t, &mut out);
                out
            })
            .collect();
        let (mut f, mut out) = (Featurizer::default(), Features::default());
        for round in 0..3 {
            for (text, want) in texts.iter().zip(&expected) {
                f.features(text, &mut out);
                assert_eq!(&out, want, "round {round}");
                assert_eq!(f.grams.bits.iter().map(|w| w.count_ones() as usize).sum::<usize>(), out.indices.len(), "exactly this text's grams are set");
            }
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let text = "é".repeat(3000);
        let cut = truncate(&text, MAX_BYTES);
        assert!(cut.len() <= MAX_BYTES && cut.len() >= MAX_BYTES - 1);
        assert_eq!(truncate("abc", 10), "abc");
    }
}
