//! Inspecting a request body under a policy: parse, find the text, run the
//! detectors, and decide to forward, rewrite or refuse. The proxy-wasm glue
//! only moves bytes in and out of this.

use serde_json::Value;

use crate::client_error::ClientError;
use crate::config::{Policy, Unscannable, ROUTE_FIELD};
use crate::canary;
use crate::classify::{ClassifierAction, ClassifierRecord, InjectionPolicy, Role, Roles};
use crate::detect::fingerprint::FingerprintKey;
use crate::detect::{Processed, ScanSession};
use crate::dialect::Dialect;
use crate::json_encode;
use crate::rag;
use crate::record::{FindingRecord, Verdict};
use crate::wire;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send the original bytes on.
    Forward,
    /// Send these bytes instead (valid JSON, other fields untouched).
    Rewrite(Vec<u8>),
    /// Answer the client with this error; the upstream sees nothing.
    Refuse(ClientError),
}

#[derive(Debug)]
pub struct RequestInspection {
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub model: Option<String>,
    pub findings: Vec<FindingRecord>,
    /// The texts after this policy's rewrites, for a sidecar second opinion.
    pub texts: Vec<String>,
    pub dialect: Dialect,
    /// The request's scan state: placeholder numbering and the `tokenize`
    /// vault, which the response side needs to restore originals.
    pub session: ScanSession,
    /// The upstream this request was marked for by `sensitive_route`.
    pub routed_to: Option<String>,
    /// Keyed fingerprint of the prompt's original text.
    pub prompt_fingerprint: Option<String>,
    /// The canary went into the system prompt.
    pub canary_inserted: bool,
    /// Prompt-injection scores, when the policy scores them.
    pub classifier: Option<ClassifierRecord>,
    /// On a `rag` route: the last user message (after redaction), what
    /// retrieval searches for. `Some("")` when the route matched but the
    /// body has no user text to search for.
    pub rag_query: Option<String>,
}

/// Per-request inputs besides the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestExtras<'a> {
    /// For the prompt fingerprint (`detectors.fingerprint_key`).
    pub fingerprint_key: Option<&'a FingerprintKey>,
    /// A canary to put in the system prompt (policies with `canary`).
    pub canary: Option<&'a str>,
}

/// Hex digits of a prompt fingerprint.
const PROMPT_FINGERPRINT_HEX: usize = 16;

impl RequestInspection {
    fn refused(error: ClientError, verdict: Verdict) -> Self {
        Self {
            reason: Some(error.code.clone()),
            outcome: Outcome::Refuse(error),
            verdict,
            model: None,
            findings: Vec::new(),
            texts: Vec::new(),
            dialect: Dialect::Unknown,
            session: ScanSession::new("request"),
            routed_to: None,
            prompt_fingerprint: None,
            canary_inserted: false,
            classifier: None,
            rag_query: None,
        }
    }

    /// Forwarded without a scan because the policy explicitly allows it.
    fn unscanned(reason: &str, dialect: Dialect) -> Self {
        let mut inspection = Self::forward(Verdict::Log, Vec::new(), dialect, ScanSession::new("request"));
        inspection.reason = Some(reason.to_string());
        inspection
    }

    fn forward(verdict: Verdict, findings: Vec<FindingRecord>, dialect: Dialect, session: ScanSession) -> Self {
        Self { outcome: Outcome::Forward, verdict, reason: None, model: None, findings, texts: Vec::new(), dialect, session, routed_to: None, prompt_fingerprint: None, canary_inserted: false, classifier: None, rag_query: None }
    }
}

/// How a body's media type is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Text,
    Unsupported,
}

pub fn body_kind(content_type: Option<&str>) -> BodyKind {
    let Some(content_type) = content_type else {
        // Many clients omit it on JSON APIs; the body decides.
        return BodyKind::Json;
    };
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media == "application/json" || media.ends_with("+json") {
        BodyKind::Json
    } else if media.starts_with("text/") {
        BodyKind::Text
    } else {
        BodyKind::Unsupported
    }
}

/// A compressed response cannot be scanned as it is, so it must not pass;
/// returns the refusal for any `content-encoding` but identity.
pub fn check_content_encoding(content_encoding: Option<&str>) -> Option<ClientError> {
    let encoding = content_encoding?.trim().to_ascii_lowercase();
    if encoding.is_empty() || encoding == "identity" {
        return None;
    }
    Some(ClientError::new(
        415,
        "invalid_request_error",
        "unsupported_content_encoding",
        format!("content-encoding `{encoding}` is not accepted on this route; send the body uncompressed"),
    ))
}

