//! Shared helpers of the stream and response tests: engines, a client that
//! reads a stream back the way an SDK would, and chunked feeding.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use meshguard_core::detect::{DetectorSetting, DetectorsConfig, PolicyEngine, ScanSession};
use meshguard_core::dialect::{Dialect, Usage};
use meshguard_core::sse::{SseEvent, SseParser};
use meshguard_core::stream::{StreamBlock, StreamFilter, StreamLimits};
use serde_json::Value;

pub fn engine(selection: &str) -> PolicyEngine {
    let cfg: DetectorsConfig = serde_json::from_str("{}").unwrap();
    let sel: BTreeMap<String, DetectorSetting> = serde_json::from_str(selection).unwrap();
    PolicyEngine::compile(&cfg, &sel, "policies.test").unwrap()
}

/// PII and secrets redacted: the demo policy's response side.
pub fn redact_all() -> PolicyEngine {
    engine(r#"{"category:pii": "redact", "category:secret": "redact"}"#)
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/wire").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn reply_text() -> String {
    String::from_utf8(fixture("reply.txt")).unwrap()
}

/// The sensitive values in `reply.txt`; none may ever reach a client.
pub const SECRETS: &[&str] = &["jane.doe@example.com", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "4111 1111 1111 1111"];

/// What `reply.txt` must look like after `redact_all`.
pub const REDACTED_REPLY: &str = "Héllo 👋 — mail [EMAIL_1], token [GITHUB_TOKEN_1], card [CARD_1]. Bye ✓";

pub struct Run {
    pub bytes: Vec<u8>,
    pub blocked: Option<StreamBlock>,
    pub usage: Option<Usage>,
    /// Bytes emitted by each push (then finish), to check hold-back.
    pub per_push: Vec<Vec<u8>>,
    pub filter: StreamFilter,
}

/// Feeds `input` cut at `cuts` (ascending byte offsets), then finishes.
pub fn run_cuts(dialect: Dialect, engine: &PolicyEngine, vault: ScanSession, input: &[u8], cuts: &[usize]) -> Run {
    let mut filter = StreamFilter::new(dialect, vault, StreamLimits::default());
    let mut bytes = Vec::new();
    let mut per_push = Vec::new();
    let mut blocked = None;
    let mut usage = None;
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let out = filter.push(engine, &input[start..cut]);
        start = cut;
        bytes.extend_from_slice(&out.bytes_to_emit);
        per_push.push(out.bytes_to_emit);
        blocked = blocked.or(out.blocked);
        usage = out.usage.or(usage);
    }
    let out = filter.finish(engine);
    bytes.extend_from_slice(&out.bytes_to_emit);
    per_push.push(out.bytes_to_emit);
    blocked = blocked.or(out.blocked);
    usage = out.usage.or(usage);
    Run { bytes, blocked, usage, per_push, filter }
}

pub fn run_whole(dialect: Dialect, engine: &PolicyEngine, input: &[u8]) -> Run {
    run_cuts(dialect, engine, ScanSession::new("request"), input, &[])
}

/// Every `step` bytes.
pub fn run_every(dialect: Dialect, engine: &PolicyEngine, input: &[u8], step: usize) -> Run {
    let cuts: Vec<usize> = (1..input.len()).filter(|i| i % step == 0).collect();
    run_cuts(dialect, engine, ScanSession::new("request"), input, &cuts)
}

pub fn events(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new(1 << 24);
    let mut out = Vec::new();
    parser.push(bytes, &mut out).unwrap();
    out.extend(parser.finish());
    out
}

/// What a client SDK assembles from a stream.
#[derive(Debug, Default)]
pub struct ClientView {
    /// Streamed text per channel (`content[0]`, `tool[0][1]`, `block[2]`, ...).
    pub texts: BTreeMap<String, String>,
    /// Full texts repeated by `*.done` / `response.completed` events.
    pub done_texts: Vec<String>,
    /// Parsed `data:` payloads, in order (`[DONE]` as a string).
    pub payloads: Vec<Value>,
    pub event_names: Vec<Option<String>>,
    pub saw_done: bool,
}

