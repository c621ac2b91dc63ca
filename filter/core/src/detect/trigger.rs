//! The prefilter: where in a text can any selected pattern match?
//!
//! Most bytes of most prompts are prose that no detector can match. One
//! pair-table pass over token prefixes (`ghp_`, `AKIA`, `-----BEGIN`) and
//! context words (`password`, `dob`), and one byte pass over digit clusters
//! and `@` find the few places worth a regex; the multi-pattern engine then
//! runs only on small windows around them. Every pattern's match contains
//! its trigger, so the windows lose nothing.
//!
//! A window is also cut to the run of bytes around its trigger that the
//! pattern's matches can contain ([`ByteSet`]): an e-mail address ends at
//! the first space, not at the pattern's 200-byte bound, so the regex
//! engines walk the address, not 264 bytes around its `@`. And a run that
//! lacks a byte every match needs opens no window at all: the phone
//! pattern's context word `call` needs a digit after it, so "on-call
//! rotation" costs no regex.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::bytemask::{within, BLOCK};
use super::catalogue::Trigger;
use super::wordscan::WordScan;

/// A set of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    pub const ALL: Self = Self([u64::MAX; 4]);
    pub(super) const EMPTY: Self = Self([0; 4]);

    pub(super) fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            if let Some(w) = self.0.get_mut(usize::from(b >> 6)) {
                *w |= 1 << (b & 63);
            }
        }
    }

    pub fn contains(&self, b: u8) -> bool {
        self.0.get(usize::from(b >> 6)).is_some_and(|w| w >> (b & 63) & 1 == 1)
    }

    pub(super) fn union(mut self, other: Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
        self
    }

    /// [`Self::reach_of`]'s held bytes alone.
    #[cfg(test)]
    pub fn of_regex(regex: &str) -> Result<Self, String> {
        Ok(Self::reach_of(regex)?.0)
    }

    /// What a window needs to know of one pattern, from one parse: the
    /// bytes its matches can hold, the sets each of them holds a byte of,
    /// and the bytes past its bounded prefix ([`Tail`]).
    pub fn reach_of(regex: &str) -> Result<(Self, Vec<Self>, Option<Tail>), String> {
        let hir = regex_automata::util::syntax::parse(regex).map_err(|e| e.to_string())?;
        let held = Self::held_by(&hir);
        Ok((held, Self::needed_by(&hir), Tail::of(&hir).filter(|t| t.body != held)))
    }

    /// A superset of the bytes any match of `hir` can hold: each literal
    /// byte and class byte of its parsed form (a class reaching past ASCII
    /// adds every byte from 0x80). Look-around holds no byte, and the
    /// engines see past a window for it.
    fn held_by(hir: &Hir) -> Self {
        let mut set = Self::EMPTY;
        let mut stack = vec![hir];
        while let Some(h) = stack.pop() {
            match h.kind() {
                HirKind::Empty | HirKind::Look(_) => {}
                HirKind::Literal(lit) => lit.0.iter().for_each(|&b| set.insert_range(b, b)),
                HirKind::Class(c) => set = set.union(Self::of_class(c)),
                HirKind::Repetition(rep) => stack.push(&rep.sub),
                HirKind::Capture(cap) => stack.push(&cap.sub),
                HirKind::Concat(subs) | HirKind::Alternation(subs) => stack.extend(subs),
            }
        }
        set
    }

    /// [`Self::reach_of`]'s needed sets alone.
    #[cfg(test)]
    pub fn needed_by_regex(regex: &str) -> Result<Vec<Self>, String> {
        Ok(Self::reach_of(regex)?.1)
    }

    /// Sets of which every match of `hir` holds at least one byte each,
    /// one per part that every match goes through, smallest first. A
    /// context word's window with no digit cannot hold the phone number
    /// that must follow it.
    fn needed_by(hir: &Hir) -> Vec<Self> {
        let mut found = Vec::new();
        Self::needed_parts(hir, &mut found);
        found.sort_by_key(|s| (s.len(), s.0));
        found.dedup();
        found
    }

    /// The two smallest of `needs` (`ALL` where fewer) that a trigger of
    /// these bytes does not meet by itself: the ones worth a look.
    fn telling(needs: &[Self], trigger: &[u8]) -> [Self; 2] {
        let mut useful = needs.iter().filter(|n| !trigger.iter().any(|&c| n.contains(c.to_ascii_lowercase()) || n.contains(c.to_ascii_uppercase())));
        [useful.next().copied().unwrap_or(Self::ALL), useful.next().copied().unwrap_or(Self::ALL)]
    }

    /// One set per part of `h` that every match of it goes through.
    fn needed_parts(h: &Hir, out: &mut Vec<Self>) {
        match h.kind() {
            HirKind::Concat(subs) => subs.iter().for_each(|s| Self::needed_parts(s, out)),
            HirKind::Capture(cap) => Self::needed_parts(&cap.sub, out),
            HirKind::Repetition(rep) if rep.min >= 1 => Self::needed_parts(&rep.sub, out),
            _ => out.extend(Self::needed_one(h)),
        }
    }

    /// A set of which every match of `h` holds a byte, if one is known.
    fn needed_one(h: &Hir) -> Option<Self> {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => None,
            HirKind::Literal(lit) => lit.0.first().map(|&b| {
                let mut set = Self::EMPTY;
                set.insert_range(b, b);
                set
            }),
            HirKind::Class(c) => Some(Self::of_class(c)),
            HirKind::Repetition(rep) if rep.min >= 1 => Self::needed_one(&rep.sub),
            HirKind::Repetition(_) => None,
            HirKind::Capture(cap) => Self::needed_one(&cap.sub),
            // Any one part will do; the smallest is the most telling.
            HirKind::Concat(subs) => subs.iter().filter_map(Self::needed_one).min_by_key(Self::len),
            // Each branch holds a byte of its own set.
            HirKind::Alternation(subs) => subs.iter().try_fold(Self::EMPTY, |acc, s| Self::needed_one(s).map(|n| acc.union(n))),
        }
    }

    pub(super) fn of_class(c: &Class) -> Self {
        let mut set = Self::EMPTY;
        match c {
            Class::Bytes(c) => c.ranges().iter().for_each(|r| set.insert_range(r.start(), r.end())),
            Class::Unicode(c) => {
                for r in c.ranges() {
                    let ascii = |c: char| u8::try_from(c).ok().filter(u8::is_ascii);
                    if let Some(lo) = ascii(r.start()) {
                        set.insert_range(lo, ascii(r.end()).unwrap_or(0x7f));
                    }
                    if !r.end().is_ascii() {
                        set.insert_range(0x80, 0xff);
                    }
                }
            }
        }
        set
    }

    pub(super) fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Some byte of `b` is in the set.
    fn any_in(&self, b: &[u8]) -> bool {
        *self == Self::ALL || b.iter().any(|&c| self.contains(c))
    }

    /// The largest `[from, to)` around `[at, end)` with `from >= lo`,
    /// `to <= hi`, whose bytes outside `[at, end)` are all in the set;
    /// with a tail `(body_from, tail)`, from `body_from` on it ends within
    /// `tail.suffix` bytes of the first byte outside `tail.body`.
    fn run(&self, b: &[u8], (at, end): (usize, usize), (lo, hi): (usize, usize), tail: Option<(usize, &Tail)>) -> (usize, usize) {
        let mut from = at;
        while from > lo && b.get(from - 1).is_some_and(|&c| self.contains(c)) {
            from -= 1;
        }
        let mut to = end.min(hi);
        let Some((body_from, t)) = tail else {
            return (from, self.extend(b, to, hi));
        };
        to = self.extend(b, to, hi.min(body_from));
        if to < body_from.min(hi) {
            return (from, to);
        }
        // The body's bytes are the pattern's too.
        to = t.body.extend(b, to, hi);
        (from, self.extend(b, to, hi.min(to.saturating_add(t.suffix))))
    }

    /// The first offset from `to` on whose byte is not in the set, or `hi`.
    fn extend(&self, b: &[u8], mut to: usize, hi: usize) -> usize {
        while to < hi && b.get(to).is_some_and(|&c| self.contains(c)) {
            to += 1;
        }
        to
    }
}

