//! Actions: what a policy does with a finding, and the per-policy setting
//! that chooses it (`policies.<name>.detectors.<id>`).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// What happens to a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing: not recorded, not rewritten (overrides a category selection).
    Allow,
    /// Recorded in the decision record; the text is forwarded as is.
    Log,
    /// Characters replaced by `*`, the last few kept (`************1111`).
    Mask,
    /// Replaced by a typed placeholder, numbered per request: `[EMAIL_1]`.
    Redact,
    /// Replaced by a keyed fingerprint: `[EMAIL:3f9a0c1b2d4e]`; the same
    /// value gives the same fingerprint across requests (needs the key).
    Hash,
    /// Replaced by a reversible placeholder `[EMAIL_TOKEN_1]`, kept in the
    /// request's vault so the response side can restore the original.
    Tokenize,
    /// The request is refused (403, `code` = the detector id).
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Log => "log",
            Action::Mask => "mask",
            Action::Redact => "redact",
            Action::Hash => "hash",
            Action::Tokenize => "tokenize",
            Action::Block => "block",
        }
    }

    /// Whether the action changes the text.
    pub fn rewrites(self) -> bool {
        matches!(self, Action::Mask | Action::Redact | Action::Hash | Action::Tokenize)
    }
}

/// Options of the object form of a setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingOptions {
    /// Defaults to the detector's default action.
    #[serde(default)]
    pub action: Option<Action>,
    /// `mask` only: characters left visible at the end (default per
    /// detector: 4 for cards, IBANs and SSNs, 2 for phones, else 0).
    #[serde(default)]
    pub keep_last: Option<usize>,
    /// `mask` only: characters left visible at the start.
    #[serde(default)]
    pub keep_first: Option<usize>,
    /// `mask` only: the masking character (default `*`).
    #[serde(default)]
    pub mask_char: Option<char>,
}

/// The value at `policies.<name>.detectors.<id>`: an action name
/// (`"redact"`) or an object (`{"action": "mask", "keep_last": 4}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectorSetting {
    Action(Action),
    Options(SettingOptions),
}

impl DetectorSetting {
    pub fn options(&self) -> SettingOptions {
        match self {
            DetectorSetting::Action(a) => SettingOptions { action: Some(*a), ..SettingOptions::default() },
            DetectorSetting::Options(o) => o.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for DetectorSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SettingVisitor;
        impl<'de> Visitor<'de> for SettingVisitor {
            type Value = DetectorSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an action (allow, log, mask, redact, hash, tokenize, block) or an object like {\"action\": \"mask\", \"keep_last\": 4}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Action::deserialize(de::value::StrDeserializer::<E>::new(v)).map(DetectorSetting::Action)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                SettingOptions::deserialize(de::value::MapAccessDeserializer::new(map)).map(DetectorSetting::Options)
            }
        }
        deserializer.deserialize_any(SettingVisitor)
    }
}

/// A resolved action with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSpec {
    pub action: Action,
    pub keep_last: usize,
    pub keep_first: usize,
    pub mask_char: char,
}

/// Masks letters and digits, leaving separators so the shape stays
/// readable: `4111 1111 1111 1111` → `**** **** **** 1111`.
pub fn mask(value: &str, spec: &ActionSpec) -> String {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    // Never reveal most of a value, whatever the configuration says.
    let keep_last = spec.keep_last.min(total / 2);
    let keep_first = spec.keep_first.min(total.saturating_sub(keep_last) / 2);
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if !c.is_alphanumeric() {
                return c;
            }
            seen += 1;
            if seen <= keep_first || seen > total - keep_last {
                c
            } else {
                spec.mask_char
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn spec(keep_last: usize) -> ActionSpec {
        ActionSpec { action: Action::Mask, keep_last, keep_first: 0, mask_char: '*' }
    }

    #[test]
    fn masks_keep_last() {
        assert_eq!(mask("4111111111111111", &spec(4)), "************1111");
        assert_eq!(mask("4111 1111 1111 1111", &spec(4)), "**** **** **** 1111");
        assert_eq!(mask("abcd", &spec(0)), "****");
        // At most half is ever revealed.
        assert_eq!(mask("abcd", &spec(10)), "**cd");
    }

    #[test]
    fn setting_forms() {
        let s: DetectorSetting = serde_json::from_str("\"redact\"").unwrap();
        assert_eq!(s, DetectorSetting::Action(Action::Redact));
        let s: DetectorSetting = serde_json::from_str(r#"{"action":"mask","keep_last":4}"#).unwrap();
        assert_eq!(s.options().keep_last, Some(4));
        let err = serde_json::from_str::<DetectorSetting>("\"redcat\"").unwrap_err().to_string();
        assert!(err.contains("redcat") && err.contains("redact"), "{err}");
        let err = serde_json::from_str::<DetectorSetting>(r#"{"acton":"mask"}"#).unwrap_err().to_string();
        assert!(err.contains("acton"), "{err}");
    }
}
