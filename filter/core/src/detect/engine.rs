//! A policy's compiled detectors, and the per-text scan.
//!
//! The triggers ([`super::trigger`]) pick the windows worth a regex and
//! name the patterns that opened each. A window opened for a few patterns
//! runs each of them; one opened for many (a digit cluster can be a card,
//! a phone number, an SSN...) first asks one multi-pattern lazy DFA
//! *which* of them occur (overlapping semantics, so no pattern hides
//! another). Each pattern that runs finds exact spans, by anchored searches
//! from the offsets its matches can start at ([`super::starts`]), and, for
//! a value group, captures ([`super::capture`]), which validators then
//! confirm. On prose with no findings the cost is the trigger scan alone.

use std::collections::BTreeMap;
use std::fmt::Write;

use aho_corasick::AhoCorasick;
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{meta, Anchored, Input, MatchKind, PatternSet};

use super::actions::{mask, Action, ActionSpec, DetectorSetting, SettingOptions};
use super::capture::Relaxed;
use super::catalogue::{ascii_boundaries, Category, Trigger, BUILTINS};
use super::custom::{self, meta_config};
use super::decode;
use super::fingerprint::{FingerprintKey, MIN_KEY_BYTES};
use super::keywords::{self, KeywordPattern};
use super::normalize::{normalize, normalize_word, NormalizeConfig};
use super::session::ScanSession;
use super::stream::{Hold, HoldInputs, StreamStep};
use super::trigger::{pattern_bit, ByteSet, Reach, Triggers, Window};
use super::allow::AllowedValues;
use super::starts::{Starts, MAX_MISSES};
use super::validate::Validator;
use super::DetectorsConfig;
use crate::config_error::{join, ConfigError};
use crate::record::FindingRecord;

/// What [`PolicyEngine::process`] did to a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Unchanged,
    Rewritten(String),
    /// A detector with action `block` fired; the request must be refused
    /// with `code` = `detector_id`.
    Blocked { detector_id: String },
}

/// Most patterns a window may be opened for and still be searched pattern
/// by pattern, without the union's pass first.
const DIRECT_SEARCHES: u32 = 3;
/// Hex digits of fingerprints in records and `hash` placeholders.
const FINGERPRINT_HEX: usize = 16;
const HASH_PLACEHOLDER_HEX: usize = 12;
/// Overlap between scan windows: longer than any built-in match (PEM keys
/// are the longest) so nothing is lost at a window edge.
const WINDOW_OVERLAP: usize = 16 * 1024;

/// Context words a custom detector needs near its matches.
#[derive(Debug)]
struct Context {
    words: AhoCorasick,
    window: usize,
}

#[derive(Debug)]
struct Detector {
    id: String,
    category: Category,
    label: String,
    spec: ActionSpec,
    priority: u8,
    validator: Validator,
    context: Option<Context>,
}

#[derive(Debug)]
struct Pattern {
    detector: usize,
    regex: meta::Regex,
    group: usize,
    /// `regex` with its large bounds dropped, to find `group` on short spans.
    relaxed: Option<Relaxed>,
    /// Every byte a match can hold: a match that ends at a window's end
    /// can only go on past it if the next byte is one of them.
    bytes: ByteSet,
    /// Where its matches can start: searched anchored from there, with no
    /// reverse pass.
    starts: Option<Starts>,
}

/// One policy's detectors, compiled once at configure time.
#[derive(Debug)]
pub struct PolicyEngine {
    detectors: Vec<Detector>,
    /// All regex patterns in one engine, for the "which occur" pass.
    union: Option<meta::Regex>,
    /// Indexed by the union's pattern ids.
    patterns: Vec<Pattern>,
    triggers: Triggers,
    keywords: Option<AhoCorasick>,
    keyword_patterns: Vec<KeywordPattern>,
    key: Option<FingerprintKey>,
    normalize: NormalizeConfig,
    allowed: AllowedValues,
    /// What [`Self::process_stream`] holds back.
    hold: Hold,
}

/// A confirmed hit, before overlap resolution.
#[derive(Debug, Clone)]
struct Candidate {
    detector: usize,
    /// Original byte range.
    start: usize,
    end: usize,
    /// The matched value after normalisation (decoded for segments): what
    /// numbering, fingerprints and masks are computed from.
    value: String,
    /// Found inside a base64 / hex segment: the range is the whole segment.
    encoded: bool,
}

/// A definition the policy can select, before compilation.
struct Definition<'a> {
    id: &'a str,
    category: Category,
    default_action: Action,
    keep_last: usize,
    source: Source<'a>,
}

