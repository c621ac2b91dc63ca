//! The Rust featuriser and model agree with the Python side that trained the
//! model: `filter/core/tests/fixtures/classify_parity.json` is written by
//! `scripts/train-classifier` from `filter/core/models/featurize.py`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshguard_core::classify::features::{Features, Featurizer, DIM, MAX_BYTES, VERSION};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/classify_parity.json")).unwrap()
}

#[test]
fn features_match_python_exactly() {
    let fixture = fixture();
    assert_eq!(fixture["features"], VERSION);
    assert_eq!(fixture["dim"], DIM as u64);
    assert_eq!(fixture["max_bytes"], MAX_BYTES as u64);
    let mut featurizer = Featurizer::default();
    let mut out = Features::default();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        featurizer.features(text, &mut out);
        let indices: Vec<i64> = case["indices"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(out.indices, indices, "indices differ for {:?}", text.chars().take(40).collect::<String>());
        for (got, want) in out.values.iter().zip(case["values"].as_array().unwrap()) {
            let want = want.as_f64().unwrap() as f32;
            assert!((got - want).abs() <= 1e-6, "value {got} vs {want} for {:?}", text.chars().take(40).collect::<String>());
        }
    }
}

#[cfg(feature = "classifier")]
#[test]
fn embedded_model_scores_match_python() {
    let classifier = meshguard_core::classify::Classifier::embedded().unwrap();
    for case in fixture()["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = classifier.score(text);
        match case["probability"].as_f64() {
            None => assert_eq!(got, None),
            Some(want) => {
                let got = f64::from(got.unwrap());
                assert!((got - want).abs() < 1e-4, "probability {got} vs {want} for {:?}", text.chars().take(40).collect::<String>());
            }
        }
    }
}
