//! `meshguard scan`: what the filter would do to one request or response
//! body under a policy. The decision comes from `meshguard_core`'s
//! `inspect_request` / `inspect_response`, the functions the filter calls;
//! only the body cap the filter applies while buffering is checked here.

use meshguard_core::detect::ScanSession;
use meshguard_core::dialect::Dialect;
use meshguard_core::inspect::{self, Outcome, RequestExtras};
use meshguard_core::record::{FindingRecord, Verdict};
use meshguard_core::{response, ClientError, CompiledConfig};
use serde_json::{json, Value};

pub struct ScanRequest<'a> {
    pub policy: Option<&'a str>,
    pub path: &'a str,
    pub content_type: &'a str,
    pub response: bool,
    pub body: &'a [u8],
}

/// The report printed as JSON. Findings carry rule ids, fields, counts,
/// offsets and keyed fingerprints — never the matched text.
pub fn scan(config: &CompiledConfig, request: &ScanRequest) -> Result<Value, String> {
    let policy_name = request.policy.unwrap_or(&config.default_policy);
    let policy = config.policy(policy_name).ok_or_else(|| {
        let known: Vec<&str> = config.policies.keys().map(String::as_str).collect();
        format!("no policy `{policy_name}` in this configuration (defined: {})", known.join(", "))
    })?;
    let content_type = Some(request.content_type).filter(|c| !c.is_empty());
    let body = request.body;

    let report = if request.response {
        let dialect = Dialect::detect(request.path, None);
        let cap = config.limits.max_response_bytes;
        if body.len() > cap {
            // As the filter: an answer over the cap is replaced, never passed unscanned.
            let error = ClientError::response_rejected(
                "response_too_large",
                format!("the upstream response exceeds the {cap}-byte limit and was not delivered"),
            );
            let error_body = dialect.error_body(&error);
            refused(Verdict::Reject, dialect, &error, &error_body, Vec::new(), None)
        } else {
            // A response alone has no request vault: `tokenize` placeholders stay as they are.
            let vault = ScanSession::new("request");
            let inspection = response::inspect_response(dialect, &policy.engine, &vault, content_type, body);
            let error_body = inspection.error_body();
            Report {
                outcome: &inspection.outcome,
                verdict: inspection.verdict,
                reason: inspection.reason.as_deref(),
                dialect: inspection.dialect,
                findings: &inspection.findings,
                routed_to: None,
                error_body: error_body.as_deref(),
            }
            .to_json()
        }
    } else if body.len() > policy.max_request_bytes {
        let error = ClientError::body_too_large(policy.max_request_bytes);
        let error_body = error.to_json().into_bytes();
        refused(Verdict::Reject, Dialect::detect(request.path, None), &error, &error_body, Vec::new(), None)
    } else {
        // No canary is placed: it is random per request, so a dry run would only show noise.
        let extras = RequestExtras { fingerprint_key: config.fingerprint_key.as_ref(), ..RequestExtras::default() };
        let inspection = inspect::inspect_request(policy, request.path, content_type, body, extras);
        // Request refusals are sent by the filter in the OpenAI error shape.
        let error_body = match &inspection.outcome {
            Outcome::Refuse(error) => Some(error.to_json().into_bytes()),
            _ => None,
        };
        Report {
            outcome: &inspection.outcome,
            verdict: inspection.verdict,
            reason: inspection.reason.as_deref(),
            dialect: inspection.dialect,
            findings: &inspection.findings,
            routed_to: inspection.routed_to.as_deref(),
            error_body: error_body.as_deref(),
        }
        .to_json()
    };
    let mut out = json!({
        "policy": policy_name,
        "policy_hash": config.config_hash,
        "direction": if request.response { "response" } else { "request" },
        "path": request.path,
    });
    if let (Value::Object(head), Value::Object(rest)) = (&mut out, report) {
        head.extend(rest);
    }
    Ok(out)
}

struct Report<'a> {
    outcome: &'a Outcome,
    verdict: Verdict,
    reason: Option<&'a str>,
    dialect: Dialect,
    findings: &'a [FindingRecord],
    routed_to: Option<&'a str>,
    error_body: Option<&'a [u8]>,
}

impl Report<'_> {
    fn to_json(&self) -> Value {
        let (outcome, body, error) = match self.outcome {
            Outcome::Forward => ("forward", Value::Null, Value::Null),
            Outcome::Rewrite(bytes) => ("rewrite", body_value(bytes), Value::Null),
            Outcome::Refuse(error) => ("refuse", Value::Null, error_value(error, self.error_body)),
        };
        json!({
            "verdict": self.verdict.as_str(),
            "outcome": outcome,
            "reason": self.reason,
            "dialect": self.dialect.as_str(),
            "findings": self.findings,
            "routed_to": self.routed_to,
            "body": body,
            "error": error,
        })
    }
}

fn refused(verdict: Verdict, dialect: Dialect, error: &ClientError, error_body: &[u8], findings: Vec<FindingRecord>, routed_to: Option<&str>) -> Value {
    let outcome = Outcome::Refuse(error.clone());
    Report { outcome: &outcome, verdict, reason: Some(&error.code), dialect, findings: &findings, routed_to, error_body: Some(error_body) }.to_json()
}

/// The status and body the client would receive.
fn error_value(error: &ClientError, body: Option<&[u8]>) -> Value {
    json!({
        "status": error.status,
        "code": error.code,
        "body": body.map_or(Value::Null, body_value),
    })
}

/// A rewritten body as JSON when it is JSON (so it reads as a document), as a string otherwise.
fn body_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
