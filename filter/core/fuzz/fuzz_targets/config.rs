//! Configuration compilation: any bytes either compile or give an error
//! with a path; never a panic, never unbounded compile work.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshguard_core::detect::{DetectorsConfig, PolicyEngine};

fuzz_target!(|data: &[u8]| {
    // The `detectors` section and a selection, as `{"detectors": ..., "selection": ...}`.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(cfg) = serde_json::from_value::<DetectorsConfig>(value["detectors"].clone()) else { return };
    let Ok(sel) = serde_json::from_value(value["selection"].clone()) else { return };
    if let Err(e) = PolicyEngine::compile(&cfg, &sel, "policies.fuzz") {
        assert!(!e.message.is_empty());
    }
    // The whole plugin configuration, too.
    let _ = meshguard_core::CompiledConfig::from_json(data);
});