/// Parts of a pattern that bound a window where its bytes do not: past a
/// prefix of at most `prefix` bytes, a match holds only `body` bytes, then
/// at most `suffix` bytes. The generic assignment's `\s{0,3}` before its
/// value lets its bytes hold spaces, so a run of them goes on through the
/// prose that follows; its value holds none, so the match ends at the
/// first space past the prefix.
///
/// Why a window may stop there: a match starts at or before the latest
/// start its trigger allows (`s`), so from `s + prefix` on its bytes are
/// in its body or its suffix; the first byte there outside the body is in
/// the suffix, which ends within `suffix` bytes of its own start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    pub prefix: usize,
    pub body: ByteSet,
    pub suffix: usize,
}

/// A part as long as this or longer (or without bound) is body, not
/// prefix or suffix.
const BODY_PART_LEN: usize = 32;

impl Tail {
    /// From the parts of the pattern's top-level sequence: the body runs
    /// from the first long part to the last.
    fn of(hir: &Hir) -> Option<Self> {
        let mut top = hir;
        while let HirKind::Capture(cap) = top.kind() {
            top = &cap.sub;
        }
        let HirKind::Concat(parts) = top.kind() else {
            return None;
        };
        let long = |h: &Hir| h.properties().maximum_len().is_none_or(|n| n >= BODY_PART_LEN);
        let (first, last) = (parts.iter().position(long)?, parts.iter().rposition(long)?);
        let bounded = |ps: &[Hir]| ps.iter().try_fold(0usize, |sum, h| sum.checked_add(h.properties().maximum_len()?));
        Some(Self {
            prefix: bounded(parts.get(..first)?)?,
            body: parts.get(first..=last)?.iter().fold(ByteSet::EMPTY, |set, h| set.union(ByteSet::held_by(h))),
            suffix: bounded(parts.get(last + 1..)?)?,
        })
    }
}

/// Where one pattern can match: near its trigger (`back` bytes before it,
/// `fwd` bytes after its start; for a digit cluster, after its end), in a
/// run of `bytes` that holds a byte of each of `needs` and ends as `tail`
/// says.
#[derive(Debug, Clone)]
pub struct Reach {
    pub trigger: Trigger,
    pub back: usize,
    pub fwd: usize,
    pub bytes: ByteSet,
    pub needs: Vec<ByteSet>,
    pub tail: Option<Tail>,
}

#[derive(Debug, Clone, Copy)]
struct DigitRule {
    patterns: u64,
    min: usize,
    dots: usize,
    colons: usize,
    letters_before: bool,
    back: usize,
    fwd: usize,
    bytes: ByteSet,
    tail: Option<Tail>,
}

