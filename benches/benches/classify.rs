//! The prompt-injection classifier: building one window's sparse features
//! (what general ONNX graphs get), scoring one window (the embedded linear
//! model: grams straight into the mean weight, nothing built), and a whole
//! 1 KB user message as a policy scores it (normalisation, 512-byte windows).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshguard_core::classify::features::{Features, Featurizer};
use meshguard_core::classify::{Classifier, InjectionConfig, InjectionPolicy, Role};

const MESSAGE: &str = "Our team is planning the quarterly offsite and needs help with the agenda. We want a morning \
    session on the product roadmap, a working lunch, and an afternoon of customer interviews reviewed together. Please \
    suggest timings, a short description of each block, and two icebreaker ideas that work for a group of twenty people \
    who mostly know each other. ";

fn classify(c: &mut Criterion) {
    let Ok(classifier) = Classifier::embedded() else {
        return;
    };
    let message: String = MESSAGE.repeat(4).chars().take(1024).collect();
    let window: String = message.chars().take(512).collect();
    let mut group = c.benchmark_group("classifier");
    group.throughput(Throughput::Bytes(window.len() as u64));
    group.bench_function("features_512B", |b| {
        let mut featurizer = Featurizer::default();
        let mut out = Features::default();
        b.iter(|| {
            featurizer.features(&window, &mut out);
            std::hint::black_box(out.indices.len())
        })
    });
    group.bench_function("score_512B", |b| b.iter(|| std::hint::black_box(classifier.score(&window))));
    let Ok(cfg) = serde_json::from_str::<InjectionConfig>(r#"{"block_threshold": 0.9, "uncertain_band": [0.5, 0.9]}"#) else {
        return;
    };
    let Ok(policy) = InjectionPolicy::compile(&cfg, Arc::new(classifier), "bench") else {
        return;
    };
    let texts = vec![("messages[0].content".to_string(), Role::User, message.clone())];
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("assess_1KB_message", |b| b.iter(|| std::hint::black_box(policy.assess(&texts))));
    group.finish();
}

criterion_group!(benches, classify);
criterion_main!(benches);
