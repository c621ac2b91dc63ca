//! Which LLM API a call speaks. The path decides (it is what the client
//! chose and what the upstream will route on); the body is the fallback for
//! gateways that expose one path for everything. The dialect picks the
//! response fields to scan and the shape of errors a client's SDK can read.

use serde_json::{json, Value};

use crate::client_error::ClientError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI `/v1/chat/completions` (and the many servers that copy it).
    OpenAiChat,
    /// OpenAI `/v1/responses`.
    OpenAiResponses,
    /// OpenAI legacy `/v1/completions`.
    OpenAiCompletions,
    /// OpenAI `/v1/embeddings`.
    OpenAiEmbeddings,
    /// Anthropic `/v1/messages`.
    AnthropicMessages,
    /// Anything else: every string value is text.
    Unknown,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAiChat => "openai.chat",
            Dialect::OpenAiResponses => "openai.responses",
            Dialect::OpenAiCompletions => "openai.completions",
            Dialect::OpenAiEmbeddings => "openai.embeddings",
            Dialect::AnthropicMessages => "anthropic.messages",
            Dialect::Unknown => "unknown",
        }
    }

    /// The dialect named by a request path. Prefixes are tolerated
    /// (`/openai/v1/chat/completions`, Azure's
    /// `/openai/deployments/x/chat/completions?api-version=..`), as is a
    /// trailing slash; the query string is ignored.
    pub fn from_path(path: &str) -> Option<Dialect> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.trim_end_matches('/');
        let mut segments = path.rsplit('/');
        let last = segments.next().unwrap_or("");
        let before = segments.next().unwrap_or("");
        match (before, last) {
            ("chat", "completions") => Some(Dialect::OpenAiChat),
            (_, "completions") => Some(Dialect::OpenAiCompletions),
            (_, "responses") => Some(Dialect::OpenAiResponses),
            (_, "embeddings") => Some(Dialect::OpenAiEmbeddings),
            (_, "messages") => Some(Dialect::AnthropicMessages),
            _ => None,
        }
    }

    /// The dialect a request body looks like. Anthropic and OpenAI chat both
    /// carry `messages`; Anthropic is told apart by its top-level `system`,
    /// its required `max_tokens` without OpenAI-only fields, or its content
    /// block types.
    pub fn from_request_body(body: &Value) -> Dialect {
        let Some(obj) = body.as_object() else {
            return Dialect::Unknown;
        };
        if let Some(messages) = obj.get("messages").and_then(Value::as_array) {
            let anthropic_blocks = messages.iter().any(|m| {
                m.get("content").and_then(Value::as_array).is_some_and(|parts| {
                    parts.iter().any(|p| {
                        matches!(p.get("type").and_then(Value::as_str), Some("tool_use" | "tool_result" | "thinking" | "document"))
                            || p.get("source").is_some()
                    })
                })
            });
            let openai_only = ["n", "logprobs", "response_format", "frequency_penalty", "presence_penalty", "max_completion_tokens", "stream_options"]
                .iter()
                .any(|k| obj.contains_key(*k))
                || messages.iter().any(|m| matches!(m.get("role").and_then(Value::as_str), Some("system" | "developer" | "tool")));
            let anthropic = anthropic_blocks || obj.contains_key("system") || (obj.contains_key("max_tokens") && obj.contains_key("anthropic_version"));
            return if anthropic && !openai_only { Dialect::AnthropicMessages } else { Dialect::OpenAiChat };
        }
        if obj.contains_key("prompt") {
            return Dialect::OpenAiCompletions;
        }
        if obj.contains_key("input") {
            let embedding_only = obj.contains_key("encoding_format") || obj.contains_key("dimensions");
            let responses_only = ["instructions", "previous_response_id", "tools", "reasoning", "text", "store", "stream", "max_output_tokens"]
                .iter()
                .any(|k| obj.contains_key(*k))
                || obj.get("input").and_then(Value::as_array).is_some_and(|items| items.iter().any(Value::is_object));
            return if embedding_only || !responses_only { Dialect::OpenAiEmbeddings } else { Dialect::OpenAiResponses };
        }
        Dialect::Unknown
    }

    /// The dialect a (non-streamed) response body looks like.
    pub fn from_response_body(body: &Value) -> Dialect {
        match (body.get("object").and_then(Value::as_str), body.get("type").and_then(Value::as_str)) {
            (Some("chat.completion" | "chat.completion.chunk"), _) => Dialect::OpenAiChat,
            (Some("response"), _) => Dialect::OpenAiResponses,
            (Some("text_completion"), _) => Dialect::OpenAiCompletions,
            (Some("list"), _) => Dialect::OpenAiEmbeddings,
            (_, Some("message")) => Dialect::AnthropicMessages,
            _ => Dialect::Unknown,
        }
    }

    /// Path first, body as the fallback.
    pub fn detect(path: &str, request_body: Option<&Value>) -> Dialect {
        Dialect::from_path(path).or_else(|| request_body.map(Dialect::from_request_body)).unwrap_or(Dialect::Unknown)
    }

    /// An error body this dialect's SDKs parse: Anthropic's
    /// `{"type":"error","error":{"type","message"}}`, else OpenAI's
    /// `{"error":{"message","type","param","code"}}`.
    pub fn error_body(self, error: &ClientError) -> Vec<u8> {
        match self {
            Dialect::AnthropicMessages => anthropic_error(error).to_string().into_bytes(),
            _ => error.to_json().into_bytes(),
        }
    }
}

