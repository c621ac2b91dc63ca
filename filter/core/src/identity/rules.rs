//! Claim rules that pick a named policy: the first rule whose condition
//! holds wins; no match (or no identity) gets the default policy.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::config_error::{join, ConfigError};

use super::Identity;

/// `{"policy": "finance", "when": {"claim": "groups", "contains": "finance"}}`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub policy: String,
    pub when: ClaimCondition,
}

/// One test on one claim; exactly one of `equals`, `contains`, `present`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimCondition {
    pub claim: ClaimName,
    /// The claim equals this string, number or boolean (JSON equality).
    #[serde(default)]
    pub equals: Option<Value>,
    /// The claim is an array holding this value, or a space-separated string
    /// (OAuth `scope`) holding this word.
    #[serde(default)]
    pub contains: Option<Value>,
    /// `true`: the claim is there and not null; `false`: it is not.
    #[serde(default)]
    pub present: Option<bool>,
}

/// A top-level claim name, taken literally (`"https://example.com/groups"`
/// is one name), or a path into nested objects (`["realm_access", "roles"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ClaimName {
    Name(String),
    Path(Vec<String>),
}

#[derive(Debug, Clone)]
enum Test {
    Equals(Value),
    Contains(Value),
    Present(bool),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    path: Vec<String>,
    test: Test,
    policy: String,
}

#[derive(Debug, Clone)]
pub struct PolicySelector {
    rules: Vec<CompiledRule>,
    default: String,
}

fn scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

impl PolicySelector {
    /// `path` is where the rules sit in the document (`policy_rules`).
    pub fn compile(rules: &[PolicyRule], known_policies: &BTreeSet<String>, default: &str, path: &str) -> Result<Self, ConfigError> {
        let defined = || known_policies.iter().cloned().collect::<Vec<_>>().join(", ");
        if !known_policies.contains(default) {
            return Err(ConfigError::new(
                "default_policy",
                format!("names policy `{default}`, which is not defined under `policies` (defined: {})", defined()),
            ));
        }
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let here = format!("{path}[{i}]");
            if !known_policies.contains(&rule.policy) {
                return Err(ConfigError::new(
                    join(&here, "policy"),
                    format!("names policy `{}`, which is not defined under `policies` (defined: {})", rule.policy, defined()),
                ));
            }
            let when = join(&here, "when");
            let claim_path = match &rule.when.claim {
                ClaimName::Name(name) => vec![name.clone()],
                ClaimName::Path(parts) => parts.clone(),
            };
            if claim_path.is_empty() || claim_path.iter().any(String::is_empty) {
                return Err(ConfigError::new(join(&when, "claim"), "must name a claim (a non-empty string or list of strings)"));
            }
            let test = match (&rule.when.equals, &rule.when.contains, rule.when.present) {
                (Some(v), None, None) => {
                    if !scalar(v) {
                        return Err(ConfigError::new(join(&when, "equals"), "must be a string, number or boolean"));
                    }
                    Test::Equals(v.clone())
                }
                (None, Some(v), None) => {
                    if !scalar(v) {
                        return Err(ConfigError::new(join(&when, "contains"), "must be a string, number or boolean"));
                    }
                    Test::Contains(v.clone())
                }
                (None, None, Some(p)) => Test::Present(p),
                _ => return Err(ConfigError::new(when, "set exactly one of `equals`, `contains` or `present`")),
            };
            compiled.push(CompiledRule { path: claim_path, test, policy: rule.policy.clone() });
        }
        Ok(Self { rules: compiled, default: default.to_string() })
    }

    /// The policy for this caller. No identity (mode `none`) means the default.
    pub fn select<'a>(&'a self, identity: Option<&Identity>) -> &'a str {
        let Some(identity) = identity else {
            return &self.default;
        };
        self.rules
            .iter()
            .find(|rule| rule.matches(&identity.claims))
            .map_or(self.default.as_str(), |rule| rule.policy.as_str())
    }

    pub fn default_policy(&self) -> &str {
        &self.default
    }
}

impl CompiledRule {
    fn matches(&self, claims: &Value) -> bool {
        let mut value = Some(claims);
        for part in &self.path {
            value = value.and_then(|v| v.get(part));
        }
        let value = value.filter(|v| !v.is_null());
        match (&self.test, value) {
            (Test::Present(want), v) => v.is_some() == *want,
            (Test::Equals(want), Some(v)) => v == want,
            (Test::Contains(want), Some(Value::Array(items))) => items.iter().any(|item| item == want),
            (Test::Contains(Value::String(word)), Some(Value::String(s))) => s.split_ascii_whitespace().any(|w| w == word),
            _ => false,
        }
    }
}
