//! A text channel: one incrementally streamed text (a choice's content, one
//! tool call's arguments, one Anthropic content block). Each keeps what
//! the engine still holds back, what the placeholder restorer holds back,
//! and the full text released so far (the `*.done` events repeat it).

use serde_json::Value;

use crate::detect::ScanSession;

/// Identifies a channel within one stream: a kind (`chat.content`,
/// `response.output_text`, `anthropic.text`, ...) and up to two indexes
/// (choice and tool call, output and content index, block index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub kind: String,
    pub a: u64,
    pub b: u64,
}

impl Key {
    pub fn new(kind: &str, a: u64, b: u64) -> Self {
        Self { kind: kind.to_string(), a, b }
    }
}

/// How held text is sent when the channel ends: an event shaped like the
/// dialect's own delta for that channel.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// Chat `choices[i].delta.<field>`.
    ChatDelta { choice: u64, field: &'static str },
    /// Chat `choices[i].delta.tool_calls[j].function.arguments`.
    ChatTool { choice: u64, index: u64 },
    /// Chat legacy `choices[i].delta.function_call.arguments`.
    ChatFunctionCall { choice: u64 },
    /// Legacy completions `choices[i].text`.
    CompletionText { choice: u64 },
    /// A Responses `*.delta` event: the channel's last delta event with its
    /// `delta` replaced.
    Responses { event: Option<String>, template: Value },
    /// Anthropic `content_block_delta` of the given delta type and field.
    Anthropic { index: u64, delta_type: &'static str, field: &'static str },
    /// Non-JSON `data:` text.
    Data { event: Option<String> },
}

#[derive(Debug)]
pub(crate) struct Channel {
    pub key: Key,
    /// Field name in findings, e.g. `choices[0].delta.content`.
    pub field: String,
    pub shape: Shape,
    /// Received, not yet settled by the engine.
    pub pending: String,
    /// Settled and redacted, held only because it may be the start of a
    /// tokenized placeholder.
    pub restore_tail: String,
    /// Everything sent to the client on this channel; `None` once the
    /// retention cap was reached (then `*.done` texts are scanned whole).
    pub emitted: Option<String>,
    /// Ended (flushed); more text reopens it.
    pub ended: bool,
    /// The last released characters, so a canary split across events is
    /// still seen whole.
    pub canary_tail: String,
}

impl Channel {
    pub fn new(key: Key, field: String, shape: Shape) -> Self {
        Self { key, field, shape, pending: String::new(), restore_tail: String::new(), emitted: Some(String::new()), ended: false, canary_tail: String::new() }
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.restore_tail.is_empty()
    }
}

/// Restores the request's tokenized placeholders in `text`, keeping back
/// (in `tail`) an unfinished `[LABEL_TOKEN_` that the next text may
/// complete. Nothing is held when the request tokenized nothing.
pub(crate) fn restore(vault: &ScanSession, tail: &mut String, text: &str, is_final: bool) -> String {
    if vault.vault_len() == 0 {
        let mut out = std::mem::take(tail);
        out.push_str(text);
        return out;
    }
    let mut combined = std::mem::take(tail);
    combined.push_str(text);
    let cut = if is_final { combined.len() } else { hold_point(&combined, vault.longest_placeholder()) };
    let ready = combined.get(..cut).unwrap_or("");
    let restored = vault.restore(ready).into_owned();
    *tail = combined.get(cut..).unwrap_or("").to_string();
    restored
}

/// Where a possible placeholder prefix starts: the last `[` followed only
/// by placeholder characters and shorter than the longest placeholder.
fn hold_point(text: &str, longest: usize) -> usize {
    let Some(open) = text.rfind('[') else {
        return text.len();
    };
    let rest = text.get(open + 1..).unwrap_or("");
    let could_grow = rest.len() + 1 < longest && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if could_grow {
        open
    } else {
        text.len()
    }
}