enum Source<'a> {
    Builtin(&'static super::catalogue::Builtin),
    Keyword(usize, &'a super::keywords::KeywordListConfig),
    Custom(usize, &'a super::custom::CustomDetectorConfig),
}

const CATEGORY_PREFIX: &str = "category:";

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

fn validate_normalize(n: &NormalizeConfig) -> Result<(), ConfigError> {
    let p = "detectors.normalize";
    if n.decode_depth > 4 {
        return Err(ConfigError::new(join(p, "decode_depth"), "must be between 0 and 4"));
    }
    if !(8..=4096).contains(&n.min_encoded_len) {
        return Err(ConfigError::new(join(p, "min_encoded_len"), "must be between 8 and 4096"));
    }
    if n.max_decoded_bytes > 16 * 1024 * 1024 {
        return Err(ConfigError::new(join(p, "max_decoded_bytes"), "must be at most 16777216"));
    }
    if !(64 * 1024..=64 * 1024 * 1024).contains(&n.window_bytes) {
        return Err(ConfigError::new(join(p, "window_bytes"), "must be between 65536 and 67108864"));
    }
    Ok(())
}

fn definitions(cfg: &DetectorsConfig) -> Result<Vec<Definition<'_>>, ConfigError> {
    let mut defs: Vec<Definition<'_>> = BUILTINS
        .iter()
        .map(|b| Definition { id: b.id, category: b.category, default_action: Action::Redact, keep_last: b.keep_last, source: Source::Builtin(b) })
        .collect();
    let taken = |id: &str, path: String, defs: &Vec<Definition<'_>>| -> Result<(), ConfigError> {
        if !valid_id(id) {
            return Err(ConfigError::new(path, format!("`{id}` is not a valid detector id (1-64 characters: letters, digits, `_`, `-`, `.`)")));
        }
        if defs.iter().any(|d| d.id == id) {
            return Err(ConfigError::new(path, format!("detector id `{id}` is already used (ids of built-ins, keyword lists and custom detectors share one namespace)")));
        }
        Ok(())
    };
    for (i, list) in cfg.keywords.iter().enumerate() {
        let path = format!("detectors.keywords[{i}]");
        taken(&list.id, format!("{path}.id"), &defs)?;
        keywords::validate(list, &path)?;
        defs.push(Definition {
            id: &list.id,
            category: Category::Keyword,
            default_action: list.default_action.unwrap_or(Action::Block),
            keep_last: 0,
            source: Source::Keyword(i, list),
        });
    }
    for (i, c) in cfg.custom.iter().enumerate() {
        let path = format!("detectors.custom[{i}]");
        taken(&c.id, format!("{path}.id"), &defs)?;
        custom::validate(c, &path)?;
        defs.push(Definition {
            id: &c.id,
            category: Category::Custom,
            default_action: c.default_action.unwrap_or(Action::Redact),
            keep_last: 0,
            source: Source::Custom(i, c),
        });
    }
    for (i, d) in defs.iter().enumerate() {
        if d.default_action == Action::Hash && cfg.fingerprint_key.is_none() {
            let path = match d.source {
                Source::Keyword(k, _) => format!("detectors.keywords[{k}].default_action"),
                Source::Custom(k, _) => format!("detectors.custom[{k}].default_action"),
                Source::Builtin(_) => format!("detectors[{i}]"),
            };
            return Err(ConfigError::new(path, "action `hash` needs `detectors.fingerprint_key`"));
        }
    }
    Ok(defs)
}

