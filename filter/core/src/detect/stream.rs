//! Incremental scanning of a text that arrives in pieces (an LLM answer
//! streamed as SSE deltas), see [`PolicyEngine::process_stream`].
//!
//! Each call scans the held tail plus the new text, behind a short
//! look-behind context of already released text, and releases everything
//! before the *hold point*: the earliest position where a match could still
//! begin, given text that has not arrived yet. What decides it:
//! - **live partial matches**: one lazy DFA over every regex of the policy,
//!   run anchored from each candidate start; a start is held while its run
//!   is not dead at the end of the text, or when it went through a match
//!   within the last [`LOOKAHEAD`] bytes (validators read past a match:
//!   the next characters of an IPv4 or phone number). Runs that died are
//!   memoised by (position, state), so a long stretch of text costs linear
//!   work, not one run per start;
//! - **keywords**: the end of the text is a prefix of an operator keyword,
//!   or a keyword ends so close to it that its whole-word check needs the
//!   next character;
//! - **escapes**: a `\`, `&` or `%` in the last bytes may still become an
//!   escape (`\u0040`);
//! - **encoded runs**: a base64 / hex run at the end may still grow into a
//!   segment whose decoding holds a finding (the whole run is cut then);
//! - **PEM keys**: a `-----BEGIN` header whose END line has not arrived.
//!
//! Every hold is bounded per policy ([`PolicyEngine::stream_hold_bound`]):
//! the longest match any selected pattern can produce (from its syntax; an
//! unbounded pattern is bounded by `normalize.window_bytes`, the same window
//! [`PolicyEngine::process`] scans in), 16 KiB past a PEM header, and the
//! longest encoded run the decode budget can take.
//!
//! [`PolicyEngine::process_stream`]: super::PolicyEngine::process_stream
//! [`PolicyEngine::process`]: super::PolicyEngine::process
//! [`PolicyEngine::stream_hold_bound`]: super::PolicyEngine::stream_hold_bound

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson;
use regex_automata::{Anchored, Input, MatchKind};

use super::custom::{HYBRID_CACHE_BYTES, NFA_SIZE_LIMIT};

/// Bytes past a match that validators read (IPv4 and phone look at the
/// next two characters) plus the DFA's one-byte match delay.
pub const LOOKAHEAD: usize = 3;
/// Longest literal escape the normaliser decodes (`\uD83D\uDE00`).
const LONGEST_ESCAPE: usize = 12;
/// What the PEM validator reads past a header (its `MAX_KEY`) plus the
/// header itself.
const PEM_HOLD: usize = 16 * 1024 + 128;
/// Released bytes kept as look-behind for the next scan: word boundaries,
/// the SSN context check (40 bytes), the widest trigger window before its
/// trigger (email, 64 bytes).
const BASE_CONTEXT: usize = 256;
/// Dead runs shorter than this are not memoised: retracing them is cheaper
/// than hashing every step.
const MEMO_FROM: usize = 16;

/// One step of an incremental scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStep {
    /// Processed text safe to emit now (placeholders in place of findings).
    pub release: String,
    /// Bytes of `pending` that `release` covers; the caller keeps
    /// `pending[consumed..]` and prepends it to the next piece. Always on a
    /// UTF-8 boundary; all of `pending` when `is_final` or blocked.
    pub consumed: usize,
    /// Id of a `block` detector that matched: the stream must be cut; the
    /// step then releases nothing.
    pub blocked: Option<String>,
}

/// Per-field state of a stream, kept in the [`super::ScanSession`].
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    /// Stream offset of the first byte of the next `pending`.
    pub base: usize,
    /// The last released original bytes: look-behind for the next scan.
    pub context: String,
    /// (detector index, index in the session's findings) of this stream's
    /// records, so later pieces add to them rather than adding records.
    pub records: Vec<(usize, usize)>,
    /// Lazy DFA cache, tagged with the id of the engine that made it (a
    /// cache must never be used with another DFA).
    cache: Option<(u64, Cache)>,
    dead: HashSet<(usize, LazyStateID)>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The compiled hold rules of one policy.
