//! Semantic guards: per-policy deny topics, each given as example sentences
//! and a similarity threshold, and optionally the prompt-injection head. The
//! examples are embedded once at start; a text is blocked with `code` = the
//! topic id when its embedding comes within the threshold (cosine
//! similarity) of any example, or with `prompt_injection` when the head
//! scores it at or over the head's threshold.

use std::collections::BTreeMap;

use crate::batch::Batcher;
use crate::injection::{self, InjectionHead};
use crate::model::cosine;
use crate::settings::PolicyGuards;

#[derive(Debug)]
pub struct Topic {
    pub id: String,
    pub threshold: f32,
    examples: Vec<Vec<f32>>,
}

/// The compiled guards of every policy that has some.
#[derive(Debug, Default)]
pub struct Guards {
    by_policy: BTreeMap<String, Vec<Topic>>,
    /// The head, and the policies that use it.
    head: Option<(InjectionHead, Vec<String>)>,
}

/// What the guards made of a set of texts.
#[derive(Debug, Default)]
pub struct GuardOutcome {
    /// Highest similarity of any text to each topic.
    pub scores: BTreeMap<String, f32>,
    /// The first topic (in configuration order) at or over its threshold.
    pub blocked_by: Option<String>,
}

impl Guards {
    /// Embeds every example sentence (one batch per policy).
    pub async fn compile(settings: &BTreeMap<String, PolicyGuards>, batcher: &Batcher) -> Result<Self, String> {
        let mut by_policy = BTreeMap::new();
        let head_policies: Vec<String> = settings.iter().filter(|(_, g)| g.injection_head).map(|(p, _)| p.clone()).collect();
        let head = match head_policies.first() {
            None => None,
            Some(first) => {
                let head = InjectionHead::embedded().map_err(|e| format!("guards.{first}.injection_head: {e}"))?;
                if head.dimension() != batcher.dimension() {
                    return Err(format!(
                        "guards.{first}.injection_head: the head reads {}-dimensional embeddings; the model gives {}",
                        head.dimension(),
                        batcher.dimension()
                    ));
                }
                Some((head, head_policies))
            }
        };
        for (policy, guards) in settings {
            let mut topics = Vec::new();
            for (i, topic) in guards.topics.iter().enumerate() {
                let examples = batcher
                    .embed(topic.examples.clone())
                    .await
                    .map_err(|e| format!("guards.{policy}.topics[{i}].examples: {e}"))?;
                topics.push(Topic { id: topic.id.clone(), threshold: topic.threshold, examples });
            }
            if !topics.is_empty() {
                by_policy.insert(policy.clone(), topics);
            }
        }
        Ok(Self { by_policy, head })
    }

    pub fn has(&self, policy: &str) -> bool {
        self.by_policy.contains_key(policy) || self.head_for(policy).is_some()
    }

    fn head_for(&self, policy: &str) -> Option<&InjectionHead> {
        self.head.as_ref().filter(|(_, policies)| policies.iter().any(|p| p == policy)).map(|(head, _)| head)
    }

    pub fn topic_count(&self) -> usize {
        self.by_policy.values().map(Vec::len).sum()
    }

    /// Scores already-embedded texts against the policy's topics.
    pub fn check(&self, policy: &str, texts: &[Vec<f32>]) -> GuardOutcome {
        let mut outcome = GuardOutcome::default();
        for topic in self.by_policy.get(policy).into_iter().flatten() {
            let best = texts
                .iter()
                .flat_map(|t| topic.examples.iter().map(move |e| cosine(t, e)))
                .fold(f32::NEG_INFINITY, f32::max);
            if best.is_finite() {
                let rounded = (best * 10_000.0).round() / 10_000.0;
                outcome.scores.insert(topic.id.clone(), rounded);
                if outcome.blocked_by.is_none() && best >= topic.threshold {
                    outcome.blocked_by = Some(topic.id.clone());
                }
            }
        }
        if let Some(score) = self.head_for(policy).and_then(|head| head.max_score(texts).map(|s| (s, head.threshold))) {
            let (score, threshold) = score;
            outcome.scores.insert(injection::CODE.to_string(), (score * 10_000.0).round() / 10_000.0);
            if outcome.blocked_by.is_none() && score >= threshold {
                outcome.blocked_by = Some(injection::CODE.to_string());
            }
        }
        outcome
    }
}
