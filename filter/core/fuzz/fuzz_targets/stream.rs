//! Incremental scanning on arbitrary text cut into arbitrary pieces: no
//! panic, `consumed` on a char boundary and within `pending`, everything
//! consumed at the end, and the concatenated releases equal `process` on
//! the whole text (inputs stay far below the scan window, where both must
//! agree).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshguard_core::detect::{DetectorsConfig, PolicyEngine, Processed, ScanSession};

fn engine() -> Option<&'static PolicyEngine> {
    static ENGINE: OnceLock<Option<PolicyEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cfg: DetectorsConfig = serde_json::from_str(
                r#"{"keywords": [{"id": "words", "words": ["falcon", "ŝecret"], "default_action": "redact"}],
                    "custom": [{"id": "emp", "pattern": "EMP-[0-9]{4,8}", "context": ["staff"]}]}"#,
            )
            .ok()?;
            let sel = serde_json::from_str(r#"{"category:pii": "redact", "category:secret": "redact", "category:keyword": "redact", "category:custom": "mask"}"#).ok()?;
            PolicyEngine::compile(&cfg, &sel, "policies.fuzz").ok()
        })
        .as_ref()
}

fuzz_target!(|input: (Vec<u8>, &str)| {
    let Some(engine) = engine() else { return };
    let (cuts, text) = input;
    let mut whole = ScanSession::new("response");
    let expected = match engine.process(text, "f", &mut whole) {
        Processed::Unchanged => text.to_string(),
        Processed::Rewritten(t) => t,
        Processed::Blocked { .. } => return,
    };
    let mut session = ScanSession::new("response");
    let mut pending = String::new();
    let mut out = String::new();
    let mut at = 0;
    let mut sizes = cuts.iter().map(|&c| usize::from(c % 16) + 1);
    while at < text.len() {
        let mut end = (at + sizes.next().unwrap_or(text.len())).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        pending.push_str(&text[at..end]);
        at = end;
        let last = at >= text.len();
        let step = engine.process_stream(&pending, last, "f", &mut session);
        assert!(step.blocked.is_none());
        assert!(step.consumed <= pending.len() && pending.is_char_boundary(step.consumed));
        if last {
            assert_eq!(step.consumed, pending.len());
        }
        pending.drain(..step.consumed);
        out.push_str(&step.release);
        assert!(expected.starts_with(&out), "released {out:?} is not a prefix of {expected:?}");
    }
    assert_eq!(out, expected);
});
