//! Server-sent events (the WHATWG `text/event-stream` format), parsed
//! incrementally from whatever byte chunks the proxy hands over.
//!
//! Lines are split on raw `\n` / `\r` bytes, which never occur inside a
//! multi-byte UTF-8 sequence, so a character split between chunks is simply
//! part of a line not yet complete. Every event keeps the exact bytes it
//! came from: an event nobody changes is re-emitted byte for byte.

use std::fmt;

/// Largest partial event held by default: far above any real LLM event,
/// small enough that a stream without blank lines cannot exhaust memory.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One dispatched event (or a block of comments / blank lines, which has no
/// `data`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default `message`.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`; `None` when there was no `data` field.
    pub data: Option<String>,
    pub id: Option<String>,
    pub retry: Option<u64>,
    /// The exact bytes of this event, including its terminating blank line
    /// and any comments or stray line-end bytes before it.
    pub raw: Vec<u8>,
    /// False for bytes left at the end of the stream without a blank line
    /// (a conforming client drops such an event).
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// An event grew past the cap before its blank line arrived.
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => write!(f, "a server-sent event exceeds {limit} bytes"),
        }
    }
}

/// Incremental parser: `push` chunks, collect complete events.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Bytes of the current line, without its line end.
    line: Vec<u8>,
    /// Bytes of the current event so far (complete lines, with line ends).
    raw: Vec<u8>,
    /// The previous byte was `\r`: a `\n` right after it belongs to it.
    after_cr: bool,
    at_stream_start: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes: max_event_bytes.max(1),
            line: Vec::new(),
            raw: Vec::new(),
            after_cr: false,
            at_stream_start: true,
            event: None,
            data: None,
            id: None,
            retry: None,
        }
    }

    /// Bytes held for an event not yet complete.
    pub fn buffered(&self) -> usize {
        self.raw.len() + self.line.len()
    }

    /// Feeds a chunk; complete events are appended to `out`. After an error
    /// the parser must not be used again.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if let Some((b'\n', tail)) = rest.split_first() {
                    self.raw.push(b'\n');
                    rest = tail;
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.line.extend_from_slice(rest);
                    rest = &[];
                }
                Some(i) => {
                    let (head, tail) = rest.split_at(i);
                    let Some((&eol, tail)) = tail.split_first() else {
                        break;
                    };
                    self.line.extend_from_slice(head);
                    self.after_cr = eol == b'\r';
                    self.raw.extend_from_slice(&self.line);
                    self.raw.push(eol);
                    self.end_line(out);
                    rest = tail;
                }
            }
            if self.buffered() > self.max_event_bytes {
                return Err(SseError::EventTooLarge { limit: self.max_event_bytes });
            }
        }
        Ok(())
    }

    /// The end of the stream: whatever is left, as an incomplete event.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.raw.extend_from_slice(&line);
            self.field(&line);
        }
        if self.raw.is_empty() {
            return None;
        }
        let mut event = self.take_event();
        event.complete = false;
        Some(event)
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            let event = self.take_event();
            out.push(event);
        } else {
            self.field(&line);
        }
    }

    fn field(&mut self, mut line: &[u8]) {
        if self.at_stream_start {
            self.at_stream_start = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let (name, value) = line.split_at(i);
                let value = value.get(1..).unwrap_or_default();
                (name, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => self.event = Some(value.into_owned()),
            b"data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            },
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => self.retry = value.parse().ok(),
            _ => {}
        }
    }

    fn take_event(&mut self) -> SseEvent {
        self.at_stream_start = false;
        SseEvent {
            event: self.event.take(),
            data: self.data.take(),
            id: self.id.take(),
            retry: self.retry.take(),
            raw: std::mem::take(&mut self.raw),
            complete: true,
        }
    }
}

/// Writes an event in canonical form (`\n` line ends, one `data:` line per
/// line of `data`, a blank line at the end).
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) {
    if let Some(name) = event {
        push_field(out, "event", name);
    }
    if let Some(id) = id {
        push_field(out, "id", id);
    }
    if let Some(retry) = retry {
        push_field(out, "retry", &retry.to_string());
    }
    for line in split_lines(data) {
        push_field(out, "data", line);
    }
    out.push(b'\n');
}

/// Writes `event` again with `data` in place of its own, keeping its name,
/// id and retry.
pub fn write_with_data(out: &mut Vec<u8>, event: &SseEvent, data: &str) {
    write_event(out, event.event.as_deref(), data, event.id.as_deref(), event.retry);
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    // A line end inside a single-line field would start a new field.
    for c in value.chars() {
        if c != '\n' && c != '\r' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out.push(b'\n');
}

/// Splits on `\r\n`, `\n` and `\r`, as a parser will split the field again.
fn split_lines(data: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = data.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\n' || b == b'\r' {
            lines.push(data.get(start..i).unwrap_or(""));
            if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    lines.push(data.get(start..).unwrap_or(""));
    lines
}
