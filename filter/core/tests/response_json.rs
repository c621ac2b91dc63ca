//! Non-streamed responses per dialect: the answer's text fields redacted,
//! every other field untouched, tokens restored, usage read, blocks
//! rendered in the dialect's error shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stream_support;

use meshguard_core::detect::ScanSession;
use meshguard_core::dialect::{Dialect, Usage};
use meshguard_core::inspect::Outcome;
use meshguard_core::record::Verdict;
use meshguard_core::response::inspect_response;
use serde_json::{json, Value};
use stream_support::*;

fn rewritten(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Rewrite(bytes) => serde_json::from_slice(bytes).unwrap(),
        other => panic!("expected a rewrite, got {other:?}"),
    }
}

/// Replaces the value at each pointer, for comparing "everything else".
fn with(mut v: Value, pointers: &[(&str, Value)]) -> Value {
    for (p, new) in pointers {
        *v.pointer_mut(p).unwrap() = new.clone();
    }
    v
}

#[test]
fn fixtures_per_dialect() {
    let engine = redact_all();
    let vault = ScanSession::new("request");
    for (name, dialect, pointer, usage) in [
        ("chat.json", Dialect::OpenAiChat, "/choices/0/message/content", (1, 14, Some(15))),
        ("responses.json", Dialect::OpenAiResponses, "/output/0/content/0/text", (1, 14, Some(15))),
        ("messages.json", Dialect::AnthropicMessages, "/content/0/text", (1, 14, None)),
    ] {
        let body = fixture(name);
        let original: Value = serde_json::from_slice(&body).unwrap();
        let got = inspect_response(dialect, &engine, &vault, Some("application/json"), &body);
        assert_eq!(got.verdict, Verdict::Modify, "{name}");
        let out = rewritten(&got.outcome);
        assert_eq!(out.pointer(pointer).unwrap(), REDACTED_REPLY, "{name}");
        assert_eq!(out, with(original, &[(pointer, json!(REDACTED_REPLY))]), "{name}: other fields changed");
        assert_no_secrets(match &got.outcome {
            Outcome::Rewrite(b) => b,
            _ => unreachable!(),
        }, name);
        assert_eq!(got.usage, Some(Usage { input_tokens: Some(usage.0), output_tokens: Some(usage.1), total_tokens: usage.2 }), "{name}");
        let mut ids: Vec<&str> = got.findings.iter().map(|f| f.rule_id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["credit_card", "email", "github_token"]);
        assert!(got.findings.iter().all(|f| f.direction == "response"));
    }
}

#[test]
fn unchanged_input_is_forwarded_as_is() {
    let engine = engine("{}");
    for name in ["chat.json", "responses.json", "messages.json"] {
        let got = inspect_response(Dialect::Unknown, &engine, &ScanSession::new("request"), None, &fixture(name));
        assert_eq!(got.outcome, Outcome::Forward, "{name}");
        assert_eq!(got.verdict, Verdict::Allow);
        assert_ne!(got.dialect, Dialect::Unknown, "{name}: recognised from the body");
    }
}

#[test]
fn chat_parts_tool_calls_and_logprobs() {
    let engine = redact_all();
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": [{"type": "text", "text": "mail jane.doe@example.com"}],
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "pay", "arguments": "{\"card\":\"4111 1111 1111 1111\"}"}}]},
             "logprobs": {"content": [{"token": "jane", "logprob": -0.1}]}, "finish_reason": "tool_calls"},
            {"index": 1, "message": {"role": "assistant", "content": "nothing here"}, "logprobs": null, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    });
    let got = inspect_response(Dialect::OpenAiChat, &engine, &ScanSession::new("request"), None, body.to_string().as_bytes());
    let out = rewritten(&got.outcome);
    assert_eq!(out["choices"][0]["message"]["content"][0]["text"], "mail [EMAIL_1]");
    assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"card\":\"[CARD_1]\"}");
    assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["id"], "call_1");
    assert!(out["choices"][0]["logprobs"].is_null(), "log-probabilities would spell the original out");
    assert_eq!(out["choices"][1]["message"]["content"], "nothing here");
    assert_eq!(got.usage.unwrap().total(), Some(7));
}

