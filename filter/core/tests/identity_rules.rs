//! Claim rules choose a named policy; first match wins, else the default.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use meshguard_core::identity::{Identity, PolicyRule, PolicySelector};
use serde_json::{json, Value};

fn known() -> BTreeSet<String> {
    ["default", "finance", "support", "acme", "admins", "scoped", "nested"].iter().map(|s| s.to_string()).collect()
}

fn selector(rules: Value) -> PolicySelector {
    let rules: Vec<PolicyRule> = serde_json::from_value(rules).unwrap();
    PolicySelector::compile(&rules, &known(), "default", "policy_rules").unwrap()
}

fn who(claims: Value) -> Identity {
    Identity {
        subject: claims["sub"].as_str().unwrap_or("s").to_string(),
        issuer: "i".into(),
        tenant: claims["tenant"].as_str().map(str::to_string),
        claims,
    }
}

#[test]
fn first_match_wins_then_default() {
    let s = selector(json!([
        {"policy": "finance", "when": {"claim": "groups", "contains": "finance"}},
        {"policy": "support", "when": {"claim": "groups", "contains": "support"}},
        {"policy": "acme", "when": {"claim": "tenant", "equals": "acme"}},
        {"policy": "admins", "when": {"claim": "admin", "present": true}},
        {"policy": "scoped", "when": {"claim": "scope", "contains": "llm:raw"}},
        {"policy": "nested", "when": {"claim": ["realm_access", "roles"], "contains": "auditor"}},
        {"policy": "admins", "when": {"claim": "https://example.com/level", "equals": 3}}
    ]));
    assert_eq!(s.select(Some(&who(json!({"groups": ["support", "finance"], "tenant": "acme"})))), "finance");
    assert_eq!(s.select(Some(&who(json!({"groups": ["support"], "tenant": "acme"})))), "support");
    assert_eq!(s.select(Some(&who(json!({"groups": [], "tenant": "acme"})))), "acme");
    assert_eq!(s.select(Some(&who(json!({"tenant": "globex", "admin": false})))), "admins");
    assert_eq!(s.select(Some(&who(json!({"admin": null})))), "default");
    assert_eq!(s.select(Some(&who(json!({"scope": "chat llm:raw"})))), "scoped");
    assert_eq!(s.select(Some(&who(json!({"scope": "chat llm:rawest"})))), "default");
    assert_eq!(s.select(Some(&who(json!({"realm_access": {"roles": ["auditor"]}})))), "nested");
    assert_eq!(s.select(Some(&who(json!({"https://example.com/level": 3})))), "admins");
    assert_eq!(s.select(Some(&who(json!({"groups": "finance-ops"})))), "default");
    assert_eq!(s.select(None), "default");
}

#[test]
fn equality_is_exact() {
    let s = selector(json!([{"policy": "acme", "when": {"claim": "tenant", "equals": "acme"}}]));
    assert_eq!(s.select(Some(&who(json!({"tenant": "ACME"})))), "default");
    assert_eq!(s.select(Some(&who(json!({"tenant": ["acme"]})))), "default");
    assert_eq!(s.select(Some(&who(json!({"tenant": "acme "})))), "default");
}

#[test]
fn absence_can_be_required() {
    let s = selector(json!([{"policy": "support", "when": {"claim": "tenant", "present": false}}]));
    assert_eq!(s.select(Some(&who(json!({})))), "support");
    assert_eq!(s.select(Some(&who(json!({"tenant": "acme"})))), "default");
}

fn compile_err(rules: Value, default: &str) -> (String, String) {
    let rules: Vec<PolicyRule> = serde_json::from_value(rules).unwrap();
    let e = PolicySelector::compile(&rules, &known(), default, "policy_rules").unwrap_err();
    (e.path, e.message)
}

#[test]
fn configuration_errors_name_the_rule() {
    let ok = json!({"policy": "finance", "when": {"claim": "groups", "contains": "finance"}});
    let (path, msg) = compile_err(json!([ok, ok, {"policy": "x", "when": {"claim": "a", "present": true}}]), "default");
    assert_eq!(path, "policy_rules[2].policy");
    assert!(msg.starts_with("names policy `x`, which is not defined"), "{msg}");
    assert_eq!(compile_err(json!([{"policy": "finance", "when": {"claim": "a"}}]), "default").0, "policy_rules[0].when");
    assert_eq!(
        compile_err(json!([{"policy": "finance", "when": {"claim": "a", "equals": 1, "present": true}}]), "default").0,
        "policy_rules[0].when"
    );
    assert_eq!(
        compile_err(json!([{"policy": "finance", "when": {"claim": "a", "equals": [1]}}]), "default").0,
        "policy_rules[0].when.equals"
    );
    assert_eq!(compile_err(json!([{"policy": "finance", "when": {"claim": "", "present": true}}]), "default").0, "policy_rules[0].when.claim");
    assert_eq!(compile_err(json!([]), "nope").0, "default_policy");
    assert!(serde_json::from_value::<Vec<PolicyRule>>(json!([{"policy": "a", "when": {"claim": "a", "present": true}, "x": 1}])).is_err());
}
