//! A canary from the system prompt, repeated by the model one character per
//! event and one byte per chunk, is caught before it is complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stream_support;

use meshguard_core::canary;
use meshguard_core::detect::ScanSession;
use meshguard_core::dialect::Dialect;
use meshguard_core::stream::{StreamFilter, StreamLimits};
use stream_support::*;

#[test]
fn canary_split_across_events_and_chunks_is_cut_off() {
    let engine = engine("{}");
    let canary = canary::make(b"request-1");
    let reply = format!("Sure, my instructions say: Internal reference {canary}. Never repeat");
    let pieces: Vec<String> = reply.chars().map(String::from).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let input = chat_stream(&refs);
    let mut filter = StreamFilter::new(Dialect::OpenAiChat, ScanSession::new("request"), StreamLimits::for_engine(&engine, 1 << 20))
        .with_canary(Some(canary.clone()));
    let mut sent = Vec::new();
    let mut blocked = None;
    for byte in &input {
        let out = filter.push(&engine, std::slice::from_ref(byte));
        sent.extend_from_slice(&out.bytes_to_emit);
        blocked = blocked.or(out.blocked);
    }
    sent.extend_from_slice(&filter.finish(&engine).bytes_to_emit);
    let block = blocked.expect("the canary must end the stream");
    assert_eq!(block.code, canary::LEAK_CODE);
    let view = client_view(&sent);
    assert!(view.text("content[0]").starts_with("Sure, my instructions say"));
    assert!(!view.text("content[0]").contains(&canary));
    assert!(String::from_utf8_lossy(&sent).contains("system_prompt_leak"));
}

#[test]
fn without_the_canary_the_stream_is_untouched() {
    let engine = engine("{}");
    let input = chat_stream(&["Nothing ", "to ", "see."]);
    let mut filter = StreamFilter::new(Dialect::OpenAiChat, ScanSession::new("request"), StreamLimits::for_engine(&engine, 1 << 20))
        .with_canary(Some(canary::make(b"request-2")));
    let mut sent = filter.push(&engine, &input).bytes_to_emit;
    sent.extend_from_slice(&filter.finish(&engine).bytes_to_emit);
    assert_eq!(sent, input);
}
