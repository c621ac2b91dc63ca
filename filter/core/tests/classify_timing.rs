//! The classifier's `scoring_us`: read from the installed clock, absent
//! without one. Its own test binary, because a clock is installed once per
//! process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "classifier")]

use std::sync::atomic::{AtomicU64, Ordering};

use meshguard_core::classify::Role;
use meshguard_core::CompiledConfig;

/// A clock that moves 250 µs each time it is read.
fn ticking_clock() -> u64 {
    static NOW: AtomicU64 = AtomicU64::new(1_000_000);
    NOW.fetch_add(250, Ordering::Relaxed)
}

#[test]
fn scoring_time_comes_from_the_installed_clock_or_is_left_out() {
    let doc = r#"{"version": 1, "auth": {"mode": "none"}, "default_policy": "p",
                  "policies": {"p": {"injection": {"block_threshold": 0.9}}}}"#;
    let compiled = CompiledConfig::from_json(doc.as_bytes()).unwrap();
    let injection = compiled.policy("p").unwrap().injection.as_ref().unwrap();
    let texts = vec![("messages[0].content".to_string(), Role::User, "What does the report say?".to_string())];

    let untimed = injection.assess(&texts);
    assert_eq!(untimed.scoring_us, None);
    assert!(!serde_json::to_string(&untimed).unwrap().contains("scoring_us"));

    meshguard_core::clock::install(ticking_clock);
    let timed = injection.assess(&texts);
    assert_eq!(timed.scoring_us, Some(250), "one reading before scoring, one after");
    assert_eq!(serde_json::to_value(&timed).unwrap()["scoring_us"], 250);
    assert_eq!(timed.max, untimed.max);
}
