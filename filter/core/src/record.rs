//! The decision record: one JSON object per request for SOC teams. It names
//! what happened and why, and never carries matched text, prompts or tokens.

use serde::Serialize;

pub const RECORD_SCHEMA: &str = "meshguard.decision/v1";

/// What meshguard did with the request as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Forwarded as sent.
    #[default]
    Allow,
    /// Forwarded after findings were logged only.
    Log,
    /// Forwarded with parts rewritten (masked, redacted, hashed, tokenized).
    Modify,
    /// Refused by a detector or rule (4xx).
    Block,
    /// Refused because it could not be inspected (size, encoding, syntax).
    Reject,
    /// Refused because a check could not complete and the policy fails closed.
    Unavailable,
}

impl Verdict {
    /// Verdicts only get more severe as a request is processed.
    pub fn escalate(&mut self, to: Verdict) {
        if to.severity() > self.severity() {
            *self = to;
        }
    }

    fn severity(self) -> u8 {
        match self {
            Verdict::Allow => 0,
            Verdict::Log => 1,
            Verdict::Modify => 2,
            Verdict::Reject => 3,
            Verdict::Block => 4,
            Verdict::Unavailable => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Log => "log",
            Verdict::Modify => "modify",
            Verdict::Block => "block",
            Verdict::Reject => "reject",
            Verdict::Unavailable => "unavailable",
        }
    }
}

/// One detector's hits in one field: counts and positions, never the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingRecord {
    pub rule_id: String,
    pub category: String,
    pub action: String,
    /// Where in the request or response: `request`, `response`.
    pub direction: &'static str,
    /// JSON path of the scanned field, e.g. `messages[1].content`.
    pub field: String,
    pub count: usize,
    /// Byte ranges in the field's original text.
    pub offsets: Vec<[usize; 2]>,
    /// Keyed HMAC fingerprints of the matched values (correlation without
    /// disclosure); empty when no fingerprint key is configured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
}

/// What a candidate (shadow) policy would have done with the same request,
/// evaluated beside the enforced one without changing what the client gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowOutcome {
    pub policy: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub findings: usize,
    /// The candidate's verdict or reason differs from the enforced one.
    pub differs: bool,
}

/// A call to the sidecar made for this request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalation {
    pub service: String,
    pub outcome: String,
    pub latency_us: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    pub method: String,
    pub path: String,
    pub authority: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DecisionRecord {
    pub schema: &'static str,
    pub time: String,
    pub request_id: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub tenant: Option<String>,
    pub route: RouteInfo,
    pub model: Option<String>,
    pub policy: Option<String>,
    pub policy_hash: String,
    pub verdict: Verdict,
    /// The rule behind a refusal (the `code` the client saw).
    pub reason: Option<String>,
    /// The status meshguard answered with itself, if it did.
    pub status: Option<u16>,
    /// A check could not complete and the fail mode decided instead.
    pub degraded: bool,
    pub findings: Vec<FindingRecord>,
    pub escalations: Vec<Escalation>,
    /// The upstream a `sensitive_route` sent this request to.
    pub routed_to: Option<String>,
    /// Keyed fingerprint (HMAC) of the prompt's text: the same prompt seen
    /// twice has the same fingerprint; the text itself is never recorded.
    pub prompt_fingerprint: Option<String>,
    /// A canary was placed in the system prompt (its value is not recorded).
    pub canary: bool,
    pub shadow: Option<ShadowOutcome>,
    /// Prompt-injection scores (max, per role, action), when the policy scores them.
    pub classifier: Option<crate::classify::ClassifierRecord>,
    /// Retrieved context put into the prompt (document ids, knowledge-base
    /// version), when the policy has `rag` and the route matched.
    pub rag: Option<crate::rag::RagRecord>,
    /// The API dialect recognised from the route and body.
    pub dialect: Option<&'static str>,
    pub request_bytes: usize,
    pub response_bytes: usize,
    /// Token usage as the upstream reported it (streamed usage included).
    pub usage: Option<crate::dialect::Usage>,
    /// Time spent inside meshguard's callbacks for this request.
    pub added_latency_us: u64,
}

impl DecisionRecord {
    pub fn new(unix_nanos: u128, policy_hash: &str) -> Self {
        Self {
            schema: RECORD_SCHEMA,
            time: rfc3339_millis(unix_nanos),
            policy_hash: policy_hash.to_string(),
            ..Self::default()
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!(r#"{{"schema":"{RECORD_SCHEMA}","error":"unserialisable record"}}"#))
    }
}

/// Formats Unix time as RFC 3339 UTC with milliseconds, without a date crate
/// (days-to-civil from Howard Hinnant's algorithm).
pub fn rfc3339_millis(unix_nanos: u128) -> String {
    let total_ms = unix_nanos / 1_000_000;
    let ms = (total_ms % 1000) as u32;
    let secs = (total_ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        assert_eq!(rfc3339_millis(1_709_210_096_789_000_000), "2024-02-29T12:34:56.789Z");
        assert_eq!(rfc3339_millis(1_795_000_000_000_000_000), "2026-11-18T11:06:40.000Z");
    }

    #[test]
    fn verdict_only_escalates() {
        let mut v = Verdict::Allow;
        v.escalate(Verdict::Modify);
        v.escalate(Verdict::Log);
        assert_eq!(v, Verdict::Modify);
        v.escalate(Verdict::Block);
        assert_eq!(v, Verdict::Block);
    }

    #[test]
    fn record_serialises_with_schema() {
        let mut record = DecisionRecord::new(0, "abc");
        record.verdict = Verdict::Block;
        let value: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(value["schema"], RECORD_SCHEMA);
        assert_eq!(value["verdict"], "block");
        assert_eq!(value["policy_hash"], "abc");
    }
}
