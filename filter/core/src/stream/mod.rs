//! Redacting an SSE response stream as it passes.
//!
//! Every streamed text (a choice's content, a tool call's arguments, an
//! Anthropic content block) is a [`channel`]: its deltas go to the engine's
//! streaming scan, which releases at once whatever cannot be the start of a
//! match and holds back only what could still grow into one. Each event is
//! re-emitted with its own fields and only the delta text replaced by what
//! may be released (an empty delta while everything is held). Held text is
//! sent when the channel ends, in an event shaped like that dialect's
//! delta, before the event that ends it. Tokenized placeholders from the
//! request are restored on the way out, even when split across events.
//!
//! The glue calls [`StreamFilter::push`] for every body chunk and
//! [`StreamFilter::finish`] at the end of the stream, and sends exactly the
//! bytes returned. A `block` finding ends the stream with the dialect's own
//! error event; nothing after it is sent.

mod anthropic;
mod channel;
mod chat;
mod responses;
pub(crate) mod scan;

use serde_json::{json, Value};

use crate::client_error::ClientError;
use crate::detect::{PolicyEngine, ScanSession};
use crate::request_rules::RequestRules;
use crate::dialect::{anthropic_error, Dialect, Usage};
use crate::record::FindingRecord;
use crate::sse::{self, SseEvent, SseParser};

use channel::{Channel, Key, Shape};

/// Bounds on what one stream may make the filter hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Largest single SSE event (bytes before its blank line).
    pub max_event_bytes: usize,
    /// Largest text one channel may hold back; more means the stream ends
    /// with an error rather than releasing unscanned text.
    pub max_held_bytes: usize,
    /// Released text kept to rewrite the full texts that `*.done` events
    /// repeat; past it those texts are scanned whole instead.
    pub max_retained_bytes: usize,
    /// Distinct text channels (choices × tool calls, content blocks).
    pub max_channels: usize,
}

impl StreamLimits {
    /// Limits for one policy: the engine never holds more than its own
    /// bound per rule, so the hold cap only catches the impossible;
    /// `max_response_bytes` (the non-streamed response cap) bounds the
    /// retained text.
    pub fn for_engine(engine: &PolicyEngine, max_response_bytes: usize) -> Self {
        Self {
            max_held_bytes: engine.stream_hold_bound().saturating_mul(2).max(64 * 1024),
            max_retained_bytes: max_response_bytes,
            ..Self::default()
        }
    }
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: sse::DEFAULT_MAX_EVENT_BYTES,
            max_held_bytes: 64 * 1024,
            max_retained_bytes: 4 * 1024 * 1024,
            max_channels: 256,
        }
    }
}

/// Why a stream was cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBlock {
    /// The detector id, or a `response_*` code when the stream could not be
    /// inspected within the limits.
    pub code: String,
    pub message: String,
    /// A `block` detector fired (verdict `block`); otherwise the response
    /// could not be inspected (verdict `reject`).
    pub by_detector: bool,
}

impl StreamBlock {
    fn detector(id: String) -> Self {
        Self { message: format!("response blocked by meshguard policy: detector `{id}` matched"), code: id, by_detector: true }
    }

    fn limit(code: &str, message: String) -> Self {
        Self { code: code.to_string(), message, by_detector: false }
    }

    /// The error as the OpenAI-shaped client error (status 403 for a
    /// detector, 502 otherwise) — what a non-streaming client would get.
    pub fn client_error(&self) -> ClientError {
        if self.by_detector {
            ClientError::new(403, "policy_violation", self.code.clone(), self.message.clone())
        } else {
            ClientError::response_rejected(&self.code, self.message.clone())
        }
    }
}

/// What to send after one `push` or `finish`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StreamOutput {
    /// Exactly these bytes go to the client (possibly none).
    pub bytes_to_emit: Vec<u8>,
    /// Set once, on the call that ended the stream with an error event.
    pub blocked: Option<StreamBlock>,
    /// The token usage so far, when this call learned something new.
    pub usage: Option<Usage>,
}

