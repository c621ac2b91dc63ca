//! Trigger literals found the way a leftmost-longest aho-corasick search
//! finds them — exact-case token prefixes (`AKIA`, `ghp_`) or ASCII
//! case-insensitive context words (`password`, `api`) — without its one
//! table walk per byte. (Natively aho-corasick skips ahead with its SIMD
//! "Teddy" prefilter; in wasm it has none and walks every byte.)
//!
//! Keys start with common letters, so no single-byte prefilter helps, and
//! one pair in six of English prose starts or continues some key ("re",
//! "te", "se"). Three bytes tell far more: a key starting at `i` has its
//! first two bytes at `i` and its second and third at `i + 1`, and only
//! about one offset in ninety of prose has both. So one table, indexed by
//! a raw byte pair, holds two flags per key set: [`FIRST`] (the pair can be
//! a key's first two bytes) and [`SECOND`] (its second and third; for a
//! two-byte key, its second byte and anything). The scan looks up the pair
//! at every offset, sixteen offsets at a time without a branch, and only
//! where a pair's `FIRST` meets the next pair's `SECOND` compares keys.
//! Starts are tried left to right and the longest key wins; starts inside
//! it are skipped: exactly leftmost-longest, non-overlapping. Several key
//! sets share the table, so the token prefixes and the context words cost
//! one pass.

use super::nibble_filter::{self, Fingerprint, NibbleFilter};
use crate::bytemask::word;

/// Up to [`MAX_SETS`] key sets, each searched on its own (its matches do
/// not hide another set's), in one pass over the text: a pair is looked
/// up once for all of them.
#[derive(Debug)]
pub struct WordScan {
    /// Per raw byte pair, two bits per set: [`FIRST`] when it can be a
    /// key's first two bytes, [`SECOND`] when it can be its second and
    /// third (for a two-byte key: its second and any byte).
    pair_flags: Box<[u8; 1 << 16]>,
    sets: Vec<KeySet>,
    /// Where the build has byte shuffles: the offsets that may start a
    /// key by its first three bytes, sixteen at a time, so the pair table
    /// is looked up only at those.
    nibbles: Option<NibbleFilter>,
}

/// Sets one scan can hold: two flag bits each in a byte.
pub const MAX_SETS: usize = 4;

const FIRST: u8 = 1;
const SECOND: u8 = 2;
/// The [`FIRST`] bit of every set.
const FIRST_BITS: u8 = 0b0101_0101;
/// [`FIRST_BITS`] in each byte of a word.
const FIRST_BITS_WORD: u64 = u64::from_le_bytes([FIRST_BITS; 8]);

/// One key set: its keys, grouped by their first pair.
#[derive(Debug)]
struct KeySet {
    /// Per raw byte pair (`b0 | b1 << 8`): 0, or 1 + the bucket of keys
    /// whose first two bytes equal the pair (up to ASCII case if folded).
    pairs: Box<[u16; 1 << 16]>,
    buckets: Vec<Bucket>,
    keys: Vec<Vec<u8>>,
    fold_case: bool,
}

/// The keys that share a first pair.
#[derive(Debug, Default)]
struct Bucket {
    /// Raw third bytes any of them can continue with: a start the flags
    /// let through for one key's first pair and another's second ("bef"
    /// from "bearer" and "ref") fails here, before any comparison.
    third: [u64; 4],
    /// One of them is the pair itself: any third byte, or none, will do.
    whole_pair: bool,
    /// Key indices, longest first.
    keys: Vec<usize>,
}

impl Bucket {
    fn may_continue(&self, c: Option<&u8>) -> bool {
        self.whole_pair || c.is_some_and(|&c| self.third.get(usize::from(c >> 6)).is_some_and(|w| w >> (c & 63) & 1 == 1))
    }
}

impl WordScan {
    /// One set: `keys` are the automaton's patterns, in its order (match
    /// ids are indices into it); `fold_case`: match them up to ASCII case.
    #[cfg(test)]
    pub fn build(keys: &[String], fold_case: bool) -> Option<Self> {
        Self::build_sets(&[(keys, fold_case)])
    }

    /// Several sets, each `(keys, fold_case)`; matches name the set by its
    /// index here. `None` when a key is shorter than two bytes, there are
    /// too many pairs or more than [`MAX_SETS`] sets.
    pub fn build_sets(sets: &[(&[String], bool)]) -> Option<Self> {
        Self::build_sets_with(sets, nibble_filter::HAS_SHUFFLE)
    }

