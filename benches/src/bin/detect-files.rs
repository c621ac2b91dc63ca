//! Times the default catalogue (`meshguard_benches::default_engine`,
//! `PolicyEngine::process`, as in the criterion bench) over text files:
//! `WARMUP` untimed calls, then `RUNS` timed calls per file; prints one JSON
//! object per file with the median and the number of findings.
//!
//!     cargo run --release -p meshguard-benches --bin detect-files -- [--runs N] [--warmup N] FILE...

use std::time::Instant;

use meshguard_benches::default_engine;
use meshguard_core::detect::ScanSession;

fn main() -> Result<(), String> {
    let mut runs = 50usize;
    let mut warmup = 5usize;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).ok_or("--runs N")?,
            "--warmup" => {
                warmup = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--warmup N")?
            }
            _ => files.push(a),
        }
    }
    let runs = runs.max(1);
    let engine = default_engine().map_err(|e| e.to_string())?;
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        for _ in 0..warmup {
            let mut session = ScanSession::new("request");
            std::hint::black_box(engine.process(&text, "f", &mut session));
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let mut session = ScanSession::new("request");
            let start = Instant::now();
            std::hint::black_box(engine.process(&text, "f", &mut session));
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
        let findings = engine.scan(&text).len();
        println!(
            "{}",
            serde_json::json!({"file": path, "bytes": text.len(), "runs": runs, "median_s": median, "findings": findings})
        );
    }
    Ok(())
}
