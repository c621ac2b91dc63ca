//! Incremental scanning (`process_stream`): the concatenated releases equal
//! `process` on the whole text, whatever the split; no released prefix ever
//! holds a raw match; only what could still grow into a match is held.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stream_support;
use stream_support::Rng;
use std::collections::BTreeMap;

use meshguard_core::detect::{DetectorSetting, DetectorsConfig, PolicyEngine, Processed, ScanSession};
use meshguard_core::record::FindingRecord;

fn engine(detectors: &str, selection: &str) -> PolicyEngine {
    let cfg: DetectorsConfig = serde_json::from_str(detectors).unwrap();
    let sel: BTreeMap<String, DetectorSetting> = serde_json::from_str(selection).unwrap();
    PolicyEngine::compile(&cfg, &sel, "policies.p").unwrap()
}

fn default_engine() -> PolicyEngine {
    engine("{}", r#"{"category:pii": "redact", "category:secret": "redact"}"#)
}

/// `process` on the whole text: the output text and the records.
fn whole(e: &PolicyEngine, text: &str) -> (Result<String, String>, Vec<FindingRecord>) {
    let mut s = ScanSession::new("response");
    let out = match e.process(text, "f", &mut s) {
        Processed::Unchanged => Ok(text.to_string()),
        Processed::Rewritten(t) => Ok(t),
        Processed::Blocked { detector_id } => Err(detector_id),
    };
    (out, s.take_findings())
}

/// Feeds `pieces` the way a caller does and checks the invariants of
/// every step against `expected` (the whole-text output).
fn streamed(e: &PolicyEngine, pieces: &[&str], expected: &Result<String, String>, raw: &[&str]) -> (Result<String, String>, Vec<FindingRecord>) {
    let mut s = ScanSession::new("response");
    let mut pending = String::new();
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        pending.push_str(piece);
        let last = i + 1 == pieces.len();
        let step = e.process_stream(&pending, last, "f", &mut s);
        if let Some(id) = step.blocked {
            return (Err(id), s.take_findings());
        }
        assert!(pending.is_char_boundary(step.consumed));
        if last {
            assert_eq!(step.consumed, pending.len(), "final consumes everything");
        }
        pending.drain(..step.consumed);
        out.push_str(&step.release);
        if let Ok(exp) = expected {
            assert!(exp.starts_with(&out), "released {out:?} is not a prefix of {exp:?} (pieces {pieces:?})");
        }
        // Values found somewhere; one that `process` leaves elsewhere in
        // its output (an unconfirmed occurrence) proves nothing.
        for r in raw.iter().filter(|r| expected.as_ref().map_or(true, |x| !x.contains(**r))) {
            assert!(!out.contains(r), "raw {r:?} released in {out:?}");
        }
    }
    assert!(pending.is_empty());
    (Ok(out), s.take_findings())
}

fn check(e: &PolicyEngine, text: &str, pieces: &[&str], raw: &[&str]) {
    let (exp, exp_rec) = whole(e, text);
    let (got, got_rec) = streamed(e, pieces, &exp, raw);
    assert_eq!(got, exp, "pieces {pieces:?}");
    assert_eq!(got_rec, exp_rec, "records differ for pieces {pieces:?}");
}

fn chars(text: &str) -> Vec<&str> {
    text.char_indices().map(|(i, c)| &text[i..i + c.len_utf8()]).collect()
}

const SECRETS: &[&str] = &[
    "dana.whitfield@example.org",
    "+1 415 555 0132",
    "4111 1111 1111 1111",
    "536-22-1234",
    "DE89 3704 0044 0532 0130 00",
    "AKIAQ3EGRK5NW7XZLM4P",
    "10.20.30.40",
    "ghp_4fTq9LmZ2xVb7NcR1sYk3JhG8dWp6UeA0oIi",
    "postgres://app:S3cr3t-p4ss@db.internal/app",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "am9obkBleGFtcGxlLmNvbQ==",
    "john\\u0040example.com",
    "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｏｒｇ",
    // A phone known by the label after it: the number is held until the
    // label can no longer follow.
    "781 1704 office",
    "call me on 450 0840",
];

const FILLERS: &[&str] = &[
    "The quarterly review covers revenue. ",
    "Ping ",
    "version 2.14.3 shipped; ",
    "p99 was 184 ms at 14:05 UTC. ",
    "naïve café — ok. ",
    "DATABASE_URL=postgres://app:",
    "@db.internal:5432/app ",
    "card ",
    "password = ",
    "\n",
    "100% sure & done\\ ",
    "office ",
    "-Fax ",
];


fn random_text(rng: &mut Rng) -> String {
    let mut t = String::new();
    for _ in 0..(3 + rng.below(6)) {
        if rng.below(2) == 0 {
            t.push_str(SECRETS[rng.below(SECRETS.len())]);
            t.push(if rng.below(3) == 0 { '.' } else { ' ' });
        } else {
            t.push_str(FILLERS[rng.below(FILLERS.len())]);
        }
    }
    t
}

/// Raw values that must never be released (those the engine does find).
fn raw_in(e: &PolicyEngine, text: &str) -> Vec<String> {
    e.scan(text).into_iter().map(|(_, s, end)| text[s..end].to_string()).collect()
}

