//! OpenAI Responses API events. Every `*.delta` event with a string
//! `delta` is a channel keyed by its type, `output_index` and
//! `content_index` (or `summary_index`). The `*.done`, `content_part.done`,
//! `output_item.done` and `response.completed` events repeat full texts:
//! those become exactly what the client was sent on the channel.

use serde_json::Value;

use super::channel::{Key, Shape};
use super::{StreamBlock, StreamFilter};
use crate::detect::PolicyEngine;
use crate::dialect::Usage;
use crate::sse::SseEvent;

/// Fields of a `*.done` event that repeat the channel's full text.
const DONE_TEXT: &[&str] = &["text", "refusal", "arguments", "input"];

impl StreamFilter {
    pub(super) fn responses_event(
        &mut self,
        engine: &PolicyEngine,
        event: &SseEvent,
        value: &mut Value,
        before: &mut Vec<u8>,
    ) -> Result<bool, StreamBlock> {
        let ty = value.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(seq) = value.get("sequence_number").and_then(Value::as_u64) {
            self.last_sequence = Some(seq);
        }
        let oi = value.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        let ci = value.get("content_index").or_else(|| value.get("summary_index")).and_then(Value::as_u64).unwrap_or(0);

        if let Some(prefix) = ty.strip_suffix(".delta") {
            if value.get("delta").is_some_and(Value::is_string) {
                return self.responses_delta(engine, event, value, prefix, oi, ci);
            }
        }
        let mut skip = Vec::new();
        let mut changed = false;
        match ty.as_str() {
            "response.content_part.done" => {
                if let Some(part) = value.get_mut("part") {
                    changed |= self.settle_part(engine, part, (oi, ci), "part", &mut skip, before)?;
                }
            }
            "response.output_item.done" => {
                if let Some(item) = value.get_mut("item") {
                    changed |= self.settle_item(engine, item, oi, "item", &mut skip, before)?;
                }
            }
            "response.created" | "response.in_progress" | "response.queued" | "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(response) = value.get_mut("response") {
                    self.note_usage(response.get("usage").and_then(Usage::from_value));
                    if self.response_base.is_none() {
                        let mut base = response.clone();
                        if let Some(obj) = base.as_object_mut() {
                            obj.insert("output".to_string(), Value::Array(Vec::new()));
                        }
                        self.response_base = Some(base);
                    }
                    let finished = !matches!(ty.as_str(), "response.created" | "response.in_progress" | "response.queued");
                    if let Some(items) = response.get_mut("output").and_then(Value::as_array_mut) {
                        for (o, item) in items.iter_mut().enumerate() {
                            let path = format!("response.output[{o}]");
                            if finished {
                                changed |= self.settle_item(engine, item, o as u64, &path, &mut skip, before)?;
                            }
                        }
                    }
                }
            }
            done if done.ends_with(".done") && !done.ends_with("_part.done") && !done.ends_with("_item.done") => {
                let prefix = done.trim_end_matches(".done");
                if let Some(&field) = DONE_TEXT.iter().find(|f| value.get(**f).is_some_and(Value::is_string)) {
                    let key = Key::new(prefix, oi, ci);
                    if let Some(Value::String(text)) = value.get_mut(field) {
                        changed |= self.settle(engine, &key, &format!("{prefix}[{oi}][{ci}]"), text, before)?;
                    }
                    skip.push(field.to_string());
                }
            }
            _ => {}
        }
        if !engine.is_empty() {
            if let Some(logprobs) = value.get_mut("logprobs").filter(|l| l.as_array().is_some_and(|a| !a.is_empty())) {
                *logprobs = Value::Array(Vec::new());
                changed = true;
            }
        }
        changed |= self.scan_strings(engine, value, "", &skip)?;
        Ok(changed)
    }

    fn responses_delta(&mut self, engine: &PolicyEngine, event: &SseEvent, value: &mut Value, prefix: &str, oi: u64, ci: u64) -> Result<bool, StreamBlock> {
        let key = Key::new(prefix, oi, ci);
        let idx = match self.find(&key) {
            Some(idx) => idx,
            None => {
                let mut template = value.clone();
                if let Some(obj) = template.as_object_mut() {
                    obj.remove("obfuscation");
                    if obj.get("logprobs").is_some_and(|l| !l.is_null()) {
                        obj.insert("logprobs".to_string(), Value::Array(Vec::new()));
                    }
                }
                let field = responses_field(prefix, oi, ci);
                self.channel(key, || field, || Shape::Responses { event: event.event.clone(), template })?
            }
        };
        // The held text, when sent, reuses this event's sequence number.
        if let (Some(seq), Some(Shape::Responses { template, .. })) = (self.last_sequence, self.channels.get_mut(idx).map(|c| &mut c.shape)) {
            if let Some(obj) = template.as_object_mut() {
                obj.insert("sequence_number".to_string(), Value::from(seq));
            }
        }
        let mut changed = false;
        if let Some(Value::String(delta)) = value.get_mut("delta") {
            changed |= self.feed_into(engine, idx, delta, false)?;
        }
        if !engine.is_empty() {
            if let Some(logprobs) = value.get_mut("logprobs").filter(|l| l.as_array().is_some_and(|a| !a.is_empty())) {
                *logprobs = Value::Array(Vec::new());
                changed = true;
            }
        }
        Ok(changed)
    }

    /// An output item that repeats streamed texts: message content parts,
    /// function call arguments, reasoning summaries and text.
    fn settle_item(
        &mut self,
        engine: &PolicyEngine,
        item: &mut Value,
        oi: u64,
        path: &str,
        skip: &mut Vec<String>,
        before: &mut Vec<u8>,
    ) -> Result<bool, StreamBlock> {
        let mut changed = false;
        match item.get("type").and_then(Value::as_str).unwrap_or("") {
            "function_call" | "custom_tool_call" => {
                let (field, prefix) = if item.get("arguments").is_some() {
                    ("arguments", "response.function_call_arguments")
                } else {
                    ("input", "response.custom_tool_call_input")
                };
                if let Some(Value::String(text)) = item.get_mut(field) {
                    changed |= self.settle(engine, &Key::new(prefix, oi, 0), &format!("output[{oi}].{field}"), text, before)?;
                    skip.push(format!("{path}.{field}"));
                }
            }
            "reasoning" => {
                for (list, prefix) in [("summary", "response.reasoning_summary_text"), ("content", "response.reasoning_text")] {
                    if let Some(parts) = item.get_mut(list).and_then(Value::as_array_mut) {
                        for (k, part) in parts.iter_mut().enumerate() {
                            if let Some(Value::String(text)) = part.get_mut("text") {
                                changed |= self.settle(engine, &Key::new(prefix, oi, k as u64), &format!("output[{oi}].{list}[{k}].text"), text, before)?;
                                skip.push(format!("{path}.{list}[{k}].text"));
                            }
                        }
                    }
                }
            }
            _ => {
                if let Some(parts) = item.get_mut("content").and_then(Value::as_array_mut) {
                    for (k, part) in parts.iter_mut().enumerate() {
                        changed |= self.settle_part(engine, part, (oi, k as u64), &format!("{path}.content[{k}]"), skip, before)?;
                    }
                }
            }
        }
        Ok(changed)
    }

    /// A message content part: `output_text.text` or `refusal.refusal`.
    fn settle_part(
        &mut self,
        engine: &PolicyEngine,
        part: &mut Value,
        (oi, ci): (u64, u64),
        path: &str,
        skip: &mut Vec<String>,
        before: &mut Vec<u8>,
    ) -> Result<bool, StreamBlock> {
        let mut changed = false;
        for (field, prefix) in [("text", "response.output_text"), ("refusal", "response.refusal")] {
            if let Some(Value::String(text)) = part.get_mut(field) {
                changed |= self.settle(engine, &Key::new(prefix, oi, ci), &responses_field(prefix, oi, ci), text, before)?;
                skip.push(format!("{path}.{field}"));
            }
        }
        Ok(changed)
    }
}

/// The field name findings carry for a Responses channel.
fn responses_field(prefix: &str, oi: u64, ci: u64) -> String {
    match prefix {
        "response.output_text" => format!("output[{oi}].content[{ci}].text"),
        "response.refusal" => format!("output[{oi}].content[{ci}].refusal"),
        "response.function_call_arguments" => format!("output[{oi}].arguments"),
        "response.reasoning_summary_text" => format!("output[{oi}].summary[{ci}].text"),
        other => format!("{other}[{oi}][{ci}]"),
    }
}