/// Inspects a complete request body sent to `path`.
pub fn inspect_request(policy: &Policy, path: &str, content_type: Option<&str>, body: &[u8], extras: RequestExtras) -> RequestInspection {
    if body.is_empty() {
        let dialect = Dialect::detect(path, None);
        return RequestInspection::forward(Verdict::Allow, Vec::new(), dialect, ScanSession::new("request"));
    }
    match body_kind(content_type) {
        BodyKind::Json => inspect_json(policy, path, body, extras),
        BodyKind::Text => match std::str::from_utf8(body) {
            Ok(text) => inspect_text(policy, path, text),
            Err(_) => RequestInspection::refused(
                ClientError::new(400, "invalid_request_error", "invalid_encoding", "request body is not valid UTF-8"),
                Verdict::Reject,
            ),
        },
        BodyKind::Unsupported if policy.other_media_types == Unscannable::Forward => {
            RequestInspection::unscanned("unscanned_media_type", Dialect::detect(path, None))
        }
        BodyKind::Unsupported => RequestInspection::refused(
            ClientError::new(
                415,
                "invalid_request_error",
                "unsupported_media_type",
                format!("content-type `{}` is not accepted on this route", content_type.unwrap_or_default()),
            ),
            Verdict::Reject,
        ),
    }
}

fn inspect_json(policy: &Policy, path: &str, body: &[u8], extras: RequestExtras) -> RequestInspection {
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) if policy.malformed_json == Unscannable::Forward => {
            return RequestInspection::unscanned("unscanned_malformed_json", Dialect::detect(path, None));
        }
        Err(err) => {
            return RequestInspection::refused(
                ClientError::new(400, "invalid_request_error", "invalid_json", format!("request body is not valid JSON: {err}")),
                Verdict::Reject,
            )
        }
    };
    let model = wire::model_of(&value);
    let dialect = Dialect::detect(path, Some(&value));
    if let Err(error) = policy.rules.check_request(&value) {
        let mut refused = RequestInspection::refused(error, Verdict::Block);
        refused.model = model;
        return refused;
    }
    let mut session = ScanSession::new("request");
    let mut text_bytes = 0usize;
    let mut prompt_text = String::new();
    let mut changed = false;
    let mut blocked: Option<String> = None;
    let mut texts = Vec::new();
    // Only the sidecar reads the scanned texts: a review, or an escalation.
    let keep_texts = policy.sidecar_review || policy.injection.as_ref().is_some_and(|i| i.escalation_budget_ms.is_some());
    let roles = policy.injection.as_ref().map(|_| Roles::of(&value));
    let mut to_score: Vec<(String, Role, String)> = Vec::new();
    let walked = wire::for_each_text_mut(&mut value, &mut |path, text| {
        if blocked.is_some() {
            return;
        }
        if let (Some(injection), Some(roles)) = (&policy.injection, &roles) {
            let role = roles.role_of(path);
            if injection.scans(role) {
                to_score.push((path.to_string(), role, text.clone()));
            }
        }
        text_bytes = text_bytes.saturating_add(text.len());
        if extras.fingerprint_key.is_some() {
            prompt_text.push_str(text);
            prompt_text.push('\u{1f}');
        }
        match policy.engine.process(text, path, &mut session) {
            Processed::Unchanged => {}
            Processed::Rewritten(new_text) => {
                *text = new_text;
                changed = true;
            }
            Processed::Blocked { detector_id } => blocked = Some(detector_id),
        }
        if keep_texts {
            texts.push(text.clone());
        }
    });
    if walked.is_err() {
        return RequestInspection::refused(
            ClientError::new(400, "invalid_request_error", "json_too_deep", format!("request body nests deeper than {}", wire::MAX_DEPTH)),
            Verdict::Reject,
        );
    }
    let findings = session.take_findings();
    if let Err(error) = policy.rules.check_prompt_size(text_bytes) {
        return RequestInspection { reason: Some(error.code.clone()), outcome: Outcome::Refuse(error), verdict: Verdict::Reject, model, findings, texts: Vec::new(), dialect, session, routed_to: None, prompt_fingerprint: None, canary_inserted: false, classifier: None, rag_query: None };
    }
    if let Some(detector_id) = blocked {
        let error = ClientError::blocked(&detector_id);
        return RequestInspection { reason: Some(detector_id), outcome: Outcome::Refuse(error), verdict: Verdict::Block, model, findings, texts: Vec::new(), dialect, session, routed_to: None, prompt_fingerprint: None, canary_inserted: false, classifier: None, rag_query: None };
    }
    let classifier = policy.injection.as_ref().map(|injection| injection.assess(&to_score));
    if let Some(error) = classifier.as_ref().and_then(injection_refusal) {
        return RequestInspection { reason: Some(error.code.clone()), outcome: Outcome::Refuse(error), verdict: Verdict::Block, model, findings, texts: Vec::new(), dialect, session, routed_to: None, prompt_fingerprint: None, canary_inserted: false, classifier, rag_query: None };
    }
    let routed_to = policy
        .sensitive_route
        .as_ref()
        .filter(|route| findings.iter().any(|f| route.categories.iter().any(|c| c == &f.category)))
        .map(|route| route.to.clone());
    if let (Some(to), Value::Object(fields)) = (&routed_to, &mut value) {
        fields.insert(ROUTE_FIELD.to_string(), Value::String(to.clone()));
        changed = true;
    }
    let prompt_fingerprint = extras.fingerprint_key.map(|key| key.fingerprint(&prompt_text, PROMPT_FINGERPRINT_HEX));
    // The verdict speaks of what the detectors did; a canary alone is not a
    // modification of the caller's content (the record flags it separately).
    let verdict = if changed {
        Verdict::Modify
    } else if findings.is_empty() {
        Verdict::Allow
    } else {
        Verdict::Log
    };
    let canary_inserted = extras.canary.is_some_and(|c| canary::insert(&mut value, dialect, c));
    let rag_query = policy.rag.as_ref().filter(|rag| rag.applies_to(path)).map(|_| rag::last_user_text(dialect, &value).unwrap_or_default());
    let outcome = if changed || canary_inserted {
        Outcome::Rewrite(json_encode::to_vec(&value, body.len()))
    } else {
        Outcome::Forward
    };
    RequestInspection { outcome, verdict, reason: None, model, findings, texts, dialect, session, routed_to, prompt_fingerprint, canary_inserted, classifier, rag_query }
}

