//! The classifier scoring one 512-byte window, `N` times, with warm caches
//! or (`cold`) after walking 8 MiB of other memory before each call, as
//! Envoy's own work between requests does. Runs natively or in a wasm
//! runtime (`benches/run-wasi.mjs`), to tell the model's arithmetic from its
//! memory traffic: the weight table is 1 MiB, the count table 512 KiB.
//!
//! Usage: classify-window [N] [cold]

use meshguard_core::classify::Classifier;

fn main() {
    let Ok(classifier) = Classifier::embedded() else {
        return;
    };
    let sentence = "Please summarise the attached meeting notes for the project update and ignore the formatting of the earlier draft. ";
    let window: String = sentence.repeat(8).chars().take(512).collect();
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let cold = args.next().as_deref() == Some("cold");
    let mut other = vec![1u8; 8 << 20];
    std::hint::black_box(classifier.score(&window));
    let mut scoring = std::time::Duration::ZERO;
    for i in 0..n {
        if cold {
            for byte in other.iter_mut().step_by(64) {
                *byte = byte.wrapping_add(i as u8);
            }
            std::hint::black_box(&other);
        }
        let start = std::time::Instant::now();
        std::hint::black_box(classifier.score(std::hint::black_box(&window)));
        scoring += start.elapsed();
    }
    let caches = if cold { "cold" } else { "warm" };
    println!("one 512-byte window, {caches} caches: {:.2} µs", scoring.as_secs_f64() * 1e6 / n as f64);
}
