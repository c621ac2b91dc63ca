//! Inspecting a complete (non-streamed) response body: the same detectors
//! and actions as on requests, the request's tokenized placeholders put
//! back for the caller, and token usage for the decision record.
//!
//! Every text string is scanned (message content as a string or as parts,
//! refusals, tool-call arguments, Responses output text and function-call
//! arguments, Anthropic text blocks and `tool_use.input` values), except
//! identifiers and opaque blobs (thinking signatures, encrypted reasoning,
//! embeddings). Token log-probabilities are dropped when anything was
//! rewritten: they spell the original text out token by token.

use serde_json::Value;

use crate::client_error::ClientError;
use crate::detect::{PolicyEngine, ScanSession};
use crate::dialect::{Dialect, Usage};
use crate::inspect::{body_kind, BodyKind, Outcome};
use crate::record::{FindingRecord, Verdict};
use crate::stream::scan;

#[derive(Debug)]
pub struct ResponseInspection {
    /// `Forward` (unchanged), `Rewrite` (valid JSON, other fields as they
    /// were) or `Refuse`: replace the response with this error, rendered
    /// for the dialect by [`ResponseInspection::error_body`].
    pub outcome: Outcome,
    pub verdict: Verdict,
    /// The detector or `response_*` code behind a refusal.
    pub reason: Option<String>,
    pub findings: Vec<FindingRecord>,
    pub usage: Option<Usage>,
    pub dialect: Dialect,
}

impl ResponseInspection {
    fn refused(dialect: Dialect, error: ClientError, verdict: Verdict, findings: Vec<FindingRecord>, usage: Option<Usage>) -> Self {
        Self { reason: Some(error.code.clone()), outcome: Outcome::Refuse(error), verdict, findings, usage, dialect }
    }

    /// The body to send for a refusal, in the dialect's error shape.
    pub fn error_body(&self) -> Option<Vec<u8>> {
        match &self.outcome {
            Outcome::Refuse(error) => Some(self.dialect.error_body(error)),
            _ => None,
        }
    }
}

/// Inspects a complete response body. `vault` is the request's scan
/// session (its tokenized placeholders are restored); findings are
/// recorded with direction `response`.
pub fn inspect_response(dialect: Dialect, engine: &PolicyEngine, vault: &ScanSession, content_type: Option<&str>, body: &[u8]) -> ResponseInspection {
    let forward = |verdict| ResponseInspection { outcome: Outcome::Forward, verdict, reason: None, findings: Vec::new(), usage: None, dialect };
    if body.is_empty() {
        return forward(Verdict::Allow);
    }
    match body_kind(content_type) {
        BodyKind::Json => inspect_json(dialect, engine, vault, body),
        BodyKind::Text => match std::str::from_utf8(body) {
            Ok(text) => inspect_text(dialect, engine, vault, text),
            Err(_) => ResponseInspection::refused(
                dialect,
                ClientError::response_rejected("response_invalid_encoding", "the upstream response is not valid UTF-8 text and cannot be inspected"),
                Verdict::Reject,
                Vec::new(),
                None,
            ),
        },
        BodyKind::Unsupported => ResponseInspection::refused(
            dialect,
            ClientError::response_rejected(
                "response_unsupported_media_type",
                format!("the upstream response has content-type `{}`, which cannot be inspected", content_type.unwrap_or_default()),
            ),
            Verdict::Reject,
            Vec::new(),
            None,
        ),
    }
}

fn inspect_json(dialect: Dialect, engine: &PolicyEngine, vault: &ScanSession, body: &[u8]) -> ResponseInspection {
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => {
            return ResponseInspection::refused(
                dialect,
                ClientError::response_rejected("response_invalid_json", format!("the upstream response is not valid JSON: {err}")),
                Verdict::Reject,
                Vec::new(),
                None,
            )
        }
    };
    let dialect = if dialect == Dialect::Unknown { Dialect::from_response_body(&value) } else { dialect };
    let usage = value.get("usage").and_then(Usage::from_value);
    let mut session = ScanSession::new("response");
    let whole = scan::scan_strings(engine, &mut value, "", &[], &mut session, vault);
    let findings = session.take_findings();
    if let Some(detector_id) = whole.blocked {
        let error = ClientError::new(403, "policy_violation", detector_id.clone(), format!("response blocked by meshguard policy: detector `{detector_id}` matched"));
        return ResponseInspection::refused(dialect, error, Verdict::Block, findings, usage);
    }
    if whole.too_deep {
        return ResponseInspection::refused(
            dialect,
            ClientError::response_rejected("response_json_too_deep", format!("the upstream response nests deeper than {}", crate::wire::MAX_DEPTH)),
            Verdict::Reject,
            findings,
            usage,
        );
    }
    if !whole.changed {
        let verdict = if findings.is_empty() { Verdict::Allow } else { Verdict::Log };
        return ResponseInspection { outcome: Outcome::Forward, verdict, reason: None, findings, usage, dialect };
    }
    drop_logprobs(&mut value);
    let bytes = crate::json_encode::to_vec(&value, body.len());
    ResponseInspection { outcome: Outcome::Rewrite(bytes), verdict: Verdict::Modify, reason: None, findings, usage, dialect }
}

fn inspect_text(dialect: Dialect, engine: &PolicyEngine, vault: &ScanSession, text: &str) -> ResponseInspection {
    let mut session = ScanSession::new("response");
    let mut owned = text.to_string();
    let whole = scan::scan_text(engine, &mut owned, "", &mut session, vault);
    let findings = session.take_findings();
    if let Some(detector_id) = whole.blocked {
        let error = ClientError::new(403, "policy_violation", detector_id.clone(), format!("response blocked by meshguard policy: detector `{detector_id}` matched"));
        return ResponseInspection::refused(dialect, error, Verdict::Block, findings, None);
    }
    let (outcome, verdict) = if whole.changed {
        (Outcome::Rewrite(owned.into_bytes()), Verdict::Modify)
    } else if findings.is_empty() {
        (Outcome::Forward, Verdict::Allow)
    } else {
        (Outcome::Forward, Verdict::Log)
    };
    ResponseInspection { outcome, verdict, reason: None, findings, usage: None, dialect }
}

/// Chat and legacy completions carry `choices[].logprobs`; Responses
/// `output[].content[].logprobs`.
fn drop_logprobs(value: &mut Value) {
    if let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            if let Some(l) = choice.get_mut("logprobs").filter(|l| !l.is_null()) {
                *l = Value::Null;
            }
        }
    }
    if let Some(items) = value.get_mut("output").and_then(Value::as_array_mut) {
        for item in items {
            if let Some(parts) = item.get_mut("content").and_then(Value::as_array_mut) {
                for part in parts {
                    if let Some(l) = part.get_mut("logprobs").filter(|l| l.is_array()) {
                        *l = Value::Array(Vec::new());
                    }
                }
            }
        }
    }
}
