//! Properties over many streams: for every positive case of the detection
//! corpus (tests/data/detect_cases.json), wrapped in multi-byte text and
//! streamed in random deltas cut into random byte chunks (UTF-8 sequences
//! split included), the client sees exactly what scanning the whole answer
//! gives: no match ever reaches it, and the text around the matches is
//! unchanged. Negative cases come through unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stream_support;

use meshguard_core::detect::{PolicyEngine, Processed, ScanSession};
use meshguard_core::dialect::Dialect;
use serde_json::Value;
use stream_support::*;


struct Case {
    text: String,
    finds: Vec<String>,
}

fn corpus() -> Vec<Case> {
    let raw: Value = serde_json::from_slice(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/detect_cases.json")).unwrap()).unwrap();
    raw.as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            text: format!("Ça va 👋 — {} — fin ✓.", c["text"].as_str().unwrap()),
            finds: c["finds"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect(),
        })
        .collect()
}

fn whole(engine: &PolicyEngine, text: &str) -> String {
    match engine.process(text, "choices[0].delta.content", &mut ScanSession::new("response")) {
        Processed::Rewritten(t) => t,
        Processed::Unchanged => text.to_string(),
        Processed::Blocked { .. } => panic!("no block action in this engine"),
    }
}

/// Random deltas of 1..=max_chars characters.
fn random_pieces(rng: &mut Rng, text: &str, max_chars: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let n = 1 + rng.below(max_chars);
        out.push(chars[i..(i + n).min(chars.len())].iter().collect());
        i += n;
    }
    out
}

fn random_cuts(rng: &mut Rng, len: usize, max_gap: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut at = 0;
    loop {
        at += 1 + rng.below(max_gap);
        if at >= len {
            return cuts;
        }
        cuts.push(at);
    }
}

fn check(engine: &PolicyEngine, case: &Case, pieces: &[String], cuts: &[usize], what: &str) {
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let input = chat_stream(&refs);
    let cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
    let run = run_cuts(Dialect::OpenAiChat, engine, ScanSession::new("request"), &input, &cuts);
    assert!(run.blocked.is_none(), "{what}");
    let seen = client_view(&run.bytes).text("content[0]").to_string();
    let expected = whole(engine, &case.text);
    assert_eq!(seen, expected, "{what}: streamed result differs from scanning the whole text");
    for find in &case.finds {
        if !expected.contains(find.as_str()) {
            assert!(!seen.contains(find.as_str()), "{what}: `{find}` leaked");
        }
    }
}

#[test]
fn random_deltas_and_chunks_never_leak() {
    let engine = redact_all();
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    for (n, case) in corpus().iter().enumerate() {
        for round in 0..4 {
            let seed = rng.0;
            let pieces = random_pieces(&mut rng, &case.text, [1, 2, 5, 16][round]);
            let cuts = random_cuts(&mut rng, 1 << 20, [1, 3, 40, 400][round]);
            check(&engine, case, &pieces, &cuts, &format!("case {n} ({:?}) round {round} seed {seed:#x}", case.text));
        }
    }
}

#[test]
fn one_character_per_delta_one_byte_per_chunk() {
    let engine = redact_all();
    for (n, case) in corpus().iter().enumerate().filter(|(_, c)| !c.finds.is_empty()) {
        let pieces = random_pieces(&mut Rng(1), &case.text, 1);
        let cuts: Vec<usize> = (1..1 << 16).collect();
        check(&engine, case, &pieces, &cuts, &format!("case {n} ({:?}) bytewise", case.text));
    }
}

#[test]
fn every_single_cut_of_a_multibyte_stream() {
    let engine = redact_all();
    let case = Case { text: "é 👋 jane.doe@example.com ✓!".to_string(), finds: vec!["jane.doe@example.com".to_string()] };
    let pieces = random_pieces(&mut Rng(7), &case.text, 3);
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let len = chat_stream(&refs).len();
    for cut in 1..len {
        check(&engine, &case, &pieces, &[cut], &format!("cut at {cut}"));
    }
}
