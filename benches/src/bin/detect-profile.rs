//! A fixed workload for profilers (`valgrind --tool=callgrind`) and for the
//! engine's speed in a wasm runtime outside Envoy (`benches/run-wasi.mjs`):
//! the default catalogue over 256 KB of sprinkled prose (or 64 KB of clean
//! prose with `clean`), `N` times.
//!
//! Usage: detect-profile [N] [sprinkled|clean|everyE][:KB] [warm|cold] [request].
//! `:KB` sets the text's size (default 256 sprinkled, 64 clean);
//! `everyE`: a finding sentence every E sentences (`sprinkled` is `every8`). The first
//! call also builds lazy-DFA states (and, in V8, compiles what it touches):
//! profiles of the steady state subtract a run with fewer calls; `warm` makes
//! one untimed call first instead. `cold` does too, and before each timed
//! call writes over 8 MB (more than a core's L2 cache), so each call starts
//! with its tables and code out of cache, as a request in a busy proxy
//! does; only the calls are timed. `request` times what the filter does
//! with a chat request carrying the text instead (JSON parse, scan,
//! rewrite, re-encode: `inspect_request`), so the difference to the engine
//! alone is the cost of the JSON around it.

use meshguard_benches::{clean_prose, default_engine, prose, prose_every};
use meshguard_core::detect::ScanSession;
use meshguard_core::inspect::{inspect_request, RequestExtras};
use meshguard_core::CompiledConfig;

const POLICY: &str = r#"{"version": 1, "auth": {"mode": "none"}, "limits": {"max_request_bytes": 1048576},
  "default_policy": "standard", "policies": {"standard": {"detectors": {"category:pii": "redact", "category:secret": "redact"}}}}"#;

/// What `cold` writes over between calls.
const EVICT_BYTES: usize = 8 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let (kind, kb) = args.get(1).map_or(("sprinkled", None), |a| match a.split_once(':') {
        Some((kind, kb)) => (kind, kb.parse::<usize>().ok()),
        None => (a.as_str(), None),
    });
    let text = match kind.strip_prefix("every") {
        Some(every) => prose_every(kb.unwrap_or(256) * 1024, every.parse().unwrap_or(8)),
        None if kind == "clean" => clean_prose(kb.unwrap_or(64) * 1024),
        None => prose(kb.unwrap_or(256) * 1024),
    };
    let warm = matches!(args.get(2).map(String::as_str), Some("warm" | "cold"));
    let mut evict = if args.get(2).map(String::as_str) == Some("cold") { vec![0u8; EVICT_BYTES] } else { Vec::new() };
    let run: Box<dyn Fn()> = if args.get(3).map(String::as_str) == Some("request") {
        let Ok(config) = CompiledConfig::from_json(POLICY.as_bytes()) else {
            return;
        };
        let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).to_string().into_bytes();
        Box::new(move || {
            if let Some(policy) = config.policy("standard") {
                std::hint::black_box(inspect_request(policy, "/v1/chat/completions", Some("application/json"), &body, RequestExtras::default()).verdict);
            }
        })
    } else {
        let Ok(engine) = default_engine() else {
            return;
        };
        let text = text.clone();
        Box::new(move || {
            let mut session = ScanSession::new("request");
            std::hint::black_box(engine.process(&text, "f", &mut session));
        })
    };
    if warm {
        run();
    }
    let mut secs = 0.0;
    for round in 0..n {
        // One write per cache line: every line of the buffer is fetched.
        for b in evict.iter_mut().step_by(64) {
            *b = b.wrapping_add(round as u8 | 1);
        }
        std::hint::black_box(&evict);
        let start = std::time::Instant::now();
        run();
        secs += start.elapsed().as_secs_f64();
    }
    println!("{:.1} MB/s", (text.len() * n) as f64 / secs / 1e6);
}
