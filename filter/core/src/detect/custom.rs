//! Operator regexes (`detectors.custom`). Only linear-time syntax is
//! accepted — the engine has no backtracking — so look-around and
//! backreferences are refused at configure time, with the field path.

use regex_automata::meta;
use serde::Deserialize;

use super::actions::Action;
use super::validate::Validator;
use crate::config_error::ConfigError;

/// One custom detector: a detector of category `custom`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorConfig {
    /// Detector id, selected in policies like any built-in.
    pub id: String,
    /// Regex in `regex` crate syntax.
    pub pattern: String,
    /// Capture group holding the sensitive value (0 = whole match).
    #[serde(default)]
    pub group: usize,
    #[serde(default)]
    pub case_insensitive: bool,
    /// `luhn`, `iban`, `us_ssn`, `payment_card` or `entropy`.
    #[serde(default)]
    pub validator: Option<String>,
    /// Bits per character for the `entropy` validator (default 3.5).
    #[serde(default)]
    pub min_entropy: Option<f64>,
    /// When set, a match counts only with one of these words (case-insensitive)
    /// within `context_window` bytes before or after it.
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default = "default_context_window")]
    pub context_window: usize,
    /// Action when a policy selects the detector without saying (default `redact`).
    #[serde(default)]
    pub default_action: Option<Action>,
    /// Placeholder label (default: the id in upper case).
    #[serde(default)]
    pub label: Option<String>,
}

fn default_context_window() -> usize {
    64
}

pub const MAX_PATTERN_BYTES: usize = 4096;
pub const MAX_CONTEXT_WINDOW: usize = 1024;

/// Size limits for compiled regexes: generous for one operator pattern,
/// small enough that a pathological one is refused instead of eating the
/// worker's memory.
pub const NFA_SIZE_LIMIT: usize = 8 * 1024 * 1024;
pub const HYBRID_CACHE_BYTES: usize = 4 * 1024 * 1024;

pub fn meta_config() -> meta::Config {
    meta::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)).hybrid_cache_capacity(HYBRID_CACHE_BYTES)
}

/// Compiles one pattern, explaining failures in operator terms.
pub fn compile_pattern(pattern: &str, case_insensitive: bool, path: &str) -> Result<meta::Regex, ConfigError> {
    if pattern.is_empty() {
        return Err(ConfigError::new(path, "is empty"));
    }
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(ConfigError::new(path, format!("is longer than {MAX_PATTERN_BYTES} bytes")));
    }
    let syntax = regex_automata::util::syntax::Config::new().case_insensitive(case_insensitive);
    let re = meta::Builder::new().configure(meta_config()).syntax(syntax).build(pattern).map_err(|e| {
        let mut detail = e.syntax_error().map_or_else(|| e.to_string(), |s| s.to_string());
        if let Some(limit) = e.size_limit() {
            detail = format!("exceeds the size limit of {limit} bytes");
        }
        let lower = detail.to_lowercase();
        let why = if lower.contains("look-around") || lower.contains("backreference") {
            "; look-around and backreferences are not supported: meshguard only runs linear-time regexes"
        } else if e.size_limit().is_some() {
            "; the compiled pattern is too large (simplify bounded repetitions like {1,1000})"
        } else {
            ""
        };
        ConfigError::new(path, format!("invalid regex{why}: {detail}"))
    })?;
    if re.is_match("") {
        return Err(ConfigError::new(path, "matches the empty string, so it would fire on every text"));
    }
    Ok(re)
}

pub fn validator(cfg: &CustomDetectorConfig, path: &str) -> Result<Validator, ConfigError> {
    let min_entropy = cfg.min_entropy.unwrap_or(3.5);
    if !(0.0..=8.0).contains(&min_entropy) {
        return Err(ConfigError::new(format!("{path}.min_entropy"), "must be between 0 and 8 (bits per character)"));
    }
    if cfg.min_entropy.is_some() && cfg.validator.as_deref() != Some("entropy") {
        return Err(ConfigError::new(format!("{path}.min_entropy"), "only applies to validator `entropy`"));
    }
    Ok(match cfg.validator.as_deref() {
        None => Validator::None,
        Some("luhn") => Validator::Luhn,
        Some("iban") => Validator::Iban,
        Some("us_ssn") => Validator::UsSsn,
        Some("payment_card") => Validator::PaymentCard,
        Some("entropy") => Validator::Entropy(min_entropy),
        Some(other) => {
            return Err(ConfigError::new(
                format!("{path}.validator"),
                format!("unknown validator `{other}`; known: {}", Validator::CUSTOM_NAMES.join(", ")),
            ))
        }
    })
}

/// Checks everything about one custom detector except id uniqueness.
pub fn validate(cfg: &CustomDetectorConfig, path: &str) -> Result<(meta::Regex, Validator), ConfigError> {
    let pattern_path = format!("{path}.pattern");
    let re = compile_pattern(&cfg.pattern, cfg.case_insensitive, &pattern_path)?;
    let groups = re.group_info().group_len(regex_automata::PatternID::ZERO);
    if cfg.group >= groups {
        return Err(ConfigError::new(
            format!("{path}.group"),
            format!("the pattern has {} capture group(s); group {} does not exist", groups.saturating_sub(1), cfg.group),
        ));
    }
    if cfg.context_window == 0 || cfg.context_window > MAX_CONTEXT_WINDOW {
        return Err(ConfigError::new(format!("{path}.context_window"), format!("must be between 1 and {MAX_CONTEXT_WINDOW}")));
    }
    for (i, w) in cfg.context.iter().enumerate() {
        if w.trim().is_empty() {
            return Err(ConfigError::new(format!("{path}.context[{i}]"), "is empty"));
        }
    }
    let v = validator(cfg, path)?;
    Ok((re, v))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn refuses_lookaround_and_backrefs_clearly() {
        let err = compile_pattern(r"foo(?=bar)", false, "detectors.custom[3].pattern").unwrap_err();
        assert_eq!(err.path, "detectors.custom[3].pattern");
        assert!(err.message.contains("look-around and backreferences are not supported"), "{}", err.message);
        let err = compile_pattern(r"(a)\1", false, "p").unwrap_err();
        assert!(err.message.contains("backreferences"), "{}", err.message);
    }

    #[test]
    fn refuses_empty_matching_and_huge() {
        assert!(compile_pattern("a*", false, "p").unwrap_err().message.contains("empty string"));
        let err = compile_pattern(r"(?:\w{1,1000}){1,1000}", false, "p").unwrap_err();
        assert!(err.message.contains("too large"), "{}", err.message);
    }
}