/// One response stream's state. Owns the request's scan session (for its
/// token vault); borrows the engine per call, so the glue can keep the
/// compiled configuration elsewhere.
#[derive(Debug)]
pub struct StreamFilter {
    dialect: Dialect,
    /// The dialect the events turned out to speak, for an `Unknown` route.
    seen: Option<Dialect>,
    limits: StreamLimits,
    parser: SseParser,
    /// The request's session: its vault restores tokenized placeholders.
    vault: ScanSession,
    /// Response findings.
    session: ScanSession,
    channels: Vec<Channel>,
    retained: usize,
    usage: Option<Usage>,
    usage_changed: bool,
    ended: bool,
    blocked: Option<StreamBlock>,
    rewritten: bool,
    /// Chat: the chunk fields (id, created, model, ...) for synthesized chunks.
    chat_base: Option<Value>,
    /// Responses: the last `sequence_number` and the response object.
    last_sequence: Option<u64>,
    response_base: Option<Value>,
    /// The request's canary: an answer that repeats it is cut off.
    canary: Option<String>,
    /// The policy's tool allow-list for calls the model makes.
    rules: Option<RequestRules>,
}

impl StreamFilter {
    /// `vault` is the request's scan session (or a fresh one when the
    /// request was not scanned); its tokenized placeholders are restored.
    pub fn new(dialect: Dialect, vault: ScanSession, limits: StreamLimits) -> Self {
        Self {
            dialect,
            seen: None,
            parser: SseParser::new(limits.max_event_bytes),
            limits,
            vault,
            session: ScanSession::new("response"),
            channels: Vec::new(),
            retained: 0,
            usage: None,
            usage_changed: false,
            ended: false,
            blocked: None,
            rewritten: false,
            chat_base: None,
            last_sequence: None,
            response_base: None,
            canary: None,
            rules: None,
        }
    }

    /// Checks the tools the model calls against the policy's allow-list.
    pub fn with_rules(mut self, rules: Option<RequestRules>) -> Self {
        self.rules = rules.filter(|r| r.tools.is_some());
        self
    }

    /// Watches for the canary placed in the request's system prompt.
    pub fn with_canary(mut self, canary: Option<String>) -> Self {
        self.canary = canary.filter(|c| !c.is_empty());
        self
    }

    /// Feeds one body chunk; returns what to send now.
    pub fn push(&mut self, engine: &PolicyEngine, chunk: &[u8]) -> StreamOutput {
        if self.ended {
            return StreamOutput::default();
        }
        let mut events = Vec::new();
        let parsed = self.parser.push(chunk, &mut events);
        let mut out = Vec::new();
        for event in events {
            if let Err(block) = self.handle(engine, event, &mut out) {
                return self.block(out, block);
            }
        }
        if let Err(err) = parsed {
            return self.block(out, StreamBlock::limit("response_event_too_large", format!("{err}; the rest of the response was not sent")));
        }
        self.output(out)
    }

    /// The end of the stream: sends whatever is still held.
    pub fn finish(&mut self, engine: &PolicyEngine) -> StreamOutput {
        if self.ended {
            return StreamOutput::default();
        }
        let mut out = Vec::new();
        if let Some(event) = self.parser.finish() {
            if let Err(block) = self.handle(engine, event, &mut out) {
                return self.block(out, block);
            }
        }
        if let Err(block) = self.flush_where(engine, |_| true, &mut out) {
            return self.block(out, block);
        }
        self.ended = true;
        self.output(out)
    }

