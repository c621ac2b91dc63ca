//! Finding the text in an LLM request body. Every string value is text to
//! scan except a few structural keys, so a dialect we do not know yet (or a
//! new field in one we do) cannot smuggle a prompt past the detectors.

use serde_json::Value;

/// Keys whose string values are identifiers or enums, never user text.
const STRUCTURAL_KEYS: &[&str] = &[
    "model", "role", "type", "id", "tool_call_id", "object", "finish_reason", "encoding_format", "stop_reason",
    "tool_choice", "service_tier", "reasoning_effort",
];

/// Nesting deeper than this is refused rather than walked: real LLM bodies
/// are shallow, and the bound keeps the walk's stack use fixed.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub struct TooDeep;

/// Calls `visit` with the JSON path and a mutable reference to every text
/// string in `value`. The visitor may rewrite the string in place.
pub fn for_each_text_mut(value: &mut Value, visit: &mut dyn FnMut(&str, &mut String)) -> Result<(), TooDeep> {
    let mut path = String::new();
    walk(value, &mut path, 0, visit)
}

fn walk(value: &mut Value, path: &mut String, depth: usize, visit: &mut dyn FnMut(&str, &mut String)) -> Result<(), TooDeep> {
    if depth > MAX_DEPTH {
        return Err(TooDeep);
    }
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                walk(item, path, depth + 1, visit)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if item.is_string() && STRUCTURAL_KEYS.contains(&key.as_str()) {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(item, path, depth + 1, visit)?;
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// The `model` the request asks for, for the decision record.
pub fn model_of(value: &Value) -> Option<String> {
    value.get("model").and_then(Value::as_str).map(|m| m.chars().take(128).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(mut value: Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for_each_text_mut(&mut value, &mut |path, text| out.push((path.to_string(), text.clone()))).unwrap();
        out
    }

    #[test]
    fn visits_chat_content_and_tool_arguments_but_not_structure() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello"}]},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]}
            ],
            "temperature": 0.2
        });
        let found = texts(body);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "messages[0].content",
                "messages[1].content[0].text",
                "messages[2].tool_calls[0].function.name",
                "messages[2].tool_calls[0].function.arguments"
            ]
        );
    }

    #[test]
    fn rewrites_in_place_and_keeps_field_order() {
        let mut body: Value = serde_json::from_str(r#"{"z":1,"messages":[{"role":"user","content":"secret"}],"a":true}"#).unwrap();
        for_each_text_mut(&mut body, &mut |_, text| *text = text.replace("secret", "[X]")).unwrap();
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"z":1,"messages":[{"role":"user","content":"[X]"}],"a":true}"#);
    }

    #[test]
    fn refuses_excessive_nesting() {
        let mut deep = Value::String("x".into());
        for _ in 0..(MAX_DEPTH + 2) {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(for_each_text_mut(&mut deep, &mut |_, _| {}), Err(TooDeep));
    }
}
