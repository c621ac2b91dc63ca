//! Context words (`password`, `api`, `token`, ...) found the way a
//! leftmost-longest, ASCII case-insensitive aho-corasick search finds them,
//! without its one table walk per byte.
//!
//! Words start with common letters, so no prefilter helps the automaton; but
//! few *pairs* of letters start or continue a word. Every word is at least
//! three bytes long, so it covers a whole pair at an even offset: its first
//! two bytes (it starts there) or its second and third (it starts one byte
//! before). One table lookup per two bytes of text rejects almost every
//! pair; where one hits, the third byte is checked, then the words that
//! share the first pair. Starts are tried left to right and the longest word
//! wins, then the search resumes after it: exactly leftmost-longest,
//! non-overlapping.

/// The compiled word set.
#[derive(Debug)]
pub struct WordScan {
    /// Per raw byte pair at an even offset: [`FIRST`] when it can be a
    /// word's first two bytes, [`SECOND`] when its second and third.
    even: Box<[u8; 1 << 16]>,
    /// Per raw byte pair (`b0 | b1 << 8`): 0, or 1 + the bucket of words
    /// whose first two bytes equal the pair up to ASCII case.
    pairs: Box<[u16; 1 << 16]>,
    buckets: Vec<Bucket>,
    keys: Vec<Vec<u8>>,
}

const FIRST: u8 = 1;
const SECOND: u8 = 2;

/// The words that share a first pair.
#[derive(Debug, Default)]
struct Bucket {
    /// Raw third bytes any of them can continue with: most pair hits in
    /// prose ("re", "te", "to") fail here, before any comparison.
    third: [u64; 4],
    /// Key indices, longest first.
    keys: Vec<usize>,
}

impl Bucket {
    fn may_continue(&self, c: Option<&u8>) -> bool {
        c.is_some_and(|&c| self.third.get(usize::from(c >> 6)).is_some_and(|w| w >> (c & 63) & 1 == 1))
    }
}

impl WordScan {
    /// `keys`: the automaton's patterns, in its order (match ids are
    /// indices into it). `None` when a key is shorter than three bytes or
    /// there are too many pairs.
    pub fn build(keys: &[String]) -> Option<Self> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        let mut pairs: Box<[u16; 1 << 16]> = vec![0u16; 1 << 16].into_boxed_slice().try_into().ok()?;
        let mut even: Box<[u8; 1 << 16]> = vec![0u8; 1 << 16].into_boxed_slice().try_into().ok()?;
        let mut buckets: Vec<Bucket> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let (&a, &b, &c) = (k.first()?, k.get(1)?, k.get(2)?);
            for (p, q, flag) in [(a, b, FIRST), (b, c, SECOND)] {
                for x in case_forms(p) {
                    for y in case_forms(q) {
                        *even.get_mut(usize::from(x) | usize::from(y) << 8)? |= flag;
                    }
                }
            }
            for x in case_forms(a) {
                for y in case_forms(b) {
                    let slot = pairs.get_mut(usize::from(x) | usize::from(y) << 8)?;
                    if *slot == 0 {
                        buckets.push(Bucket::default());
                        *slot = u16::try_from(buckets.len()).ok()?;
                    }
                    let bucket = buckets.get_mut(usize::from(*slot) - 1)?;
                    for z in case_forms(c) {
                        *bucket.third.get_mut(usize::from(z >> 6))? |= 1 << (z & 63);
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
        Some(Self { even, pairs, buckets, keys })
    }

    fn slot(&self, x: u8, y: u8) -> u16 {
        self.pairs[usize::from(u16::from(x) | u16::from(y) << 8)]
    }

    /// The longest word at `at`: (key index, length).
    fn word_at(&self, hay: &[u8], at: usize) -> Option<(usize, usize)> {
        let pair = hay.get(at..at + 2)?;
        let slot = self.slot(*pair.first()?, *pair.get(1)?);
        let bucket = self.buckets.get(usize::from(slot).checked_sub(1)?)?;
        if !bucket.may_continue(hay.get(at + 2)) {
            return None;
        }
        bucket.keys.iter().find_map(|&k| {
            let key = self.keys.get(k)?;
            hay.get(at..at + key.len()).filter(|w| w.eq_ignore_ascii_case(key)).map(|_| (k, key.len()))
        })
    }

    /// Calls `hit(start, key index)` for each match, left to right.
    pub fn for_each(&self, hay: &[u8], mut hit: impl FnMut(usize, usize)) {
        // `p`: an even offset; words may start at `from` or later.
        let (mut p, mut from) = (0, 0);
        while let Some(rest) = hay.get(p..) {
            let found = rest.chunks_exact(2).position(|c| match c {
                [x, y] => self.even[usize::from(u16::from(*x) | u16::from(*y) << 8)] != 0,
                _ => false,
            });
            let Some(off) = found else {
                return;
            };
            p += 2 * off;
            let flags = hay.get(p..p + 2).map_or(0, |c| match c {
                [x, y] => self.even[usize::from(u16::from(*x) | u16::from(*y) << 8)],
                _ => 0,
            });
            let starts = [(flags & SECOND != 0).then(|| p.checked_sub(1)).flatten(), (flags & FIRST != 0).then_some(p)];
            let mut matched = false;
            for s in starts.into_iter().flatten().filter(|&s| s >= from) {
                if let Some((k, len)) = self.word_at(hay, s) {
                    hit(s, k);
                    from = s + len;
                    matched = true;
                    break;
                }
            }
            // Resume at the pair that holds `from` or, when `from` is odd,
            // the one after it (a word starting at `from` covers it).
            p = if matched { (from + 1) & !1 } else { p + 2 };
        }
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

    /// Same matches as the automaton it replaces, on tricky overlaps.
    #[test]
    fn same_as_leftmost_longest_automaton() {
        let words: Vec<String> = ["tel", "telephone", "phone", "dob", "birth", "api", "apikey", "d.o.b", "pwd", "endpoint=sb://", "secret"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ac = AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostLongest).ascii_case_insensitive(true).build(&words).unwrap();
        let scan = WordScan::build(&words).unwrap();
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
            let want: Vec<(usize, usize)> = ac.find_iter(t).map(|m| (m.start(), m.pattern().as_usize())).collect();
            let mut got = Vec::new();
            scan.for_each(t.as_bytes(), |s, k| got.push((s, k)));
            assert_eq!(got, want, "{t:?}");
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(WordScan::build(&["ab".to_string()]).is_none());
    }
}
