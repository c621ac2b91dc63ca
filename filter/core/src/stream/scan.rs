//! The two ways response text meets the detection engine: incrementally
//! (a channel's pending text, via the engine's streaming API) and whole
//! (a string that arrives complete, e.g. a tool name or a `*.done` text we
//! never saw as deltas). Both restore the request's tokenized placeholders.

use serde_json::Value;

use crate::detect::{PolicyEngine, Processed, ScanSession};
use crate::wire;

/// What the engine settled of a channel's pending text.
#[derive(Debug, Default)]
pub(crate) struct Step {
    /// Text safe to send (already redacted).
    pub release: String,
    /// Bytes of `pending` the release stands for.
    pub consumed: usize,
    /// A `block` detector fired: its id.
    pub blocked: Option<String>,
}

/// One streaming step on `pending`. With `is_final` everything is settled.
pub(crate) fn stream_step(engine: &PolicyEngine, pending: &str, is_final: bool, field: &str, session: &mut ScanSession) -> Step {
    let step = engine.process_stream(pending, is_final, field, session);
    let mut consumed = step.consumed.min(pending.len());
    while consumed > 0 && !pending.is_char_boundary(consumed) {
        consumed -= 1;
    }
    if is_final {
        consumed = pending.len();
    }
    Step { release: step.release, consumed, blocked: step.blocked }
}

/// Keys whose string values in responses are identifiers, opaque blobs or
/// enums: never model text, and some (thinking `signature`, reasoning
/// `encrypted_content`) must reach the client byte for byte.
const OPAQUE_KEYS: &[&str] = &[
    "system_fingerprint",
    "obfuscation",
    "signature",
    "encrypted_content",
    "item_id",
    "call_id",
    "status",
    "embedding",
    "created_at",
    "previous_response_id",
    "stop_reason",
];

/// Whether the string at `path` (a [`wire`] path) is opaque in a response.
/// Token log-probabilities are opaque too: they are dropped, not scanned
/// (one token at a time they cannot be redacted consistently).
pub(crate) fn opaque(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or("");
    let last = last.split('[').next().unwrap_or("");
    OPAQUE_KEYS.contains(&last) || path.split('.').any(|seg| seg.starts_with("logprobs") || seg.starts_with("top_logprobs"))
}

/// Result of scanning whole strings.
#[derive(Debug, Default)]
pub(crate) struct Whole {
    pub changed: bool,
    pub blocked: Option<String>,
    pub too_deep: bool,
}

/// Scans one complete text, rewrites it in place (redactions, then the
/// request's placeholders restored).
pub(crate) fn scan_text(engine: &PolicyEngine, text: &mut String, field: &str, session: &mut ScanSession, vault: &ScanSession) -> Whole {
    let mut whole = Whole::default();
    let rewritten = match engine.process(text, field, session) {
        Processed::Unchanged => None,
        Processed::Rewritten(new_text) => Some(new_text),
        Processed::Blocked { detector_id } => {
            whole.blocked = Some(detector_id);
            return whole;
        }
    };
    let current = rewritten.as_deref().unwrap_or(text.as_str());
    let restored = vault.restore(current).into_owned();
    if restored != *text {
        *text = restored;
        whole.changed = true;
    }
    whole
}

/// Scans every text string of `value` except opaque ones and the paths in
/// `skip` (already settled through a channel). `prefix` is prepended to
/// the field names recorded in findings.
pub(crate) fn scan_strings(
    engine: &PolicyEngine,
    value: &mut Value,
    prefix: &str,
    skip: &[String],
    session: &mut ScanSession,
    vault: &ScanSession,
) -> Whole {
    let mut whole = Whole::default();
    let mut blocked = None;
    let mut changed = false;
    let walked = wire::for_each_text_mut(value, &mut |path, text| {
        if blocked.is_some() || text.is_empty() || opaque(path) || skip.iter().any(|s| s == path) {
            return;
        }
        let field = if prefix.is_empty() { path.to_string() } else { format!("{prefix}.{path}") };
        let one = scan_text(engine, text, &field, session, vault);
        changed |= one.changed;
        blocked = blocked.take().or(one.blocked);
    });
    whole.changed = changed;
    whole.blocked = blocked;
    whole.too_deep = walked.is_err();
    whole
}
