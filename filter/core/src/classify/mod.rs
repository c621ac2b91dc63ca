//! Prompt-injection classification: a small ONNX model (hashed n-gram
//! logistic regression, trained by `scripts/train-classifier`) scores the
//! texts of a request, per role — user messages, tool results, retrieved
//! documents — so an indirect injection in a tool result is told apart from
//! what the user typed.
//!
//! The configuration types and the featuriser are always built; the model
//! and its evaluator only with the `classifier` cargo feature (on by
//! default). A build without it refuses a configuration that asks for
//! injection scoring, so a policy can never silently lose its classifier.
//! The `tract` feature adds tract-onnx for graphs the built-in evaluator
//! does not run.

pub mod features;
mod roles;
#[cfg(feature = "classifier")]
mod model;
#[cfg(feature = "classifier")]
mod native;
#[cfg(feature = "classifier")]
pub mod onnx;
#[cfg(feature = "tract")]
mod tract_runtime;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config_error::{join, ConfigError};
use crate::detect::normalize::{normalize, NormalizeConfig};

pub use roles::Roles;
#[cfg(feature = "classifier")]
pub use model::Classifier;

/// Stand-in so the rest of the crate has one type to name in both builds.
#[cfg(not(feature = "classifier"))]
#[derive(Debug)]
pub struct Classifier;

#[cfg(not(feature = "classifier"))]
impl Classifier {
    fn score_with(&self, _: &mut features::Featurizer, _: &mut features::Features, _text: &str) -> Option<f32> {
        None
    }
}

/// The embedded model's recommended block threshold: the score at which
/// 1% of the validation sets' benign prompts are flagged
/// (`filter/core/models/injection.metrics.json`).
pub const DEFAULT_BLOCK_THRESHOLD: f32 = 0.80;

/// Most bytes one request may have scored (all texts, all windows); the most
/// recent texts go first. Bounds the work at about 2 ms per request.
pub const MAX_SCORED_BYTES: usize = 64 * 1024;
/// Long texts are scored in windows of this many bytes, and a text's score
/// is its highest window's: an injection at the end of a long document is
/// not diluted by the rest of it (the features are length-normalised).
pub const WINDOW_BYTES: usize = 512;
/// Overlap between windows, so a phrase on a boundary is seen whole by one.
const WINDOW_OVERLAP: usize = 128;

/// Top-level `classifier`: which model to load.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// An operator's ONNX model (base64), with the same input contract as the
    /// embedded one (see docs/classifier.md). Absent: the embedded model.
    #[serde(default)]
    pub model_base64: Option<String>,
}

/// Who wrote a text, as far as the request's structure tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    System,
    Assistant,
    /// Tool results: `role: tool` messages, Anthropic `tool_result` blocks,
    /// Responses `function_call_output` items.
    Tool,
    /// Retrieved documents: Anthropic `document` / `search_result` blocks,
    /// top-level `documents` / `context`.
    Retrieved,
    /// Any other text field (tool definitions excepted: they are `system`).
    Other,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::System => "system",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Retrieved => "retrieved",
            Role::Other => "other",
        }
    }
}

fn default_scan() -> Vec<Role> {
    vec![Role::User, Role::Tool, Role::Retrieved]
}

/// `policies.<name>.injection`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectionConfig {
    /// A text scoring at or above this is refused (403 `prompt_injection`).
    #[serde(default)]
    pub block_threshold: Option<f32>,
    /// `[low, high)`: scores here are recorded as `escalate` (the sidecar's
    /// second opinion when `sidecar_review` is on; else the request goes on).
    #[serde(default)]
    pub uncertain_band: Option<[f32; 2]>,
    /// Which roles are scored.
    #[serde(default = "default_scan")]
    pub scan: Vec<Role>,
    /// Scores in the uncertain band are sent to the sidecar's
    /// `/v1/classify`, which must answer within this many milliseconds;
    /// absent: the request follows the policy's default.
    #[serde(default)]
    pub escalation_budget_ms: Option<u64>,
    /// When the escalation cannot complete: overrides the policy's
    /// `fail_mode` for this check.
    #[serde(default)]
    pub fail_mode: Option<crate::config::FailMode>,
}

/// Longest escalation budget accepted: the request waits this long at most.
pub const MAX_ESCALATION_BUDGET_MS: u64 = 10_000;