fn label_of(id: &str, explicit: Option<&String>) -> String {
    let raw = explicit.cloned().unwrap_or_else(|| id.to_string());
    raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

fn resolve_spec(def: &Definition<'_>, opts: &SettingOptions, path: &str, has_key: bool) -> Result<ActionSpec, ConfigError> {
    let action = opts.action.unwrap_or(def.default_action);
    if action != Action::Mask {
        for (name, set) in [("keep_last", opts.keep_last.is_some()), ("keep_first", opts.keep_first.is_some()), ("mask_char", opts.mask_char.is_some())] {
            if set {
                return Err(ConfigError::new(join(path, name), format!("only applies to action `mask` (the action here is `{}`)", action.as_str())));
            }
        }
    }
    if opts.keep_last.unwrap_or(0) > 64 || opts.keep_first.unwrap_or(0) > 64 {
        return Err(ConfigError::new(path, "keep_last and keep_first must be at most 64"));
    }
    if action == Action::Hash && !has_key {
        return Err(ConfigError::new(
            path,
            format!("action `hash` needs `detectors.fingerprint_key` (a secret of at least {MIN_KEY_BYTES} bytes)"),
        ));
    }
    Ok(ActionSpec {
        action,
        keep_last: opts.keep_last.unwrap_or(def.keep_last),
        keep_first: opts.keep_first.unwrap_or(0),
        mask_char: opts.mask_char.unwrap_or('*'),
    })
}

impl PolicyEngine {
    /// Compiles the detectors `selection` picks from the built-ins and the
    /// `detectors` section. `policy_path` (`policies.finance`) prefixes
    /// error paths of the selection.
    ///
    /// Selection keys are detector ids or `category:<pii|secret|keyword|custom>`;
    /// an id setting overrides its category's.
    pub fn compile(cfg: &DetectorsConfig, selection: &BTreeMap<String, DetectorSetting>, policy_path: &str) -> Result<Self, ConfigError> {
        let key = match &cfg.fingerprint_key {
            Some(k) => Some(FingerprintKey::new(k).ok_or_else(|| {
                ConfigError::new("detectors.fingerprint_key", format!("must be at least {MIN_KEY_BYTES} bytes"))
            })?),
            None => None,
        };
        validate_normalize(&cfg.normalize)?;
        super::validate::prepare();
        let defs = definitions(cfg)?;
        let sel_path = join(policy_path, "detectors");

        // Resolve the selection: explicit ids first, then categories.
        let mut by_category: BTreeMap<Category, (&DetectorSetting, String)> = BTreeMap::new();
        let mut by_id: BTreeMap<&str, (&DetectorSetting, String)> = BTreeMap::new();
        for (k, setting) in selection {
            let path = join(&sel_path, k);
            if let Some(name) = k.strip_prefix(CATEGORY_PREFIX) {
                let cat = Category::parse(name).ok_or_else(|| {
                    ConfigError::new(&path, format!("unknown category `{name}`; known: pii, secret, keyword, custom"))
                })?;
                by_category.insert(cat, (setting, path));
            } else if defs.iter().any(|d| d.id == k) {
                by_id.insert(k.as_str(), (setting, path));
            } else {
                let known: Vec<&str> = defs.iter().map(|d| d.id).collect();
                return Err(ConfigError::new(
                    path,
                    format!("unknown detector `{k}`; known: {}; or select a whole category with `category:pii`, `category:secret`, `category:keyword`, `category:custom`", known.join(", ")),
                ));
            }
        }

        let mut engine = PolicyEngine {
            detectors: Vec::new(),
            union: None,
            patterns: Vec::new(),
            triggers: Triggers::build(&[]).map_err(|e| ConfigError::new(sel_path.as_str(), e))?,
            keywords: None,
            keyword_patterns: Vec::new(),
            key,
            normalize: cfg.normalize.clone(),
            allowed: AllowedValues::build(&cfg.allow_values)?,
            hold: Hold::build(HoldInputs { sources: &[], keywords: Vec::new(), context_window: 0, private_key: false, escapes: false, window: 1, decode: None }),
        };
        let mut union_sources: Vec<String> = Vec::new();
        let mut union_case_insensitive = Vec::new();
        let mut triggers: Vec<Reach> = Vec::new();

        for def in &defs {
            let Some((setting, path)) = by_id.get(def.id).or_else(|| by_category.get(&def.category)) else {
                continue;
            };
            let spec = resolve_spec(def, &setting.options(), path, engine.key.is_some())?;
            if spec.action == Action::Allow {
                continue;
            }
            let index = engine.detectors.len();
            let (label, priority, validator, context) = match &def.source {
                Source::Builtin(b) => {
                    for p in b.patterns {
                        let src = ascii_boundaries(p.regex);
                        // Group captures run on the short span the DFAs matched,
                        // where the bounded backtracker (one visited bit per NFA
                        // state and byte: a memset) is about three times as fast
                        // as the PikeVM. No literal prefilter: a built-in pattern
                        // only searches the short windows its trigger opened,
                        // where a literal scan first is work done twice.
                        let regex = meta::Builder::new()
                            .configure(meta_config().auto_prefilter(false))
                            .build(&src)
                            .map_err(|e| ConfigError::new(path.as_str(), format!("built-in detector `{}` failed to compile: {e}", b.id)))?;
                        let (bytes, needs, tail) = ByteSet::reach_of(&src)
                            .map_err(|e| ConfigError::new(path.as_str(), format!("built-in detector `{}` failed to compile: {e}", b.id)))?;
                        let relaxed = if p.group > 0 { Relaxed::build(&src, &syntax::Config::new(), meta_config().auto_prefilter(false)) } else { None };
                        let starts = Starts::of_regex(&src);
                        engine.patterns.push(Pattern { detector: index, regex, group: p.group, relaxed, bytes, starts });
                        triggers.push(Reach { trigger: p.trigger, back: p.back, fwd: p.fwd, bytes, needs, tail });
                        union_sources.push(src);
                        union_case_insensitive.push(false);
                    }
                    (b.label.to_string(), b.priority, b.validator, None)
                }
                Source::Custom(i, c) => {
                    let cpath = format!("detectors.custom[{i}]");
                    let (regex, validator) = custom::validate(c, &cpath)?;
                    let relaxed = if c.group > 0 {
                        Relaxed::build(&c.pattern, &syntax::Config::new().case_insensitive(c.case_insensitive), meta_config())
                    } else {
                        None
                    };
                    engine.patterns.push(Pattern { detector: index, regex, group: c.group, relaxed, bytes: ByteSet::ALL, starts: None });
                    triggers.push(Reach { trigger: Trigger::Always, back: 0, fwd: 0, bytes: ByteSet::ALL, needs: Vec::new(), tail: None });
                    union_sources.push(c.pattern.clone());
                    union_case_insensitive.push(c.case_insensitive);
                    let context = if c.context.is_empty() {
                        None
                    } else {
                        let words: Vec<String> = c.context.iter().map(|w| normalize_word(w.trim())).collect();
                        let ac = aho_corasick::AhoCorasickBuilder::new()
                            .ascii_case_insensitive(true)
                            .build(&words)
                            .map_err(|e| ConfigError::new(format!("{cpath}.context"), e.to_string()))?;
                        Some(Context { words: ac, window: c.context_window })
                    };
                    (label_of(&c.id, c.label.as_ref()), 1, validator, context)
                }
                Source::Keyword(_, list) => {
                    engine.keyword_patterns.extend(keywords::patterns(list, index));
                    (label_of(&list.id, list.label.as_ref()), 1, Validator::None, None)
                }
            };
            engine.detectors.push(Detector { id: def.id.to_string(), category: def.category, label, spec, priority, validator, context });
        }

        // Case-insensitivity of custom patterns is per pattern: wrap them.
        let sources: Vec<String> = union_sources
            .iter()
            .zip(&union_case_insensitive)
            .map(|(s, ci)| if *ci { format!("(?i:{s})") } else { s.clone() })
            .collect();
        if !sources.is_empty() {
            let union = meta::Builder::new()
                .configure(meta_config().match_kind(MatchKind::All))
                .build_many(&sources)
                .map_err(|e| ConfigError::new(sel_path.as_str(), format!("the selected detectors could not be compiled together: {e}")))?;
            engine.union = Some(union);
        }
        engine.triggers = Triggers::build(&triggers).map_err(|e| ConfigError::new(sel_path.as_str(), e))?;
        if !engine.keyword_patterns.is_empty() {
            engine.keywords = Some(keywords::build(&engine.keyword_patterns, &sel_path)?);
        }
        let n = &engine.normalize;
        engine.hold = Hold::build(HoldInputs {
            sources: &sources,
            keywords: engine.keyword_patterns.iter().map(|k| k.word.clone()).collect(),
            context_window: engine.detectors.iter().filter_map(|d| d.context.as_ref().map(|c| c.window)).max().unwrap_or(0),
            private_key: engine.detectors.iter().any(|d| d.validator == Validator::PrivateKey),
            escapes: n.escapes,
            window: n.window_bytes,
            decode: (n.decode_depth > 0).then(|| (n.min_encoded_len, n.max_decoded_bytes.saturating_mul(4) / 3 + 4)),
        });
        Ok(engine)
    }

    /// No detector selected (or all of them `allow`).
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// Ids of the compiled detectors with their actions, for diagnostics.
    pub fn detectors(&self) -> impl Iterator<Item = (&str, Action)> {
        self.detectors.iter().map(|d| (d.id.as_str(), d.spec.action))
    }

    /// Scans one text field, applies each finding's action and records the
    /// findings in `session`. `field` is the JSON path of the text.
    pub fn process(&self, text: &str, field: &str, session: &mut ScanSession) -> Processed {
        if self.is_empty() || text.is_empty() {
            return Processed::Unchanged;
        }
        let found = self.find(text);
        if found.is_empty() {
            return Processed::Unchanged;
        }
        let kept = resolve_overlaps(&found, &self.detectors);
        let blocked = found
            .iter()
            .filter(|c| self.detectors.get(c.detector).is_some_and(|d| d.spec.action == Action::Block))
            .min_by_key(|c| c.start);

        self.record(field, &kept, blocked, session, 0, None);
        if let Some(b) = blocked {
            let id = self.detectors.get(b.detector).map(|d| d.id.clone()).unwrap_or_default();
            return Processed::Blocked { detector_id: id };
        }
        self.rewrite(text, &kept, session)
    }

    /// Findings in `text` without acting on them (original byte ranges,
    /// after overlap resolution): `(detector id, start, end)`.
    pub fn scan(&self, text: &str) -> Vec<(&str, usize, usize)> {
        let found = self.find(text);
        resolve_overlaps(&found, &self.detectors)
            .into_iter()
            .filter_map(|c| self.detectors.get(c.detector).map(|d| (d.id.as_str(), c.start, c.end)))
            .collect()
    }

    /// Incremental scanning of a text that arrives in pieces (an LLM answer
    /// streamed as SSE deltas). `pending` is the text received but not yet
    /// released (what the previous step did not consume, then the new
    /// piece); `is_final` says no more will come.
    ///
    /// Applies every finding that lies entirely inside the released part
    /// exactly as [`Self::process`] would on the whole text: same actions,
    /// placeholders numbered by `session`, one record per detector and
    /// field. Offsets are relative to the whole stream: the session tracks,
    /// per `field`, how many bytes were consumed before. Only what could
    /// still grow into a match is held back (see [`super::stream`]), never
    /// more than [`Self::stream_hold_bound`] bytes per rule; `consumed` is
    /// always a UTF-8 boundary and all of `pending` when `is_final`.
    ///
    /// Work per call is linear in the held tail plus the new text. Where it
    /// can differ from `process` on the whole text: texts above
    /// `normalize.window_bytes` (both scan in windows, cut in different
    /// places), and the decode budget, which is per call here.
    pub fn process_stream(&self, pending: &str, is_final: bool, field: &str, session: &mut ScanSession) -> StreamStep {
        let mut state = session.streams.remove(field).unwrap_or_default();
        let ctx_len = state.context.len();
        let mut buf = String::with_capacity(ctx_len + pending.len());
        buf.push_str(&state.context);
        buf.push_str(pending);

        let found = if self.is_empty() { Vec::new() } else { self.find(&buf) };
        let mut cut = if is_final || self.is_empty() { buf.len() } else { self.stream_cut(&buf, ctx_len, &mut state) };
        // A finding is released whole or not at all.
        while let Some(c) = found.iter().filter(|c| c.start < cut && c.end > cut).map(|c| c.start).min() {
            cut = c;
        }
        let cut = floor_boundary(&buf, cut.max(ctx_len));
        let inside = |c: &Candidate| c.start >= ctx_len && c.end <= cut;
        let shift = |c: &Candidate| Candidate { start: c.start - ctx_len, end: c.end - ctx_len, ..c.clone() };
        let shifted: Vec<Candidate> = resolve_overlaps(&found, &self.detectors).into_iter().filter(|c| inside(c)).map(shift).collect();
        let kept: Vec<&Candidate> = shifted.iter().collect();
        let blocked = found
            .iter()
            .filter(|c| inside(c) && self.detectors.get(c.detector).is_some_and(|d| d.spec.action == Action::Block))
            .min_by_key(|c| c.start)
            .map(shift);
        let released = buf.get(ctx_len..cut).unwrap_or("");

        self.record(field, &kept, blocked.as_ref(), session, state.base, Some(&mut state.records));
        if let Some(b) = blocked {
            let id = self.detectors.get(b.detector).map(|d| d.id.clone()).unwrap_or_default();
            return StreamStep { release: String::new(), consumed: pending.len(), blocked: Some(id) };
        }
        let release = match self.rewrite(released, &kept, session) {
            Processed::Rewritten(s) => s,
            Processed::Unchanged | Processed::Blocked { .. } => released.to_string(),
        };
        let consumed = cut - ctx_len;
        if !is_final {
            state.base += consumed;
            let keep_from = floor_boundary(&buf, cut.saturating_sub(self.hold.context));
            state.context = buf.get(keep_from..cut).unwrap_or("").to_string();
            session.streams.insert(field.to_string(), state);
        }
        StreamStep { release, consumed, blocked: None }
    }

    /// The most bytes [`Self::process_stream`] holds back for one rule:
    /// the longest match any selected pattern can produce (capped by
    /// `normalize.window_bytes`), 16 KiB past a PEM header, the longest
    /// encoded run the decode budget takes.
    pub fn stream_hold_bound(&self) -> usize {
        self.hold.bound()
    }

    /// Where to cut `buf` (look-behind `[0, ctx_len)`, then pending).
    fn stream_cut(&self, buf: &str, ctx_len: usize, state: &mut super::stream::StreamState) -> usize {
        let norm = normalize(buf, &self.normalize);
        let from = norm.map.to_normalized(ctx_len, norm.text.len());
        let hold = self.hold.hold_point(&norm.text, from, state);
        if hold >= norm.text.len() {
            return buf.len();
        }
        norm.to_original(hold, hold).0
    }

    /// All confirmed candidates, in windows that bound memory per text.
    fn find(&self, text: &str) -> Vec<Candidate> {
        let window = self.normalize.window_bytes.max(1);
        let mut budget = self.normalize.max_decoded_bytes;
        if text.len() <= window {
            return self.scan_text(text, 0, &mut budget);
        }
        let overlap = WINDOW_OVERLAP.min(window / 4);
        let mut out = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let end = floor_boundary(text, (start + window).min(text.len()));
            let Some(slice) = text.get(start..end) else {
                break;
            };
            for mut c in self.scan_text(slice, 0, &mut budget) {
                c.start += start;
                c.end += start;
                out.push(c);
            }
            if end >= text.len() {
                break;
            }
            let next = floor_boundary(text, end - overlap);
            start = if next > start { next } else { end };
        }
        out.sort_by_key(|c| (c.start, c.end, c.detector));
        out.dedup_by(|a, b| a.start == b.start && a.end == b.end && a.detector == b.detector);
        out
    }

    /// One window (or one decoded segment, `depth` > 0).
    fn scan_text(&self, text: &str, depth: u8, budget: &mut usize) -> Vec<Candidate> {
        let norm = normalize(text, &self.normalize);
        let hay: &str = &norm.text;
        let mut hits: Vec<(usize, usize, usize, bool, Option<String>)> = Vec::new();

        if let Some(union) = &self.union {
            let mut set = PatternSet::new(union.pattern_len());
            // Reused across windows: capture buffers per pattern (sized at
            // the first window: most texts open none), one span list, one
            // list of the patterns to run.
            let mut caps: Vec<CaptureBuffers> = Vec::new();
            let mut spans = Vec::new();
            let mut todo: Vec<usize> = Vec::new();
            for Window { start: ws, end: we, patterns: opened, triggers_end } in self.triggers.windows(hay) {
                // A failing search for one pattern costs a fraction of the
                // union's "which occur" pass: a window opened for a few
                // patterns searches each; one opened for many asks the union
                // first. Either way only the patterns that opened it.
                todo.clear();
                if opened.count_ones() <= DIRECT_SEARCHES {
                    todo.extend((0..self.patterns.len()).filter(|&i| opened & pattern_bit(i) != 0));
                } else {
                    set.clear();
                    union.which_overlapping_matches(&Input::new(hay).span(ws..we), &mut set);
                    todo.extend(set.iter().map(|pid| pid.as_usize()).filter(|&i| opened & pattern_bit(i) != 0));
                }
                for &pid in &todo {
                    let Some(p) = self.patterns.get(pid) else {
                        continue;
                    };
                    let Some(det) = self.detectors.get(p.detector) else {
                        continue;
                    };
                    if caps.is_empty() {
                        caps.resize_with(self.patterns.len(), CaptureBuffers::default);
                    }
                    let Some(caps) = caps.get_mut(pid) else {
                        continue;
                    };
                    spans.clear();
                    matches_in(p, hay, (ws, we, triggers_end), caps, &mut spans, |s, e| self.confirm(det, hay, s, e));
                    hits.extend(spans.iter().map(|&(s, e)| (p.detector, s, e, false, None)));
                }
            }
        }

        if let Some(ac) = &self.keywords {
            for m in ac.find_overlapping_iter(hay) {
                let Some(p) = self.keyword_patterns.get(m.pattern().as_usize()) else {
                    continue;
                };
                if keywords::accept(p, hay, m.start(), m.end()) {
                    hits.push((p.detector, m.start(), m.end(), false, None));
                }
            }
        }

        if depth < self.normalize.decode_depth && *budget > 0 {
            for seg in decode::segments(hay, self.normalize.min_encoded_len, budget) {
                let inner = self.scan_text(&seg.decoded, depth + 1, budget);
                // One finding per detector per segment: the segment is cut whole.
                let mut seen = Vec::new();
                for c in inner {
                    if !seen.contains(&c.detector) {
                        seen.push(c.detector);
                        hits.push((c.detector, seg.start, seg.end, true, Some(c.value)));
                    }
                }
            }
        }

        hits.into_iter()
            .filter_map(|(detector, s, e, encoded, inner_value)| {
                let value = inner_value.or_else(|| hay.get(s..e).map(str::to_string))?;
                let (os, oe) = norm.to_original(s, e);
                let (start, end) = (floor_boundary(text, os), ceil_boundary(text, oe));
                (start < end).then_some(Candidate { detector, start, end, value, encoded })
            })
            .collect()
    }

    fn confirm(&self, det: &Detector, hay: &str, start: usize, end: usize) -> Confirmed {
        match self.confirm_span(det, hay, start, end) {
            Some((s, e)) if hay.get(s..e).is_some_and(|v| self.allowed.contains(v)) => Confirmed::Allowed,
            Some((s, e)) => Confirmed::Found(s, e),
            None => Confirmed::Rejected,
        }
    }

    fn confirm_span(&self, det: &Detector, hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
        let r = det.validator.check(hay, start..end)?;
        if r.start >= r.end || !hay.is_char_boundary(r.start) || !hay.is_char_boundary(r.end) {
            return None;
        }
        if let Some(ctx) = &det.context {
            let from = floor_boundary(hay, r.start.saturating_sub(ctx.window));
            let to = ceil_boundary(hay, (r.end + ctx.window).min(hay.len()));
            let near = |a: usize, b: usize| hay.get(a..b).is_some_and(|s| ctx.words.is_match(s));
            if !near(from, r.start) && !near(r.end, to) {
                return None;
            }
        }
        Some((r.start, r.end))
    }

    /// One finding record per detector; offsets shifted by `base`. With
    /// `merge`, a detector that already has a record there (an earlier
    /// piece of the same stream) gets its offsets appended instead.
    fn record(
        &self,
        field: &str,
        kept: &[&Candidate],
        blocked: Option<&Candidate>,
        session: &mut ScanSession,
        base: usize,
        mut merge: Option<&mut Vec<(usize, usize)>>,
    ) {
        let mut order: Vec<usize> = Vec::new();
        let mut groups: BTreeMap<usize, Vec<&Candidate>> = BTreeMap::new();
        let extra = blocked.filter(|b| !kept.iter().any(|k| k.start == b.start && k.end == b.end && k.detector == b.detector));
        for c in kept.iter().copied().chain(extra) {
            if !groups.contains_key(&c.detector) {
                order.push(c.detector);
            }
            groups.entry(c.detector).or_default().push(c);
        }
        for d in order {
            let (Some(det), Some(cands)) = (self.detectors.get(d), groups.get(&d)) else {
                continue;
            };
            let fingerprints = match &self.key {
                Some(k) => cands.iter().map(|c| k.fingerprint(&c.value, FINGERPRINT_HEX)).collect(),
                None => Vec::new(),
            };
            let offsets: Vec<[usize; 2]> = cands.iter().map(|c| [base + c.start, base + c.end]).collect();
            if let Some(known) = merge.as_deref_mut() {
                let existing = known.iter().rev().find(|(k, _)| *k == d).map(|&(_, i)| i);
                // The caller may have taken the findings in between.
                let same = |r: &&mut FindingRecord| r.rule_id == det.id && r.field == field;
                if let Some(r) = existing.and_then(|i| session.finding_mut(i)).filter(same) {
                    r.count += cands.len();
                    r.offsets.extend(offsets);
                    r.fingerprints.extend(fingerprints);
                    continue;
                }
                known.push((d, session.findings().len()));
            }
            session.push_finding(FindingRecord {
                rule_id: det.id.clone(),
                category: det.category.as_str().to_string(),
                action: det.spec.action.as_str().to_string(),
                direction: session.direction(),
                field: field.to_string(),
                count: cands.len(),
                offsets,
                fingerprints,
            });
        }
    }

    fn rewrite(&self, text: &str, kept: &[&Candidate], session: &mut ScanSession) -> Processed {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut changed = false;
        for c in kept {
            let Some(det) = self.detectors.get(c.detector) else {
                continue;
            };
            if !det.spec.action.rewrites() || c.start < last {
                continue;
            }
            let original = text.get(c.start..c.end).unwrap_or("");
            out.push_str(text.get(last..c.start).unwrap_or(""));
            // Each replacement is written in place, not built apart first.
            match det.spec.action {
                Action::Mask if c.encoded => out.extend(original.chars().map(|ch| if ch.is_alphanumeric() { det.spec.mask_char } else { ch })),
                Action::Mask => out.push_str(&mask(&c.value, &det.spec)),
                Action::Redact => session.push_redact_placeholder(&mut out, &det.label, &c.value),
                Action::Hash => {
                    let fp = self.key.as_ref().map(|k| k.fingerprint(&c.value, HASH_PLACEHOLDER_HEX)).unwrap_or_default();
                    let _ = write!(out, "[{}:{fp}]", det.label);
                }
                Action::Tokenize => out.push_str(&session.token_placeholder(&det.label, &c.value, original)),
                // Not reached (`rewrites()` above): the text stays.
                Action::Allow | Action::Log | Action::Block => out.push_str(original),
            }
            last = c.end;
            changed = true;
        }
        if !changed {
            return Processed::Unchanged;
        }
        out.push_str(text.get(last..).unwrap_or(""));
        Processed::Rewritten(out)
    }
}