/// What one automaton hit opens: windows, after checking the exact case
/// for literals (the automaton itself is case-insensitive).
#[derive(Debug, Clone)]
struct Entry {
    patterns: u64,
    /// Where the literal sits inside the automaton pattern that contains it.
    offset: usize,
    literal: String,
    case_sensitive: bool,
    back: usize,
    fwd: usize,
    bytes: ByteSet,
    needs: [ByteSet; 2],
    tail: Option<Tail>,
}

/// How one anchor set is searched: leftmost-longest either way.
#[derive(Debug)]
struct Anchors {
    /// The set's keys (folded when case-insensitive), sorted: match ids
    /// index them.
    keys: Vec<String>,
    case_sensitive: bool,
    /// The automaton, for a set the pair scan cannot hold (a one-byte
    /// literal) or, in tests, as the reference; `None`: the set is in the
    /// shared pair scan.
    automaton: Option<AhoCorasick>,
    /// Per key: its own entries and those of every shorter anchor it
    /// contains, which a leftmost-longest search would hide.
    entries: Vec<Vec<Entry>>,
}

impl Anchors {
    fn build(own: &[Entry], case_sensitive: bool) -> Option<Self> {
        let fold = |l: &str| if case_sensitive { l.to_string() } else { l.to_ascii_lowercase() };
        let own: Vec<&Entry> = own.iter().filter(|e| e.case_sensitive == case_sensitive).collect();
        let mut keys: Vec<String> = own.iter().map(|e| fold(&e.literal)).collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return None;
        }
        let entries: Vec<Vec<Entry>> = keys
            .iter()
            .map(|key| {
                let mut list = Vec::new();
                for e in &own {
                    let lit = fold(&e.literal);
                    let mut from = 0;
                    while let Some(p) = key.get(from..).and_then(|k| k.find(lit.as_str())) {
                        list.push(Entry { offset: from + p, ..(*e).clone() });
                        from += p + 1;
                    }
                }
                list
            })
            .collect();
        Some(Self { keys, case_sensitive, automaton: None, entries })
    }

    fn with_automaton(mut self) -> Result<Self, String> {
        let ac = AhoCorasickBuilder::new()
            // A full DFA: one table lookup per byte. The anchor set is
            // small, so the table is too.
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(!self.case_sensitive)
            .build(&self.keys)
            .map_err(|e| e.to_string())?;
        self.automaton = Some(ac);
        Ok(self)
    }
}

/// The compiled triggers of one policy.
#[derive(Debug)]
pub struct Triggers {
    /// Case-sensitive literals (token prefixes) and case-insensitive words,
    /// each its own leftmost-longest set: exact-case `SK` or `AKIA` are
    /// rare in prose, while folded `sk` is inside every "ask".
    anchors: Vec<Anchors>,
    /// The pair scan over every set without an automaton, and the anchor
    /// set each of its sets is.
    words: Option<(WordScan, Vec<usize>)>,
    digit_windows: DigitWindows,
    at_window: Option<AtWindow>,
    always: bool,
}

/// A stretch of text where some pattern may match, and which: bit `i` of
/// `patterns` is the `i`-th pattern given to [`Triggers::build`]. A pattern
/// past the 64th sets every bit (see [`pattern_bit`]), which says "any".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    pub patterns: u64,
    /// Where the last trigger that opened it ends. A match holds its
    /// trigger (a digit cluster: some of its digits), so none starts here
    /// or later.
    pub triggers_end: usize,
}

/// Pattern `i`'s bit in [`Window::patterns`]; all of them past the 64th.
pub fn pattern_bit(i: usize) -> u64 {
    u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i)).unwrap_or(u64::MAX)
}

/// The reach of every pattern triggered by `@`, merged: the largest
/// bounds, the union of their bytes, the union of their needs, pairwise.
#[derive(Debug, Clone, Copy)]
struct AtWindow {
    patterns: u64,
    back: usize,
    fwd: usize,
    bytes: ByteSet,
    needs: [ByteSet; 2],
}

impl Triggers {
    /// `patterns`: each pattern's trigger and reach.
    pub fn build(patterns: &[Reach]) -> Result<Self, String> {
        Self::build_with(patterns, true)
    }