    /// [`Self::build_sets`], with the nibble filter or without it (the
    /// tests run both on every target).
    fn build_sets_with(sets: &[(&[String], bool)], nibbles: bool) -> Option<Self> {
        if sets.len() > MAX_SETS {
            return None;
        }
        let mut pair_flags: Box<[u8; 1 << 16]> = vec![0u8; 1 << 16].into_boxed_slice().try_into().ok()?;
        let built = sets
            .iter()
            .enumerate()
            .map(|(i, (keys, fold))| KeySet::build(keys, *fold, &mut pair_flags, 2 * i as u32))
            .collect::<Option<Vec<_>>>()?;
        let nibbles = nibbles.then(|| {
            let fingerprints: Vec<Fingerprint> = built.iter().flat_map(KeySet::fingerprints).collect();
            NibbleFilter::build(&fingerprints)
        });
        Some(Self { pair_flags, sets: built, nibbles })
    }

    /// Whether a set of these keys can be scanned: every key has a pair.
    pub fn can_hold(keys: &[String]) -> bool {
        keys.iter().all(|k| k.len() >= 2)
    }

    #[cfg(test)]
    pub fn set_count(&self) -> usize {
        self.sets.len()
    }

    fn flags(&self, x: u8, y: u8) -> u8 {
        self.pair_flags[usize::from(u16::from(x) | u16::from(y) << 8)]
    }

    /// Per set, a bit at `2 * set` when a key of the set can start at the
    /// pair with flags `here`, followed by the pair with flags `next`.
    fn starts(here: u8, next: u8) -> u8 {
        here & (next >> 1) & FIRST_BITS
    }

    /// Calls `hit(set, start, key index)` for each match of each set, left
    /// to right within a set. Not inlined: the loop needs its registers,
    /// which it does not get inside a large caller.
    #[inline(never)]
    pub fn for_each(&self, hay: &[u8], mut hit: impl FnMut(usize, usize, usize)) {
        // Per set, keys may start at `from` or later.
        let mut from = [0usize; MAX_SETS];
        // The flags of the pairs at the first eight offsets of `b` (nine
        // bytes), side by side in one word: offset `k` in byte `k`. Two
        // loads: the 16-bit quarters of the word at 0 are the pairs at
        // offsets 0, 2, 4, 6, those of the word at 1 the others, each a
        // table index as it is.
        let flags8 = |b: &[u8]| {
            let (even, odd) = (word(b), word(b.get(1..).unwrap_or_default()));
            let f = |w: u64, shift: u32| u64::from(self.pair_flags[usize::from((w >> shift) as u16)]);
            f(even, 0) | f(odd, 0) << 8 | f(even, 16) << 16 | f(odd, 16) << 24 | f(even, 32) << 32 | f(odd, 32) << 40 | f(even, 48) << 48 | f(odd, 48) << 56
        };
        // `here` and the word of the eight offsets after it: per offset, the
        // sets that may start there. The shift moves each `SECOND` onto the
        // `FIRST` of the offset before; what crosses into the byte below is
        // masked off.
        let starts_in = |here: u64, after: u64| here & ((here >> 8 | after << 56) >> 1) & FIRST_BITS_WORD;
        // Sixteen offsets at a time, and a branch only where some offset
        // may start a key.
        let mut i = 0;
        if let Some(nibbles) = &self.nibbles {
            // Only candidates get the exact test: the pair at each and the
            // pair after it.
            while let Some(block) = hay.get(i..i + 18).and_then(|b| <&[u8; 18]>::try_from(b).ok()) {
                let mut candidates = nibbles.candidates(block);
                while candidates != 0 {
                    let k = candidates.trailing_zeros() as usize;
                    candidates &= candidates - 1;
                    if let Some(&[x, y, z]) = block.get(k..k + 3).and_then(|t| <&[u8; 3]>::try_from(t).ok()) {
                        let starts = Self::starts(self.flags(x, y), self.flags(y, z));
                        if starts != 0 {
                            self.try_at(hay, i + k, starts, &mut from, &mut hit);
                        }
                    }
                }
                i += 16;
            }
        }
        while let Some(block) = hay.get(i..i + 18).and_then(|b| <&[u8; 18]>::try_from(b).ok()) {
            let (lo, hi) = (flags8(&block[..9]), flags8(&block[8..17]));
            let [.., b16, b17] = *block;
            let (starts_lo, starts_hi) = (starts_in(lo, hi), starts_in(hi, u64::from(self.flags(b16, b17))));
            if starts_lo | starts_hi != 0 {
                self.try_each(hay, i, starts_lo, &mut from, &mut hit);
                self.try_each(hay, i + 8, starts_hi, &mut from, &mut hit);
            }
            i += 16;
        }
        // The tail, one offset at a time; a pair at the very end has no
        // next pair, and only a two-byte key can end there.
        while let (Some(&x), Some(&y)) = (hay.get(i), hay.get(i + 1)) {
            let next = hay.get(i + 2).map_or(u8::MAX, |&z| self.flags(y, z));
            let starts = Self::starts(self.flags(x, y), next);
            if starts != 0 {
                self.try_at(hay, i, starts, &mut from, &mut hit);
            }
            i += 1;
        }
    }