#[derive(Debug)]
pub(crate) struct Hold {
    id: u64,
    /// All regexes of the policy, for liveness. `None` when they could not
    /// be built as a lazy DFA (a custom pattern with a Unicode word
    /// boundary): every start within `max_hold` is then held.
    dfa: Option<DFA>,
    /// Longest match of any selected pattern, capped by the scan window.
    pub max_hold: usize,
    /// Bytes of released text kept as look-behind.
    pub context: usize,
    /// Bytes past a match end that are still read (validators, context words).
    pub lookahead: usize,
    /// Lower-cased normalised keywords, sorted.
    keywords: Vec<String>,
    max_keyword: usize,
    pub private_key: bool,
    escapes: bool,
    /// Encoded runs: min length worth holding and longest the budget takes.
    decode: Option<(usize, usize)>,
}

/// Longest match of `pattern` in bytes, `None` when unbounded.
pub fn max_match_len(pattern: &str) -> Option<usize> {
    regex_automata::util::syntax::parse(pattern).ok().and_then(|h| h.properties().maximum_len())
}

pub(crate) struct HoldInputs<'a> {
    pub sources: &'a [String],
    pub keywords: Vec<String>,
    pub context_window: usize,
    pub private_key: bool,
    pub escapes: bool,
    pub window: usize,
    pub decode: Option<(usize, usize)>,
}