    /// Response findings so far (direction `response`).
    pub fn take_findings(&mut self) -> Vec<FindingRecord> {
        self.session.take_findings()
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether any event was changed (verdict `modify`).
    pub fn rewritten(&self) -> bool {
        self.rewritten
    }

    pub fn blocked(&self) -> Option<&StreamBlock> {
        self.blocked.as_ref()
    }

    /// Bytes the filter holds: a partial event plus held channel text.
    pub fn held_bytes(&self) -> usize {
        self.parser.buffered() + self.channels.iter().map(|c| c.pending.len() + c.restore_tail.len()).sum::<usize>()
    }

    fn output(&mut self, bytes_to_emit: Vec<u8>) -> StreamOutput {
        let usage = if std::mem::take(&mut self.usage_changed) { self.usage } else { None };
        StreamOutput { bytes_to_emit, blocked: None, usage }
    }

    fn block(&mut self, mut out: Vec<u8>, block: StreamBlock) -> StreamOutput {
        self.ended = true;
        self.write_error(&block, &mut out);
        self.blocked = Some(block.clone());
        let mut output = self.output(out);
        output.blocked = Some(block);
        output
    }

    fn note_usage(&mut self, usage: Option<Usage>) {
        if let Some(later) = usage {
            let mut merged = self.usage.unwrap_or_default();
            merged.merge(later);
            if self.usage != Some(merged) {
                self.usage = Some(merged);
                self.usage_changed = true;
            }
        }
    }

    fn handle(&mut self, engine: &PolicyEngine, event: SseEvent, out: &mut Vec<u8>) -> Result<(), StreamBlock> {
        let Some(data) = event.data.as_deref() else {
            out.extend_from_slice(&event.raw);
            return Ok(());
        };
        if data.trim() == "[DONE]" {
            self.flush_where(engine, |_| true, out)?;
            out.extend_from_slice(&event.raw);
            return Ok(());
        }
        let Ok(mut value) = serde_json::from_str::<Value>(data) else {
            return self.handle_text(engine, &event, out);
        };
        if let Some(Err(error)) = self.rules.as_ref().map(|rules| rules.check_tool_calls(&value)) {
            return Err(StreamBlock { code: error.code, message: error.message, by_detector: true });
        }
        let mut before = Vec::new();
        let changed = match classify(&value) {
            Some(Dialect::OpenAiChat) => {
                self.seen.get_or_insert(Dialect::OpenAiChat);
                self.chat_event(engine, &mut value, &mut before)?
            }
            Some(Dialect::OpenAiResponses) => {
                self.seen.get_or_insert(Dialect::OpenAiResponses);
                self.responses_event(engine, &event, &mut value, &mut before)?
            }
            Some(Dialect::AnthropicMessages) => {
                self.seen.get_or_insert(Dialect::AnthropicMessages);
                self.anthropic_event(engine, &mut value, &mut before)?
            }
            _ => self.scan_strings(engine, &mut value, "", &[])?,
        };
        out.extend_from_slice(&before);
        if changed {
            self.rewritten = true;
            sse::write_with_data(out, &event, &value.to_string());
        } else {
            out.extend_from_slice(&event.raw);
        }
        Ok(())
    }

    /// A `data:` that is not JSON is one text channel of its own.
    fn handle_text(&mut self, engine: &PolicyEngine, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), StreamBlock> {
        let data = event.data.as_deref().unwrap_or("");
        let idx = self.channel(Key::new("data", 0, 0), || "data".to_string(), || Shape::Data { event: event.event.clone() })?;
        let released = self.feed(engine, idx, data, false)?;
        if released == data {
            out.extend_from_slice(&event.raw);
        } else if !released.is_empty() {
            self.rewritten = true;
            sse::write_with_data(out, event, &released);
        } else {
            self.rewritten = true;
        }
        Ok(())
    }

    /// The channel for `key`, created on first use.
    fn channel(&mut self, key: Key, field: impl FnOnce() -> String, shape: impl FnOnce() -> Shape) -> Result<usize, StreamBlock> {
        if let Some(idx) = self.find(&key) {
            return Ok(idx);
        }
        if self.channels.len() >= self.limits.max_channels {
            return Err(StreamBlock::limit(
                "response_too_many_channels",
                format!("the response streams more than {} separate texts; the rest was not sent", self.limits.max_channels),
            ));
        }
        self.channels.push(Channel::new(key, field(), shape()));
        Ok(self.channels.len() - 1)
    }

    fn find(&self, key: &Key) -> Option<usize> {
        self.channels.iter().position(|c| &c.key == key)
    }

    /// Adds `text` to a channel; returns what may be sent now. With
    /// `is_final` the channel ends and everything left is returned.
    fn feed(&mut self, engine: &PolicyEngine, idx: usize, text: &str, is_final: bool) -> Result<String, StreamBlock> {
        let Some(ch) = self.channels.get_mut(idx) else {
            return Ok(String::new());
        };
        ch.ended = is_final;
        ch.pending.push_str(text);
        let step = scan::stream_step(engine, &ch.pending, is_final, &ch.field, &mut self.session);
        if let Some(id) = step.blocked {
            return Err(StreamBlock::detector(id));
        }
        ch.pending.drain(..step.consumed);
        if ch.pending.len() > self.limits.max_held_bytes {
            return Err(StreamBlock::limit(
                "response_hold_limit",
                format!("a possible match in the response grew past {} bytes; the rest was not sent", self.limits.max_held_bytes),
            ));
        }
        let released = channel::restore(&self.vault, &mut ch.restore_tail, &step.release, is_final);
        if let Some(canary) = &self.canary {
            // The canary completes within one release at the latest, so the
            // client never receives it whole.
            let window = format!("{}{}", ch.canary_tail, released);
            if window.contains(canary.as_str()) {
                return Err(StreamBlock {
                    code: crate::canary::LEAK_CODE.to_string(),
                    message: "the answer repeated the system prompt's canary (a system prompt leak); the rest was not sent".to_string(),
                    by_detector: true,
                });
            }
            let keep = canary.len().saturating_sub(1);
            let mut start = window.len().saturating_sub(keep);
            while start < window.len() && !window.is_char_boundary(start) {
                start += 1;
            }
            ch.canary_tail = window.get(start..).unwrap_or("").to_string();
        }
        if let Some(emitted) = ch.emitted.as_mut() {
            if self.retained.saturating_add(released.len()) > self.limits.max_retained_bytes {
                ch.emitted = None;
            } else {
                self.retained += released.len();
                emitted.push_str(&released);
            }
        }
        Ok(released)
    }

    /// Feeds the string in place; true when it changed.
    fn feed_into(&mut self, engine: &PolicyEngine, idx: usize, text: &mut String, is_final: bool) -> Result<bool, StreamBlock> {
        let released = self.feed(engine, idx, text, is_final)?;
        if released == *text {
            return Ok(false);
        }
        *text = released;
        Ok(true)
    }

    /// Ends every open channel matching `pred`, writing its held text.
    fn flush_where(&mut self, engine: &PolicyEngine, pred: impl Fn(&Key) -> bool, out: &mut Vec<u8>) -> Result<(), StreamBlock> {
        for idx in 0..self.channels.len() {
            let open = self.channels.get(idx).is_some_and(|c| pred(&c.key) && !(c.ended && c.is_idle()));
            if open {
                self.flush_channel(engine, idx, out)?;
            }
        }
        Ok(())
    }

    fn flush_channel(&mut self, engine: &PolicyEngine, idx: usize, out: &mut Vec<u8>) -> Result<(), StreamBlock> {
        let text = self.feed(engine, idx, "", true)?;
        if text.is_empty() {
            return Ok(());
        }
        let Some(shape) = self.channels.get(idx).map(|c| c.shape.clone()) else {
            return Ok(());
        };
        self.rewritten = true;
        self.write_flush(&shape, &text, out);
        Ok(())
    }

    /// The full text of a channel that a `*.done` event repeats: the
    /// channel is ended and `text` becomes what the client was sent. With
    /// no such channel (or past the retention cap) the text is scanned whole.
    fn settle(&mut self, engine: &PolicyEngine, key: &Key, field: &str, text: &mut String, out: &mut Vec<u8>) -> Result<bool, StreamBlock> {
        let Some(idx) = self.find(key) else {
            return self.scan_text(engine, text, field);
        };
        self.flush_channel(engine, idx, out)?;
        match self.channels.get(idx).and_then(|c| c.emitted.as_ref()) {
            Some(full) if full == text => Ok(false),
            Some(full) => {
                *text = full.clone();
                Ok(true)
            }
            None => self.scan_text(engine, text, field),
        }
    }

    fn scan_text(&mut self, engine: &PolicyEngine, text: &mut String, field: &str) -> Result<bool, StreamBlock> {
        let whole = scan::scan_text(engine, text, field, &mut self.session, &self.vault);
        match whole.blocked {
            Some(id) => Err(StreamBlock::detector(id)),
            None => Ok(whole.changed),
        }
    }

    fn scan_strings(&mut self, engine: &PolicyEngine, value: &mut Value, prefix: &str, skip: &[String]) -> Result<bool, StreamBlock> {
        let whole = scan::scan_strings(engine, value, prefix, skip, &mut self.session, &self.vault);
        if let Some(id) = whole.blocked {
            return Err(StreamBlock::detector(id));
        }
        if whole.too_deep {
            return Err(StreamBlock::limit("response_json_too_deep", format!("a response event nests deeper than {}", crate::wire::MAX_DEPTH)));
        }
        Ok(whole.changed)
    }

    fn write_flush(&self, shape: &Shape, text: &str, out: &mut Vec<u8>) {
        match shape {
            Shape::ChatDelta { choice, field } => {
                let mut delta = serde_json::Map::new();
                delta.insert((*field).to_string(), Value::String(text.to_string()));
                self.write_chat_choice(json!({"index": choice, "delta": delta, "logprobs": null, "finish_reason": null}), out);
            }
            Shape::ChatTool { choice, index } => self.write_chat_choice(
                json!({"index": choice, "delta": {"tool_calls": [{"index": index, "function": {"arguments": text}}]}, "logprobs": null, "finish_reason": null}),
                out,
            ),
            Shape::ChatFunctionCall { choice } => self.write_chat_choice(
                json!({"index": choice, "delta": {"function_call": {"arguments": text}}, "logprobs": null, "finish_reason": null}),
                out,
            ),
            Shape::CompletionText { choice } => {
                self.write_chat_choice(json!({"index": choice, "text": text, "logprobs": null, "finish_reason": null}), out)
            }
            Shape::Responses { event, template } => {
                let mut value = template.clone();
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("delta".to_string(), Value::String(text.to_string()));
                }
                sse::write_event(out, event.as_deref(), &value.to_string(), None, None);
            }
            Shape::Anthropic { index, delta_type, field } => {
                let mut delta = serde_json::Map::new();
                delta.insert("type".to_string(), Value::String((*delta_type).to_string()));
                delta.insert((*field).to_string(), Value::String(text.to_string()));
                let value = json!({"type": "content_block_delta", "index": index, "delta": delta});
                sse::write_event(out, Some("content_block_delta"), &value.to_string(), None, None);
            }
            Shape::Data { event } => sse::write_event(out, event.as_deref(), text, None, None),
        }
    }