    /// [`Self::try_at`] each offset from `at` whose byte of `starts` is set.
    #[inline(always)]
    fn try_each(&self, hay: &[u8], at: usize, mut starts: u64, from: &mut [usize; MAX_SETS], hit: &mut impl FnMut(usize, usize, usize)) {
        while starts != 0 {
            let k = starts.trailing_zeros() / 8;
            self.try_at(hay, at + k as usize, (starts >> (8 * k)) as u8, from, hit);
            starts &= !(0xFF << (8 * k));
        }
    }

    /// At offset `i`, the longest key of each set `starts` names, unless
    /// the set's last match covers `i`. Always inlined: as a closure the
    /// compiler may call it out of line, and it runs at every candidate.
    #[inline(always)]
    fn try_at(&self, hay: &[u8], i: usize, mut starts: u8, from: &mut [usize; MAX_SETS], hit: &mut impl FnMut(usize, usize, usize)) {
        for (set, (keys, from)) in self.sets.iter().zip(from.iter_mut()).enumerate() {
            if starts & FIRST != 0 && i >= *from {
                if let Some((k, len)) = keys.word_at(hay, i) {
                    hit(set, i, k);
                    *from = i + len;
                }
            }
            starts >>= 2;
        }
    }
}

impl KeySet {
    /// Marks the set's pairs in `flags` with its flags shifted by `shift`.
    fn build(keys: &[String], fold_case: bool, flags: &mut [u8; 1 << 16], shift: u32) -> Option<Self> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        let forms = |b: u8| if fold_case { case_forms(b) } else { vec![b] };
        let mut pairs: Box<[u16; 1 << 16]> = vec![0u16; 1 << 16].into_boxed_slice().try_into().ok()?;
        let mut buckets: Vec<Bucket> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let (&a, &b) = (k.first()?, k.get(1)?);
            let third = k.get(2).copied();
            // At an odd start the pair after it holds the second byte and
            // the third, or, for a two-byte key, whatever follows.
            let next: Vec<u8> = match third {
                Some(c) => forms(c),
                None => (0..=u8::MAX).collect(),
            };
            for x in forms(a) {
                for y in forms(b) {
                    *flags.get_mut(usize::from(x) | usize::from(y) << 8)? |= FIRST << shift;
                }
            }
            for y in forms(b) {
                for &z in &next {
                    *flags.get_mut(usize::from(y) | usize::from(z) << 8)? |= SECOND << shift;
                }
            }
            for x in forms(a) {
                for y in forms(b) {
                    let slot = pairs.get_mut(usize::from(x) | usize::from(y) << 8)?;
                    if *slot == 0 {
                        buckets.push(Bucket::default());
                        *slot = u16::try_from(buckets.len()).ok()?;
                    }
                    let bucket = buckets.get_mut(usize::from(*slot) - 1)?;
                    match third {
                        Some(c) => {
                            for z in forms(c) {
                                *bucket.third.get_mut(usize::from(z >> 6))? |= 1 << (z & 63);
                            }
                        }
                        None => bucket.whole_pair = true,
                    }
                    if !bucket.keys.contains(&i) {
                        bucket.keys.push(i);
                    }
                }
            }
        }
        for b in &mut buckets {
            b.keys.sort_by_key(|&i| std::cmp::Reverse(keys.get(i).map_or(0, Vec::len)));
        }
        Some(Self { pairs, buckets, keys, fold_case })
    }

    /// Each key's first three bytes as the nibble filter takes them: the
    /// forms each can take, any byte third for a two-byte key.
    fn fingerprints(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        let forms = |b: u8| if self.fold_case { case_forms(b) } else { vec![b] };
        self.keys.iter().filter_map(move |k| {
            let third = k.get(2).map_or_else(|| (0..=u8::MAX).collect(), |&c| forms(c));
            Some([forms(*k.first()?), forms(*k.get(1)?), third])
        })
    }

    fn slot(&self, x: u8, y: u8) -> u16 {
        self.pairs[usize::from(u16::from(x) | u16::from(y) << 8)]
    }

    /// The longest key at `at`: (key index, length).
    fn word_at(&self, hay: &[u8], at: usize) -> Option<(usize, usize)> {
        let pair = hay.get(at..at + 2)?;
        let slot = self.slot(*pair.first()?, *pair.get(1)?);
        let bucket = self.buckets.get(usize::from(slot).checked_sub(1)?)?;
        if !bucket.may_continue(hay.get(at + 2)) {
            return None;
        }
        bucket.keys.iter().find_map(|&k| {
            let key = self.keys.get(k)?;
            let found = hay.get(at..at + key.len())?;
            let equal = if self.fold_case { found.eq_ignore_ascii_case(key) } else { found == key.as_slice() };
            equal.then_some((k, key.len()))
        })
    }
}