/// Most retries after rejected matches per pattern and window: keeps the
/// work linear on adversarial input (a megabyte of digits).
const MAX_RETRIES: usize = 64;

/// Appends to `out` the confirmed spans (the pattern's value group) of `p`
/// within window `[ws, wend)` of `hay`, starting before `triggers_end`
/// (none starts later: see [`Window`]), so a window's last match is not
/// followed by a search of the rest of it. Look-around sees past the window;
/// a match that reaches the window end, where the next byte could be part
/// of it, is searched again without the window, so a long token is never
/// cut short. When `confirm` rejects a match, the search resumes one
/// character after its start rather than after its end: a rejected "card"
/// that swallowed an SSN must not hide the card after it.
fn matches_in(
    p: &Pattern,
    hay: &str,
    (ws, wend, triggers_end): (usize, usize, usize),
    caps: &mut CaptureBuffers,
    out: &mut Vec<(usize, usize)>,
    confirm: impl Fn(usize, usize) -> Confirmed,
) {
    // Captures cost a backtracking pass: only for patterns whose value is a
    // group, and only over the span the DFAs already matched.
    let mut at = ws;
    let mut retries = 0;
    let mut misses = 0;
    while at <= wend && at < triggers_end {
        let found = match p.starts.as_ref().filter(|_| misses < MAX_MISSES) {
            // The leftmost match is the first found from a start.
            Some(starts) => loop {
                let Some(c) = starts.next(hay.as_bytes(), at, triggers_end.min(wend)) else {
                    break None;
                };
                let m = p.regex.search(&Input::new(hay).range(c..wend).anchored(Anchored::Yes));
                if m.is_some() {
                    break m;
                }
                at = c + 1;
                misses += 1;
                if misses >= MAX_MISSES {
                    break p.regex.search(&Input::new(hay).span(at..wend));
                }
            },
            None => p.regex.search(&Input::new(hay).span(at..wend)),
        };
        let Some(m) = found else {
            break;
        };
        let mut end = m.end();
        let goes_on = hay.as_bytes().get(wend).is_some_and(|&b| p.bytes.contains(b));
        if m.end() == wend && goes_on {
            let full = Input::new(hay).range(m.start()..).anchored(Anchored::Yes);
            end = p.regex.search(&full).map_or(m.end(), |f| f.end());
        }
        let value = if p.group == 0 { Some((m.start(), end)) } else { value_group(p, hay, m.start(), end, caps) };
        let past = if end > m.start() { end } else { m.start() + 1 };
        match value.map_or(Confirmed::Rejected, |(s, e)| confirm(s, e)) {
            Confirmed::Found(s, e) => {
                out.push((s, e));
                at = past;
            }
            // Passed over whole: a part of an allowed value is no finding.
            Confirmed::Allowed => at = past,
            Confirmed::Rejected if retries < MAX_RETRIES => {
                retries += 1;
                at = ceil_boundary(hay, m.start() + 1);
            }
            Confirmed::Rejected => at = past,
        }
    }
}

