//! Table-driven detector tests: `tests/data/detect_cases.json` lists, per
//! built-in detector, texts and the exact substrings it must find (none for
//! near-misses, each with the reason it must not fire). Offsets are checked
//! byte for byte against the original text, evasions included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use meshguard_core::detect::{builtin_ids, Action, DetectorSetting, DetectorsConfig, PolicyEngine};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    detector: String,
    text: String,
    finds: Vec<String>,
    #[serde(default)]
    why: Option<String>,
}

fn cases() -> Vec<Case> {
    let raw = include_str!("data/detect_cases.json");
    serde_json::from_str(raw).expect("detect_cases.json parses")
}

fn engine_for(id: &str) -> PolicyEngine {
    let mut sel = BTreeMap::new();
    sel.insert(id.to_string(), DetectorSetting::Action(Action::Log));
    PolicyEngine::compile(&DetectorsConfig::default(), &sel, "policies.test").expect("compiles")
}

/// Expected byte ranges: each `finds` entry located in order in the text.
fn expected(case: &Case) -> Vec<(usize, usize)> {
    let mut from = 0;
    case.finds
        .iter()
        .map(|f| {
            let at = case.text[from..].find(f.as_str()).unwrap_or_else(|| panic!("`{f}` not in case text")) + from;
            from = at + f.len();
            (at, at + f.len())
        })
        .collect()
}

#[test]
fn every_case_finds_exactly_what_it_lists() {
    let mut failures = Vec::new();
    for case in cases() {
        let engine = engine_for(&case.detector);
        let got: Vec<(usize, usize)> =
            engine.scan(&case.text).into_iter().filter(|(id, _, _)| *id == case.detector).map(|(_, s, e)| (s, e)).collect();
        let want = expected(&case);
        if got != want {
            let shown: Vec<&str> = got.iter().map(|&(s, e)| &case.text[s..e]).collect();
            failures.push(format!(
                "{}: {:?}\n  want {:?}\n  got  {:?} {:?}{}",
                case.detector,
                case.text,
                case.finds,
                got,
                shown,
                case.why.as_deref().map(|w| format!(" (must not fire: {w})")).unwrap_or_default()
            ));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_builtin_has_positive_and_negative_cases() {
    let cases = cases();
    let ids: Vec<&str> = builtin_ids().collect();
    for case in &cases {
        assert!(ids.contains(&case.detector.as_str()), "case for unknown detector {}", case.detector);
        if case.finds.is_empty() {
            assert!(case.why.is_some(), "negative case without a reason: {:?}", case.text);
        }
    }
    for id in ids {
        let pos = cases.iter().any(|c| c.detector == id && !c.finds.is_empty());
        assert!(pos, "no positive case for {id}");
    }
}