    fn write_chat_choice(&self, choice: Value, out: &mut Vec<u8>) {
        let mut chunk = self.chat_base.clone().unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
        if let Some(obj) = chunk.as_object_mut() {
            obj.insert("choices".to_string(), Value::Array(vec![choice]));
        }
        sse::write_event(out, None, &chunk.to_string(), None, None);
    }

    /// The dialect's own way to end a stream with an error.
    fn write_error(&self, block: &StreamBlock, out: &mut Vec<u8>) {
        let error = block.client_error();
        let dialect = match self.dialect {
            Dialect::Unknown => self.seen.unwrap_or(Dialect::OpenAiChat),
            known => known,
        };
        match dialect {
            Dialect::AnthropicMessages => {
                sse::write_event(out, Some("error"), &anthropic_error(&error).to_string(), None, None);
            }
            Dialect::OpenAiResponses => {
                let seq = self.last_sequence.map_or(0, |s| s + 1);
                let event = json!({"type": "error", "code": error.code, "message": error.message, "param": null, "sequence_number": seq});
                sse::write_event(out, Some("error"), &event.to_string(), None, None);
                let mut response = self.response_base.clone().unwrap_or_else(|| json!({"object": "response"}));
                if let Some(obj) = response.as_object_mut() {
                    obj.insert("status".to_string(), json!("failed"));
                    obj.insert("error".to_string(), json!({"code": error.code, "message": error.message}));
                    obj.insert("output".to_string(), json!([]));
                    obj.insert("usage".to_string(), Value::Null);
                }
                let failed = json!({"type": "response.failed", "sequence_number": seq + 1, "response": response});
                sse::write_event(out, Some("response.failed"), &failed.to_string(), None, None);
            }
            _ => {
                sse::write_event(out, None, &error.to_json(), None, None);
                sse::write_event(out, None, "[DONE]", None, None);
            }
        }
    }
}

/// Which dialect's event this is, by its shape (an `Unknown` route, or a
/// gateway that translates, still gets the right handling).
fn classify(value: &Value) -> Option<Dialect> {
    if value.get("choices").is_some_and(Value::is_array) {
        return Some(Dialect::OpenAiChat);
    }
    let ty = value.get("type").and_then(Value::as_str)?;
    if ty.starts_with("response.") {
        return Some(Dialect::OpenAiResponses);
    }
    match ty {
        "message_start" | "content_block_start" | "content_block_delta" | "content_block_stop" | "message_delta" | "message_stop" | "ping" => {
            Some(Dialect::AnthropicMessages)
        }
        _ => None,
    }
}