    /// `pair_scan: false` keeps the automata, as a reference for tests.
    fn build_with(patterns: &[Reach], pair_scan: bool) -> Result<Self, String> {
        let mut own: Vec<Entry> = Vec::new();
        let mut digit_rules = Vec::new();
        let mut at_window: Option<AtWindow> = None;
        let mut always = false;
        for (index, Reach { trigger, back, fwd, bytes, needs, tail }) in patterns.iter().enumerate() {
            let (trigger, back, fwd, bytes, tail) = (*trigger, *back, *fwd, *bytes, *tail);
            let patterns = pattern_bit(index);
            match trigger {
                Trigger::Literal(list) | Trigger::Word(list) => {
                    let case_sensitive = matches!(trigger, Trigger::Literal(_));
                    for l in list.iter().filter(|l| !l.is_empty()) {
                        let needs = ByteSet::telling(needs, l.as_bytes());
                        own.push(Entry { patterns, offset: 0, literal: l.to_string(), case_sensitive, back, fwd, bytes, needs, tail });
                    }
                }
                Trigger::Digits { min, dots, colons, letters_before } => {
                    digit_rules.push(DigitRule { patterns, min, dots, colons, letters_before, back, fwd, bytes, tail });
                }
                Trigger::At => {
                    let needs = ByteSet::telling(needs, b"@");
                    at_window = Some(match at_window {
                        None => AtWindow { patterns, back, fwd, bytes, needs },
                        Some(w) => AtWindow {
                            patterns: w.patterns | patterns,
                            back: w.back.max(back),
                            fwd: w.fwd.max(fwd),
                            bytes: w.bytes.union(bytes),
                            needs: [w.needs[0].union(needs[0]), w.needs[1].union(needs[1])],
                        },
                    });
                }
                Trigger::Always => always = true,
            }
        }
        let mut anchors: Vec<Anchors> = [true, false].into_iter().filter_map(|cs| Anchors::build(&own, cs)).collect();
        // One pair pass for every set it can hold; the rest by automaton.
        let mut words = None;
        let scanned: Vec<usize> = (0..anchors.len())
            .filter(|&i| pair_scan && anchors.get(i).is_some_and(|a| WordScan::can_hold(&a.keys)))
            .collect();
        if !scanned.is_empty() {
            let sets: Vec<(&[String], bool)> =
                scanned.iter().filter_map(|&i| anchors.get(i)).map(|a| (a.keys.as_slice(), !a.case_sensitive)).collect();
            words = WordScan::build_sets(&sets).map(|w| (w, scanned.clone()));
        }
        let in_scan = |i: usize| words.as_ref().is_some_and(|(_, sets)| sets.contains(&i));
        anchors = anchors
            .into_iter()
            .enumerate()
            .map(|(i, a)| if in_scan(i) { Ok(a) } else { a.with_automaton() })
            .collect::<Result<_, _>>()?;
        Ok(Self { anchors, words, digit_windows: DigitWindows::build(&digit_rules), at_window, always })
    }

    /// Merged, sorted windows of `hay` where some pattern may match, each
    /// with the patterns whose triggers opened it.
    pub fn windows(&self, hay: &str) -> Vec<Window> {
        let len = hay.len();
        if self.always {
            return vec![Window { start: 0, end: len, patterns: u64::MAX, triggers_end: len }];
        }
        let b = hay.as_bytes();
        // A match holds its trigger `[at, end)`, lies within the bounds and
        // holds only its pattern's bytes: it lies within their run. It
        // starts at `at` or before, so its tail does from `at + prefix` on.
        let mut runs: Vec<Window> = Vec::new();
        // A run without a byte the pattern needs holds no match: no window.
        let mut push_run = |(at, end): (usize, usize), bounds: (usize, usize), bytes: &ByteSet, tail: Option<&Tail>, needs: &[ByteSet; 2], patterns: u64| {
            let (from, to) = bytes.run(b, (at, end), bounds, tail.map(|t| (at.saturating_add(t.prefix), t)));
            let run = b.get(from..to).unwrap_or_default();
            if needs.iter().all(|n| n.any_in(run)) {
                runs.push(Window { start: from, end: to, patterns, triggers_end: end });
            }
        };
        let mut hit = |a: &Anchors, start: usize, key: usize| {
            for e in a.entries.get(key).into_iter().flatten() {
                let at = start + e.offset;
                if e.case_sensitive && b.get(at..at + e.literal.len()) != Some(e.literal.as_bytes()) {
                    continue;
                }
                let bounds = (at.saturating_sub(e.back), at.saturating_add(e.fwd).min(len));
                push_run((at, at + e.literal.len()), bounds, &e.bytes, e.tail.as_ref(), &e.needs, e.patterns);
            }
        };
        if let Some((words, sets)) = &self.words {
            words.for_each(b, |set, start, key| {
                if let Some(a) = sets.get(set).and_then(|&i| self.anchors.get(i)) {
                    hit(a, start, key);
                }
            });
        }
        for a in &self.anchors {
            if let Some(ac) = &a.automaton {
                ac.find_iter(hay).for_each(|m| hit(a, m.start(), m.pattern().as_usize()));
            }
        }
        if let Some(w) = &self.at_window {
            for p in memchr::memchr_iter(b'@', b) {
                let bounds = (p.saturating_sub(w.back), p.saturating_add(w.fwd).min(len));
                push_run((p, p + 1), bounds, &w.bytes, None, &w.needs, w.patterns);
            }
        }
        if !self.digit_windows.is_empty() {
            runs.extend(clusters(b).filter_map(|c| self.digit_windows.window(b, &c)));
        }
        merge(runs)
    }
}

/// What a digit cluster opens, looked up rather than worked out rule by
/// rule: the hull of the plain bounds of the rules it meets, and the rules
/// whose reach is worth a run of their bytes (a 50-byte bound after an
/// IBAN's digits, not a few bytes around a phone number's). Counts past the
/// largest any rule asks for meet the same rules, so they are capped.
#[derive(Debug)]
struct DigitWindows {
    rules: Vec<DigitRule>,
    max_digits: usize,
    max_dots: usize,
    max_colons: usize,
    /// Per capped (digits, dots, colons, letters before).
    cells: Vec<DigitCell>,
}

/// The rules one kind of cluster meets.
#[derive(Debug, Default)]
struct DigitCell {
    /// `(back, fwd, patterns)`: the hull of the plain bounds.
    plain: Option<(usize, usize, u64)>,
    /// Indices into the rules: those cut to runs of their bytes.
    runs: Vec<usize>,
}

