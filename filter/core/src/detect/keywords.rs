//! Operator keyword deny lists (`detectors.keywords`). All selected lists
//! of a policy share one aho-corasick automaton: one pass over the text
//! whatever the number of words.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Deserialize;

use super::actions::Action;
use super::normalize::normalize_word;
use crate::config_error::ConfigError;

/// One deny list: a detector of category `keyword`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordListConfig {
    /// Detector id, selected in policies like any built-in.
    pub id: String,
    pub words: Vec<String>,
    /// Match only whole words: `secret` does not fire inside `secretary`.
    #[serde(default = "yes")]
    pub whole_word: bool,
    /// Case-insensitive by default (ASCII letters, plus the upper and lower
    /// case forms of non-ASCII words).
    #[serde(default)]
    pub case_sensitive: bool,
    /// Action when a policy selects the list without saying (default `block`).
    #[serde(default)]
    pub default_action: Option<Action>,
    /// Placeholder label (default: the id in upper case).
    #[serde(default)]
    pub label: Option<String>,
}

fn yes() -> bool {
    true
}

pub const MAX_WORDS: usize = 100_000;
pub const MAX_WORD_BYTES: usize = 256;

/// One automaton pattern and the list it belongs to.
#[derive(Debug, Clone)]
pub struct KeywordPattern {
    /// Index of the detector in the engine.
    pub detector: usize,
    pub word: String,
    pub case_sensitive: bool,
    pub whole_word: bool,
}

/// Checks a list; `path` is `detectors.keywords[i]`.
pub fn validate(list: &KeywordListConfig, path: &str) -> Result<(), ConfigError> {
    if list.words.is_empty() {
        return Err(ConfigError::new(format!("{path}.words"), "must list at least one word"));
    }
    if list.words.len() > MAX_WORDS {
        return Err(ConfigError::new(format!("{path}.words"), format!("at most {MAX_WORDS} words per list")));
    }
    for (i, w) in list.words.iter().enumerate() {
        if w.trim().is_empty() {
            return Err(ConfigError::new(format!("{path}.words[{i}]"), "is empty"));
        }
        if w.len() > MAX_WORD_BYTES {
            return Err(ConfigError::new(format!("{path}.words[{i}]"), format!("is longer than {MAX_WORD_BYTES} bytes")));
        }
    }
    Ok(())
}

/// The automaton patterns of one list, normalised like scanned text.
pub fn patterns(list: &KeywordListConfig, detector: usize) -> Vec<KeywordPattern> {
    let mut out = Vec::new();
    for w in &list.words {
        let base = normalize_word(w.trim());
        let mut forms = vec![base.clone()];
        if !list.case_sensitive && !base.is_ascii() {
            forms.push(base.to_lowercase());
            forms.push(base.to_uppercase());
        }
        forms.sort();
        forms.dedup();
        for word in forms {
            out.push(KeywordPattern { detector, word, case_sensitive: list.case_sensitive, whole_word: list.whole_word });
        }
    }
    out
}

pub fn build(patterns: &[KeywordPattern], path: &str) -> Result<AhoCorasick, ConfigError> {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        .ascii_case_insensitive(true)
        .build(patterns.iter().map(|p| p.word.as_str()))
        .map_err(|e| ConfigError::new(path, format!("keyword automaton could not be built: {e}")))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether a raw automaton hit at `[start, end)` of `hay` counts.
pub fn accept(p: &KeywordPattern, hay: &str, start: usize, end: usize) -> bool {
    if p.case_sensitive && hay.get(start..end) != Some(p.word.as_str()) {
        return false;
    }
    if !p.whole_word {
        return true;
    }
    let before = hay.get(..start).and_then(|s| s.chars().next_back());
    let after = hay.get(end..).and_then(|s| s.chars().next());
    let first = p.word.chars().next();
    let last = p.word.chars().next_back();
    // A boundary is only required where the word itself starts or ends
    // with a word character ("C++" ends with a symbol).
    let left_ok = !first.is_some_and(is_word_char) || !before.is_some_and(is_word_char);
    let right_ok = !last.is_some_and(is_word_char) || !after.is_some_and(is_word_char);
    left_ok && right_ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn list(words: &[&str], whole_word: bool, case_sensitive: bool) -> KeywordListConfig {
        KeywordListConfig {
            id: "k".into(),
            words: words.iter().map(|w| w.to_string()).collect(),
            whole_word,
            case_sensitive,
            default_action: None,
            label: None,
        }
    }

    #[test]
    fn whole_word_and_case() {
        let l = list(&["secret"], true, false);
        let p = patterns(&l, 0);
        let p = p.first().unwrap();
        assert!(accept(p, "a SECRET b", 2, 8));
        assert!(!accept(p, "secretary", 0, 6));
        let l = list(&["Falcon"], false, true);
        let ps = patterns(&l, 0);
        let p = ps.first().unwrap();
        assert!(accept(p, "Falcons", 0, 6));
        assert!(!accept(p, "falcon", 0, 6));
    }

    #[test]
    fn non_ascii_forms() {
        let l = list(&["Geheimsache Ü"], true, false);
        let words: Vec<String> = patterns(&l, 0).into_iter().map(|p| p.word).collect();
        assert!(words.contains(&"geheimsache ü".to_string()));
        assert!(words.contains(&"GEHEIMSACHE Ü".to_string()));
    }

    #[test]
    fn validation_paths() {
        let l = list(&["ok", " "], true, false);
        let err = validate(&l, "detectors.keywords[0]").unwrap_err();
        assert_eq!(err.path, "detectors.keywords[0].words[1]");
    }
}