/// A policy's compiled injection settings.
#[derive(Debug, Clone)]
pub struct InjectionPolicy {
    pub classifier: Arc<Classifier>,
    pub block_threshold: f32,
    pub uncertain_band: Option<(f32, f32)>,
    pub scan: Vec<Role>,
    pub escalation_budget_ms: Option<u64>,
    pub fail_mode: Option<crate::config::FailMode>,
}

impl InjectionPolicy {
    pub fn compile(cfg: &InjectionConfig, classifier: Arc<Classifier>, path: &str) -> Result<Self, ConfigError> {
        let block_threshold = cfg.block_threshold.unwrap_or(DEFAULT_BLOCK_THRESHOLD);
        if !(block_threshold > 0.0 && block_threshold <= 1.0) {
            return Err(ConfigError::new(join(path, "block_threshold"), format!("must be in (0, 1], got {block_threshold}")));
        }
        let uncertain_band = match cfg.uncertain_band {
            None => None,
            Some([low, high]) => {
                if !((0.0..1.0).contains(&low) && low < high && high <= block_threshold) {
                    return Err(ConfigError::new(
                        join(path, "uncertain_band"),
                        format!("must be [low, high] with 0 <= low < high <= block_threshold ({block_threshold}), got [{low}, {high}]"),
                    ));
                }
                Some((low, high))
            }
        };
        if cfg.scan.is_empty() {
            return Err(ConfigError::new(join(path, "scan"), "must name at least one role (user, tool, retrieved, system, assistant, other)"));
        }
        if let Some(budget) = cfg.escalation_budget_ms {
            let budget_path = join(path, "escalation_budget_ms");
            if budget == 0 || budget > MAX_ESCALATION_BUDGET_MS {
                return Err(ConfigError::new(budget_path, format!("must be between 1 and {MAX_ESCALATION_BUDGET_MS}, got {budget}")));
            }
            if uncertain_band.is_none() {
                return Err(ConfigError::new(budget_path, "escalates scores in the `uncertain_band`, which is not set"));
            }
        }
        Ok(Self { classifier, block_threshold, uncertain_band, scan: cfg.scan.clone(), escalation_budget_ms: cfg.escalation_budget_ms, fail_mode: cfg.fail_mode })
    }

    pub fn scans(&self, role: Role) -> bool {
        self.scan.contains(&role)
    }

    /// Scores `texts` (field path, role, text), most recent first, within
    /// [`MAX_SCORED_BYTES`].
    pub fn assess(&self, texts: &[(String, Role, String)]) -> ClassifierRecord {
        let started = crate::clock::now_us();
        let mut record = ClassifierRecord::default();
        let mut budget = MAX_SCORED_BYTES;
        for (field, role, text) in texts.iter().rev() {
            if budget == 0 {
                record.truncated = true;
                break;
            }
            let (score, used, cut) = self.score_windows(text, budget);
            budget = budget.saturating_sub(used);
            record.truncated |= cut;
            let Some(score) = score else { continue };
            record.texts += 1;
            let rounded = round4(score);
            let entry = record.scores.entry(role.as_str()).or_insert(0.0);
            *entry = entry.max(rounded);
            if record.max.is_none_or(|max| rounded > max) {
                record.max = Some(rounded);
                record.field = Some(field.clone());
                record.role = Some(*role);
            }
        }
        let max = record.max.unwrap_or(0.0);
        record.action = if max >= f64::from(self.block_threshold) {
            ClassifierAction::Block
        } else if self.uncertain_band.is_some_and(|(low, high)| max >= f64::from(low) && max < f64::from(high)) {
            ClassifierAction::Escalate
        } else {
            ClassifierAction::Allow
        };
        record.threshold = round4(self.block_threshold);
        record.scoring_us = crate::clock::since(started);
        record
    }

    /// The highest score over the windows of one text, the bytes scored,
    /// and whether part of the text went unscored.
    fn score_windows(&self, text: &str, budget: usize) -> (Option<f32>, usize, bool) {
        // Only what the budget allows is normalised at all.
        let head = features::truncate(text, budget);
        let cut_before = head.len() < text.len();
        // The model reads text with obfuscation undone, as the detectors do.
        let normalized = normalize(head, &NormalizeConfig::default());
        let text = normalized.text.as_ref();
        features::with_scratch(|featurizer, buffer| self.windows_of(text, budget, cut_before, featurizer, buffer))
    }

