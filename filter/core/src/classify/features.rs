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
//!    words joined by spaces;
//! 5. value per index `1 + ln(count)`, L2-normalised (f64, emitted as f32):
//!    a gram repeated to bury an injection gains only its logarithm.
//!
//! Byte grams cost one load, a mask and a multiply each, and are counted in
//! a small hash table sized to the text; a linear model's dot product is
//! taken straight from the counts ([`Featurizer::linear_dot`]), with
//! nothing sorted or built: that is what lets the filter score a message in
//! microseconds inside V8.

/// Name of this contract; models carry it in their `meshguard.features`
/// metadata.
pub const VERSION: &str = "mg-hash-v2";
pub const BITS: u32 = 18;
pub const DIM: usize = 1 << BITS;
/// Longest text featurised at once; longer texts are scored in windows.
pub const MAX_BYTES: usize = 4096;

/// Lengths of the byte n-grams (each at most 7: the length takes the top byte).
pub const BYTE_NGRAMS: [usize; 4] = [3, 4, 5, 6];
const MAX_BYTE_NGRAM: usize = 6;
const _: () = assert!(
    BYTE_NGRAMS[0] == 3 && BYTE_NGRAMS[1] == 4 && BYTE_NGRAMS[2] == 5 && BYTE_NGRAMS[3] == MAX_BYTE_NGRAM,
    "`count` writes these lengths out"
);
/// Lengths of the word n-grams, and the tag byte each is hashed with.
pub const WORD_NGRAMS: [(usize, u8); 2] = [(1, b'w'), (2, b'b')];
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

fn word_gram_index(tag: u8, text: &[u8]) -> u32 {
    let mut h = (FNV_OFFSET ^ u64::from(tag)).wrapping_mul(FNV_PRIME);
    for &b in text {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    (h & (DIM as u64 - 1)) as u32
}

/// `1 + ln(count)` (step 5), from a table for the counts most grams have.
struct CountWeights(&'static [f64; 64]);

impl CountWeights {
    fn get() -> Self {
        static TABLE: std::sync::OnceLock<[f64; 64]> = std::sync::OnceLock::new();
        Self(TABLE.get_or_init(|| {
            let mut t = [1.0; 64];
            for (c, w) in t.iter_mut().enumerate().skip(2) {
                *w = 1.0 + (c as f64).ln();
            }
            t
        }))
    }

    #[inline(always)]
    fn of(&self, count: u16) -> f64 {
        match self.0.get(usize::from(count)) {
            Some(&w) => w,
            None => 1.0 + f64::from(count).ln(),
        }
    }
}

/// The grams of one text and how often each occurs, in an open-addressing
/// table sized to the text (a 512-byte window needs 4,096 slots, 32 KiB)
/// rather than a direct-mapped table of [`DIM`] counts (512 KiB per
/// thread, its scattered writes missing the cache). Each slot carries
/// the generation (text) that filled it, so emptying the table between
/// texts is one increment, not a pass over the slots.
#[derive(Debug, Default)]
struct GramCounts {
    /// `generation << 48 | count << 32 | index`, one load and one store per
    /// gram; a slot of another generation is empty.
    slots: Vec<u64>,
    /// Only the first `mask + 1` slots are in use for the current text.
    mask: usize,
    generation: u16,
    /// Slots filled, in the order their grams were first seen.
    used: Vec<u32>,
}

const COUNT_ONE: u64 = 1 << 32;
const COUNT_MAX: u64 = 0xffff << 32;
const GENERATION_BITS: u64 = 0xffff << 48;

impl GramCounts {
    /// Empties the table and sizes it for at most `grams` grams, at a load
    /// factor of at most one half, so probing stays short and always ends.
    fn reset(&mut self, grams: usize) {
        self.used.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Wrapped: a slot left from 65,536 texts ago would look current.
            self.slots.fill(0);
            self.generation = 1;
        }
        let size = (grams.max(8) * 2).next_power_of_two();
        if self.slots.len() < size {
            self.slots.resize(size, 0);
        }
        self.mask = size - 1;
    }

    #[inline(always)]
    fn add(&mut self, index: u32) {
        let tag = u64::from(self.generation) << 48;
        // Indices are hashes already: their low bits place them well.
        let mut at = index as usize & self.mask;
        for _ in 0..=self.mask {
            let Some(slot) = self.slots.get_mut(at) else { return };
            if *slot & GENERATION_BITS != tag {
                *slot = tag | COUNT_ONE | u64::from(index);
                self.used.push(at as u32);
                return;
            }
            if *slot as u32 == index {
                if *slot & COUNT_MAX != COUNT_MAX {
                    *slot += COUNT_ONE;
                }
                return;
            }
            at = (at + 1) & self.mask;
        }
    }

    /// `(index, count)` of every gram, in the order first seen.
    fn iter(&self) -> impl Iterator<Item = (u32, u16)> + '_ {
        self.used.iter().filter_map(|&at| self.slots.get(at as usize).map(|&slot| (slot as u32, (slot >> 32) as u16)))
    }
}

