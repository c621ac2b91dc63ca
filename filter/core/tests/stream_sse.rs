//! The SSE parser: any chunking gives the same events, every line-end
//! style, comments, multi-line data, the exact original bytes, the cap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshguard_core::sse::{write_event, SseError, SseEvent, SseParser};

fn parse_cuts(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut parser = SseParser::new(1 << 20);
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        parser.push(&input[start..cut], &mut out).unwrap();
        start = cut;
    }
    out.extend(parser.finish());
    out
}

const MIXED: &str = "\u{feff}: hello\r\nevent: a\r\ndata: one\r\ndata:two\r\n\r\nid: 7\rretry: 1500\rdata: é🙂\r\rdata\n\ndata: x\n: comment\nevent: \n\n: keep-alive\n\n";

#[test]
fn fields_and_line_ends() {
    let events = parse_cuts(MIXED.as_bytes(), &[]);
    assert_eq!(events.len(), 5);
    assert_eq!(events[0].event.as_deref(), Some("a"));
    assert_eq!(events[0].data.as_deref(), Some("one\ntwo"));
    assert_eq!(events[1].id.as_deref(), Some("7"));
    assert_eq!(events[1].retry, Some(1500));
    assert_eq!(events[1].data.as_deref(), Some("é🙂"));
    assert_eq!(events[2].data.as_deref(), Some(""), "a bare `data` line is an empty data line");
    assert_eq!(events[3].data.as_deref(), Some("x"));
    assert_eq!(events[3].event.as_deref(), Some(""));
    assert_eq!(events[4].data, None, "comments alone carry no data");
    assert!(events.iter().all(|e| e.complete));
}

#[test]
fn every_split_point_gives_the_same_events_and_bytes() {
    let input = MIXED.as_bytes();
    let whole = parse_cuts(input, &[]);
    for i in 1..input.len() {
        for j in (i + 1..input.len()).step_by(5) {
            let split = parse_cuts(input, &[i, j]);
            assert_eq!(split, whole, "cut at {i} and {j}");
        }
    }
    // One byte at a time, UTF-8 sequences and CRLF pairs split included.
    let cuts: Vec<usize> = (1..input.len()).collect();
    let bytewise = parse_cuts(input, &cuts);
    assert_eq!(bytewise, whole);
    let raw: Vec<u8> = bytewise.iter().flat_map(|e| e.raw.clone()).collect();
    assert_eq!(raw, input, "raw bytes re-assemble the input exactly");
}

#[test]
fn leftover_without_blank_line_is_incomplete() {
    let events = parse_cuts(b"data: a\n\ndata: b", &[]);
    assert_eq!(events.len(), 2);
    assert!(events[0].complete);
    assert!(!events[1].complete);
    assert_eq!(events[1].data.as_deref(), Some("b"));
    assert_eq!(events[1].raw, b"data: b");
}

#[test]
fn an_event_over_the_cap_is_an_error() {
    let mut parser = SseParser::new(64);
    let mut out = Vec::new();
    parser.push(b"data: short\n\n", &mut out).unwrap();
    assert_eq!(out.len(), 1);
    let long = vec![b'x'; 40];
    parser.push(b"data: ", &mut out).unwrap();
    parser.push(&long, &mut out).unwrap();
    assert_eq!(parser.push(&long, &mut out), Err(SseError::EventTooLarge { limit: 64 }));
    // Many small lines without a blank line count too.
    let mut parser = SseParser::new(64);
    let lines = b"data: x\n".repeat(20);
    assert!(parser.push(&lines, &mut Vec::new()).is_err());
}

#[test]
fn writer_round_trips() {
    let mut out = Vec::new();
    write_event(&mut out, Some("content_block_delta"), "line one\nline two\r\nthree", Some("4"), Some(10));
    write_event(&mut out, None, "[DONE]", None, None);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "event: content_block_delta\nid: 4\nretry: 10\ndata: line one\ndata: line two\ndata: three\n\ndata: [DONE]\n\n"
    );
    let events = parse_cuts(&out, &[]);
    assert_eq!(events[0].data.as_deref(), Some("line one\nline two\nthree"));
    assert_eq!(events[0].event.as_deref(), Some("content_block_delta"));
    assert_eq!(events[1].data.as_deref(), Some("[DONE]"));
}
