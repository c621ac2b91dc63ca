//! Per-subject request rates and token budgets, counted per Envoy instance.
//!
//! Counters are fixed windows stored as `"<window>:<count>"` strings, so the
//! glue can keep them in proxy-wasm shared data (one entry per subject and
//! policy, updated with compare-and-swap) and this logic stays testable.
//! Limits that must hold across proxies belong in Envoy's rate-limit service.

use serde::Deserialize;

use crate::config_error::{join, ConfigError};
use crate::hash::short_hex;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per subject per minute (fixed window).
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens (prompt + completion, as the upstream reports them) per subject
    /// per hour; once spent, requests get 429 until the hour turns.
    #[serde(default)]
    pub tokens_per_hour: Option<u64>,
}

impl RateLimitConfig {
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        for (name, value) in [("requests_per_minute", self.requests_per_minute), ("tokens_per_hour", self.tokens_per_hour)] {
            if value == Some(0) {
                return Err(ConfigError::new(join(path, name), "must be at least 1 (omit it for no limit)"));
            }
        }
        Ok(())
    }
}

pub const MINUTE: u64 = 60;
pub const HOUR: u64 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub index: u64,
    pub count: u64,
}

impl Window {
    fn parse(stored: Option<&[u8]>) -> Option<Self> {
        let text = std::str::from_utf8(stored?).ok()?;
        let (index, count) = text.split_once(':')?;
        Some(Self { index: index.parse().ok()?, count: count.parse().ok()? })
    }

    fn encode(self) -> Vec<u8> {
        format!("{}:{}", self.index, self.count).into_bytes()
    }

    /// The count in the window `now_s` falls in (0 if the stored one is older).
    fn current(stored: Option<&[u8]>, now_s: u64, length_s: u64) -> Self {
        let index = now_s / length_s;
        match Self::parse(stored) {
            Some(window) if window.index == index => window,
            _ => Self { index, count: 0 },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quota {
    /// Within the limit: store this value (with the CAS the glue read).
    Allow { store: Vec<u8> },
    /// Over the limit: answer 429 with this `Retry-After`.
    Deny { retry_after_s: u64 },
}

fn retry_after(now_s: u64, length_s: u64) -> u64 {
    length_s - now_s % length_s
}

/// Counts one request against a per-minute limit.
pub fn take_request(stored: Option<&[u8]>, now_s: u64, per_minute: u64) -> Quota {
    let window = Window::current(stored, now_s, MINUTE);
    if window.count >= per_minute {
        return Quota::Deny { retry_after_s: retry_after(now_s, MINUTE) };
    }
    Quota::Allow { store: Window { count: window.count + 1, ..window }.encode() }
}

/// Whether the hour's token budget still has room (tokens are added after
/// the response, when the upstream has said how many it used).
pub fn check_budget(stored: Option<&[u8]>, now_s: u64, per_hour: u64) -> Result<(), u64> {
    let window = Window::current(stored, now_s, HOUR);
    if window.count >= per_hour {
        Err(retry_after(now_s, HOUR))
    } else {
        Ok(())
    }
}

/// The stored value after spending `tokens` in the current hour.
pub fn spend_tokens(stored: Option<&[u8]>, now_s: u64, tokens: u64) -> Vec<u8> {
    let window = Window::current(stored, now_s, HOUR);
    Window { count: window.count.saturating_add(tokens), ..window }.encode()
}

/// Shared-data key for a counter. The subject is hashed so keys have a fixed
/// size and no claim text ends up in proxy memory dumps.
pub fn key(kind: &str, policy: &str, subject: &str) -> String {
    format!("meshguard.{kind}.{policy}.{}", short_hex(subject.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(quota: &Quota) -> Vec<u8> {
        match quota {
            Quota::Allow { store } => store.clone(),
            Quota::Deny { .. } => panic!("denied"),
        }
    }

    #[test]
    fn counts_within_a_minute_then_denies_until_it_turns() {
        let now = 1_000 * 60 + 15;
        let first = take_request(None, now, 2);
        let second = take_request(Some(&value(&first)), now + 1, 2);
        assert_eq!(value(&second), b"1000:2");
        assert_eq!(take_request(Some(&value(&second)), now + 2, 2), Quota::Deny { retry_after_s: 43 });
        // Next minute: a fresh window.
        assert_eq!(value(&take_request(Some(&value(&second)), 1_001 * 60, 2)), b"1001:1");
    }

    #[test]
    fn budget_spent_then_refused_for_the_rest_of_the_hour() {
        let now = 10 * 3600 + 100;
        let spent = spend_tokens(None, now, 700);
        assert_eq!(check_budget(Some(&spent), now, 1000), Ok(()));
        let spent = spend_tokens(Some(&spent), now + 5, 400);
        assert_eq!(check_budget(Some(&spent), now + 6, 1000), Err(3600 - 106));
        assert_eq!(check_budget(Some(&spent), 11 * 3600, 1000), Ok(()));
    }

    #[test]
    fn garbage_in_shared_data_starts_a_fresh_window() {
        assert_eq!(value(&take_request(Some(b"not a window"), 120, 5)), b"2:1");
    }

    #[test]
    fn keys_hide_the_subject() {
        let k = key("rpm", "standard", "alice@example.com");
        assert!(k.starts_with("meshguard.rpm.standard."));
        assert!(!k.contains("alice"));
        assert_ne!(k, key("rpm", "standard", "bob"));
    }

    #[test]
    fn zero_limits_are_config_errors() {
        let err = RateLimitConfig { requests_per_minute: Some(0), tokens_per_hour: None }.validate("policies.p.rate_limit").unwrap_err();
        assert_eq!(err.path, "policies.p.rate_limit.requests_per_minute");
    }
}
