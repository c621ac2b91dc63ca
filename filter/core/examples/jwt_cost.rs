//! What one authentication costs: a full verification per algorithm versus
//! a hit in the verified-token cache. Native, single thread:
//!
//!     cargo run -p meshguard-core --release --example jwt_cost
//!
//! Uses the test-only fixtures in tests/data/identity.

use std::hint::black_box;
use std::time::Instant;

use meshguard_core::identity::{AuthConfig, Authenticator};
use serde_json::{json, Value};

const JWKS: &str = include_str!("../tests/data/identity/jwks.json");
const TOKENS: &str = include_str!("../tests/data/identity/tokens.json");

fn authenticator(cache_entries: usize) -> Result<Authenticator, String> {
    let cfg: AuthConfig = serde_json::from_value(json!({
        "issuer": "https://issuer.test.meshguard.dev",
        "audiences": ["meshguard"],
        "jwks": serde_json::from_str::<Value>(JWKS).map_err(|e| e.to_string())?,
        "cache_entries": cache_entries,
    }))
    .map_err(|e| e.to_string())?;
    Authenticator::compile(&cfg, "auth").map_err(|e| e.to_string())
}

/// Best of five rounds, in microseconds per call: the least disturbed by
/// other work on the machine.
fn measure(auth: &mut Authenticator, token: &str, now: u64, iterations: u32) -> Result<f64, String> {
    let headers = vec![("authorization".to_string(), format!("Bearer {token}"))];
    auth.authenticate(&headers, now).map_err(|e| e.to_string())?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(auth.authenticate(black_box(&headers), now).map_err(|e| e.to_string())?);
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations));
    }
    Ok(best)
}

fn main() -> Result<(), String> {
    let fixtures: Value = serde_json::from_str(TOKENS).map_err(|e| e.to_string())?;
    let now = fixtures["now"].as_u64().ok_or("no now")?;
    println!("{:<28} {:>12}", "case", "us/call");
    for (alg, iterations) in [("rs256", 500), ("ps256", 500), ("es256", 500), ("es384", 200), ("eddsa", 1000)] {
        let token = fixtures["tokens"]["valid"][alg].as_str().ok_or("no token")?;
        let us = measure(&mut authenticator(0)?, token, now, iterations)?;
        println!("{:<28} {:>12.1}", format!("{alg} verify (no cache)"), us);
    }
    for alg in ["rs256", "es256"] {
        let token = fixtures["tokens"]["valid"][alg].as_str().ok_or("no token")?;
        let us = measure(&mut authenticator(1024)?, token, now, 100_000)?;
        println!("{:<28} {:>12.2}", format!("{alg} cache hit"), us);
    }
    Ok(())
}