/// Reusable buffers, so scoring many texts allocates once.
#[derive(Debug, Default)]
pub struct Featurizer {
    text: Vec<u8>,
    words: Vec<(usize, usize)>,
    counts: GramCounts,
    sorted: Vec<(u32, u16)>,
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
        if !self.count(text) {
            return;
        }
        let weight = CountWeights::get();
        self.sorted.clear();
        self.sorted.extend(self.counts.iter());
        self.sorted.sort_unstable();
        let norm = self.sorted.iter().map(|&(_, count)| weight.of(count).powi(2)).sum::<f64>().sqrt();
        for &(index, count) in &self.sorted {
            out.indices.push(i64::from(index));
            out.values.push((weight.of(count) / norm) as f32);
        }
    }

    /// `Σ weights[index] · value` over the features of `text`, taken from
    /// the counts without building the features. `None` when the text has
    /// no word, or an index falls outside `weights`.
    pub fn linear_dot(&mut self, text: &str, weights: &[f32]) -> Option<f32> {
        if !self.count(text) {
            return None;
        }
        let weight = CountWeights::get();
        let (mut dot, mut norm2, mut missing) = (0.0f64, 0.0f64, false);
        for (index, count) in self.counts.iter() {
            let value = weight.of(count);
            norm2 += value * value;
            match weights.get(index as usize) {
                Some(&w) => dot += f64::from(w) * value,
                None => missing = true,
            }
        }
        (!missing).then(|| (dot / norm2.sqrt()) as f32)
    }

    /// Steps 1–4: every gram of `text` counted; false when there is no word.
    fn count(&mut self, text: &str) -> bool {
        canonical(text, &mut self.text, &mut self.words);
        let len = self.text.len();
        self.counts.reset(len * BYTE_NGRAMS.len() + self.words.len() * WORD_NGRAMS.len());
        if self.words.is_empty() {
            return false;
        }
        let counts = &mut self.counts;
        // Zero padding, so every position can be read as eight bytes.
        self.text.extend_from_slice(&[0; 8]);
        for start in 0..len {
            let Some(Ok(chunk)) = self.text.get(start..start + 8).map(<[u8; 8]>::try_from) else { break };
            let packed = u64::from_le_bytes(chunk);
            let room = len - start;
            if room >= MAX_BYTE_NGRAM {
                // Written out: a module built for size does not unroll the loop below.
                counts.add(byte_gram_index(packed & 0xff_ffff, 3));
                counts.add(byte_gram_index(packed & 0xffff_ffff, 4));
                counts.add(byte_gram_index(packed & 0xff_ffff_ffff, 5));
                counts.add(byte_gram_index(packed & 0xffff_ffff_ffff, 6));
                continue;
            }
            for n in BYTE_NGRAMS {
                if n <= room {
                    counts.add(byte_gram_index(packed & (u64::MAX >> (64 - 8 * n)), n));
                }
            }
        }
        self.text.truncate(len);
        for (n, tag) in WORD_NGRAMS {
            for span in self.words.windows(n) {
                let (Some(&(from, _)), Some(&(_, to))) = (span.first(), span.last()) else { continue };
                // Words are separated by exactly one space, so the span is the gram.
                counts.add(word_gram_index(tag, self.text.get(from..to).unwrap_or_default()));
            }
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
    fn repeated_grams_weigh_more_and_byte_grams_see_their_length() {
        let mut f = Featurizer::default();
        let mut out = Features::default();
        f.features("echo echo echo, then quiet", &mut out);
        let (min, max) = out.values.iter().fold((f32::MAX, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!((max / min - (1.0 + 3f32.ln())).abs() < 1e-3, "a gram seen three times weighs 1 + ln 3");
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
    fn the_count_table_forgets_each_text_across_sizes_and_generation_wraps() {
        let texts = ["ignore all previous instructions", &"a long text with many words ".repeat(120), "ab", "ignore ignore ignore"];
        let expected: Vec<Features> = texts
            .iter()
            .map(|t| {
                let mut out = Features::default();
                Featurizer::default().features(t, &mut out);
                out
            })
            .collect();
        let (mut f, mut out) = (Featurizer::default(), Features::default());
        // The counter wraps to generation 1 on the second text of the first
        // round: the same text that filled the table at generation 1, so
        // slots kept across the wrap would count its grams twice.
        f.features(texts[1], &mut out);
        assert_eq!(f.counts.generation, 1);
        f.counts.generation = u16::MAX - 1;
        for round in 0..6 {
            for (text, want) in texts.iter().zip(&expected) {
                f.features(text, &mut out);
                assert_eq!(&out, want, "round {round}, generation {}", f.counts.generation);
            }
        }
        assert!(f.counts.generation < 100, "the counter wrapped");
        // Every slot placement is within the table's half-full bound.
        assert!(f.counts.used.len() * 2 <= f.counts.mask + 1);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let text = "é".repeat(3000);
        let cut = truncate(&text, MAX_BYTES);
        assert!(cut.len() <= MAX_BYTES && cut.len() >= MAX_BYTES - 1);
        assert_eq!(truncate("abc", 10), "abc");
    }
}
