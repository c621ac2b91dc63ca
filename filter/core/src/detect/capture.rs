//! A pattern's value group, found with a smaller NFA where that is exact.
//!
//! The value group of a match (the password of a database URL, the token
//! after `Bearer`) comes from the bounded backtracker, run on the span the
//! DFAs already matched. It first clears one bit per NFA state and span
//! byte, and a large bounded repetition (`[A-Za-z0-9_.=+/~-]{20,500}`,
//! `[^\s:/@'"]{1,64}`) is hundreds to thousands of NFA states: the clearing,
//! not the search, is most of its work.
//!
//! On a span of `L` bytes, a repetition whose every iteration takes at
//! least one byte repeats at most `L` times. If its upper bound is `L` or
//! more, dropping the bound changes neither which parses exist nor the
//! order the engine prefers them in, so the groups are the same.
//! [`Relaxed`] is the pattern with its large bounds dropped, for spans no
//! longer than the smallest bound it dropped.

use regex_automata::meta;
use regex_automata::util::syntax;
use regex_syntax::hir::{Capture, Hir, HirKind, Repetition};

/// Repetitions with fewer optional iterations than this keep their bound:
/// they cost few states (and an exact `{40}` none), and the smallest bound
/// dropped caps the spans the relaxed pattern may be used on.
const RELAX_FROM: u32 = 32;

/// A pattern with its large repetition bounds dropped.
#[derive(Debug)]
pub struct Relaxed {
    regex: meta::Regex,
    /// The longest span on which it captures what the pattern does.
    exact_up_to: usize,
}

impl Relaxed {
    /// `None` when no bound is large enough to drop, or the pattern does
    /// not parse with `syntax` (the caller's own compile reports that).
    pub fn build(pattern: &str, syntax: &syntax::Config, config: meta::Config) -> Option<Self> {
        let hir = syntax::parse_with(pattern, syntax).ok()?;
        let mut smallest_dropped = None;
        let relaxed = relax(&hir, &mut smallest_dropped);
        let exact_up_to = usize::try_from(smallest_dropped?).ok()?;
        let regex = meta::Builder::new().configure(config).build_from_hir(&relaxed).ok()?;
        Some(Self { regex, exact_up_to })
    }

    /// The regex to capture with on a span of `len` bytes, if this one.
    pub fn for_span(&self, len: usize) -> Option<&meta::Regex> {
        (len <= self.exact_up_to).then_some(&self.regex)
    }
}