#[test]
fn responses_function_call_and_anthropic_tool_use() {
    let engine = redact_all();
    let vault = ScanSession::new("request");
    let responses = json!({"id": "resp_1", "object": "response", "status": "completed", "output": [
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAAABn9xY", "summary": []},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "mail", "arguments": "{\"to\":\"jane.doe@example.com\"}"}
    ]});
    let out = rewritten(&inspect_response(Dialect::OpenAiResponses, &engine, &vault, None, responses.to_string().as_bytes()).outcome);
    assert_eq!(out["output"][1]["arguments"], "{\"to\":\"[EMAIL_1]\"}");
    assert_eq!(out["output"][0]["encrypted_content"], "gAAAAABn9xY");
    let anthropic = json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [
        {"type": "thinking", "thinking": "the user is jane.doe@example.com", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
        {"type": "tool_use", "id": "toolu_1", "name": "mail", "input": {"to": "jane.doe@example.com", "n": 2}}
    ], "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}});
    let original = anthropic.clone();
    let out = rewritten(&inspect_response(Dialect::AnthropicMessages, &engine, &vault, None, anthropic.to_string().as_bytes()).outcome);
    assert_eq!(out["content"][1]["input"], json!({"to": "[EMAIL_1]", "n": 2}));
    assert_eq!(out["content"][0]["thinking"], "the user is [EMAIL_1]");
    assert_eq!(out["content"][0]["signature"], original["content"][0]["signature"], "signatures pass byte for byte");
}

#[test]
fn tokens_from_the_request_are_restored() {
    let engine = engine(r#"{"email": "tokenize"}"#);
    let (vault, sent) = tokenized_vault(&engine, "write to jane.doe@example.com");
    assert_eq!(sent, "write to [EMAIL_TOKEN_1]");
    let body = json!({"type": "message", "content": [{"type": "text", "text": "Sent to [EMAIL_TOKEN_1]."}]});
    let got = inspect_response(Dialect::AnthropicMessages, &engine, &vault, None, body.to_string().as_bytes());
    assert_eq!(rewritten(&got.outcome)["content"][0]["text"], "Sent to jane.doe@example.com.");
}

#[test]
fn blocks_render_in_the_dialect_error_shape() {
    let engine = engine(r#"{"email": "block"}"#);
    let vault = ScanSession::new("request");
    let got = inspect_response(Dialect::AnthropicMessages, &engine, &vault, None, &fixture("messages.json"));
    assert_eq!(got.verdict, Verdict::Block);
    assert_eq!(got.reason.as_deref(), Some("email"));
    let body: Value = serde_json::from_slice(&got.error_body().unwrap()).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");
    let got = inspect_response(Dialect::OpenAiChat, &engine, &vault, None, &fixture("chat.json"));
    let Outcome::Refuse(error) = &got.outcome else { panic!() };
    assert_eq!(error.status, 403);
    let body: Value = serde_json::from_slice(&got.error_body().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "email");
}

#[test]
fn bodies_that_cannot_be_inspected_are_refused() {
    let engine = redact_all();
    let vault = ScanSession::new("request");
    let bad = inspect_response(Dialect::OpenAiChat, &engine, &vault, Some("application/json"), b"{\"choices\": [");
    assert_eq!(bad.verdict, Verdict::Reject);
    assert_eq!(bad.reason.as_deref(), Some("response_invalid_json"));
    let binary = inspect_response(Dialect::OpenAiChat, &engine, &vault, Some("application/octet-stream"), b"\x00\x01");
    assert_eq!(binary.reason.as_deref(), Some("response_unsupported_media_type"));
    let text = inspect_response(Dialect::Unknown, &engine, &vault, Some("text/plain"), b"mail jane.doe@example.com");
    assert_eq!(text.outcome, Outcome::Rewrite(b"mail [EMAIL_1]".to_vec()));
    let empty = inspect_response(Dialect::OpenAiChat, &engine, &vault, None, b"");
    assert_eq!(empty.outcome, Outcome::Forward);
}
