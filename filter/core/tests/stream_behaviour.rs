//! Stream transformer behaviour: several choices, tool-call arguments in
//! every dialect, blocking with each dialect's error event, placeholders
//! restored across events, minimal hold-back, and the limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stream_support;

use meshguard_core::detect::ScanSession;
use meshguard_core::dialect::{Dialect, Usage};
use meshguard_core::stream::{StreamFilter, StreamLimits};
use serde_json::Value;
use stream_support::*;

const ARGS_REDACTED: &str = r#"{"to": "[EMAIL_1]", "note": "card [CARD_1]"}"#;

fn each_chunking(input: &[u8]) -> impl Iterator<Item = usize> {
    [input.len(), 61, 5, 1].into_iter()
}

#[test]
fn chat_n2_choices_and_parallel_tool_calls() {
    let engine = redact_all();
    let input = fixture("chat_n2_tools.sse");
    for step in each_chunking(&input) {
        let run = run_every(Dialect::OpenAiChat, &engine, &input, step);
        assert_no_secrets(&run.bytes, "chat_n2_tools");
        let view = client_view(&run.bytes);
        assert_eq!(view.text("content[0]"), "Mail [EMAIL_1] now.");
        assert_eq!(view.text("content[1]"), "Né: [GITHUB_TOKEN_1] ok");
        assert_eq!(view.text("tool[1][0]"), ARGS_REDACTED);
        assert_eq!(view.text("tool[1][1]"), ARGS_REDACTED);
        assert!(view.saw_done);
        assert_eq!(run.filter.usage(), Some(Usage { input_tokens: Some(9), output_tokens: Some(30), total_tokens: Some(39) }));
        // Held text of a choice is sent before the chunk that finishes it,
        // with the stream's id and model.
        let finish0 = view.payloads.iter().position(|p| p["choices"][0]["index"] == 0 && p["choices"][0]["finish_reason"] == "stop").unwrap();
        let last0 = view.payloads.iter().rposition(|p| p["choices"][0]["index"] == 0 && p["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty())).unwrap();
        assert!(last0 < finish0);
        for p in view.payloads.iter().filter(|p| p.is_object()) {
            assert_eq!(p["id"], "chatcmpl-n2");
            assert_eq!(p["model"], "gpt-4o");
            assert_eq!(p["created"], 1_700_000_000);
        }
        // Tool call ids and names pass untouched.
        let ids: Vec<&str> = view.payloads.iter().filter_map(|p| p["choices"][0]["delta"]["tool_calls"][0]["id"].as_str()).collect();
        assert_eq!(ids, ["call_a", "call_b"]);
    }
}

#[test]
fn responses_function_call_arguments() {
    let engine = redact_all();
    let input = fixture("responses_function_call.sse");
    for step in each_chunking(&input) {
        let run = run_every(Dialect::OpenAiResponses, &engine, &input, step);
        assert_no_secrets(&run.bytes, "responses_function_call");
        let view = client_view(&run.bytes);
        assert_eq!(view.text("args[0]"), ARGS_REDACTED);
        assert_eq!(view.done_texts, vec![ARGS_REDACTED; 3], "arguments.done, output_item.done, response.completed");
        assert_eq!(run.filter.usage().and_then(|u| u.total()), Some(25));
        let names: Vec<&str> = view.event_names.iter().map(|n| n.as_deref().unwrap()).collect();
        assert_eq!(names.last(), Some(&"response.completed"));
        // Sequence numbers never go backwards.
        let seqs: Vec<u64> = view.payloads.iter().map(|p| p["sequence_number"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{seqs:?}");
    }
}

#[test]
fn anthropic_text_and_tool_use_blocks() {
    let engine = redact_all();
    let input = fixture("messages_tool_use.sse");
    for step in each_chunking(&input) {
        let run = run_every(Dialect::AnthropicMessages, &engine, &input, step);
        assert_no_secrets(&run.bytes, "messages_tool_use");
        let view = client_view(&run.bytes);
        assert_eq!(view.text("block[0]"), "Sending to [EMAIL_1].");
        assert_eq!(view.text("block[1]"), ARGS_REDACTED);
        serde_json::from_str::<Value>(view.text("block[1]")).expect("tool input is still JSON");
        // Every delta of a block comes before its stop.
        for index in [0, 1] {
            let stop = view.payloads.iter().position(|p| p["type"] == "content_block_stop" && p["index"] == index).unwrap();
            let last = view.payloads.iter().rposition(|p| p["type"] == "content_block_delta" && p["index"] == index).unwrap();
            assert!(last < stop);
        }
        assert!(view.payloads.iter().any(|p| p["type"] == "ping"));
        assert_eq!(run.filter.usage(), Some(Usage { input_tokens: Some(12), output_tokens: Some(33), total_tokens: None }));
    }
}

fn block_email() -> meshguard_core::detect::PolicyEngine {
    engine(r#"{"email": "block", "category:secret": "redact"}"#)
}

#[test]
fn blocked_chat_stream_ends_with_an_error_then_done() {
    let engine = block_email();
    let input = fixture("chat_stream_1.sse");
    for step in each_chunking(&input) {
        let run = run_every(Dialect::OpenAiChat, &engine, &input, step);
        let blocked = run.blocked.clone().expect("blocked");
        assert_eq!(blocked.code, "email");
        assert!(blocked.by_detector);
        assert_no_secrets(&run.bytes, "blocked chat");
        let view = client_view(&run.bytes);
        let n = view.payloads.len();
        assert_eq!(view.payloads[n - 1], Value::String("[DONE]".into()));
        let error = &view.payloads[n - 2]["error"];
        assert_eq!(error["code"], "email");
        assert_eq!(error["type"], "policy_violation");
        assert!(error["message"].as_str().unwrap().contains("email"));
        // Text before the match was delivered.
        assert!(view.text("content[0]").starts_with("Héllo 👋 — mail"));
        let mut filter = run.filter;
        assert_eq!(filter.push(&engine, b"data: {}\n\n"), Default::default(), "nothing after the end");
        let findings = filter.take_findings();
        assert!(findings.iter().any(|f| f.rule_id == "email" && f.action == "block" && f.direction == "response"));
    }
}

#[test]
fn blocked_responses_stream_ends_with_error_and_response_failed() {
    let engine = block_email();
    let run = run_every(Dialect::OpenAiResponses, &engine, &fixture("responses_stream_1.sse"), 1);
    assert_eq!(run.blocked.as_ref().unwrap().code, "email");
    assert_no_secrets(&run.bytes, "blocked responses");
    let view = client_view(&run.bytes);
    let n = view.payloads.len();
    assert_eq!(view.event_names[n - 2].as_deref(), Some("error"));
    assert_eq!(view.payloads[n - 2]["type"], "error");
    assert_eq!(view.payloads[n - 2]["code"], "email");
    assert_eq!(view.event_names[n - 1].as_deref(), Some("response.failed"));
    let failed = &view.payloads[n - 1];
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(failed["response"]["error"]["code"], "email");
    assert!(failed["response"]["id"].as_str().unwrap().starts_with("resp_"));
    let seq = |i: usize| view.payloads[i]["sequence_number"].as_u64().unwrap();
    assert!(seq(n - 2) > seq(n - 3));
    assert_eq!(seq(n - 1), seq(n - 2) + 1);
}

#[test]
fn blocked_anthropic_stream_ends_with_an_error_event() {
    let engine = block_email();
    let run = run_every(Dialect::AnthropicMessages, &engine, &fixture("messages_stream_4.sse"), 3);
    assert_no_secrets(&run.bytes, "blocked messages");
    let view = client_view(&run.bytes);
    assert_eq!(view.event_names.last().unwrap().as_deref(), Some("error"));
    let last = view.payloads.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["type"], "permission_error");
    assert!(last["error"]["message"].as_str().unwrap().contains("email"));
    assert!(!view.payloads.iter().any(|p| p["type"] == "message_stop"));
}

#[test]
fn unknown_route_blocks_in_the_dialect_it_sees() {
    let engine = block_email();
    let run = run_every(Dialect::Unknown, &engine, &fixture("messages_stream_1.sse"), 50);
    let view = client_view(&run.bytes);
    assert_eq!(view.payloads.last().unwrap()["error"]["type"], "permission_error");
}

fn tokenize_engine() -> meshguard_core::detect::PolicyEngine {
    engine(r#"{"email": "tokenize", "credit_card": "tokenize"}"#)
}

#[test]
fn tokenized_placeholders_restored_across_events_and_chunks() {
    let engine = tokenize_engine();
    let (vault, sent) = tokenized_vault(&engine, "write to jane.doe@example.com, card 4111 1111 1111 1111");
    assert_eq!(sent, "write to [EMAIL_TOKEN_1], card [CARD_TOKEN_1]");
    let answer = "Done: [EMAIL_TOKEN_1] paid with [CARD_TOKEN_1]; [EMAIL_TOKEN_7] and [x stay.";
    let expected = "Done: jane.doe@example.com paid with 4111 1111 1111 1111; [EMAIL_TOKEN_7] and [x stay.";
    for size in [1, 2, 7, 100] {
        let owned = pieces(answer, size);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        let input = chat_stream(&refs);
        for step in [input.len(), 17, 1] {
            let (vault, _) = tokenized_vault(&engine, "write to jane.doe@example.com, card 4111 1111 1111 1111");
            let cuts: Vec<usize> = (1..input.len()).filter(|i| i % step == 0).collect();
            let run = run_cuts(Dialect::OpenAiChat, &engine, vault, &input, &cuts);
            let view = client_view(&run.bytes);
            assert_eq!(view.text("content[0]"), expected, "{size}-char deltas, {step}-byte chunks");
        }
    }
    drop(vault);
}

#[test]
fn tokenized_placeholders_restored_in_responses_done_texts() {
    let engine = tokenize_engine();
    let (vault, _) = tokenized_vault(&engine, "mail jane.doe@example.com");
    let input = String::from_utf8(fixture("responses_stream_1.sse")).unwrap().replace("jane.doe@example.com", "[EMAIL_TOKEN_1]");
    let run = run_cuts(Dialect::OpenAiResponses, &engine, vault, input.as_bytes(), &(1..input.len()).collect::<Vec<_>>());
    let view = client_view(&run.bytes);
    // The email comes back; the card, new in the response, is tokenized
    // there (and stays a placeholder: only the request's tokens return).
    let expected = reply_text().replace("4111 1111 1111 1111", "[CARD_TOKEN_1]");
    assert_eq!(view.text("output[0][0]"), expected);
    assert_eq!(view.done_texts, vec![expected; 4]);
}

#[test]
fn releasable_text_is_sent_in_the_same_push() {
    let engine = redact_all();
    let parts = ["Hello, world!", " Ünïcödé ✓", " x = 5;", " (a)"];
    let input = chat_stream(&parts);
    let mut filter = StreamFilter::new(Dialect::OpenAiChat, ScanSession::new("request"), StreamLimits::default());
    let mut seen = Vec::new();
    let text = String::from_utf8(input).unwrap();
    let frames: Vec<&str> = text.split_inclusive("\n\n").collect();
    let mut expected = String::new();
    for (i, frame) in frames.iter().enumerate() {
        seen.extend(filter.push(&engine, frame.as_bytes()).bytes_to_emit);
        if (1..=parts.len()).contains(&i) {
            expected.push_str(parts[i - 1]);
            assert_eq!(client_view(&seen).text("content[0]"), expected, "after event {i}");
        }
    }
    assert_eq!(filter.held_bytes(), 0);
}

#[test]
fn a_huge_event_ends_the_stream_cleanly() {
    let engine = redact_all();
    let limits = StreamLimits { max_event_bytes: 1024, ..StreamLimits::default() };
    let mut filter = StreamFilter::new(Dialect::OpenAiChat, ScanSession::new("request"), limits);
    let big = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}", "a".repeat(4096));
    let out = filter.push(&engine, big.as_bytes());
    let blocked = out.blocked.unwrap();
    assert_eq!(blocked.code, "response_event_too_large");
    assert!(!blocked.by_detector);
    let view = client_view(&out.bytes_to_emit);
    assert_eq!(view.payloads[0]["error"]["code"], "response_event_too_large");
    assert!(view.saw_done);
    assert!(!String::from_utf8_lossy(&out.bytes_to_emit).contains("aaaa"));
}

#[test]
fn non_json_data_is_one_text_channel() {
    let engine = redact_all();
    let input = "data: mail jane.doe@exa\n\ndata: mple.com now!\n\n";
    let run = run_every(Dialect::Unknown, &engine, input.as_bytes(), 1);
    let text: String = events(&run.bytes).into_iter().filter_map(|e| e.data).collect();
    assert_eq!(text, "mail [EMAIL_1] now!");
}

#[test]
fn logprobs_are_dropped_while_detectors_run() {
    let engine = redact_all();
    let input = r#"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi!"},"logprobs":{"content":[{"token":"hi!","logprob":-0.1}]},"finish_reason":null}]}

data: [DONE]

"#;
    let run = run_whole(Dialect::OpenAiChat, &engine, input.as_bytes());
    let view = client_view(&run.bytes);
    assert!(view.payloads[0]["choices"][0]["logprobs"].is_null());
    assert_eq!(view.text("content[0]"), "hi!");
}