fn relax(h: &Hir, smallest_dropped: &mut Option<u32>) -> Hir {
    match h.kind() {
        HirKind::Repetition(r) => {
            let sub = relax(&r.sub, smallest_dropped);
            // An iteration that can be empty does not use up the span.
            let takes_a_byte = r.sub.properties().minimum_len().is_some_and(|n| n >= 1);
            let max = match r.max {
                Some(max) if max.saturating_sub(r.min) >= RELAX_FROM && takes_a_byte => {
                    *smallest_dropped = Some(smallest_dropped.map_or(max, |s| s.min(max)));
                    None
                }
                other => other,
            };
            Hir::repetition(Repetition { min: r.min, max, greedy: r.greedy, sub: Box::new(sub) })
        }
        HirKind::Capture(c) => Hir::capture(Capture { index: c.index, name: c.name.clone(), sub: Box::new(relax(&c.sub, smallest_dropped)) }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(|s| relax(s, smallest_dropped)).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(|s| relax(s, smallest_dropped)).collect()),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => h.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::detect::catalogue::{ascii_boundaries, BUILTINS};
    use regex_automata::{Anchored, Input};

    fn groups(re: &meta::Regex, hay: &str, start: usize, end: usize) -> Vec<Option<(usize, usize)>> {
        let mut caps = re.create_captures();
        re.search_captures(&Input::new(hay).range(start..end).anchored(Anchored::Yes), &mut caps);
        (0..caps.group_len()).map(|g| caps.get_group(g).map(|s| (s.start, s.end))).collect()
    }

    /// A run of value bytes, often of a length around a bound.
    fn run(next: &mut impl FnMut() -> u64, alphabet: &[u8]) -> String {
        let lengths = [20, 31, 32, 33, 40, 48, 63, 64, 65, 86, 128, 129];
        let len = lengths.get((next() % 16) as usize).copied().unwrap_or((next() % 140) as usize);
        (0..len).map(|_| char::from(alphabet[(next() % alphabet.len() as u64) as usize])).collect()
    }

    /// Every built-in value-group pattern, on random mixtures of the pieces
    /// its matches are made of: wherever the relaxed pattern is used, its
    /// groups are the pattern's own.
    #[test]
    fn relaxed_builtins_capture_what_the_patterns_do() {
        let pieces: &[&str] = &[
            "Bearer ", "token ", "token\t", "aws_secret_access_key = ", "AccountKey=", "twilio auth token: ", "password=", "postgres://app:", "postgres://", "mysql://", "https://", "app", ":", "@", "S3cr3t-p4ss", "db.internal", "/app",
            "password", "=", "\"", "'", " ", "  ", "api_key", "secret", "aws_secret_access_key", "AccountKey", "twilio auth token",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "0123456789abcdef0123456789abcdef", "aB3", "x", "-", ".", "/", "+", "~", "=",
            "é", "日本", "\n", "DOB: ", "1990-04-12", "call ", "415 555 0132",
            "glpat-", "glagent-", "glcbt-", "glcbt-1a_", "gloas-", "GR1348941", "AIza", "curl -u ", "curl -s --user ", "curl ", " -u ", "--user=", "app:S3cr3t ", "curl -u app:", "xoxs-523423-234243-", "xoxb-34532454-", "xoxa-2-511111111-", "xoxr-523423-", "-u \x27:k3y\x27", "Authorization: ", "Authorization: Basic ", "authorization='",
        ];
        let mut next = crate::test_rng::xorshift(0x5851_f42d_4c95_7f2d);
        let mut compared = 0;
        for b in BUILTINS {
            for p in b.patterns.iter().filter(|p| p.group > 0) {
                let src = ascii_boundaries(p.regex);
                let strict = meta::Regex::new(&src).unwrap();
                let Some(relaxed) = Relaxed::build(&src, &syntax::Config::new(), meta::Config::new()) else {
                    continue;
                };
                let mut seen = 0;
                for _ in 0..5000 {
                    let count = (next() % 10) as usize + 1;
                    let mut text = String::new();
                    for _ in 0..count {
                        match next() % 8 {
                            0 | 1 => {
                                let alphabet: &[u8] = match next() % 3 {
                                    0 => b"aZ9f/+",
                                    1 => b"aZ9f_-",
                                    _ => b"aZ9f/+_-.=~",
                                };
                                text.push_str(&run(&mut next, alphabet));
                            }
                            2 => {
                                let (user, password) = (run(&mut next, b"aZ9._-"), run(&mut next, b"aZ9:.-+"));
                                let scheme = ["postgres", "mysql", "https", "ssh"][(next() % 4) as usize];
                                text.push_str(&format!("{scheme}://{user}:{password}@"));
                            }
                            _ => text.push_str(pieces[(next() % pieces.len() as u64) as usize]),
                        }
                    }
                    for m in strict.find_iter(&text) {
                        if let Some(re) = relaxed.for_span(m.len()) {
                            assert_eq!(groups(re, &text, m.start(), m.end()), groups(&strict, &text, m.start(), m.end()), "{}: {text:?}", b.id);
                            seen += 1;
                        }
                    }
                }
                assert!(seen >= 20, "{}: only {seen} matches compared", b.id);
                compared += seen;
            }
        }
        assert!(compared > 500, "only {compared} matches compared");
    }

    /// Past the smallest bound dropped, the groups can differ: the relaxed
    /// pattern is not offered there.
    #[test]
    fn longer_spans_keep_the_pattern() {
        let src = r"a{1,40}(a*)";
        let strict = meta::Regex::new(src).unwrap();
        let relaxed = Relaxed::build(src, &syntax::Config::new(), meta::Config::new()).unwrap();
        let hay = "a".repeat(50);
        assert_eq!(groups(&strict, &hay, 0, 50)[1], Some((40, 50)));
        assert!(relaxed.for_span(50).is_none());
        let re = relaxed.for_span(40).unwrap();
        assert_eq!(groups(re, &hay, 0, 40), groups(&strict, &hay, 0, 40));
        assert_eq!(groups(re, &hay, 0, 50)[1], Some((50, 50)), "what it would get wrong");
        // Small bounds and iterations that can be empty stay: nothing to relax.
        assert!(Relaxed::build(r"a{1,32}(b)", &syntax::Config::new(), meta::Config::new()).is_none());
        assert!(Relaxed::build(r"a{40}(b)", &syntax::Config::new(), meta::Config::new()).is_none());
        assert!(Relaxed::build(r"(?:a?){1,64}(b)", &syntax::Config::new(), meta::Config::new()).is_none());
    }

    /// The point of it: the relaxed value-group patterns are a tenth of the
    /// size or less (bearer token 112 NFA states against 2,511, database
    /// URL 161 against 3,199).
    #[test]
    fn relaxed_patterns_are_smaller() {
        for id in ["bearer_token", "database_url", "url_password", "secret_assignment"] {
            let b = BUILTINS.iter().find(|b| b.id == id).unwrap();
            let src = ascii_boundaries(b.patterns[0].regex);
            let strict = regex_automata::nfa::thompson::NFA::new(&src).unwrap();
            let relaxed = relax(&syntax::parse_with(&src, &syntax::Config::new()).unwrap(), &mut None);
            let small = regex_automata::nfa::thompson::NFA::compiler().build_from_hir(&relaxed).unwrap();
            assert!(small.states().len() * 8 < strict.states().len(), "{id}: {} vs {}", small.states().len(), strict.states().len());
        }
    }
}