/// A digit rule whose bounds reach this far is cut to the run of its bytes.
const DIGIT_RUN_FROM: usize = 16;

impl DigitRule {
    fn is_met_by(&self, digits: usize, dots: usize, colons: usize, letters_before: bool) -> bool {
        digits >= self.min && dots >= self.dots && colons >= self.colons && (!self.letters_before || letters_before)
    }

    fn runs(&self) -> bool {
        self.back + self.fwd >= DIGIT_RUN_FROM && (self.bytes != ByteSet::ALL || self.tail.is_some())
    }
}

impl DigitWindows {
    fn build(rules: &[DigitRule]) -> Self {
        let max_digits = rules.iter().map(|r| r.min).max().unwrap_or(0);
        let max_dots = rules.iter().map(|r| r.dots).max().unwrap_or(0);
        let max_colons = rules.iter().map(|r| r.colons).max().unwrap_or(0);
        let mut cells = Vec::new();
        if !rules.is_empty() {
            for digits in 0..=max_digits {
                for dots in 0..=max_dots {
                    for colons in 0..=max_colons {
                        for letters_before in [false, true] {
                            let mut cell = DigitCell::default();
                            for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.is_met_by(digits, dots, colons, letters_before)) {
                                if r.runs() {
                                    cell.runs.push(i);
                                } else {
                                    cell.plain = Some(cell.plain.map_or((r.back, r.fwd, r.patterns), |(b, f, p)| (b.max(r.back), f.max(r.fwd), p | r.patterns)));
                                }
                            }
                            cells.push(cell);
                        }
                    }
                }
            }
        }
        Self { rules: rules.to_vec(), max_digits, max_dots, max_colons, cells }
    }

    fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The window cluster `c` of `b` opens, if any.
    fn window(&self, b: &[u8], c: &Cluster) -> Option<Window> {
        let digits = c.digits.min(self.max_digits);
        let dots = c.dots.min(self.max_dots);
        let colons = c.colons.min(self.max_colons);
        let cell = self.cells.get(((digits * (self.max_dots + 1) + dots) * (self.max_colons + 1) + colons) * 2 + usize::from(c.letters_before))?;
        // Most clusters of prose meet no rule.
        if cell.plain.is_none() && cell.runs.is_empty() {
            return None;
        }
        let bounds = |back: usize, fwd: usize| (c.start.saturating_sub(back), c.end.saturating_add(fwd).min(b.len()));
        let mut hull = cell.plain.map(|(back, fwd, patterns)| {
            let (start, end) = bounds(back, fwd);
            Window { start, end, patterns, triggers_end: c.end }
        });
        for r in cell.runs.iter().filter_map(|&i| self.rules.get(i)) {
            // The match holds some digit of the cluster, the last one at
            // the latest: its tail starts there at the latest.
            let tail = r.tail.as_ref().map(|t| (c.end.saturating_sub(1).saturating_add(t.prefix), t));
            let (from, to) = r.bytes.run(b, (c.start, c.end), bounds(r.back, r.fwd), tail);
            // Every rule's window holds the cluster: one window, their hull.
            hull = Some(match hull {
                None => Window { start: from, end: to, patterns: r.patterns, triggers_end: c.end },
                Some(w) => Window { start: w.start.min(from), end: w.end.max(to), patterns: w.patterns | r.patterns, ..w },
            });
        }
        hull
    }
}

fn merge(mut windows: Vec<Window>) -> Vec<Window> {
    // Ends of windows with the same start need no order: the merge keeps
    // the largest. A stable sort, for its use of the input's sorted runs:
    // each trigger kind adds its windows in order.
    windows.sort_by_key(|w| w.start);
    let mut merged: Vec<Window> = Vec::with_capacity(windows.len());
    for w in windows {
        match merged.last_mut() {
            Some(last) if w.start <= last.end => {
                last.end = last.end.max(w.end);
                last.patterns |= w.patterns;
                last.triggers_end = last.triggers_end.max(w.triggers_end);
            }
            _ => merged.push(w),
        }
    }
    merged
}

/// Digits with the separators that can sit between them in cards, phones,
/// SSNs, IPs and IBANs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cluster {
    pub start: usize,
    pub end: usize,
    pub digits: usize,
    pub dots: usize,
    pub colons: usize,
    pub letters_before: bool,
}

/// Longest gap of separator bytes inside a cluster.
const MAX_GAP: usize = 4;

fn is_gap_byte(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b':' | b'+' | b'\t') || matches!(c, b'a'..=b'f' | b'A'..=b'F')
}

/// Index of the first ASCII digit at or after `from`, a block at a time
/// (prose is mostly letters).
fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(block) = b.get(i..i + BLOCK).and_then(|c| <&[u8; BLOCK]>::try_from(c).ok()) {
        let digits = within(block, b'0', b'9');
        if digits != 0 {
            return Some(i + digits.trailing_zeros() as usize);
        }
        i += BLOCK;
    }
    b.get(i..)?.iter().position(u8::is_ascii_digit).map(|p| i + p)
}

/// The digit clusters of `b`, left to right. An iterator, not a list: a
/// long prompt has thousands of numbers, and each is looked at once.
pub fn clusters(b: &[u8]) -> Clusters<'_> {
    Clusters { b, i: 0 }
}

