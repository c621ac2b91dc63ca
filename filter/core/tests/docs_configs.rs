//! Every complete configuration shown in the README and docs must be one the
//! filter accepts: documentation that drifts from the schema fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use meshguard_core::CompiledConfig;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().and_then(Path::parent).unwrap()
}

/// The demo key's modulus, which the docs abbreviate.
fn demo_modulus() -> String {
    let jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("envoy/demo-keys/public.jwks.json")).unwrap()).unwrap();
    jwks["keys"][0]["n"].as_str().unwrap().to_string()
}

fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").unwrap();
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks
}

#[test]
fn complete_configurations_in_the_docs_compile() {
    let modulus = demo_modulus();
    let mut checked = 0;
    for doc in ["README.md", "docs/detectors.md", "docs/identity.md", "docs/wire-formats.md"] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        for block in json_blocks(&text) {
            if !block.trim_start().starts_with('{') || !block.contains("\"version\": 1") {
                continue;
            }
            let block = block.replace("s_yUEBcI…", &modulus);
            if let Err(err) = CompiledConfig::from_json(block.as_bytes()) {
                panic!("{doc}: a documented configuration does not compile: {err}\n{block}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 1, "no complete configuration found in the docs");
}

#[test]
fn the_demo_configuration_compiles() {
    let bytes = std::fs::read(root().join("envoy/meshguard.json")).unwrap();
    let config = CompiledConfig::from_json(&bytes).unwrap();
    assert_eq!(config.default_policy, "standard");
}

#[test]
fn the_grafana_dashboard_uses_metrics_the_filter_emits() {
    let text = std::fs::read_to_string(root().join("docs/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut used = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("meshguard_") {
                    let metric = format!("meshguard_{}", name.trim_end_matches("_bucket"));
                    assert!(meshguard_core::metrics::NAMES.contains(&metric.as_str()), "dashboard uses unknown metric {metric}");
                    used += 1;
                }
            }
        }
    }
    assert!(used >= 5);
}
