//! Where a pattern's matches can start.
//!
//! An unanchored search runs a pattern's forward DFA to a match's end and
//! then its reverse DFA back to the start: two automata, each with its own
//! transition tables to fetch. Most built-in patterns start with a byte
//! from a small set (`ghp_`, `+`), or with a word boundary (`\b[1-6]` of a
//! card number): in a window they can start at a handful of offsets, and an
//! anchored search at each, left to right, finds the same leftmost match
//! with the forward DFA alone and no reverse pass.
//!
//! The offsets are a superset of the real starts: a byte the match can
//! begin with, at a word boundary where every way to that byte passes one.
//! The anchored search decides. After [`MAX_MISSES`] starts that hold no
//! match, the caller searches the rest of the window unanchored, so a
//! window costs at most a few walks more than before, whatever its text.

use regex_syntax::hir::{Hir, HirKind, Look};

use super::trigger::ByteSet;

/// Anchored searches that find nothing, per pattern and window, before
/// the rest of the window is searched unanchored: each such search may
/// walk to the window's end.
pub const MAX_MISSES: usize = 4;

/// The first bytes of a pattern's matches, as two rows of a table: per
/// byte, whether a match can begin with it after a non-word byte (or none)
/// and after a word byte. A scan carries whether the last byte was a word
/// byte and looks up one row: no branch per byte but the one that finds a
/// start, which is rare.
#[derive(Clone, PartialEq, Eq)]
pub struct Starts([[bool; 256]; 2]);

impl std::fmt::Debug for Starts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [after_other, after_word] = &self.0;
        let pairs = || after_other.iter().zip(after_word);
        let open = pairs().filter(|&(&a, &b)| a && b).count();
        let guarded = pairs().filter(|&(&a, &b)| a != b).count();
        write!(f, "Starts {{ open: {open} bytes, guarded: {guarded} bytes }}")
    }
}

/// What [`first`] finds of one part of a pattern.
struct First {
    guarded: ByteSet,
    open: ByteSet,
    /// The part can match the empty string.
    nullable: bool,
}

impl Starts {
    /// The starts of `regex` (as built-in patterns are compiled); `None`
    /// when it can match the empty string, which starts anywhere.
    pub fn of_regex(regex: &str) -> Option<Self> {
        let hir = regex_automata::util::syntax::parse(regex).ok()?;
        let f = first(&hir);
        if f.nullable {
            return None;
        }
        let mut table = [[false; 256]; 2];
        for (word_before, row) in [false, true].into_iter().zip(table.iter_mut()) {
            for (c, starts) in (0..=255u8).zip(row.iter_mut()) {
                // A guarded byte starts a match where `\b` holds before it:
                // a word byte after a non-word one, or the other way round.
                *starts = f.open.contains(c) || (f.guarded.contains(c) && is_word(c) != word_before);
            }
        }
        Some(Self(table))
    }

    /// Whether a match can start at offset `i` of `b`.
    #[cfg(test)]
    pub fn may_start(&self, b: &[u8], i: usize) -> bool {
        self.next(b, i, i + 1) == Some(i)
    }

    /// The first offset in `from..to` where a match can start.
    pub fn next(&self, b: &[u8], from: usize, to: usize) -> Option<usize> {
        let mut word_before = from.checked_sub(1).and_then(|j| b.get(j)).is_some_and(|&p| is_word(p));
        for (i, &c) in b.get(from..to.min(b.len()))?.iter().enumerate() {
            if self.0[usize::from(word_before)][usize::from(c)] {
                return Some(from + i);
            }
            word_before = is_word(c);
        }
        None
    }
}

fn is_word(c: u8) -> bool {
    WORD.get(usize::from(c)).copied().unwrap_or(false)
}

/// ASCII word bytes, as `\b` (ASCII) sees them.
static WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_';
        c += 1;
    }
    t
};

