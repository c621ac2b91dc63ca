//! The classifier's whole cost for one 1 KB user message, as the filter
//! pays it (`InjectionPolicy::assess`: normalisation, then every window
//! scored), `N` times; the figure the decision record's `scoring_us`
//! reports inside Envoy. Also times the normalisation alone, so the
//! featuriser's share is the difference. Runs natively or in a wasm runtime
//! (`benches/run-wasi.mjs`).
//!
//! Usage: classify-message [N]

use std::sync::Arc;
use std::time::Instant;

use meshguard_core::classify::{Classifier, InjectionConfig, InjectionPolicy, Role};
use meshguard_core::detect::normalize::{normalize, NormalizeConfig};

/// The message `scripts/classifier/load_cost.py` sends through Envoy.
const MESSAGE: &str = "Our team is planning the quarterly offsite and needs help with the agenda. We want a morning \
    session on the product roadmap, a working lunch, and an afternoon of customer interviews reviewed \
    together. Please suggest timings, a short description of each block, and two icebreaker ideas \
    that work for a group of twenty people who mostly know each other. ";

fn main() {
    let Ok(classifier) = Classifier::embedded() else {
        return;
    };
    let Ok(config) = serde_json::from_str::<InjectionConfig>("{}") else {
        return;
    };
    let Ok(policy) = InjectionPolicy::compile(&config, Arc::new(classifier), "injection") else {
        return;
    };
    let message: String = MESSAGE.repeat(3).chars().take(1024).collect();
    let texts = vec![("messages[0].content".to_string(), Role::User, message.clone())];
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);

    std::hint::black_box(policy.assess(&texts));
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(policy.assess(std::hint::black_box(&texts)));
    }
    let whole = start.elapsed().as_secs_f64() * 1e6 / n as f64;

    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(normalize(std::hint::black_box(&message), &NormalizeConfig::default()));
    }
    let normalising = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("one {}-byte user message: {whole:.2} µs, of which normalisation {normalising:.2} µs", message.len());
}
