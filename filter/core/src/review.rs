//! The sidecar review protocol (`POST /v1/classify`), shared by the filter
//! that asks and the sidecar that answers so the two cannot drift apart.

use serde::{Deserialize, Serialize};

pub const CLASSIFY_PATH: &str = "/v1/classify";

/// Upper bound on what the filter accepts back from the sidecar.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    pub policy: String,
    pub texts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifyResponse {
    /// `allow` or `block`.
    pub verdict: String,
    /// The rule that decided a `block`; becomes the client error's `code`.
    #[serde(default)]
    pub code: Option<String>,
    /// Optional per-rule scores behind the verdict (e.g. the similarity of
    /// the texts to each semantic deny topic); older sidecars omit it and the
    /// filter does not need it to act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<std::collections::BTreeMap<String, f32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewVerdict {
    Allow,
    Block { code: String },
}

pub fn request_body(policy: &str, texts: &[String]) -> String {
    let request = ClassifyRequest { policy: policy.to_string(), texts: texts.to_vec() };
    serde_json::to_string(&request).unwrap_or_else(|_| String::from("{}"))
}

/// Reads the sidecar's answer. Any failure is reported as a short reason
/// (for the decision record) and left to the policy's fail mode.
pub fn parse_response(status: Option<&str>, body: &[u8]) -> Result<ReviewVerdict, &'static str> {
    let response: ClassifyResponse = parse_answer(status, body, MAX_RESPONSE_BYTES)?;
    match response.verdict.as_str() {
        "allow" => Ok(ReviewVerdict::Allow),
        "block" => Ok(ReviewVerdict::Block { code: response.code.unwrap_or_else(|| "sidecar_block".to_string()) }),
        _ => Err("unknown_verdict"),
    }
}

/// Any sidecar answer: a 200 with a JSON body of at most `max_bytes`, else
/// the short reason the decision record gives.
pub fn parse_answer<T: serde::de::DeserializeOwned>(status: Option<&str>, body: &[u8], max_bytes: usize) -> Result<T, &'static str> {
    match status {
        None => return Err("no_response"),
        Some("200") => {}
        Some(_) => return Err("error_status"),
    }
    if body.len() > max_bytes {
        return Err("response_too_large");
    }
    serde_json::from_slice(body).map_err(|_| "malformed_response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_verdicts() {
        assert_eq!(parse_response(Some("200"), br#"{"verdict":"allow"}"#), Ok(ReviewVerdict::Allow));
        assert_eq!(
            parse_response(Some("200"), br#"{"verdict":"block","code":"deny_topic"}"#),
            Ok(ReviewVerdict::Block { code: "deny_topic".into() })
        );
    }

    #[test]
    fn failures_are_reasons_not_verdicts() {
        assert_eq!(parse_response(None, b""), Err("no_response"));
        assert_eq!(parse_response(Some("503"), br#"{"verdict":"allow"}"#), Err("error_status"));
        assert_eq!(parse_response(Some("200"), b"not json"), Err("malformed_response"));
        assert_eq!(parse_response(Some("200"), br#"{"verdict":"maybe"}"#), Err("unknown_verdict"));
    }

    #[test]
    fn scores_are_optional_and_ignored_by_the_verdict() {
        assert_eq!(
            parse_response(Some("200"), br#"{"verdict":"block","code":"weapons","scores":{"weapons":0.81}}"#),
            Ok(ReviewVerdict::Block { code: "weapons".into() })
        );
    }

    #[test]
    fn request_round_trips() {
        let body = request_body("strict", &["a".into(), "b\"c".into()]);
        let parsed: ClassifyRequest = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, ClassifyRequest { policy: "strict".into(), texts: vec!["a".into(), "b\"c".into()] });
    }
}