/// The bytes that equal `b` up to ASCII case.
fn case_forms(b: u8) -> Vec<u8> {
    let (l, u) = (b.to_ascii_lowercase(), b.to_ascii_uppercase());
    if l == u {
        vec![b]
    } else {
        vec![l, u]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasickBuilder, MatchKind};

    fn strings(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|s| s.to_string()).collect()
    }

    /// (start, key index) of each match.
    type Matches = Vec<(usize, usize)>;

    /// The automaton the scan stands in for, and the scan without and with
    /// the nibble filter, built once for many texts.
    struct Reference {
        automaton: aho_corasick::AhoCorasick,
        plain: WordScan,
        filtered: WordScan,
    }

    impl Reference {
        fn new(keys: &[String], fold_case: bool) -> Self {
            Self {
                automaton: AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostLongest).ascii_case_insensitive(fold_case).build(keys).unwrap(),
                plain: WordScan::build_sets_with(&[(keys, fold_case)], false).unwrap(),
                filtered: WordScan::build_sets_with(&[(keys, fold_case)], true).unwrap(),
            }
        }

        /// The automaton's matches and the scan's; the filtered scan's must
        /// be the plain one's.
        fn check(&self, text: &[u8]) -> (Matches, Matches) {
            let want = self.automaton.find_iter(text).map(|m| (m.start(), m.pattern().as_usize())).collect();
            let (mut got, mut filtered) = (Vec::new(), Vec::new());
            self.plain.for_each(text, |_, s, k| got.push((s, k)));
            self.filtered.for_each(text, |_, s, k| filtered.push((s, k)));
            assert_eq!(filtered, got, "{:?}", String::from_utf8_lossy(text));
            (want, got)
        }
    }

    /// The matches of the automaton the scan stands in for, and the scan's.
    fn both(keys: &[String], fold_case: bool, text: &[u8]) -> (Matches, Matches) {
        Reference::new(keys, fold_case).check(text)
    }

    /// Same matches as the automaton it replaces, on tricky overlaps.
    #[test]
    fn same_as_leftmost_longest_automaton() {
        let words = strings(&["tel", "telephone", "phone", "dob", "birth", "api", "apikey", "d.o.b", "pwd", "endpoint=sb://", "secret"]);
        let texts = [
            "dobirth TELEPHONE telephon apikeyapi D.O.B. pwdpwd endpoint=SB://x secretsecret ap a",
            "ΑPI café api\u{17f}secret",
            "",
            "t",
            "tel",
            "xtel",
            "xxtel",
            "atelephone",
            "telte",
            "xapikeyxapi",
        ];
        for t in texts {
            let (want, got) = both(&words, true, t.as_bytes());
            assert_eq!(got, want, "{t:?}");
        }
    }

    /// Exact-case token prefixes, two-byte ones included, at every offset
    /// parity, at the very end of odd and even texts, and in other case.
    #[test]
    fn exact_case_literals_with_two_byte_keys() {
        let literals = strings(&["AKIA", "ASIA", "A3T", "SK", "SG.", "Q~", "::", "sk-", "sk-ant-", "ghp_", "-----BEGIN", "eyJ"]);
        let texts = [
            "key AKIAXYZ and SK0123 and xSK and akia and sk-ant-api ghp_x",
            "SK",
            "xSK",
            "xxSK",
            "a::b:::c::::",
            "fe80::1 Q~ xQ~",
            "SKSKSK",
            "SSK",
            "-----BEGIN-----BEGINeyJeyJ",
            "ask-me sk-antsk-ant-",
            "S",
            "K",
            "",
        ];
        for t in texts {
            let (want, got) = both(&literals, false, t.as_bytes());
            assert_eq!(got, want, "{t:?}");
        }
    }

    /// Random texts over the keys' own bytes, both case modes, against the
    /// automaton: any difference in starts, keys or order fails.
    #[test]
    fn random_texts_match_the_automaton() {
        let literals = strings(&["AKIA", "ASIA", "A3T", "SK", "SG.", "Q~", "::", "sk-", "sk-ant-", "ghp_", "eyJ", "xoxb-", "xoxe."]);
        let words = strings(&["api", "apikey", "pwd", "password", "dob", "d.o.b", "tel", "telephone", "token"]);
        let alphabet = b"AKISG3TQ~:sk-antghp_eyJxobe.apiywdsrtlhnq D";
        let references = [Reference::new(&literals, false), Reference::new(&words, true)];
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d_u64);
        for round in 0..4000 {
            let len = (next() % 40) as usize;
            let text: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let (want, got) = references[round % 2].check(&text);
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&text));
        }
    }

    /// Two sets in one scan, one exact-case and one folded, whose keys
    /// overlap each other ("sk-" inside "ask-", "api" inside "api_org_"):
    /// each set finds what its own automaton finds, as if alone.
    #[test]
    fn sets_in_one_scan_match_as_if_alone() {
        let literals = strings(&["AKIA", "SK", "sk-", "api_org_", "::", "ghp_", "Q~"]);
        let words = strings(&["ask", "api", "apikey", "token", "tel", "pwd", "sk"]);
        let scan = WordScan::build_sets(&[(&literals, false), (&words, true)]).unwrap();
        let references = [Reference::new(&literals, false), Reference::new(&words, true)];
        let alphabet = b"AKISsk-apiorg_:ghQ~tokenlwdyPTx ";
        let mut next = crate::test_rng::xorshift(0x6a09_e667_f3bc_c908_u64);
        for _ in 0..4000 {
            let len = (next() % 48) as usize;
            let text: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let mut got: [Matches; 2] = Default::default();
            scan.for_each(&text, |set, s, k| got[set].push((s, k)));
            assert_eq!(got[0], references[0].check(&text).0, "{:?}", String::from_utf8_lossy(&text));
            assert_eq!(got[1], references[1].check(&text).0, "{:?}", String::from_utf8_lossy(&text));
        }
        assert!(WordScan::build_sets(&[(literals.as_slice(), false); MAX_SETS + 1]).is_none());
    }

    /// Long texts (many blocks) of prose with the keys and near-misses of
    /// both sets in them, with and without the nibble filter, against the
    /// automata.
    #[test]
    fn long_texts_match_the_automata() {
        let literals = strings(&["AKIA", "SK", "sk-", "sk-ant-", "::", "ghp_", "Q~", "eyJ", "-----BEGIN", "xoxb-"]);
        let words = strings(&["api", "apikey", "token", "tel", "telephone", "pwd", "password", "bearer", "dob", "d.o.b"]);
        let pieces = ["the ", "review ", "AKIA", "akia ", "SK", "ask", "sk-ant-", "::", "ghp_", "Q~", "eyJ", "-----BEGIN", "xoxb-", "API", "apikey", "Token", "tel", "TELEPHONE", "pwd", "PassWord", "bearer", "bef", "dob", "D.O.B", "d.o", "\u{e9}", ", ", "\n"];
        let scans = [false, true].map(|filtered| WordScan::build_sets_with(&[(&literals, false), (&words, true)], filtered).unwrap());
        let references = [Reference::new(&literals, false), Reference::new(&words, true)];
        let mut next = crate::test_rng::xorshift(0x510e_527f_ade6_82d1_u64);
        for _ in 0..300 {
            let text: String = (0..(next() % 200)).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect();
            for scan in &scans {
                let mut got: [Matches; 2] = Default::default();
                scan.for_each(text.as_bytes(), |set, s, k| got[set].push((s, k)));
                assert_eq!(got[0], references[0].check(text.as_bytes()).0, "{text:?}");
                assert_eq!(got[1], references[1].check(text.as_bytes()).0, "{text:?}");
            }
        }
    }

    #[test]
    fn one_byte_keys_are_refused() {
        assert!(WordScan::build(&strings(&["a"]), true).is_none());
        assert!(WordScan::build(&strings(&["ab", "c"]), false).is_none());
        assert!(WordScan::build(&strings(&["ab"]), false).is_some());
    }
}