/// Anthropic's error object; its `type` comes from Anthropic's own list
/// (the OpenAI-style `code`, the rule that fired, goes in the message).
pub(crate) fn anthropic_error(error: &ClientError) -> Value {
    let kind = match error.status {
        400 | 415 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": format!("{} ({})", error.message, error.code)}})
}

/// Token counts for the decision record, from whichever names the dialect
/// uses (`prompt_tokens`/`completion_tokens` or `input_tokens`/`output_tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl Usage {
    /// Reads a `usage` object; `None` when it holds no count.
    pub fn from_value(usage: &Value) -> Option<Usage> {
        let count = |keys: &[&str]| keys.iter().find_map(|k| usage.get(*k).and_then(Value::as_u64));
        let input = count(&["input_tokens", "prompt_tokens"]);
        let output = count(&["output_tokens", "completion_tokens"]);
        let total = count(&["total_tokens"]);
        if input.is_none() && output.is_none() && total.is_none() {
            return None;
        }
        Some(Usage { input_tokens: input, output_tokens: output, total_tokens: total })
    }

    /// Later reports win field by field (Anthropic sends input tokens in
    /// `message_start` and the final output count in `message_delta`).
    pub fn merge(&mut self, later: Usage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.total_tokens = later.total_tokens.or(self.total_tokens);
    }

    /// The total, computed when the dialect does not send one.
    pub fn total(&self) -> Option<u64> {
        self.total_tokens.or_else(|| Some(self.input_tokens?.saturating_add(self.output_tokens?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(Dialect::from_path("/v1/chat/completions"), Some(Dialect::OpenAiChat));
        assert_eq!(Dialect::from_path("/openai/v1/chat/completions/"), Some(Dialect::OpenAiChat));
        assert_eq!(Dialect::from_path("/openai/deployments/gpt/chat/completions?api-version=2024-06-01"), Some(Dialect::OpenAiChat));
        assert_eq!(Dialect::from_path("/v1/completions"), Some(Dialect::OpenAiCompletions));
        assert_eq!(Dialect::from_path("/v1/responses"), Some(Dialect::OpenAiResponses));
        assert_eq!(Dialect::from_path("/v1/embeddings"), Some(Dialect::OpenAiEmbeddings));
        assert_eq!(Dialect::from_path("/anthropic/v1/messages"), Some(Dialect::AnthropicMessages));
        assert_eq!(Dialect::from_path("/v1/models"), None);
        assert_eq!(Dialect::from_path(""), None);
    }

    #[test]
    fn bodies() {
        let d = |s: &str| Dialect::from_request_body(&serde_json::from_str(s).unwrap());
        assert_eq!(d(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#), Dialect::OpenAiChat);
        assert_eq!(d(r#"{"model":"m","system":"be brief","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#), Dialect::AnthropicMessages);
        assert_eq!(d(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"x"}]}]}"#), Dialect::AnthropicMessages);
        assert_eq!(d(r#"{"model":"m","input":"hi","instructions":"x"}"#), Dialect::OpenAiResponses);
        assert_eq!(d(r#"{"model":"m","input":[{"role":"user","content":"hi"}]}"#), Dialect::OpenAiResponses);
        assert_eq!(d(r#"{"model":"m","input":["a","b"]}"#), Dialect::OpenAiEmbeddings);
        assert_eq!(d(r#"{"model":"m","prompt":"once"}"#), Dialect::OpenAiCompletions);
        assert_eq!(d(r#"[1]"#), Dialect::Unknown);
        assert_eq!(Dialect::detect("/x", None), Dialect::Unknown);
    }

    #[test]
    fn usage_names_and_merge() {
        let mut u = Usage::from_value(&json!({"input_tokens": 10, "output_tokens": 1})).unwrap();
        u.merge(Usage::from_value(&json!({"output_tokens": 42})).unwrap());
        assert_eq!(u, Usage { input_tokens: Some(10), output_tokens: Some(42), total_tokens: None });
        assert_eq!(u.total(), Some(52));
        let c = Usage::from_value(&json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})).unwrap();
        assert_eq!(c.total(), Some(7));
        assert_eq!(Usage::from_value(&json!({})), None);
    }

    #[test]
    fn anthropic_errors_use_anthropic_types() {
        let body = Dialect::AnthropicMessages.error_body(&ClientError::blocked("email"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("email"));
    }
}
