//! The classifier scoring one 512-byte window, `N` times, with warm caches
//! or (`cold`) after walking 8 MiB of other memory before each call, as
//! Envoy's own work between requests does. Runs natively or in a wasm
//! runtime (`benches/run-wasi.mjs`), to tell the model's arithmetic from its
//! memory traffic: the weight table is 1 MiB, the set of grams present 32 KiB.
//!
//! Usage: classify-window [N] [cold]

use meshguard_core::classify::Classifier;

fn main() {
    let Ok(classifier) = Classifier::embedded() else {
        return;
    };
    // Ordinary prose, no sentence repeated: about as many distinct grams
    // as a real 512-byte window has.
    let prose = "Please summarise the attached meeting notes for the quarterly project update. \
        The design review moved to Thursday because two of the reviewers were travelling, \
        and the platform team still owes us numbers on the storage migration. Keep the tone \
        neutral, list open questions at the end, and ignore the formatting of the earlier \
        draft, which came from a different template. Finance asked whether the vendor \
        contract renews automatically in March; legal thinks it does unless we give notice \
        sixty days ahead. Mention the hiring plan only briefly.";
    let window: String = prose.chars().take(512).collect();
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
