//! Errors returned to clients, in the OpenAI error format so that existing
//! SDKs surface them unchanged: `{"error":{"message","type","code"}}`.

use serde::Serialize;

/// One refusal: the HTTP status, a message a developer can act on, the
/// OpenAI error `type`, and `code` — the rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub code: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl ClientError {
    pub fn new(status: u16, kind: &'static str, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind, code: code.into() }
    }

    /// 413: a body over the configured cap is refused, never passed unscanned.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("request body exceeds the {limit}-byte limit of this route; nothing was forwarded"),
        )
    }

    /// 403: a detector whose action is `block` fired.
    pub fn blocked(detector_id: &str) -> Self {
        Self::new(
            403,
            "policy_violation",
            detector_id,
            format!("request blocked by meshguard policy: detector `{detector_id}` matched"),
        )
    }

    /// 503: a check could not complete and the policy fails closed.
    pub fn unavailable(code: &str, what: &str) -> Self {
        Self::new(503, "service_unavailable", code, format!("{what}; the request was not forwarded"))
    }

    /// 502 towards the client when a response could not be inspected.
    pub fn response_rejected(code: &str, message: impl Into<String>) -> Self {
        Self::new(502, "upstream_error", code, message)
    }

    pub fn to_json(&self) -> String {
        let envelope = Envelope {
            error: Body { message: &self.message, kind: self.kind, param: None, code: &self.code },
        };
        // Serialising plain strings cannot fail; fall back to a fixed body anyway
        // so the data path never panics.
        serde_json::to_string(&envelope)
            .unwrap_or_else(|_| r#"{"error":{"message":"request refused","type":"meshguard_error","param":null,"code":"internal"}}"#.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openai_error_shape() {
        let err = ClientError::body_too_large(1024);
        let value: serde_json::Value = serde_json::from_str(&err.to_json()).unwrap();
        assert_eq!(err.status, 413);
        assert_eq!(value["error"]["type"], "invalid_request_error");
        assert_eq!(value["error"]["code"], "request_too_large");
        assert!(value["error"]["message"].as_str().unwrap().contains("1024"));
        assert!(value["error"]["param"].is_null());
    }

    #[test]
    fn escapes_message_text() {
        let err = ClientError::new(400, "invalid_request_error", "bad\"code", "quote \" and \\ backslash");
        let value: serde_json::Value = serde_json::from_str(&err.to_json()).unwrap();
        assert_eq!(value["error"]["code"], "bad\"code");
        assert_eq!(value["error"]["message"], "quote \" and \\ backslash");
    }
}