/// The client error for a request the classifier blocks.
pub const PROMPT_INJECTION: &str = "prompt_injection";

fn injection_refusal(record: &ClassifierRecord) -> Option<ClientError> {
    (record.action == ClassifierAction::Block).then(|| {
        let role = record.role.map_or("", Role::as_str);
        ClientError::new(
            403,
            "policy_violation",
            PROMPT_INJECTION,
            format!("request blocked by meshguard policy: a {role} text scored as a likely prompt injection"),
        )
    })
}

fn score_plain_text(injection: Option<&InjectionPolicy>, text: &str) -> Option<ClassifierRecord> {
    let injection = injection?;
    let role = Role::User;
    let texts = if injection.scans(role) { vec![(String::new(), role, text.to_string())] } else { Vec::new() };
    Some(injection.assess(&texts))
}

fn inspect_text(policy: &Policy, path: &str, text: &str) -> RequestInspection {
    let mut session = ScanSession::new("request");
    let processed = policy.engine.process(text, "", &mut session);
    let findings = session.take_findings();
    let dialect = Dialect::detect(path, None);
    let mut inspection = RequestInspection::forward(Verdict::Allow, findings, dialect, session);
    inspection.classifier = score_plain_text(policy.injection.as_ref(), text);
    if !matches!(processed, Processed::Blocked { .. }) {
        if let Some(error) = inspection.classifier.as_ref().and_then(injection_refusal) {
            inspection.reason = Some(error.code.clone());
            inspection.outcome = Outcome::Refuse(error);
            inspection.verdict = Verdict::Block;
            return inspection;
        }
    }
    match processed {
        Processed::Unchanged => {
            if !inspection.findings.is_empty() {
                inspection.verdict = Verdict::Log;
            }
            inspection.texts = vec![text.to_string()];
        }
        Processed::Rewritten(new_text) => {
            inspection.outcome = Outcome::Rewrite(new_text.as_bytes().to_vec());
            inspection.verdict = Verdict::Modify;
            inspection.texts = vec![new_text];
        }
        Processed::Blocked { detector_id } => {
            inspection.outcome = Outcome::Refuse(ClientError::blocked(&detector_id));
            inspection.reason = Some(detector_id);
            inspection.verdict = Verdict::Block;
        }
    }
    inspection
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::CompiledConfig;

    /// The texts handed to the sidecar, for a policy with or without its review.
    fn kept_texts(review: bool) -> Vec<String> {
        let config = format!(
            r#"{{"version": 1, "auth": {{"mode": "none"}}, "sidecar": {{"cluster": "meshguard-sidecar"}}, "default_policy": "p",
                "policies": {{"p": {{"sidecar_review": {review}, "detectors": {{"email": "redact"}}}}}}}}"#
        );
        let config = CompiledConfig::from_json(config.as_bytes()).unwrap();
        let body = br#"{"model": "m", "messages": [{"role": "user", "content": "mail jane@example.org"}]}"#;
        let policy = config.policy("p").unwrap();
        inspect_request(policy, "/v1/chat/completions", Some("application/json"), body, RequestExtras::default()).texts
    }

    #[test]
    fn scanned_texts_are_kept_only_for_the_sidecar() {
        assert_eq!(kept_texts(true), vec!["mail [EMAIL_1]".to_string()], "the review sees the redacted text");
        assert!(kept_texts(false).is_empty(), "no copy without a reader");
    }
}