/// What the validators, context words and allowed values make of a match.
enum Confirmed {
    Found(usize, usize),
    /// An allowed value: not a finding, and no part of it is searched again.
    Allowed,
    /// Not a finding; a match starting later inside it still may be.
    Rejected,
}

/// Capture buffers of one pattern: for its relaxed regex and for its own.
#[derive(Default)]
struct CaptureBuffers {
    relaxed: Option<Captures>,
    strict: Option<Captures>,
}

/// The span of `p`'s value group in its match `[start, end)`, with the
/// relaxed regex where it captures the same.
fn value_group(p: &Pattern, hay: &str, start: usize, end: usize, caps: &mut CaptureBuffers) -> Option<(usize, usize)> {
    let (regex, caps) = match p.relaxed.as_ref().and_then(|r| r.for_span(end - start)) {
        Some(relaxed) => (relaxed, &mut caps.relaxed),
        None => (&p.regex, &mut caps.strict),
    };
    let caps = caps.get_or_insert_with(|| regex.create_captures());
    regex.search_captures(&Input::new(hay).range(start..end).anchored(Anchored::Yes), caps);
    caps.get_group(p.group).map(|g| (g.start, g.end))
}

/// Keeps, among overlapping candidates, the most specific one (lowest
/// priority value, then the longest); returns them ordered by start.
///
/// Candidates are taken in that order and each is accepted unless it
/// overlaps one already accepted. Only candidates chained by overlaps can
/// affect each other, so the choice is made per such cluster; most
/// candidates overlap nothing and are kept as they are.
fn resolve_overlaps<'c>(found: &'c [Candidate], detectors: &[Detector]) -> Vec<&'c Candidate> {
    let prio = |c: &Candidate| detectors.get(c.detector).map_or(u8::MAX, |d| d.priority);
    // Equal starts keep their order in `found` (a stable sort, which also
    // makes use of the runs in which the windows added them).
    let mut by_start: Vec<(usize, &Candidate)> = found.iter().enumerate().collect();
    by_start.sort_by_key(|&(_, c)| c.start);
    let mut kept: Vec<&Candidate> = Vec::with_capacity(by_start.len());
    // Reused by every cluster of more than one.
    let mut order: Vec<(usize, &Candidate)> = Vec::new();
    let mut accepted: Vec<&Candidate> = Vec::new();
    let mut rest = by_start.as_slice();
    while let Some(((_, first), _)) = rest.split_first() {
        // The cluster: every later candidate that starts before the
        // furthest end so far.
        let (mut reach, mut len) = (first.end, 1);
        while let Some((_, c)) = rest.get(len).filter(|(_, c)| c.start < reach) {
            reach = reach.max(c.end);
            len += 1;
        }
        let (cluster, after) = rest.split_at(len);
        rest = after;
        if let [(_, only)] = cluster {
            kept.push(only);
            continue;
        }
        order.clear();
        order.extend_from_slice(cluster);
        order.sort_unstable_by(|(ia, a), (ib, b)| {
            prio(a)
                .cmp(&prio(b))
                .then((b.end - b.start).cmp(&(a.end - a.start)))
                .then(a.start.cmp(&b.start))
                .then(a.detector.cmp(&b.detector))
                .then(ia.cmp(ib))
        });
        accepted.clear();
        for &(_, c) in &order {
            if !accepted.iter().any(|a| a.start < c.end && c.start < a.end) {
                accepted.push(c);
            }
        }
        accepted.sort_unstable_by_key(|c| c.start);
        kept.extend_from_slice(&accepted);
    }
    kept
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::detect::catalogue::BUILTINS;

    fn default_engine() -> PolicyEngine {
        let selection: BTreeMap<String, DetectorSetting> =
            serde_json::from_str(r#"{"category:pii": "redact", "category:secret": "redact"}"#).unwrap();
        PolicyEngine::compile(&DetectorsConfig::default(), &selection, "p").unwrap()
    }

    /// Pieces of every kind of finding, trigger words in prose (with and
    /// without the digits, `:` or `=` their patterns need), separators that
    /// end runs, long local parts and multi-byte neighbours: random
    /// mixtures of them compare two ways of scanning.
    const MIXTURE_PIECES: &[&str] = &[
        "dana.whitfield@example.org", "+1 415 555 0132", "4111 1111 1111 1111", "536-22-1234", "DE89 3704 0044 0532 0130 00",
        "AKIAQ3EGRK5NW7XZLM4P", "ghp_4fTq9LmZ2xVb7NcR1sYk3JhG8dWp6UeA0oIi", "postgres://app:S3cr3t-p4ss@db.internal:5432/app",
        "https://u:pw12345678@host/x", "10.20.30.40", "fe80::1", "AB 12 34 56 C", "DOB: 1990-04-12", "born on March 3, 1985",
        "password=Tr0ub4dor&3x", "\"api_key\": \"sk_live_4eC39HqLyjWDarjtT1zdp7dc\"", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "token ", "secret", "call me", "tel:", "call me at ", "phone: ", "token: ", "api_key=", "password ", "ext. 12", "born ", "DOB ", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "-----BEGIN RSA PRIVATE KEY-----", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "SG.", "Q~", "::",
        "a.very.long.local.part.that.goes.on.and.on.past.sixty.four.bytes.of.it", "@", "://", " ", "  ", ", ", "; ", "'", "\"",
        "\n", "=", ":", "é", "日本", "\u{2028}", "\u{a0}", "x", "7", "-", ".", "_", "/",
        "The quarterly planning review covers revenue and hiring.",
        // Values after long prefixes (a tail starts past the prefix),
        // suffix bytes after them, IBANs with letters and without a stop.
        "AWS secret key: ", "amazon_sak=", "aws.prod-secret_key  =  '", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "client_secret   =   ",
        "secret_access_key:\t\"", "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        "twilio auth token: 0123456789abcdef0123456789abcdef", "xyz8Q~C3J27XDCG2LmlZGEONYlgCtjfIZ4SOcMz", "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432 and more words", "sk-proj-", "T3BlbkFJ", "9CPVNPkNa1Hedcm4pMbXDuCL1mHoOsFaQfDP", "hooks.slack.com/services/",
    ];

    /// Random mixtures of [`MIXTURE_PIECES`] scan and process the same with
    /// both engines.
    fn assert_same_on_mixtures(a: &PolicyEngine, b: &PolicyEngine, seed: u64) {
        let mut next = crate::test_rng::xorshift(seed);
        for _ in 0..3000 {
            let count = (next() % 10) as usize + 1;
            let text: String = (0..count).map(|_| MIXTURE_PIECES[(next() % MIXTURE_PIECES.len() as u64) as usize]).collect();
            assert_eq!(a.scan(&text), b.scan(&text), "{text:?}");
            let (mut sa, mut sb) = (ScanSession::new("request"), ScanSession::new("request"));
            assert_eq!(a.process(&text, "f", &mut sa), b.process(&text, "f", &mut sb), "{text:?}");
            assert_eq!(sa.findings(), sb.findings(), "{text:?}");
        }
    }

    /// Windows cut to the runs of each pattern's bytes, and dropped when a
    /// run lacks a byte the pattern needs, find exactly what the plain
    /// `back`/`fwd` bounds find.
    #[test]
    fn byte_runs_find_what_the_plain_bounds_find() {
        let tight = default_engine();
        let mut plain = default_engine();
        let reaches: Vec<Reach> = BUILTINS
            .iter()
            .flat_map(|b| b.patterns.iter())
            .map(|p| Reach { trigger: p.trigger, back: p.back, fwd: p.fwd, bytes: ByteSet::ALL, needs: Vec::new(), tail: None })
            .collect();
        assert_eq!(reaches.len(), plain.patterns.len(), "the default selection holds every built-in pattern, in order");
        plain.triggers = Triggers::build(&reaches).unwrap();
        assert_same_on_mixtures(&tight, &plain, 0x2545_f491_4f6c_dd1d);
    }

    /// Short patterns searched anchored from their starts find what the
    /// unanchored search (forward, then reverse to the start) finds.
    #[test]
    fn anchored_starts_find_what_the_unanchored_search_finds() {
        let anchored = default_engine();
        let mut unanchored = default_engine();
        let short = unanchored.patterns.iter().filter(|p| p.starts.is_some()).count();
        assert!(short >= 10, "only {short} patterns searched from their starts");
        unanchored.patterns.iter_mut().for_each(|p| p.starts = None);
        assert_same_on_mixtures(&anchored, &unanchored, 0x9e37_79b9_7f4a_7c15);
    }

    /// Past [`MAX_MISSES`] starts that hold no match, the rest of the window
    /// is searched unanchored, and finds what the starts would have.
    #[test]
    fn starts_without_a_match_give_way_to_an_unanchored_search() {
        let engine = default_engine();
        let (pid, p) = engine.patterns.iter().enumerate().find(|(_, p)| p.regex.is_match("+1 415 555 0132") && !p.regex.is_match("415 555 0132")).unwrap();
        assert!(p.starts.is_some(), "the E.164 pattern has starts");
        let det = &engine.detectors[p.detector];
        for misses in [0, MAX_MISSES - 1, MAX_MISSES, MAX_MISSES + 3] {
            let hay = format!("{}+1 415 555 0132 done", "+x ".repeat(misses));
            let want = hay.find("+1").unwrap();
            let mut caps = CaptureBuffers::default();
            let mut spans = Vec::new();
            matches_in(&engine.patterns[pid], &hay, (0, hay.len(), hay.len()), &mut caps, &mut spans, |s, e| engine.confirm(det, &hay, s, e));
            assert_eq!(spans, vec![(want, want + "+1 415 555 0132".len())], "{misses} misses first");
        }
    }

    /// A token that runs past its pattern's window (a PyPI token's window
    /// ends 400 bytes after `pypi-`) is searched again without the window
    /// and found whole; one that ends at the window's end is not cut.
    #[test]
    fn a_token_longer_than_its_window_is_found_whole() {
        let engine = default_engine();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut next = crate::test_rng::xorshift(0x1234_5678_9abc_def1);
        for body_len in [90, 375, 376, 377, 900] {
            let body: String = (0..body_len).map(|_| char::from(alphabet[(next() % 64) as usize])).collect();
            let token = format!("pypi-AgEIcHlwaS5vcmc{body}");
            let text = format!("publish with {token} today");
            let start = text.find("pypi-").unwrap();
            assert_eq!(engine.scan(&text), vec![("pypi_token", start, start + token.len())], "{body_len}");
        }
    }

    /// The cluster-by-cluster choice keeps exactly what one pass over all
    /// candidates in priority order keeps, equal candidates included.
    #[test]
    fn overlaps_resolve_per_cluster_as_in_one_pass() {
        fn one_pass(found: &[Candidate], detectors: &[Detector]) -> Vec<Candidate> {
            let prio = |c: &Candidate| detectors.get(c.detector).map_or(u8::MAX, |d| d.priority);
            let mut order: Vec<&Candidate> = found.iter().collect();
            order.sort_by(|a, b| {
                prio(a)
                    .cmp(&prio(b))
                    .then((b.end - b.start).cmp(&(a.end - a.start)))
                    .then(a.start.cmp(&b.start))
                    .then(a.detector.cmp(&b.detector))
            });
            let mut accepted: BTreeMap<usize, &Candidate> = BTreeMap::new();
            for c in order {
                if accepted.range(..c.end).next_back().is_none_or(|(_, a)| a.end <= c.start) {
                    accepted.insert(c.start, c);
                }
            }
            accepted.into_values().cloned().collect()
        }
        let engine = default_engine();
        let detectors = &engine.detectors;
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..5000 {
            let n = (next() % 12) as usize;
            let span = 4 + (next() % 60) as usize;
            let found: Vec<Candidate> = (0..n)
                .map(|i| {
                    let start = (next() % span as u64) as usize;
                    Candidate {
                        detector: (next() % detectors.len() as u64) as usize,
                        start,
                        end: start + 1 + (next() % 12) as usize,
                        // Tells apart equal candidates, whose order decides.
                        value: format!("{round}.{i}"),
                        encoded: next() % 2 == 0,
                    }
                })
                .collect();
            let key = |v: Vec<Candidate>| v.into_iter().map(|c| (c.detector, c.start, c.end, c.value, c.encoded)).collect::<Vec<_>>();
            let resolved = resolve_overlaps(&found, detectors).into_iter().cloned().collect();
            assert_eq!(key(resolved), key(one_pass(&found, detectors)), "{found:?}");
        }
    }
}
