//! Engine behaviour: actions, placeholders, the session, records, config
//! errors with their paths, evasions, UTF-8 safety and bounds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use meshguard_core::config_error::ConfigError;
use meshguard_core::detect::{DetectorSetting, DetectorsConfig, PolicyEngine, Processed, ScanSession};

fn cfg(json: &str) -> DetectorsConfig {
    serde_json::from_str(json).expect("detectors config parses")
}

fn sel(json: &str) -> BTreeMap<String, DetectorSetting> {
    serde_json::from_str(json).expect("selection parses")
}

fn engine(detectors: &str, selection: &str) -> PolicyEngine {
    PolicyEngine::compile(&cfg(detectors), &sel(selection), "policies.p").expect("compiles")
}

fn compile_err(detectors: &str, selection: &str) -> ConfigError {
    PolicyEngine::compile(&cfg(detectors), &sel(selection), "policies.p").expect_err("must be refused")
}

fn rewritten(p: Processed) -> String {
    match p {
        Processed::Rewritten(s) => s,
        other => panic!("expected a rewrite, got {other:?}"),
    }
}

const KEY: &str = r#"{"fingerprint_key": "0123456789abcdef0123456789abcdef"}"#;

#[test]
fn redact_placeholders_are_stable_within_a_request() {
    let e = engine("{}", r#"{"category:pii": "redact"}"#);
    let mut s = ScanSession::new("request");
    let a = rewritten(e.process("mail a@x.io, b@y.io and a@x.io", "messages[0].content", &mut s));
    assert_eq!(a, "mail [EMAIL_1], [EMAIL_2] and [EMAIL_1]");
    let b = rewritten(e.process("again b@y.io", "messages[1].content", &mut s));
    assert_eq!(b, "again [EMAIL_2]");
    let f = s.findings();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].rule_id, "email");
    assert_eq!(f[0].category, "pii");
    assert_eq!(f[0].action, "redact");
    assert_eq!(f[0].direction, "request");
    assert_eq!(f[0].field, "messages[0].content");
    assert_eq!(f[0].count, 3);
    assert_eq!(f[0].offsets, vec![[5, 11], [13, 19], [24, 30]]);
    assert!(f[0].fingerprints.is_empty(), "no key, no fingerprints");
    // A new request numbers from 1 again.
    let mut s2 = ScanSession::new("request");
    assert_eq!(rewritten(e.process("b@y.io", "f", &mut s2)), "[EMAIL_1]");
}

