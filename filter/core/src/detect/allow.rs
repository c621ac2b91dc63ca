//! Values that are never findings, whatever detector matches them: the
//! catalogue's published examples and the operator's `detectors.allow_values`
//! (a support address that must stay readable, a test fixture's key).
//! Compared exactly, byte for byte, with the matched value after
//! normalisation, so a disguised copy of an allowed value is allowed too and
//! nothing that merely contains one is.

use super::catalogue::PUBLISHED_EXAMPLES;
use crate::config_error::ConfigError;

pub const MAX_ALLOW_VALUES: usize = 1000;
pub const MAX_ALLOW_VALUE_BYTES: usize = 1024;

/// Sorted, for a binary search per confirmed match; most matches are
/// turned away by their length first, as a confirmed match is checked on
/// the data path of every finding.
#[derive(Debug, Default)]
pub struct AllowedValues {
    values: Vec<Box<str>>,
    /// Bit `n` set: some value is `n` bytes long.
    lengths: [u64; MAX_ALLOW_VALUE_BYTES / 64 + 1],
}

impl AllowedValues {
    /// The published examples plus `configured` (`detectors.allow_values`).
    pub fn build(configured: &[String]) -> Result<Self, ConfigError> {
        if configured.len() > MAX_ALLOW_VALUES {
            return Err(ConfigError::new("detectors.allow_values", format!("at most {MAX_ALLOW_VALUES} values")));
        }
        for (i, v) in configured.iter().enumerate() {
            let path = format!("detectors.allow_values[{i}]");
            if v.trim().is_empty() {
                return Err(ConfigError::new(path, "is empty"));
            }
            if v.len() > MAX_ALLOW_VALUE_BYTES {
                return Err(ConfigError::new(path, format!("is longer than {MAX_ALLOW_VALUE_BYTES} bytes")));
            }
        }
        let mut values: Vec<Box<str>> =
            PUBLISHED_EXAMPLES.iter().map(|v| Box::from(*v)).chain(configured.iter().map(|v| Box::from(v.as_str()))).collect();
        values.sort_unstable();
        values.dedup();
        let mut lengths = [0u64; MAX_ALLOW_VALUE_BYTES / 64 + 1];
        for v in &values {
            if let Some(word) = lengths.get_mut(v.len() / 64) {
                *word |= 1 << (v.len() % 64);
            }
        }
        Ok(Self { values, lengths })
    }

    pub fn contains(&self, value: &str) -> bool {
        let n = value.len();
        self.lengths.get(n / 64).is_some_and(|w| w & (1 << (n % 64)) != 0)
            && self.values.binary_search_by(|v| v.as_ref().cmp(value)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_examples_and_configured_values_are_allowed_exactly() {
        let allowed = AllowedValues::build(&["support@acme.example".to_string()]).unwrap();
        assert!(allowed.contains("AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs"));
        assert!(allowed.contains("support@acme.example"));
        assert!(!allowed.contains("Support@acme.example"));
        assert!(!allowed.contains("support@acme.example.org"));
        assert!(!allowed.contains("AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyI"));
    }

    #[test]
    fn bad_values_name_their_index() {
        let err = AllowedValues::build(&["ok".into(), "  ".into()]).unwrap_err();
        assert_eq!(err.path, "detectors.allow_values[1]");
        let err = AllowedValues::build(&["x".repeat(MAX_ALLOW_VALUE_BYTES + 1)]).unwrap_err();
        assert!(err.message.contains("longer than"), "{err:?}");
        let err = AllowedValues::build(&vec!["v".to_string(); MAX_ALLOW_VALUES + 1]).unwrap_err();
        assert_eq!(err.path, "detectors.allow_values");
    }
}