#[test]
fn every_split_point_and_single_chars_match_process() {
    let e = default_engine();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..40 {
        let text = random_text(&mut rng);
        let raw = raw_in(&e, &text);
        let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
        for (cut, _) in text.char_indices().skip(1) {
            check(&e, &text, &[&text[..cut], &text[cut..]], &raw);
        }
        check(&e, &text, &chars(&text), &raw);
        // Random piece sizes, 1 to 12 characters.
        let cs = chars(&text);
        let mut pieces = Vec::new();
        let mut i = 0;
        while i < cs.len() {
            let n = 1 + rng.below(12);
            let j = (i + n).min(cs.len());
            let start = cs[..i].iter().map(|c| c.len()).sum::<usize>();
            let end = start + cs[i..j].iter().map(|c| c.len()).sum::<usize>();
            pieces.push(&text[start..end]);
            i = j;
        }
        check(&e, &text, &pieces, &raw);
    }
}

#[test]
fn each_secret_alone_split_everywhere() {
    let e = default_engine();
    for secret in SECRETS {
        let text = format!("x {secret} y");
        let raw = raw_in(&e, &text);
        assert!(!raw.is_empty(), "{secret} is found");
        let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
        check(&e, &text, &chars(&text), &raw);
    }
}

#[test]
fn prose_is_released_at_once() {
    let e = default_engine();
    let mut s = ScanSession::new("response");
    // (A trailing space would be held: it can open an Entra ID secret,
    // whose pattern starts with its delimiter.)
    let text = "Did the quarterly review cover revenue, hiring and the migration?";
    let step = e.process_stream(text, false, "f", &mut s);
    assert_eq!(step.consumed, text.len(), "nothing here can start a match");
    assert_eq!(step.release, text);
    // A word at the end may still grow (into an email, a token): held, but
    // only that word.
    let mut s = ScanSession::new("response");
    let step = e.process_stream("Write to dana.whit", false, "f", &mut s);
    assert_eq!(step.release, "Write to ");
    let step = e.process_stream("dana.whitfield@example.org today", false, "f", &mut s);
    assert_eq!(step.release, "[EMAIL_1] ");
    assert_eq!(s.findings()[0].offsets, vec![[9, 35]], "offsets are relative to the whole stream");
}

#[test]
fn pem_key_is_held_until_its_end_line() {
    let e = default_engine();
    let body = "MIIEowIBAAKCAQEA7bq8mYlq3vXc1fXk2QWmH9v1xqZr0sN4yL8pQk2vJt5uYh3GfDs2aE1wR7tY9uI0oP3lK6jH8gF5dS4aQ2wE9rT7yU1iO0pL3kJ6hG8fD5sA2zX4cV7bN9mQ1wE3rT5yU7iO9pA\n";
    let text = format!("key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}{body}-----END RSA PRIVATE KEY-----\nthanks");
    let raw = raw_in(&e, &text);
    let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
    assert!(!raw.is_empty());
    check(&e, &text, &chars(&text), &["-----BEGIN RSA", &body[..40]]);
    let pieces: Vec<&str> = text.as_bytes().chunks(7).map(|c| std::str::from_utf8(c).unwrap()).collect();
    check(&e, &text, &pieces, &raw);
}

#[test]
fn block_stops_the_stream() {
    let e = engine("{}", r#"{"aws_access_key_id": "block", "email": "redact"}"#);
    let mut s = ScanSession::new("response");
    let first = e.process_stream("mail a@x.io then AKIAQ3EGRK5", false, "f", &mut s);
    assert!(first.blocked.is_none());
    assert!(!first.release.contains("AKIA"));
    let step = e.process_stream(&format!("{}NW7XZLM4P now", &"mail a@x.io then AKIAQ3EGRK5"[first.consumed..]), false, "f", &mut s);
    assert_eq!(step.blocked.as_deref(), Some("aws_access_key_id"));
    assert!(step.release.is_empty());
}

#[test]
fn keywords_and_custom_patterns_stream_too() {
    let e = engine(
        r#"{"keywords": [{"id": "codename", "words": ["project falcon", "bluebird"], "default_action": "redact"}],
            "custom": [{"id": "ticket", "pattern": "TCK-[0-9]{6}"}]}"#,
        r#"{"category:keyword": "redact", "category:custom": "redact", "email": "redact"}"#,
    );
    let text = "About Project Falcon and bluebirds: TCK-123456 goes to a@x.io, bluebird.";
    let raw = raw_in(&e, text);
    let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
    assert!(raw.len() >= 3, "{raw:?}");
    check(&e, text, &chars(text), &raw);
}

#[test]
fn hold_is_bounded_per_policy() {
    let e = engine("{}", r#"{"category:pii": "redact"}"#);
    let b = e.stream_hold_bound();
    assert!(b > 0 && b <= 1024 * 1024, "{b}");
    // A long run of local-part characters is held only while it could
    // still be an email, then released whole.
    let mut s = ScanSession::new("response");
    let long = "a".repeat(5000);
    let step = e.process_stream(&long, false, "f", &mut s);
    assert!(step.consumed < long.len());
    let rest = format!("{} done", &long[step.consumed..]);
    let step2 = e.process_stream(&rest, true, "f", &mut s);
    assert_eq!(step.release.len() + step2.release.len(), long.len() + " done".len());
}
