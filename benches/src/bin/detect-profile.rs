//! A fixed workload for profilers (`valgrind --tool=callgrind`): the
//! default catalogue over 256 KB of sprinkled prose, `N` times.

use meshguard_benches::{default_engine, prose};
use meshguard_core::detect::ScanSession;

fn main() {
    let Ok(engine) = default_engine() else {
        return;
    };
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let text = prose(256 * 1024);
    let start = std::time::Instant::now();
    for _ in 0..n {
        let mut session = ScanSession::new("request");
        std::hint::black_box(engine.process(&text, "f", &mut session));
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.1} MB/s", (text.len() * n) as f64 / secs / 1e6);
}
