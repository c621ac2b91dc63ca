//! Anthropic Messages events: one channel per content block index and
//! delta kind (`text_delta`, `input_json_delta`, `thinking_delta`). Held
//! text is sent before the block's `content_block_stop`.

use serde_json::Value;

use super::channel::{Key, Shape};
use super::{StreamBlock, StreamFilter};
use crate::detect::PolicyEngine;
use crate::dialect::Usage;

/// Streamed delta kinds: (delta type, its text field, channel kind).
const DELTAS: &[(&str, &str, &str)] = &[
    ("text_delta", "text", "anthropic.text"),
    ("input_json_delta", "partial_json", "anthropic.json"),
    ("thinking_delta", "thinking", "anthropic.thinking"),
];

impl StreamFilter {
    pub(super) fn anthropic_event(&mut self, engine: &PolicyEngine, value: &mut Value, before: &mut Vec<u8>) -> Result<bool, StreamBlock> {
        let ty = value.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        match ty.as_str() {
            "message_start" => {
                self.note_usage(value.get("message").and_then(|m| m.get("usage")).and_then(Usage::from_value));
                self.scan_strings(engine, value, "", &[])
            }
            "content_block_start" => {
                let Some(block) = value.get_mut("content_block") else {
                    return Ok(false);
                };
                let block_type = block.get("type").and_then(Value::as_str).unwrap_or("").to_string();
                let streamed = match block_type.as_str() {
                    "text" => DELTAS.first(),
                    "thinking" => DELTAS.get(2),
                    _ => None,
                };
                match streamed {
                    Some(&(delta_type, field, kind)) => {
                        let mut changed = false;
                        if let Some(Value::String(text)) = block.get_mut(field) {
                            let idx = self.block_channel(kind, index, delta_type, field)?;
                            changed |= self.feed_into(engine, idx, text, false)?;
                        }
                        let skip = vec![format!("content_block.{field}")];
                        Ok(self.scan_strings(engine, value, "", &skip)? | changed)
                    }
                    None => self.scan_strings(engine, value, "", &[]),
                }
            }
            "content_block_delta" => {
                let delta_type = value.get("delta").and_then(|d| d.get("type")).and_then(Value::as_str).unwrap_or("").to_string();
                if delta_type == "signature_delta" {
                    return Ok(false);
                }
                let Some(&(delta_type, field, kind)) = DELTAS.iter().find(|(t, _, _)| *t == delta_type) else {
                    return self.scan_strings(engine, value, "", &[]);
                };
                let idx = self.block_channel(kind, index, delta_type, field)?;
                match value.get_mut("delta").and_then(|d| d.get_mut(field)) {
                    Some(Value::String(text)) => self.feed_into(engine, idx, text, false),
                    _ => Ok(false),
                }
            }
            "content_block_stop" => {
                self.flush_where(engine, |k| k.kind.starts_with("anthropic.") && k.a == index, before)?;
                Ok(false)
            }
            "message_delta" => {
                self.note_usage(value.get("usage").and_then(Usage::from_value));
                self.flush_where(engine, |k| k.kind.starts_with("anthropic."), before)?;
                self.scan_strings(engine, value, "", &[])
            }
            "message_stop" => {
                self.flush_where(engine, |k| k.kind.starts_with("anthropic."), before)?;
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    fn block_channel(&mut self, kind: &str, index: u64, delta_type: &'static str, field: &'static str) -> Result<usize, StreamBlock> {
        let name = if field == "partial_json" { "input" } else { field };
        self.channel(Key::new(kind, index, 0), || format!("content[{index}].{name}"), || Shape::Anthropic { index, delta_type, field })
    }
}