impl Hold {
    pub(crate) fn build(inp: HoldInputs<'_>) -> Self {
        let dfa = if inp.sources.is_empty() {
            None
        } else {
            DFA::builder()
                .configure(DFA::config().match_kind(MatchKind::All).cache_capacity(HYBRID_CACHE_BYTES))
                .thompson(thompson::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)))
                .build_many(inp.sources)
                .ok()
        };
        let window = inp.window.max(1);
        let longest = inp.sources.iter().map(|s| max_match_len(s).unwrap_or(window)).max().unwrap_or(0);
        let mut keywords: Vec<String> = inp.keywords.iter().map(|k| k.to_lowercase()).collect();
        keywords.sort();
        keywords.dedup();
        let max_keyword = keywords.iter().map(String::len).max().unwrap_or(0);
        Hold {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            dfa,
            max_hold: longest.min(window),
            context: BASE_CONTEXT + inp.context_window,
            lookahead: LOOKAHEAD.max(inp.context_window),
            keywords,
            max_keyword,
            private_key: inp.private_key,
            escapes: inp.escapes,
            decode: inp.decode,
        }
    }

    /// The most bytes one hold rule can keep back.
    pub fn bound(&self) -> usize {
        let mut b = self.max_hold.max(self.max_keyword + LOOKAHEAD).max(LONGEST_ESCAPE);
        if self.private_key {
            b = b.max(PEM_HOLD);
        }
        if let Some((_, run)) = self.decode {
            b = b.max(run);
        }
        b
    }

    /// Earliest position of normalised `hay` at or after `from` where text
    /// still to come could complete a match.
    pub(crate) fn hold_point(&self, hay: &str, from: usize, state: &mut StreamState) -> usize {
        let end = hay.len();
        let mut hold = end;
        let b = hay.as_bytes();

        let mut escape = end;
        if self.escapes {
            let lo = end.saturating_sub(LONGEST_ESCAPE).max(from);
            if let Some(p) = b.get(lo..end).and_then(|t| t.iter().position(|&c| matches!(c, b'\\' | b'&' | b'%'))) {
                escape = lo + p;
                hold = hold.min(escape);
            }
        }
        if let Some((min_len, max_run)) = self.decode {
            let mut s = end;
            while s > from && b.get(s - 1).is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_' | b'=')) {
                s -= 1;
            }
            // A run shorter than the minimum may still grow; one longer than
            // the budget can decode is never decoded.
            if s < end && end - s <= max_run && min_len > 0 {
                hold = hold.min(s);
            }
        }
        if self.private_key {
            let mut at = from;
            while let Some(p) = hay.get(at..).and_then(|t| t.find("-----BEGIN")) {
                let begin = at + p;
                let rest = hay.get(begin..).unwrap_or("");
                let closed = rest.find("-----END").is_some_and(|e| rest.get(e + 8..).is_some_and(|t| t.get(..t.len().min(48)).is_some_and(|w| w.contains("-----"))));
                if !closed && end - begin <= PEM_HOLD {
                    hold = hold.min(begin);
                    break;
                }
                at = begin + 1;
            }
        }
        // A pending escape may become any character: matches are live up
        // to it, not past it.
        let live = hay.get(..escape).unwrap_or(hay);
        let end = live.len();
        // Only a start before every other hold point can move it.
        let lo = from.max(end.saturating_sub(self.max_hold));
        if lo < hold {
            if let Some(s) = self.live_regex(live, lo, hold, state) {
                hold = hold.min(s);
            }
        }
        let lo = from.max(end.saturating_sub(self.max_keyword + LOOKAHEAD));
        if !self.keywords.is_empty() && lo < hold {
            if let Some(s) = self.live_keyword(live, lo, hold) {
                hold = hold.min(s);
            }
        }
        hold
    }

    /// Earliest start in `[lo, hi)` whose anchored run over the rest of
    /// `hay` is still alive (or died only within the lookahead).
    fn live_regex(&self, hay: &str, lo: usize, hi: usize, state: &mut StreamState) -> Option<usize> {
        let Some(dfa) = &self.dfa else {
            // No DFA: hold from the first character start in range.
            return (lo..hi).find(|&s| hay.is_char_boundary(s));
        };
        let cache = match &mut state.cache {
            Some((id, c)) if *id == self.id => c,
            slot => &mut slot.insert((self.id, dfa.create_cache())).1,
        };
        let dead = &mut state.dead;
        dead.clear();
        let b = hay.as_bytes();
        let end = b.len();
        let settled = end.saturating_sub(self.lookahead);
        let mut clears = cache.clear_count();
        let mut path: Vec<(usize, LazyStateID)> = Vec::new();
        for s in lo..hi {
            if !hay.is_char_boundary(s) {
                continue;
            }
            let input = Input::new(hay).range(s..).anchored(Anchored::Yes);
            let Ok(mut sid) = dfa.start_state_forward(cache, &input) else {
                return Some(s);
            };
            path.clear();
            let mut p = s;
            // A match state this late: the match ended where a validator
            // still reads text that has not arrived.
            let mut late_match = false;
            let died = loop {
                late_match |= sid.is_match() && p > settled;
                if sid.is_dead() {
                    break Some(p);
                }
                if p >= end || sid.is_quit() {
                    break None;
                }
                if cache.clear_count() != clears {
                    // State ids were invalidated: forget what they meant.
                    clears = cache.clear_count();
                    dead.clear();
                    path.clear();
                }
                if dead.contains(&(p, sid)) {
                    break Some(0);
                }
                path.push((p, sid));
                let Some(&byte) = b.get(p) else {
                    break None;
                };
                match dfa.next_state(cache, sid, byte) {
                    Ok(next) => sid = next,
                    Err(_) => break None,
                }
                p += 1;
            };
            match died {
                // Alive at the end, or matched where a validator still looks.
                None => return Some(s),
                Some(_) if late_match => return Some(s),
                Some(_) => {
                    if path.len() >= MEMO_FROM {
                        dead.extend(path.iter().copied());
                    }
                }
            }
        }
        None
    }

    /// Earliest start in `[lo, hi)` where the rest of `hay` could still be,
    /// or has only just become, an operator keyword.
    fn live_keyword(&self, hay: &str, lo: usize, hi: usize) -> Option<usize> {
        (lo..hi).filter(|&s| hay.is_char_boundary(s)).find(|&s| {
            let tail = hay.get(s..).unwrap_or("").to_lowercase();
            let at = self.keywords.partition_point(|k| k.as_str() < tail.as_str());
            if self.keywords.get(at).is_some_and(|k| k.starts_with(tail.as_str())) {
                return true;
            }
            // A keyword that ends in the last bytes: its whole-word check
            // reads the next character.
            (tail.len().saturating_sub(LOOKAHEAD + 1)..tail.len())
                .filter(|&l| l > 0 && tail.is_char_boundary(l))
                .any(|l| tail.get(..l).is_some_and(|head| self.keywords.binary_search_by(|k| k.as_str().cmp(head)).is_ok()))
        })
    }
}