    fn windows_of(
        &self,
        text: &str,
        budget: usize,
        cut_before: bool,
        featurizer: &mut features::Featurizer,
        buffer: &mut features::Features,
    ) -> (Option<f32>, usize, bool) {
        let mut best: Option<f32> = None;
        let mut used = 0usize;
        let mut start = 0usize;
        loop {
            let rest = text.get(start..).unwrap_or("");
            let remaining = budget.saturating_sub(used);
            let window = features::truncate(rest, WINDOW_BYTES.min(remaining));
            if window.is_empty() {
                return (best, used, cut_before || !rest.is_empty());
            }
            if let Some(score) = self.classifier.score_with(featurizer, buffer, window) {
                best = Some(best.map_or(score, |b| b.max(score)));
            }
            used += window.len();
            if window.len() == rest.len() {
                return (best, used, cut_before);
            }
            // Step back by the overlap, forward to a character boundary.
            let mut next = start + window.len().saturating_sub(WINDOW_OVERLAP).max(1);
            while next < text.len() && !text.is_char_boundary(next) {
                next += 1;
            }
            start = next;
        }
    }
}

fn round4(x: f32) -> f64 {
    (f64::from(x) * 10_000.0).round() / 10_000.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierAction {
    #[default]
    Allow,
    /// In the uncertain band: the sidecar's opinion is wanted.
    Escalate,
    Block,
}

/// What the classifier said about one request (decision record `classifier`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassifierRecord {
    /// Highest probability over every scored text (null: nothing to score).
    pub max: Option<f64>,
    /// Highest probability per role.
    pub scores: BTreeMap<&'static str, f64>,
    /// JSON path and role of the highest-scoring text.
    pub field: Option<String>,
    pub role: Option<Role>,
    pub texts: usize,
    /// Part of the text was not scored (over the per-request budget).
    pub truncated: bool,
    pub threshold: f64,
    pub action: ClassifierAction,
    /// Time spent scoring, when the host gives the filter a clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scoring_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> InjectionConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn thresholds_are_validated_with_paths() {
        let classifier = Arc::new(test_classifier());
        let err = InjectionPolicy::compile(&cfg(r#"{"block_threshold": 1.5}"#), classifier.clone(), "policies.p.injection").unwrap_err();
        assert_eq!(err.path, "policies.p.injection.block_threshold");
        let err = InjectionPolicy::compile(&cfg(r#"{"block_threshold": 0.9, "uncertain_band": [0.95, 0.99]}"#), classifier.clone(), "policies.p.injection").unwrap_err();
        assert_eq!(err.path, "policies.p.injection.uncertain_band");
        let err = InjectionPolicy::compile(&cfg(r#"{"scan": []}"#), classifier.clone(), "policies.p.injection").unwrap_err();
        assert_eq!(err.path, "policies.p.injection.scan");
        let err = InjectionPolicy::compile(&cfg(r#"{"escalation_budget_ms": 50}"#), classifier.clone(), "policies.p.injection").unwrap_err();
        assert_eq!(err.path, "policies.p.injection.escalation_budget_ms");
        let err = InjectionPolicy::compile(&cfg(r#"{"uncertain_band": [0.5, 0.8], "escalation_budget_ms": 60000}"#), classifier.clone(), "policies.p.injection").unwrap_err();
        assert_eq!(err.path, "policies.p.injection.escalation_budget_ms");
        let ok = InjectionPolicy::compile(&cfg(r#"{"block_threshold": 0.9, "uncertain_band": [0.5, 0.9]}"#), classifier, "x").unwrap();
        assert_eq!(ok.scan, vec![Role::User, Role::Tool, Role::Retrieved]);
        assert!(serde_json::from_str::<InjectionConfig>(r#"{"scan": ["robot"]}"#).is_err());
    }

    #[cfg(feature = "classifier")]
    fn test_classifier() -> Classifier {
        Classifier::embedded().unwrap()
    }

    #[cfg(not(feature = "classifier"))]
    fn test_classifier() -> Classifier {
        Classifier
    }
}
