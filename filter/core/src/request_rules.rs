//! Policy rules about what a request asks for, checked before any text is
//! scanned: which model, which tools, how many tokens.

use serde_json::Value;

use crate::client_error::ClientError;

/// A model or tool allow-list entry: an exact name, or a prefix ending in `*`.
fn allowed(list: &[String], name: &str) -> bool {
    list.iter().any(|entry| match entry.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => entry == name,
    })
}

/// Names of the tools a request offers the model: OpenAI chat
/// (`tools[].function.name`), Responses and Anthropic (`tools[].name`).
pub fn tool_names(body: &Value) -> Vec<&str> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .filter_map(|tool| {
            tool.get("function").and_then(|f| f.get("name")).or_else(|| tool.get("name")).and_then(Value::as_str)
        })
        .collect()
}

/// Names of the tools a model calls in an answer or a streamed event:
/// OpenAI chat (`choices[].message.tool_calls[]` and streamed
/// `choices[].delta.tool_calls[]`), Responses (`function_call` items in
/// `output[]` or a streamed `item`), Anthropic (`tool_use` blocks in
/// `content[]` or a streamed `content_block`).
pub fn called_tool_names(value: &Value) -> Vec<&str> {
    let mut names = Vec::new();
    for choice in value.get("choices").and_then(Value::as_array).into_iter().flatten() {
        for holder in ["message", "delta"] {
            let calls = choice.get(holder).and_then(|m| m.get("tool_calls")).and_then(Value::as_array);
            for call in calls.into_iter().flatten() {
                if let Some(name) = call.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
                    names.push(name);
                }
            }
        }
    }
    let items = value.get("output").and_then(Value::as_array).into_iter().flatten().chain(value.get("item"));
    for item in items {
        if item.get("type").and_then(Value::as_str) == Some("function_call") {
            names.extend(item.get("name").and_then(Value::as_str));
        }
    }
    let blocks = value.get("content").and_then(Value::as_array).into_iter().flatten().chain(value.get("content_block"));
    for block in blocks {
        if block.get("type").and_then(Value::as_str) == Some("tool_use") {
            names.extend(block.get("name").and_then(Value::as_str));
        }
    }
    names
}

/// The output tokens a request asks for, whichever dialect's field it uses.
fn requested_output_tokens(body: &Value) -> Option<u64> {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"].iter().find_map(|field| body.get(*field).and_then(Value::as_u64))
}

/// A cheap, conservative prompt-size estimate: about four bytes of text per
/// token for English; good enough to refuse absurd prompts before they cost.
pub fn estimate_tokens(text_bytes: usize) -> u64 {
    (text_bytes as u64).div_ceil(4)
}

#[derive(Debug, Default, Clone)]
pub struct RequestRules {
    pub models: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub max_output_tokens: Option<u64>,
    pub max_prompt_tokens: Option<u64>,
}

