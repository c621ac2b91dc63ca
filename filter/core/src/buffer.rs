//! Body buffering decisions, kept out of the proxy-wasm glue so they are
//! testable: the filter asks what to do with each body callback.

/// What the glue should do after a body callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferStep {
    /// More is coming and fits: keep buffering (return `Pause`).
    Wait,
    /// The whole body is here and within the cap: inspect it.
    Inspect,
    /// The body is over the cap: refuse it; nothing is forwarded.
    TooLarge,
}

/// Decides the next step from the bytes buffered so far.
pub fn next_step(buffered_bytes: usize, end_of_stream: bool, cap: usize) -> BufferStep {
    if buffered_bytes > cap {
        BufferStep::TooLarge
    } else if end_of_stream {
        BufferStep::Inspect
    } else {
        BufferStep::Wait
    }
}

/// A declared `content-length` over the cap lets the filter refuse at the
/// headers, before a single body byte is buffered.
pub fn declared_too_large(content_length: Option<&str>, cap: usize) -> bool {
    content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > cap as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_then_inspects_within_cap() {
        assert_eq!(next_step(10, false, 100), BufferStep::Wait);
        assert_eq!(next_step(100, true, 100), BufferStep::Inspect);
        assert_eq!(next_step(0, true, 100), BufferStep::Inspect);
    }

    #[test]
    fn refuses_over_cap_even_mid_stream() {
        assert_eq!(next_step(101, false, 100), BufferStep::TooLarge);
        assert_eq!(next_step(101, true, 100), BufferStep::TooLarge);
    }

    #[test]
    fn declared_length_checks() {
        assert!(declared_too_large(Some("101"), 100));
        assert!(!declared_too_large(Some("100"), 100));
        assert!(!declared_too_large(Some("junk"), 100));
        assert!(!declared_too_large(None, 100));
    }
}
