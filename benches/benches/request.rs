//! The per-request steps besides detection, natively: JWT verification
//! (cold and from the verified-token cache), parsing, scanning and
//! rewriting a chat request body as the filter does, redacting a streamed
//! answer chunk by chunk, and the fixed work every request pays whatever
//! its size (a two-byte message and its answer, the decision record).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meshguard_benches::prose;
use meshguard_core::detect::ScanSession;
use meshguard_core::dialect::Dialect;
use meshguard_core::identity::{AuthConfig, Authenticator};
use meshguard_core::inspect::{inspect_request, RequestExtras};
use meshguard_core::record::DecisionRecord;
use meshguard_core::response::inspect_response;
use meshguard_core::stream::{StreamFilter, StreamLimits};
use meshguard_core::CompiledConfig;
use serde_json::{json, Value};

const JWKS: &str = include_str!("../../filter/core/tests/data/identity/jwks.json");
const TOKENS: &str = include_str!("../../filter/core/tests/data/identity/tokens.json");

const POLICY: &str = r#"{"version": 1, "auth": {"mode": "none"}, "default_policy": "standard",
  "policies": {"standard": {"detectors": {"category:pii": "redact", "category:secret": "redact"}}}}"#;

fn authenticator(cache_entries: usize) -> Option<Authenticator> {
    let cfg: AuthConfig = serde_json::from_value(json!({
        "issuer": "https://issuer.test.meshguard.dev",
        "audiences": ["meshguard"],
        "jwks": serde_json::from_str::<Value>(JWKS).ok()?,
        "cache_entries": cache_entries,
    }))
    .ok()?;
    Authenticator::compile(&cfg, "auth").ok()
}

fn jwt(c: &mut Criterion) {
    let Some(fixtures) = serde_json::from_str::<Value>(TOKENS).ok() else { return };
    let now = fixtures["now"].as_u64().unwrap_or(0);
    let mut group = c.benchmark_group("jwt");
    for alg in ["rs256", "es256", "eddsa"] {
        let Some(token) = fixtures["tokens"]["valid"][alg].as_str() else { continue };
        let headers = vec![("authorization".to_string(), format!("Bearer {token}"))];
        for (name, cache) in [("verify", 0usize), ("cached", 1024)] {
            let Some(mut auth) = authenticator(cache) else { continue };
            group.bench_function(BenchmarkId::new(name, alg), |b| b.iter(|| black_box(auth.authenticate(black_box(&headers), now).is_ok())));
        }
    }
    group.finish();
}

fn chat_body(bytes: usize) -> Vec<u8> {
    json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": prose(bytes)}]})
    .to_string()
    .into_bytes()
}

fn request_body(c: &mut Criterion) {
    let Ok(config) = CompiledConfig::from_json(POLICY.as_bytes()) else { return };
    let Some(policy) = config.policy("standard") else { return };
    let mut group = c.benchmark_group("request_body");
    for kib in [1usize, 4, 16, 64] {
        let body = chat_body(kib * 1024);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse_scan_rewrite", format!("{kib}KB")), &body, |b, body| {
            b.iter(|| black_box(inspect_request(policy, "/v1/chat/completions", Some("application/json"), body, RequestExtras::default()).verdict))
        });
    }
    group.finish();
}

/// An OpenAI chat stream of `text`, `per_event` characters per event.
fn sse(text: &str, per_event: usize) -> Vec<Vec<u8>> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(per_event.max(1))
        .map(|piece| {
            let delta: String = piece.iter().collect();
            format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": delta}}]})).into_bytes()
        })
        .collect()
}

fn stream(c: &mut Criterion) {
    let Ok(config) = CompiledConfig::from_json(POLICY.as_bytes()) else { return };
    let Some(policy) = config.policy("standard") else { return };
    let answer = prose(4 * 1024);
    let mut group = c.benchmark_group("stream");
    for per_event in [1usize, 8] {
        let events = sse(&answer, per_event);
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_with_input(BenchmarkId::new("redact_4KB_answer_chars_per_event", per_event), &events, |b, events| {
            b.iter(|| {
                let limits = StreamLimits::for_engine(&policy.engine, 1 << 20);
                let mut filter = StreamFilter::new(Dialect::OpenAiChat, ScanSession::new("request"), limits);
                for event in events {
                    black_box(filter.push(&policy.engine, event));
                }
            })
        });
    }
    group.finish();
}

/// What a request costs when there is almost nothing to scan.
fn fixed(c: &mut Criterion) {
    let Ok(config) = CompiledConfig::from_json(POLICY.as_bytes()) else { return };
    let Some(policy) = config.policy("standard") else { return };
    let mut group = c.benchmark_group("fixed");
    let request = br#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}"#;
    group.bench_function("request_2B_message", |b| {
        b.iter(|| black_box(inspect_request(policy, "/v1/chat/completions", Some("application/json"), request, RequestExtras::default()).verdict))
    });
    let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_763_700_000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}})
    .to_string()
    .into_bytes();
    let vault = ScanSession::new("request");
    group.bench_function("response_short_answer", |b| {
        b.iter(|| black_box(inspect_response(Dialect::OpenAiChat, &policy.engine, &vault, Some("application/json"), &answer).verdict))
    });
    let inspection = inspect_request(policy, "/v1/chat/completions", Some("application/json"), request, RequestExtras::default());
    let mut record = DecisionRecord::new(1_763_700_000_000_000_000, &config.config_hash);
    record.policy = Some("standard".into());
    record.findings.extend(inspection.findings);
    record.verdict.escalate(inspection.verdict);
    group.bench_function("record_to_json", |b| b.iter(|| black_box(record.to_json().len())));
    group.finish();
}

criterion_group!(benches, jwt, request_body, stream, fixed);
criterion_main!(benches);