impl ClientView {
    pub fn text(&self, key: &str) -> &str {
        self.texts.get(key).map(String::as_str).unwrap_or("")
    }
}

pub fn client_view(bytes: &[u8]) -> ClientView {
    let mut view = ClientView::default();
    for ev in events(bytes) {
        let Some(data) = ev.data else { continue };
        view.event_names.push(ev.event.clone());
        if data == "[DONE]" {
            view.saw_done = true;
            view.payloads.push(Value::String(data));
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
        let mut add = |k: String, t: &str| view.texts.entry(k).or_default().push_str(t);
        if let Some(choices) = v.get("choices").and_then(Value::as_array) {
            for c in choices {
                let i = c["index"].as_u64().unwrap();
                if let Some(t) = c["delta"]["content"].as_str() {
                    add(format!("content[{i}]"), t);
                }
                if let Some(t) = c["text"].as_str() {
                    add(format!("text[{i}]"), t);
                }
                if let Some(calls) = c["delta"]["tool_calls"].as_array() {
                    for call in calls {
                        let j = call["index"].as_u64().unwrap();
                        if let Some(t) = call["function"]["arguments"].as_str() {
                            add(format!("tool[{i}][{j}]"), t);
                        }
                    }
                }
            }
        }
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "response.output_text.delta" => add(format!("output[{}][{}]", v["output_index"], v["content_index"]), v["delta"].as_str().unwrap()),
            "response.function_call_arguments.delta" => add(format!("args[{}]", v["output_index"]), v["delta"].as_str().unwrap()),
            "response.output_text.done" | "response.function_call_arguments.done" => {
                let t = v.get("text").or_else(|| v.get("arguments")).and_then(Value::as_str).unwrap();
                view.done_texts.push(t.to_string());
            }
            "response.content_part.done" => view.done_texts.push(v["part"]["text"].as_str().unwrap().to_string()),
            "response.output_item.done" => collect_item(&v["item"], &mut view.done_texts),
            "response.completed" => {
                for item in v["response"]["output"].as_array().unwrap() {
                    collect_item(item, &mut view.done_texts);
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                let t = d.get("text").or_else(|| d.get("partial_json")).and_then(Value::as_str).unwrap_or("");
                add(format!("block[{}]", v["index"]), t);
            }
            _ => {}
        }
        view.payloads.push(v);
    }
    view
}

fn collect_item(item: &Value, out: &mut Vec<String>) {
    if let Some(args) = item.get("arguments").and_then(Value::as_str) {
        out.push(args.to_string());
    }
    for part in item.get("content").and_then(Value::as_array).into_iter().flatten() {
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            out.push(t.to_string());
        }
    }
}

pub fn assert_no_secrets(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    for s in SECRETS {
        assert!(!text.contains(s), "{what}: `{s}` reached the client");
    }
}

/// A request session whose vault tokenized `text` under `engine`
/// (an engine with `tokenize` actions); returns the rewritten text too.
pub fn tokenized_vault(engine: &PolicyEngine, text: &str) -> (ScanSession, String) {
    let mut session = ScanSession::new("request");
    let out = match engine.process(text, "messages[0].content", &mut session) {
        meshguard_core::detect::Processed::Rewritten(t) => t,
        other => panic!("expected tokens, got {other:?}"),
    };
    (session, out)
}

/// Builds a chat stream whose content deltas are `pieces` (raw UTF-8 JSON,
/// not ASCII-escaped, as OpenAI sends it).
pub fn chat_stream(pieces: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    let head = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m""#;
    out.push_str(&format!("data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"));
    for p in pieces {
        let content = serde_json::to_string(p).unwrap();
        out.push_str(&format!("data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{content}}},\"finish_reason\":null}}]}}\n\n"));
    }
    out.push_str(&format!("data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n"));
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// `text` cut into pieces of `size` characters.
pub fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size.max(1)).map(|c| c.iter().collect()).collect()
}

/// xorshift64*: a small deterministic PRNG, so a failing property test
/// names its seed and reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