impl RequestRules {
    /// Checks what a parsed request body asks for (model, tools, output
    /// tokens): cheap, so it runs before any text is scanned.
    pub fn check_request(&self, body: &Value) -> Result<(), ClientError> {
        if let Some(models) = &self.models {
            let model = body.get("model").and_then(Value::as_str).unwrap_or("");
            if !allowed(models, model) {
                return Err(ClientError::new(
                    403,
                    "policy_violation",
                    "model_not_allowed",
                    format!("model `{}` is not allowed for this caller", model.chars().take(64).collect::<String>()),
                ));
            }
        }
        if let Some(tools) = &self.tools {
            if let Some(name) = tool_names(body).into_iter().find(|name| !allowed(tools, name)) {
                return Err(ClientError::new(
                    403,
                    "policy_violation",
                    "tool_not_allowed",
                    format!("tool `{}` is not allowed for this caller", name.chars().take(64).collect::<String>()),
                ));
            }
        }
        if let (Some(limit), Some(asked)) = (self.max_output_tokens, requested_output_tokens(body)) {
            if asked > limit {
                return Err(ClientError::new(
                    400,
                    "invalid_request_error",
                    "max_tokens_too_large",
                    format!("the request asks for {asked} output tokens; this caller may ask for at most {limit}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks the tools a model calls in an answer against the allow-list.
    pub fn check_tool_calls(&self, answer: &Value) -> Result<(), ClientError> {
        let Some(tools) = &self.tools else {
            return Ok(());
        };
        match called_tool_names(answer).into_iter().find(|name| !allowed(tools, name)) {
            Some(name) => Err(ClientError::new(
                403,
                "policy_violation",
                "tool_not_allowed",
                format!("the model called tool `{}`, which is not allowed for this caller", name.chars().take(64).collect::<String>()),
            )),
            None => Ok(()),
        }
    }

    /// Checks the prompt's estimated size; `text_bytes` is all its text.
    pub fn check_prompt_size(&self, text_bytes: usize) -> Result<(), ClientError> {
        if let Some(limit) = self.max_prompt_tokens {
            let estimate = estimate_tokens(text_bytes);
            if estimate > limit {
                return Err(ClientError::new(
                    400,
                    "invalid_request_error",
                    "prompt_too_long",
                    format!("the prompt is about {estimate} tokens; this caller may send at most {limit}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> RequestRules {
        RequestRules {
            models: Some(vec!["gpt-4o-mini".into(), "claude-3-*".into()]),
            tools: Some(vec!["search".into()]),
            max_output_tokens: Some(500),
            max_prompt_tokens: Some(100),
        }
    }

    #[test]
    fn model_allow_list_with_prefixes() {
        assert!(rules().check_request(&json!({"model": "gpt-4o-mini"})).is_ok());
        assert!(rules().check_request(&json!({"model": "claude-3-haiku"})).is_ok());
        let err = rules().check_request(&json!({"model": "gpt-4o"})).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (403, "model_not_allowed"));
        assert_eq!(rules().check_request(&json!({})).unwrap_err().code, "model_not_allowed");
        assert!(RequestRules::default().check_request(&json!({"model": "anything"})).is_ok());
    }

    #[test]
    fn tool_allow_list_in_both_dialects() {
        let openai = json!({"model": "gpt-4o-mini", "tools": [{"type": "function", "function": {"name": "search"}}]});
        assert!(rules().check_request(&openai).is_ok());
        let anthropic = json!({"model": "claude-3-opus", "tools": [{"name": "search"}, {"name": "shell"}]});
        let err = rules().check_request(&anthropic).unwrap_err();
        assert_eq!(err.code, "tool_not_allowed");
        assert!(err.message.contains("shell"));
    }

    #[test]
    fn tool_calls_in_answers_of_every_dialect() {
        let answers = [
            json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "shell", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "shell"}}]}}]}),
            json!({"output": [{"type": "function_call", "name": "shell", "arguments": "{}"}]}),
            json!({"type": "response.output_item.added", "item": {"type": "function_call", "name": "shell"}}),
            json!({"content": [{"type": "tool_use", "name": "shell", "input": {}}]}),
            json!({"type": "content_block_start", "content_block": {"type": "tool_use", "name": "shell"}}),
        ];
        for answer in &answers {
            assert_eq!(called_tool_names(answer), vec!["shell"], "{answer}");
            assert_eq!(rules().check_tool_calls(answer).unwrap_err().code, "tool_not_allowed");
        }
        let fine = json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "search"}}]}}]});
        assert!(rules().check_tool_calls(&fine).is_ok());
        assert!(RequestRules::default().check_tool_calls(&answers[0]).is_ok());
    }

    #[test]
    fn token_limits() {
        let asks = json!({"model": "gpt-4o-mini", "max_completion_tokens": 501});
        assert_eq!(rules().check_request(&asks).unwrap_err().code, "max_tokens_too_large");
        let fine = json!({"model": "gpt-4o-mini", "max_tokens": 500});
        assert!(rules().check_request(&fine).is_ok());
        assert!(rules().check_prompt_size(400).is_ok());
        assert_eq!(rules().check_prompt_size(401).unwrap_err().code, "prompt_too_long");
    }
}