/// The bytes `h`'s matches can begin with. Look-arounds other than an
/// ASCII word boundary guard nothing, so the sets stay a superset.
fn first(h: &Hir) -> First {
    let empty = || First { guarded: ByteSet::EMPTY, open: ByteSet::EMPTY, nullable: true };
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => empty(),
        HirKind::Literal(lit) => match lit.0.first() {
            Some(&b) => {
                let mut open = ByteSet::EMPTY;
                open.insert_range(b, b);
                First { guarded: ByteSet::EMPTY, open, nullable: false }
            }
            None => empty(),
        },
        HirKind::Class(c) => First { guarded: ByteSet::EMPTY, open: ByteSet::of_class(c), nullable: false },
        HirKind::Repetition(r) => {
            let f = first(&r.sub);
            First { nullable: f.nullable || r.min == 0, ..f }
        }
        HirKind::Capture(c) => first(&c.sub),
        HirKind::Concat(parts) => {
            let mut out = empty();
            // A boundary before every byte-taking part so far: what
            // follows begins there.
            let mut guard = false;
            for p in parts {
                if matches!(p.kind(), HirKind::Look(Look::WordAscii)) {
                    guard = true;
                    continue;
                }
                let f = first(p);
                out.guarded = out.guarded.union(f.guarded);
                if guard {
                    out.guarded = out.guarded.union(f.open);
                } else {
                    out.open = out.open.union(f.open);
                }
                if !f.nullable {
                    out.nullable = false;
                    break;
                }
            }
            out
        }
        HirKind::Alternation(subs) => subs.iter().map(first).fold(First { nullable: false, ..empty() }, |acc, f| First {
            guarded: acc.guarded.union(f.guarded),
            open: acc.open.union(f.open),
            nullable: acc.nullable || f.nullable,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::detect::catalogue::{ascii_boundaries, BUILTINS};

    fn starts(regex: &str) -> Starts {
        Starts::of_regex(&ascii_boundaries(regex)).unwrap()
    }

    fn offsets(s: &Starts, text: &str) -> Vec<usize> {
        (0..text.len()).filter(|&i| s.may_start(text.as_bytes(), i)).collect()
    }

    #[test]
    fn a_word_boundary_guards_what_follows_it() {
        let card = starts(r"\b[1-6](?:[ \-.]{0,2}[0-9]){11,18}\b");
        assert_eq!(offsets(&card, "x 4111 a41 (5"), vec![2, 12]);
        // An optional part with its own boundary, then a choice.
        let nanp = starts(r"(?:\b1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|\b[2-9][0-9]{2}[ .\-])[0-9]{3}");
        assert_eq!(offsets(&nanp, "a1 (415) x9 19"), vec![3, 4, 12]);
        let e164 = starts(r"\+[1-9](?:[ .\-]{0,2}[0-9]){7,14}");
        assert_eq!(offsets(&e164, "+1 +2x"), vec![0, 3]);
    }

    #[test]
    fn patterns_that_match_empty_have_none() {
        for regex in [r"a?", r"\b", r"x{0,200}y?", r"(?:ab|)", r"[0-9a-f:]{0,7}"] {
            assert_eq!(Starts::of_regex(&ascii_boundaries(regex)), None, "{regex}");
        }
        let email = starts(r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@x");
        assert_eq!(offsets(&email, ".a_b"), vec![1, 3]);
    }

    /// Every match of every built-in pattern begins where
    /// `may_start` says one can, on texts built around the patterns' own
    /// test values.
    #[test]
    fn every_builtin_match_begins_at_a_start() {
        let texts = [
            "call +1 415 555 0132 or (415) 555-0132, 020 7946 0958, (020) 7946 0958, 1-800-555-0199",
            "card 4111 1111 1111 1111 and 4111-1111-1111-1111; ssn 536-22-1234 or 536 22 1234 or 5 3 6 2 2 1 2 3 4",
            "iban DE89 3704 0044 0532 0130 00, GB82WEST12345698765432; ip 10.20.30.40; nino AB 12 34 56 C and ab123456c",
            "AKIAQ3EGRK5NW7XZLM4P x_AKIAQ3EGRK5NW7XZLM4P 781 1704 office 3660170548-Fax",
            "mail dana.whitfield@example.org, postgres://app:S3cr3t-p4ss@db.internal:5432/app https://u:pw12345678@host/x",
            "ghp_4fTq9LmZ2xVb7NcR1sYk3JhG8dWp6UeA0oIi Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig fe80::1 DOB: 1990-04-12",
            "password=Tr0ub4dor&3x \"api_key\": \"sk_live_4eC39HqLyjWDarjtT1zdp7dc\" call me at 415 555 0132 born on March 3, 1985",
        ];
        let mut checked = 0;
        for b in BUILTINS {
            for p in b.patterns {
                let src = ascii_boundaries(p.regex);
                let s = Starts::of_regex(&src).unwrap_or_else(|| panic!("{} has no starts", b.id));
                let re = regex_automata::meta::Regex::new(&src).unwrap();
                for text in texts {
                    for m in re.find_iter(text) {
                        assert!(s.may_start(text.as_bytes(), m.start()), "{} {:?} at {}", b.id, &text[m.range()], m.start());
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 30, "only {checked} matches checked");
    }
}
