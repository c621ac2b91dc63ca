//! A fixed workload for profilers (`valgrind --tool=callgrind`) and for the
//! engine's speed in a wasm runtime outside Envoy (`benches/run-wasi.mjs`):
//! the default catalogue over 256 KB of sprinkled prose (or 64 KB of clean
//! prose with `clean`), `N` times.
//!
//! Usage: detect-profile [N] [sprinkled|clean] [warm]. The first call also
//! builds lazy-DFA states (and, in V8, compiles what it touches): profiles of
//! the steady state subtract a run with fewer calls; `warm` makes one
//! untimed call first instead.

use meshguard_benches::{clean_prose, default_engine, prose};
use meshguard_core::detect::ScanSession;

fn main() {
    let Ok(engine) = default_engine() else {
        return;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let text = if args.get(1).map(String::as_str) == Some("clean") { clean_prose(64 * 1024) } else { prose(256 * 1024) };
    if args.get(2).map(String::as_str) == Some("warm") {
        std::hint::black_box(engine.process(&text, "f", &mut ScanSession::new("request")));
    }
    let start = std::time::Instant::now();
    for _ in 0..n {
        let mut session = ScanSession::new("request");
        std::hint::black_box(engine.process(&text, "f", &mut session));
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.1} MB/s", (text.len() * n) as f64 / secs / 1e6);
}