pub struct Clusters<'a> {
    b: &'a [u8],
    /// Where the next cluster may start.
    i: usize,
}

impl Iterator for Clusters<'_> {
    type Item = Cluster;

    fn next(&mut self) -> Option<Cluster> {
        let b = self.b;
        let start = next_digit(b, self.i)?;
        let mut c = Cluster { start, end: start, digits: 0, dots: 0, colons: 0, letters_before: false };
        let mut j = start;
        loop {
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                c.digits += 1;
                j += 1;
            }
            c.end = j;
            let mut k = j;
            let (mut dots, mut colons) = (0, 0);
            while k - j < MAX_GAP && b.get(k).copied().is_some_and(|x| !x.is_ascii_digit() && is_gap_byte(x)) {
                dots += usize::from(b.get(k) == Some(&b'.'));
                colons += usize::from(b.get(k) == Some(&b':'));
                k += 1;
            }
            if k > j && b.get(k).is_some_and(u8::is_ascii_digit) {
                c.dots += dots;
                c.colons += colons;
                j = k;
            } else {
                break;
            }
        }
        // Two letters right before: the country code of "DE89…".
        c.letters_before = start >= 2
            && b.get(start - 1).is_some_and(u8::is_ascii_alphabetic)
            && b.get(start - 2).is_some_and(u8::is_ascii_alphabetic);
        self.i = c.end.max(start + 1);
        Some(c)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Where the windows of `hay` are, without their patterns.
    fn spans(t: &Triggers, hay: &str) -> Vec<(usize, usize)> {
        t.windows(hay).into_iter().map(|w| (w.start, w.end)).collect()
    }

    /// A reach with no byte restriction: windows are the plain bounds.
    fn reach(trigger: Trigger, back: usize, fwd: usize) -> Reach {
        Reach { trigger, back, fwd, bytes: ByteSet::ALL, needs: Vec::new(), tail: None }
    }

    /// The looked-up window of a digit cluster is the hull of the windows
    /// of the rules it meets, worked out rule by rule, for every count up
    /// to past the caps: plain bounds for near rules, runs of their bytes
    /// for far-reaching ones.
    #[test]
    fn digit_windows_are_the_hull_of_the_rules_met() {
        let letters = ByteSet::of_regex("[a-z0-9 ]").unwrap();
        let rule = |patterns, min, dots, colons, letters_before, back, fwd, bytes| DigitRule {
            patterns,
            min,
            dots,
            colons,
            letters_before,
            back,
            fwd,
            bytes,
            tail: None,
        };
        let rules = [
            rule(1, 8, 0, 0, false, 2, 4, ByteSet::ALL),
            rule(2, 12, 0, 0, false, 0, 1, letters),
            rule(4, 2, 0, 0, true, 3, 50, letters),
            rule(8, 4, 3, 0, false, 0, 1, ByteSet::ALL),
            rule(16 | 32, 1, 0, 2, false, 40, 40, ByteSet::ALL),
        ];
        assert_eq!(rules.iter().map(DigitRule::runs).collect::<Vec<_>>(), [false, false, true, false, false]);
        let table = DigitWindows::build(&rules);
        let text = b"the ab 12 cd ef gh. And on and on and on and on and on and on and on and on and on.";
        let (start, end) = (7, 9);
        let mut met_some = 0;
        for digits in 0..16 {
            for dots in 0..6 {
                for colons in 0..4 {
                    for letters_before in [false, true] {
                        let c = Cluster { start, end, digits, dots, colons, letters_before };
                        let want = rules.iter().filter(|r| r.is_met_by(digits, dots, colons, letters_before)).fold(None, |hull: Option<Window>, r| {
                            let bounds = (start.saturating_sub(r.back), (end + r.fwd).min(text.len()));
                            let (from, to) = if r.runs() { r.bytes.run(text, (start, end), bounds, None) } else { bounds };
                            Some(hull.map_or(Window { start: from, end: to, patterns: r.patterns, triggers_end: end }, |w| Window {
                                start: w.start.min(from),
                                end: w.end.max(to),
                                patterns: w.patterns | r.patterns,
                                ..w
                            }))
                        });
                        assert_eq!(table.window(text, &c), want, "{c:?}");
                        met_some += usize::from(want.is_some());
                    }
                }
            }
        }
        assert!(met_some > 0);
        // The IBAN-like rule's run ends at the full stop, not 50 bytes on.
        let iban = Cluster { start, end, digits: 2, dots: 0, colons: 0, letters_before: true };
        assert_eq!(table.window(text, &iban).map(|w| (w.start, w.end)), Some((4, 18)));
        assert!(DigitWindows::build(&[]).is_empty());
    }

    /// The whole catalogue's triggers open the same windows whether token
    /// prefixes and context words are found by the pair scan or by the
    /// automaton it replaces, on random mixtures of their literals, digits,
    /// `@`, other case and prose.
    #[test]
    fn pair_scan_opens_the_same_windows_as_the_automaton() {
        let patterns: Vec<Reach> = super::super::catalogue::BUILTINS
            .iter()
            .flat_map(|b| b.patterns.iter())
            .map(|p| Reach { bytes: ByteSet::of_regex(&super::super::catalogue::ascii_boundaries(p.regex)).unwrap(), ..reach(p.trigger, p.back, p.fwd) })
            .collect();
        let fast = Triggers::build_with(&patterns, true).unwrap();
        let reference = Triggers::build_with(&patterns, false).unwrap();
        assert!(fast.anchors.iter().all(|a| a.automaton.is_none()), "every anchor set is in the pair scan");
        assert_eq!(fast.words.as_ref().map(|(w, _)| w.set_count()), Some(2), "both sets in one scan");
        assert!(reference.anchors.iter().all(|a| a.automaton.is_some()));
        let mut pieces: Vec<String> = patterns
            .iter()
            .flat_map(|r| match r.trigger {
                Trigger::Literal(list) | Trigger::Word(list) => list.to_vec(),
                _ => Vec::new(),
            })
            .flat_map(|l| [l.to_string(), l.to_ascii_lowercase(), l.to_ascii_uppercase(), l.chars().skip(1).collect()])
            .collect();
        pieces.extend(["the ", "ask ", " ", "4111 1111", "10.0.0.1", "@", "GB82", ":", "~", "K", "S", "Q", "é", "\n"].map(String::from));
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for _ in 0..3000 {
            let count = (next() % 12) as usize;
            let text: String = (0..count).map(|_| pieces[(next() % pieces.len() as u64) as usize].as_str()).collect();
            assert_eq!(fast.windows(&text), reference.windows(&text), "{text:?}");
        }
    }

    #[test]
    fn a_patterns_bytes_are_those_its_matches_can_hold() {
        let email = ByteSet::of_regex(r"[a-z0-9.]+@[a-z]+\.(?i:com)\b").unwrap();
        for b in b"az09.@COMcom" {
            assert!(email.contains(*b), "{}", *b as char);
        }
        for b in b" ,AZ\n\xc3" {
            assert!(!email.contains(*b), "{}", *b as char);
        }
        // Multi-byte classes bring their UTF-8 bytes; look-around brings none.
        let unicode = ByteSet::of_regex(r"(?-u:\b)x\s").unwrap();
        assert!(unicode.contains(b' ') && unicode.contains(0xe2) && unicode.contains(0x80), "U+2028 and friends");
        assert!(!unicode.contains(b'y'));
        assert_eq!(ByteSet::ALL.union(email), ByteSet::ALL);
    }

    #[test]
    fn windows_end_where_the_patterns_bytes_do() {
        let email = ByteSet::of_regex(r"[a-z.]+@[a-z.]+").unwrap();
        let t = Triggers::build(&[Reach { bytes: email, ..reach(Trigger::At, 64, 200) }]).unwrap();
        let text = "write to jane.doe@example.org, then wait";
        assert_eq!(spans(&t, text), vec![(9, 29)], "the address, not 64 bytes before and 200 after");
        // The plain bound still caps a run.
        let t = Triggers::build(&[Reach { bytes: email, ..reach(Trigger::At, 4, 3) }]).unwrap();
        assert_eq!(spans(&t, text), vec![(13, 20)]);
        let key = ByteSet::of_regex(r"AKIA[A-Z2-7]{16}").unwrap();
        let t = Triggers::build(&[Reach { bytes: key, ..reach(Trigger::Literal(&["AKIA"]), 0, 24) }]).unwrap();
        assert_eq!(spans(&t, "id=AKIAQ3EGRK5NW7XZLM4P, ok"), vec![(3, 23)]);
        // A trigger byte outside the set stops nothing: the window still
        // holds the trigger.
        let t = Triggers::build(&[Reach { bytes: ByteSet::EMPTY, ..reach(Trigger::Literal(&["AKIA"]), 2, 24) }]).unwrap();
        assert_eq!(spans(&t, "x AKIA y"), vec![(2, 6)]);
    }

    /// Past its prefix, an assignment's value holds no space: its window
    /// ends soon after the prefix bound, with the value and the suffix
    /// after it, not where the pattern's bytes, spaces among them, stop.
    #[test]
    fn a_tail_ends_the_window_with_the_value() {
        let src = r"(?i)(?:password|secret)\s{0,3}[=:]\s{0,3}([^\s,;]{6,200})(?:[.!]|$)";
        let (bytes, needs, tail) = ByteSet::reach_of(src).unwrap();
        let tail = tail.unwrap();
        // Case folding lets each `s` of "password" be `ſ` (two bytes); a
        // space is up to three bytes.
        assert_eq!((tail.prefix, tail.suffix), (10 + 9 + 1 + 9, 1));
        assert!(bytes.contains(b' ') && !tail.body.contains(b' '));
        let t = Triggers::build(&[Reach { bytes, needs, tail: Some(tail), ..reach(Trigger::Word(&["password", "secret"]), 0, 260) }]).unwrap();
        // The prefix bound is at 4 + 29 = 33, inside "and"; the run ends at
        // the space after it, plus the one suffix byte.
        let text = "set password = hunter2hunter2. and then the rest of the prose goes on and on without a comma or semicolon";
        assert_eq!(spans(&t, text), vec![(4, 35)]);
        // A value that runs past the prefix bound runs to its end.
        let text = "secret:   \t  x1y2z3w4v5x1y2z3w4v5x1 and more prose";
        assert_eq!(spans(&t, text), vec![(0, 36)]);
        // Without the tail the run goes on through the prose to the bound.
        let t = Triggers::build(&[Reach { bytes, needs: vec![], ..reach(Trigger::Word(&["password"]), 0, 60) }]).unwrap();
        assert_eq!(spans(&t, "set password = hunter2hunter2. and then the rest of the prose goes on and on"), vec![(4, 64)]);
    }

    #[test]
    fn a_patterns_needs_are_parts_every_match_goes_through() {
        let set = |r: &str| ByteSet::of_regex(r).unwrap();
        let needs = ByteSet::needed_by_regex(r"(?:ab|cd)x?[0-9]{2,}").unwrap();
        assert_eq!(needs, vec![set("[ac]"), set("[0-9]")], "smallest first; optional parts need nothing");
        assert_eq!(ByteSet::needed_by_regex(r"x*").unwrap(), vec![]);
        assert_eq!(ByteSet::needed_by_regex(r"(?:a|\b)z").unwrap(), vec![set("z")], "a branch that needs nothing");
        // What the trigger holds tells nothing, in either case.
        assert_eq!(ByteSet::telling(&needs, b"CALL"), [set("[0-9]"), ByteSet::ALL]);
        // Unicode case folding: `k` also matches the Kelvin sign.
        assert!(ByteSet::needed_by_regex(r"(?i)k").unwrap()[0].contains(0xe2));
    }

    #[test]
    fn a_run_without_a_needed_byte_opens_no_window() {
        let src = super::super::catalogue::ascii_boundaries(r"(?i:\bcall\b)[a-z ]{0,8}([0-9][0-9 ]{4,16}[0-9])");
        let r = Reach {
            bytes: ByteSet::of_regex(&src).unwrap(),
            needs: ByteSet::needed_by_regex(&src).unwrap(),
            ..reach(Trigger::Word(&["call"]), 0, 40)
        };
        let t = Triggers::build(&[r]).unwrap();
        assert_eq!(spans(&t, "the on-call rotation changed"), vec![]);
        assert_eq!(spans(&t, "call me at 415 555 0132."), vec![(0, 23)]);
    }

    #[test]
    fn clusters_span_separated_digits() {
        let c: Vec<Cluster> = clusters(b"card 4111 1111-1111.1111 ok").collect();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].start, c[0].end, c[0].digits), (5, 24, 16));
        let c: Vec<Cluster> = clusters(b"ip 10.0.0.1 and fe80::1 GB82WEST").collect();
        assert_eq!((c[0].digits, c[0].dots), (5, 3));
        assert!(c.iter().any(|x| x.colons == 2));
        assert!(c.iter().any(|x| x.letters_before && x.digits == 2));
        assert!(!clusters(b"than 12").next().unwrap().letters_before);
    }

    #[test]
    fn next_digit_finds_every_digit() {
        let text = b"abcdefghijklmnop7qrstuvwxyz\xff\x80 9 abcdefgh";
        assert_eq!(next_digit(text, 0), Some(16));
        assert_eq!(next_digit(text, 17), Some(30));
        assert_eq!(next_digit(text, 31), None);
        for n in 0..40 {
            let mut v = vec![b'x'; 40];
            v[n] = b'0' + (n % 10) as u8;
            assert_eq!(next_digit(&v, 0), Some(n));
            v[n] = b'/';
            assert_eq!(next_digit(&v, 0), None, "'/' is 0x2f");
            v[n] = b':';
            assert_eq!(next_digit(&v, 0), None, "':' is 0x3a");
        }
    }

    #[test]
    fn windows_merge_and_clamp() {
        let t = Triggers::build(&[reach(Trigger::Literal(&["AKIA"]), 2, 30), reach(Trigger::At, 10, 10)]).unwrap();
        assert_eq!(spans(&t, "x AKIA y@z"), vec![(0, 10)]);
        // A window names the patterns whose triggers opened it, merged ones all.
        assert_eq!(t.windows("x AKIA y@z")[0].patterns, 0b11);
        assert_eq!(t.windows("x AKIA y@z and more")[0].triggers_end, 9, "past the `@`");
        assert_eq!(t.windows("x AKIA yz and more")[0].triggers_end, 6, "past `AKIA`");
        assert_eq!(t.windows(&format!("x AKIA{}y@z", " ".repeat(50))).iter().map(|w| w.patterns).collect::<Vec<_>>(), vec![0b01, 0b10]);
        assert_eq!(t.windows("4111")[..], []);
        assert_eq!((pattern_bit(0), pattern_bit(63), pattern_bit(64)), (1, 1 << 63, u64::MAX), "past the 64th: any");
        assert!(t.windows("x akia").is_empty(), "literals are case-sensitive");
        // A longer anchor hides a shorter one it contains; both open windows.
        let t = Triggers::build(&[reach(Trigger::Literal(&["sk-"]), 0, 5), reach(Trigger::Literal(&["sk-ant-"]), 0, 100)]).unwrap();
        assert_eq!(spans(&t, "a sk-ant-x"), vec![(2, 10)]);
        let t = Triggers::build(&[reach(Trigger::Word(&["ant"]), 0, 1), reach(Trigger::Literal(&["sk-ant-"]), 0, 0)]).unwrap();
        assert_eq!(spans(&t, "a SK-ANT-x"), vec![(5, 6)]);
        assert!(t.windows("nothing here").is_empty());
        let w = |start, end, patterns, triggers_end| Window { start, end, patterns, triggers_end };
        assert_eq!(
            merge(vec![w(5, 9, 1, 7), w(0, 3, 2, 2), w(2, 4, 4, 3), w(9, 10, 8, 10)]),
            vec![w(0, 4, 6, 3), w(5, 10, 9, 10)]
        );
    }
}