#[test]
fn records_never_carry_matched_text() {
    let e = engine(KEY, r#"{"category:pii": "redact", "category:secret": "redact"}"#);
    let mut s = ScanSession::new("request");
    let card = "4111 1111 1111 1111";
    let text = format!("card {card} mail jane@example.com key AKIAQ3EGRK5NW7XZLM4P");
    let _ = e.process(&text, "input", &mut s);
    let json = serde_json::to_string(s.findings()).expect("serialises");
    for secret in [card, "4111111111111111", "jane@example.com", "AKIAQ3EGRK5NW7XZLM4P", "1111"] {
        assert!(!json.contains(secret), "record leaks {secret}: {json}");
    }
    assert_eq!(s.findings().len(), 3);
    for f in s.findings() {
        assert_eq!(f.fingerprints.len(), f.count);
        assert!(f.fingerprints.iter().all(|fp| fp.len() == 16 && fp.bytes().all(|c| c.is_ascii_hexdigit())));
    }
}

#[test]
fn mask_keeps_last_digits() {
    let e = engine("{}", r#"{"credit_card": "mask"}"#);
    let mut s = ScanSession::new("request");
    assert_eq!(rewritten(e.process("pay 4111111111111111 now", "f", &mut s)), "pay ************1111 now");
    let e = engine("{}", r##"{"credit_card": {"action": "mask", "keep_last": 2, "mask_char": "#"}}"##);
    assert_eq!(rewritten(e.process("4111 1111 1111 1111", "f", &mut s)), "#### #### #### ##11");
}

#[test]
fn hash_is_keyed_and_deterministic() {
    let e = engine(KEY, r#"{"email": "hash"}"#);
    let mut s = ScanSession::new("request");
    let a = rewritten(e.process("a@x.io", "f", &mut s));
    let b = rewritten(e.process("a@x.io", "f", &mut ScanSession::new("request")));
    assert_eq!(a, b);
    assert!(a.starts_with("[EMAIL:") && a.len() == "[EMAIL:]".len() + 12, "{a}");
    let other = engine(r#"{"fingerprint_key": "another-key-another-key"}"#, r#"{"email": "hash"}"#);
    assert_ne!(rewritten(other.process("a@x.io", "f", &mut s)), a);
}

#[test]
fn tokenize_round_trips_through_restore() {
    let e = engine("{}", r#"{"email": "tokenize", "credit_card": "tokenize"}"#);
    let mut s = ScanSession::new("request");
    let original = "Email jane@example.com about card 4111 1111 1111 1111.";
    let out = rewritten(e.process(original, "f", &mut s));
    assert_eq!(out, "Email [EMAIL_TOKEN_1] about card [CARD_TOKEN_1].");
    assert_eq!(s.restore(&out), original);
    assert_eq!(s.restore("Reply: [EMAIL_TOKEN_1] ok"), "Reply: jane@example.com ok");
    assert_eq!(s.vault_len(), 2);
}

#[test]
fn block_names_the_detector_and_records_it() {
    let e = engine("{}", r#"{"category:pii": "redact", "category:secret": "block"}"#);
    let mut s = ScanSession::new("request");
    let p = e.process("mail a@x.io key ghp_4fTq9LmZ2xVb7NcR1sYk3JhG8dWp6UeA0oIi", "f", &mut s);
    assert_eq!(p, Processed::Blocked { detector_id: "github_token".into() });
    let ids: Vec<&str> = s.findings().iter().map(|f| f.rule_id.as_str()).collect();
    assert!(ids.contains(&"github_token") && ids.contains(&"email"), "{ids:?}");
    assert_eq!(s.findings().iter().find(|f| f.rule_id == "github_token").map(|f| f.action.as_str()), Some("block"));
}

#[test]
fn log_records_without_rewriting_and_allow_overrides_category() {
    let e = engine("{}", r#"{"category:pii": "log", "ipv4": "allow"}"#);
    let mut s = ScanSession::new("response");
    assert_eq!(e.process("a@x.io from 10.0.0.1", "f", &mut s), Processed::Unchanged);
    assert_eq!(s.findings().len(), 1);
    assert_eq!(s.findings()[0].rule_id, "email");
    assert_eq!(s.findings()[0].action, "log");
    assert_eq!(s.findings()[0].direction, "response");
    assert_eq!(s.take_findings().len(), 1);
    assert!(s.findings().is_empty());
}

#[test]
fn specific_secret_wins_over_generic_assignment() {
    let e = engine("{}", r#"{"category:secret": "redact"}"#);
    let mut s = ScanSession::new("request");
    let out = rewritten(e.process("GITHUB_TOKEN=ghp_4fTq9LmZ2xVb7NcR1sYk3JhG8dWp6UeA0oIi", "f", &mut s));
    assert_eq!(out, "GITHUB_TOKEN=[GITHUB_TOKEN_1]");
    assert_eq!(s.findings().len(), 1);
}

#[test]
fn redaction_cuts_whole_obfuscated_span_and_keeps_utf8() {
    let e = engine("{}", r#"{"category:pii": "redact", "category:secret": "redact"}"#);
    let mut s = ScanSession::new("request");
    // Full-width digits, zero-width joiners, Cyrillic look-alikes, literal escapes.
    let text = "é ４１１１ １１１１ １１１１ １１１１ ü — jo\u{200B}hn\\u0040exаmple.com ✓";
    let out = rewritten(e.process(text, "f", &mut s));
    assert_eq!(out, "é [CARD_1] ü — [EMAIL_1] ✓");
    for f in s.findings() {
        for [a, b] in &f.offsets {
            assert!(text.is_char_boundary(*a) && text.is_char_boundary(*b));
        }
    }
}

#[test]
fn encoded_segments_are_cut_whole() {
    let e = engine("{}", r#"{"category:secret": "redact"}"#);
    let mut s = ScanSession::new("request");
    // base64 of "key: AKIAQ3EGRK5NW7XZLM4P"
    let b64 = "a2V5OiBBS0lBUTNFR1JLNU5XN1haTE00UA==";
    let out = rewritten(e.process(&format!("see {b64} here"), "f", &mut s));
    assert_eq!(out, "see [AWS_KEY_1] here");
    // Depth 0 turns decoding off.
    let off = engine(r#"{"normalize": {"decode_depth": 0}}"#, r#"{"category:secret": "redact"}"#);
    assert_eq!(off.process(&format!("see {b64} here"), "f", &mut s), Processed::Unchanged);
}

#[test]
fn keywords_whole_word_case_insensitive_one_automaton() {
    let d = r#"{"keywords": [
        {"id": "codenames", "words": ["Project Falcon", "bluebird"]},
        {"id": "internal", "words": ["confidential"], "whole_word": false, "default_action": "redact"}
    ]}"#;
    let e = engine(d, r#"{"category:keyword": "redact", "codenames": "block"}"#);
    let mut s = ScanSession::new("request");
    assert_eq!(e.process("about PROJECT FALCON", "f", &mut s), Processed::Blocked { detector_id: "codenames".into() });
    assert_eq!(e.process("bluebirds sing", "f", &mut s), Processed::Unchanged);
    assert_eq!(rewritten(e.process("a nonconfidential memo", "f", &mut s)), "a non[INTERNAL_1] memo");
    // Look-alike letters do not dodge the list.
    assert!(matches!(e.process("the Вluebird plan", "f", &mut s), Processed::Blocked { .. }));
}

#[test]
fn custom_detectors_with_validator_and_context() {
    let d = r#"{"custom": [
        {"id": "employee_id", "pattern": "EMP-[0-9]{6}", "label": "EMPLOYEE", "context": ["employee", "staff"]},
        {"id": "loyalty", "pattern": "(?:card|member)\\s*#?\\s*([0-9]{12,16})", "group": 1, "validator": "luhn", "case_insensitive": true}
    ]}"#;
    let e = engine(d, r#"{"category:custom": "redact"}"#);
    let mut s = ScanSession::new("request");
    assert_eq!(rewritten(e.process("staff member EMP-123456 left", "f", &mut s)), "staff member [EMPLOYEE_1] left");
    assert_eq!(e.process("ticket EMP-123456", "f", &mut s), Processed::Unchanged);
    assert_eq!(e.process("MEMBER # 4012888888881882", "f", &mut s), Processed::Unchanged, "Luhn fails");
    assert_eq!(rewritten(e.process("MEMBER # 4012888888881881", "f", &mut s)), "MEMBER # [LOYALTY_1]");
}

#[test]
fn allowed_values_are_never_findings() {
    let d = r#"{"allow_values": ["support@acme.example", "EMP-000001"],
        "custom": [{"id": "employee_id", "pattern": "EMP-[0-9]{6}", "label": "EMPLOYEE"}]}"#;
    let e = engine(d, r#"{"category:pii": "redact", "category:secret": "redact", "category:custom": "redact"}"#);
    let mut s = ScanSession::new("request");
    let out = rewritten(e.process("write support@acme.example or jane@acme.example", "f", &mut s));
    assert_eq!(out, "write support@acme.example or [EMAIL_1]");
    // Compared after normalisation: a full-width copy of the value is the value.
    assert_eq!(e.process("write ｓｕｐｐｏｒｔ@acme.example", "f", &mut s), Processed::Unchanged);
    assert_eq!(e.process(r"write support\u0040acme.example", "f", &mut s), Processed::Unchanged);
    // Exact, not a prefix or a part.
    assert_eq!(rewritten(e.process("write support@acme.example.org", "f", &mut s)), "write [EMAIL_2]");
    assert_eq!(rewritten(e.process("EMP-000001 and EMP-123456", "f", &mut s)), "EMP-000001 and [EMPLOYEE_1]");
    // A published example key is allowed with no config; another key is not.
    let published = "AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs";
    assert_eq!(e.process(&format!("apiKey: {published}"), "f", &mut s), Processed::Unchanged);
    assert_eq!(rewritten(e.process("apiKey: AIzaSyQm4r8Tz2LpX9vB7nK3wE5yH1cJ6dF0gUa", "f", &mut s)), "apiKey: [GOOGLE_API_KEY_1]");
    let count = |id: &str| s.findings().iter().filter(|f| f.rule_id == id).map(|f| f.count).sum::<usize>();
    assert_eq!(count("email"), 2, "the allowed address is not counted");
    assert_eq!((count("employee_id"), count("google_api_key")), (1, 1));
}

#[test]
fn config_errors_name_their_paths() {
    let err = compile_err("{}", r#"{"no_such_id": "redact"}"#);
    assert_eq!(err.path, "policies.p.detectors.no_such_id");
    assert!(err.message.contains("unknown detector `no_such_id`") && err.message.contains("credit_card"), "{}", err.message);

    let err = compile_err("{}", r#"{"category:people": "redact"}"#);
    assert_eq!(err.path, "policies.p.detectors.category:people");

    let err = compile_err("{}", r#"{"email": "hash"}"#);
    assert_eq!(err.path, "policies.p.detectors.email");
    assert!(err.message.contains("fingerprint_key"), "{}", err.message);

    let err = compile_err("{}", r#"{"email": {"action": "redact", "keep_last": 2}}"#);
    assert_eq!(err.path, "policies.p.detectors.email.keep_last");

    let err = compile_err(r#"{"fingerprint_key": "short"}"#, "{}");
    assert_eq!(err.path, "detectors.fingerprint_key");

    let d = r#"{"custom": [{"id": "a", "pattern": "x"}, {"id": "b", "pattern": "x"}, {"id": "c", "pattern": "x"}, {"id": "d", "pattern": "foo(?!bar)"}]}"#;
    let err = compile_err(d, "{}");
    assert_eq!(err.path, "detectors.custom[3].pattern");
    assert!(err.message.contains("look-around and backreferences are not supported"), "{}", err.message);

    let err = compile_err(r#"{"custom": [{"id": "email", "pattern": "x"}]}"#, "{}");
    assert_eq!(err.path, "detectors.custom[0].id");

    let err = compile_err(r#"{"custom": [{"id": "a", "pattern": "(x)", "group": 2}]}"#, "{}");
    assert_eq!(err.path, "detectors.custom[0].group");

    let err = compile_err(r#"{"custom": [{"id": "a", "pattern": "x", "validator": "crc"}]}"#, "{}");
    assert_eq!(err.path, "detectors.custom[0].validator");

    let err = compile_err(r#"{"keywords": [{"id": "k", "words": []}]}"#, "{}");
    assert_eq!(err.path, "detectors.keywords[0].words");

    let err = compile_err(r#"{"normalize": {"decode_depth": 9}}"#, "{}");
    assert_eq!(err.path, "detectors.normalize.decode_depth");

    let err = compile_err(r#"{"allow_values": ["ok", ""]}"#, "{}");
    assert_eq!(err.path, "detectors.allow_values[1]");
}

#[test]
fn defaults_need_no_config_and_empty_selection_is_empty() {
    let d = DetectorsConfig::default();
    let e = PolicyEngine::compile(&d, &BTreeMap::new(), "policies.p").expect("compiles");
    assert!(e.is_empty());
    assert_eq!(e.process("a@x.io", "f", &mut ScanSession::new("request")), Processed::Unchanged);
    let all_allowed = engine("{}", r#"{"category:pii": "allow"}"#);
    assert!(all_allowed.is_empty());
}

#[test]
fn long_texts_are_scanned_in_windows_without_losing_matches() {
    let e = engine(r#"{"normalize": {"window_bytes": 65536}}"#, r#"{"category:pii": "redact"}"#);
    let filler = "lorem ipsum dolor sit amet ".repeat(2600); // ~70 KB
    let mut text = String::new();
    for i in 0..4 {
        text.push_str(&filler);
        text.push_str(&format!(" user{i}@example.com "));
    }
    let mut s = ScanSession::new("request");
    let out = rewritten(e.process(&text, "f", &mut s));
    assert_eq!(out.matches("[EMAIL_").count(), 4);
    assert_eq!(s.findings()[0].count, 4);
}

#[test]
fn benign_prose_is_untouched() {
    let e = engine("{}", r#"{"category:pii": "redact", "category:secret": "redact"}"#);
    let prose = "The quarterly report (v2.3.1) covers 12 regions and 4,500 stores. \
        Revenue rose 7.5% to $1,234,567 on 2024-03-31; the meeting is at 10:30 in room 101. \
        Use std::collections::HashMap and call get_token() before the password reset flow. \
        Our API key rotation policy is documented internally. ISBN 978-3-16-148410-0.";
    let mut s = ScanSession::new("request");
    assert_eq!(e.process(prose, "f", &mut s), Processed::Unchanged, "{:?}", s.findings());
}

/// A deterministic stress over texts built from tricky pieces (multi-byte
/// letters, invisible characters, escapes, encoded segments, PII, secrets):
/// no panic, every recorded range on char boundaries, and no redacted value
/// left in the output. The cargo-fuzz targets under `fuzz/` do the same with
/// coverage guidance.
#[test]
fn random_mixtures_keep_utf8_and_redact_everything() {
    const PIECES: &[&str] = &[
        "é", "ü", "日本", "😀", "\u{200B}", "\u{FEFF}", "ｊ", "４", "а", "%40", "\\u0040", "&#64;", " ", "-", ".", "@",
        " 4111 1111 1111 1111 ", " jane@example.com ", " 536-22-1234 ", " AKIAQ3EGRK5NW7XZLM4P ", " a2V5OiBBS0lBUTNFR1JLNU5XN1haTE00UA== ",
        " password=Tr0ub4dor&3x ", "\n", "1", "x", "ghp_", "-----BEGIN", "%", "\\", "&",
    ];
    let e = engine("{}", r#"{"category:pii": "redact", "category:secret": "redact"}"#);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..3000 {
        let mut text = String::new();
        let n = (seed % 12) as usize + 1;
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
        }
        let mut s = ScanSession::new("request");
        let out = e.process(&text, "f", &mut s);
        for f in s.findings() {
            for [a, b] in &f.offsets {
                assert!(a < b && *b <= text.len() && text.is_char_boundary(*a) && text.is_char_boundary(*b), "{text:?}");
            }
        }
        if let Processed::Rewritten(new) = out {
            // Values are delimited by spaces in the pieces, so each must be found.
            for secret in [" 4111 1111 1111 1111 ", " jane@example.com ", " AKIAQ3EGRK5NW7XZLM4P ", "Tr0ub4dor&3x "] {
                if text.contains(secret) {
                    assert!(!new.contains(secret), "{secret} survived in {new:?} (from {text:?})");
                }
            }
        }
    }
}
