//! OpenAI chat completion chunks (and legacy completions, which share the
//! `choices` framing): one channel per choice for `delta.content` (and
//! `refusal`, reasoning text), one per tool call for its arguments.

use serde_json::Value;

use super::channel::{Key, Shape};
use super::{StreamBlock, StreamFilter};
use crate::detect::PolicyEngine;
use crate::dialect::Usage;

/// Streamed text fields of a chat `delta`, besides tool calls.
const DELTA_TEXT: &[&str] = &["content", "refusal", "reasoning_content", "reasoning"];

impl StreamFilter {
    pub(super) fn chat_event(&mut self, engine: &PolicyEngine, value: &mut Value, before: &mut Vec<u8>) -> Result<bool, StreamBlock> {
        self.note_usage(value.get("usage").and_then(Usage::from_value));
        if self.chat_base.is_none() {
            let mut base = value.clone();
            if let Some(obj) = base.as_object_mut() {
                obj.remove("choices");
                obj.remove("usage");
                obj.remove("obfuscation");
            }
            self.chat_base = Some(base);
        }
        let mut changed = false;
        let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) else {
            return Ok(false);
        };
        for (pos, choice) in choices.iter_mut().enumerate() {
            let ci = choice.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let finishing = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            if let Some(delta) = choice.get_mut("delta") {
                changed |= self.chat_delta(engine, ci, delta, finishing)?;
            }
            if let Some(Value::String(text)) = choice.get_mut("text") {
                let idx = self.channel(Key::new("chat.text", ci, 0), || format!("choices[{ci}].text"), || Shape::CompletionText { choice: ci })?;
                changed |= self.feed_into(engine, idx, text, finishing)?;
            }
            if !engine.is_empty() {
                if let Some(logprobs) = choice.get_mut("logprobs").filter(|l| !l.is_null()) {
                    *logprobs = Value::Null;
                    changed = true;
                }
            }
            if finishing {
                self.flush_where(engine, |k| k.kind.starts_with("chat.") && k.a == ci, before)?;
            }
        }
        Ok(changed)
    }

    fn chat_delta(&mut self, engine: &PolicyEngine, ci: u64, delta: &mut Value, finishing: bool) -> Result<bool, StreamBlock> {
        let mut changed = false;
        for &field in DELTA_TEXT {
            if let Some(Value::String(text)) = delta.get_mut(field) {
                let kind = format!("chat.{field}");
                let idx = self.channel(Key::new(&kind, ci, 0), || format!("choices[{ci}].delta.{field}"), || Shape::ChatDelta { choice: ci, field })?;
                changed |= self.feed_into(engine, idx, text, finishing)?;
            }
        }
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (pos, call) in calls.iter_mut().enumerate() {
                let ti = call.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
                let Some(function) = call.get_mut("function") else {
                    continue;
                };
                if let Some(Value::String(name)) = function.get_mut("name") {
                    changed |= self.scan_text(engine, name, &format!("choices[{ci}].delta.tool_calls[{ti}].function.name"))?;
                }
                if let Some(Value::String(args)) = function.get_mut("arguments") {
                    let idx = self.channel(
                        Key::new("chat.tool", ci, ti),
                        || format!("choices[{ci}].delta.tool_calls[{ti}].function.arguments"),
                        || Shape::ChatTool { choice: ci, index: ti },
                    )?;
                    changed |= self.feed_into(engine, idx, args, finishing)?;
                }
            }
        }
        if let Some(Value::String(args)) = delta.get_mut("function_call").and_then(|f| f.get_mut("arguments")) {
            let idx = self.channel(
                Key::new("chat.function_call", ci, 0),
                || format!("choices[{ci}].delta.function_call.arguments"),
                || Shape::ChatFunctionCall { choice: ci },
            )?;
            changed |= self.feed_into(engine, idx, args, finishing)?;
        }
        Ok(changed)
    }
}
