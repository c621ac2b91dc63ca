//! The sidecar's prompt-injection head: a logistic regression over the
//! sentence embedding, trained by `scripts/train-sidecar-head` on the same
//! public splits as the filter's classifier and embedded in the binary. It
//! is the second opinion for texts the filter escalates; a policy turns it on
//! with `guards.<policy>.injection_head`.

use serde::Deserialize;

const EMBEDDED: &str = include_str!("../models/injection_head.json");

/// The `code` of a block by the head (the filter's classifier uses the same).
pub const CODE: &str = "prompt_injection";

#[derive(Debug, Clone)]
pub struct InjectionHead {
    weights: Vec<f32>,
    bias: f32,
    /// Block at or above this probability: the score at which 1% of the
    /// validation sets' benign prompts are flagged.
    pub threshold: f32,
}

#[derive(Deserialize)]
struct HeadFile {
    dimension: usize,
    weights: Vec<f32>,
    bias: f32,
    threshold: f32,
}

impl InjectionHead {
    pub fn embedded() -> Result<Self, String> {
        Self::parse(EMBEDDED)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: HeadFile = serde_json::from_str(text).map_err(|e| format!("injection head: {e}"))?;
        if file.weights.len() != file.dimension || file.dimension == 0 {
            return Err(format!("injection head: {} weights for dimension {}", file.weights.len(), file.dimension));
        }
        if !(file.weights.iter().chain([&file.bias]).all(|w| w.is_finite()) && file.threshold > 0.0 && file.threshold < 1.0) {
            return Err("injection head: weights must be finite and the threshold in (0, 1)".into());
        }
        Ok(Self { weights: file.weights, bias: file.bias, threshold: file.threshold })
    }

    pub fn dimension(&self) -> usize {
        self.weights.len()
    }

    /// Probability that the embedded text is an injection; `None` for an
    /// embedding of another dimension.
    pub fn score(&self, embedding: &[f32]) -> Option<f32> {
        if embedding.len() != self.weights.len() {
            return None;
        }
        let logit: f32 = embedding.iter().zip(&self.weights).map(|(x, w)| x * w).sum::<f32>() + self.bias;
        Some(1.0 / (1.0 + (-logit).exp()))
    }

    /// Highest probability over texts' embeddings.
    pub fn max_score(&self, embeddings: &[Vec<f32>]) -> Option<f32> {
        embeddings.iter().filter_map(|e| self.score(e)).reduce(f32::max)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_embedded_head_loads_and_scores_probabilities() {
        let head = InjectionHead::embedded().unwrap();
        assert_eq!(head.dimension(), 384);
        let zero = head.score(&vec![0.0; 384]).unwrap();
        assert!((0.0..=1.0).contains(&zero));
        assert_eq!(head.score(&[1.0, 2.0]), None);
    }

    #[test]
    fn bad_heads_are_refused() {
        assert!(InjectionHead::parse(r#"{"dimension": 3, "weights": [1, 2], "bias": 0, "threshold": 0.5}"#).is_err());
        assert!(InjectionHead::parse(r#"{"dimension": 2, "weights": [1, 2], "bias": 0, "threshold": 1.5}"#).is_err());
        let head = InjectionHead::parse(r#"{"dimension": 2, "weights": [1, -1], "bias": 0.5, "threshold": 0.5}"#).unwrap();
        let p = head.score(&[1.0, 0.0]).unwrap();
        assert!((p - 1.0 / (1.0 + (-1.5f32).exp())).abs() < 1e-6);
        assert_eq!(head.max_score(&[vec![0.0, 1.0], vec![1.0, 0.0]]), Some(p));
    }
}
