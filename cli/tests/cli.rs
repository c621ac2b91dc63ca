//! The `meshguard` binary end to end: exit statuses, messages and reports.

// Test helpers: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const SECRET: &str = "AKIAZ7Q3K5LMN2P4R6TW";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshguard"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The CLI may exit before reading stdin (a usage error, say): a broken
    // pipe here is not a failure of the test.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file under the target directory, unique per test.
fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("meshguard-cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn chat(content: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"model": "demo", "messages": [{"role": "user", "content": content}]})).unwrap()
}

fn report(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", text(&output.stderr));
    assert!(!text(&output.stdout).contains(SECRET), "the report repeats the secret");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn validate_accepts_the_demo_configuration() {
    let out = run(&["validate", "envoy/meshguard.json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("OK envoy/meshguard.json: policies standard (default standard), policy_hash "));
}

#[test]
fn validate_names_the_field_and_exits_1() {
    let bad = scratch("bad.json", r#"{"version": 1, "auth": {"mode": "none"}, "default_policy": "p", "policies": {"p": {"detectors": {"no_such_detector": "redact"}}}}"#);
    let out = run(&["validate", bad.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("INVALID "), "{stderr}");
    assert!(stderr.contains("at `policies.p.detectors"), "{stderr}");
}

#[test]
fn validate_reads_every_config_in_the_istio_manifests() {
    let manifests: Vec<String> = std::fs::read_dir(root().join("istio"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(!manifests.is_empty());
    let mut args = vec!["validate"];
    args.extend(manifests.iter().map(String::as_str));
    let out = run(&args, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("WasmPlugin/meshguard spec.pluginConfig: policies finance, standard"), "{stdout}");
    assert!(stdout.contains("EnvoyFilter/meshguard spec.configPatches[0]"), "{stdout}");
    assert!(stdout.contains("ConfigMap/meshguard-plugin-config data.plugin.json"), "{stdout}");
}

#[test]
fn a_manifest_error_has_the_field_path_but_no_json_position() {
    let manifest = scratch(
        "plugin.yaml",
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: mg, namespace: llm}\nspec:\n  pluginConfig:\n    version: 1\n    auth: {mode: none}\n    default_policy: p\n    policies:\n      p: {fail_mode: sideways}\n",
    );
    let out = run(&["validate", manifest.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("WasmPlugin/mg spec.pluginConfig: invalid meshguard configuration at `policies.p.fail_mode`"), "{stderr}");
    assert!(!stderr.contains("line 1 column"), "{stderr}");
}

#[test]
fn a_wasm_plugin_without_plugin_config_fails_as_the_filter_would() {
    let manifest = scratch("empty.yaml", "kind: WasmPlugin\nmetadata: {name: mg}\nspec: {url: oci://x/y}\n");
    let out = run(&["validate", manifest.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the configuration is empty"));
}

#[test]
fn nothing_to_check_and_unreadable_files_exit_2() {
    let service = scratch("service.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
    let out = run(&["validate", service.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no meshguard configuration found"));
    let out = run(&["validate", "no/such/file.json"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read no/such/file.json"));
    let broken = scratch("broken.yaml", "kind: [unclosed\n");
    assert_eq!(run(&["validate", broken.to_str().unwrap()], b"").status.code(), Some(2));
}

#[test]
fn scan_shows_the_rewritten_request_and_findings_without_the_text() {
    let out = run(&["scan", "envoy/meshguard.json"], &chat(&format!("key {SECRET} mail jane@example.com")));
    let report = report(&out);
    assert_eq!(report["verdict"], "modify");
    assert_eq!(report["outcome"], "rewrite");
    assert_eq!(report["policy"], "standard");
    assert_eq!(report["body"]["messages"][0]["content"], "key [AWS_KEY_1] mail [EMAIL_1]");
    let rules: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["rule_id"].as_str().unwrap()).collect();
    assert_eq!(rules, ["aws_access_key_id", "email"]);
    assert!(report["error"].is_null());
}

#[test]
fn scan_shows_the_client_error_of_a_refusal() {
    let out = run(&["scan", "istio/wasmplugin.yaml", "--policy", "finance"], &chat(&format!("key {SECRET}")));
    let report = report(&out);
    assert_eq!(report["verdict"], "block");
    assert_eq!(report["error"]["status"], 403);
    assert_eq!(report["error"]["code"], "aws_access_key_id");
    assert_eq!(report["error"]["body"]["error"]["type"], "policy_violation");
    assert!(report["body"].is_null());
}

#[test]
fn scan_applies_the_body_cap_and_reads_a_body_file() {
    let config = scratch("small.json", r#"{"version": 1, "auth": {"mode": "none"}, "limits": {"max_request_bytes": 64}, "default_policy": "p", "policies": {"p": {}}}"#);
    let body = scratch("body.json", &String::from_utf8(chat(&"x".repeat(100))).unwrap());
    let out = run(&["scan", config.to_str().unwrap(), "--body", body.to_str().unwrap()], b"");
    let report = report(&out);
    assert_eq!(report["verdict"], "reject");
    assert_eq!(report["error"]["status"], 413);
    assert_eq!(report["error"]["code"], "request_too_large");
}

#[test]
fn scan_reads_responses_and_other_dialects() {
    let answer = serde_json::json!({"type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": format!("here: {SECRET}")}]});
    let out = run(&["scan", "envoy/meshguard.json", "--response", "--path", "/v1/messages"], &serde_json::to_vec(&answer).unwrap());
    let report = report(&out);
    assert_eq!(report["direction"], "response");
    assert_eq!(report["verdict"], "modify");
    assert_eq!(report["body"]["content"][0]["text"], "here: [AWS_KEY_1]");
}

#[test]
fn scan_needs_one_config_and_a_known_policy() {
    let two = scratch(
        "two.yaml",
        "kind: WasmPlugin\nmetadata: {name: a}\nspec:\n  pluginConfig: {version: 1, auth: {mode: none}, default_policy: p, policies: {p: {}}}\n---\nkind: WasmPlugin\nmetadata: {name: b}\nspec:\n  pluginConfig: {version: 1, auth: {mode: none}, default_policy: q, policies: {q: {}}}\n",
    );
    let two = two.to_str().unwrap();
    let out = run(&["scan", two], &chat("hi"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("choose one with --object NAME"));
    let report = report(&run(&["scan", two, "--object", "b"], &chat("hi")));
    assert_eq!(report["policy"], "q");
    assert_eq!(report["verdict"], "allow");
    let out = run(&["scan", two, "--object", "b", "--policy", "p"], &chat("hi"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no policy `p` in this configuration (defined: q)"));
}
