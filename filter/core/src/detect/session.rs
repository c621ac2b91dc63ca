//! Per-request state: placeholder numbering, the token vault and the
//! findings. One session spans every text field of a request, so the same
//! email in `messages[0]` and `messages[3]` becomes the same `[EMAIL_1]`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::stream::StreamState;
use crate::record::FindingRecord;

#[derive(Debug)]
pub struct ScanSession {
    direction: &'static str,
    findings: Vec<FindingRecord>,
    /// Per label, the numbers given so far, for redactions and for tokens.
    /// Keyed by `String`, looked up by `&str`: a repeated value costs no
    /// key strings.
    redact_numbers: Labels,
    token_numbers: Labels,
    /// Placeholder → original text, for `tokenize`.
    vault: HashMap<String, String>,
    longest_token: usize,
    /// Incremental scans in progress, by field.
    pub(crate) streams: HashMap<String, StreamState>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Redact,
    Token,
}

/// The numbering of each label seen. A request names a handful of labels
/// (`EMAIL`, `CREDIT_CARD`), so a list compared in order costs less per
/// finding than hashing the label.
#[derive(Debug, Default)]
struct Labels(Vec<(String, Numbering)>);

impl Labels {
    fn numbering(&mut self, label: &str) -> &mut Numbering {
        let i = match self.0.iter().position(|(l, _)| l == label) {
            Some(i) => i,
            None => {
                self.0.push((label.to_string(), Numbering::default()));
                self.0.len() - 1
            }
        };
        // Found, or the one just pushed: in range.
        &mut self.0[i].1
    }
}

/// One label's numbering: value → number, and the last number given.
#[derive(Debug, Default)]
struct Numbering {
    /// Ordered, not hashed: a lookup costs a few short comparisons instead
    /// of hashing the value, and no set of values a request chooses makes
    /// it slower than logarithmic.
    by_value: BTreeMap<String, usize>,
    last: usize,
}

impl ScanSession {
    /// `direction` is recorded in every finding: `request` or `response`.
    pub fn new(direction: &'static str) -> Self {
        Self {
            direction,
            findings: Vec::new(),
            redact_numbers: Labels::default(),
            token_numbers: Labels::default(),
            vault: HashMap::new(),
            longest_token: 0,
            streams: HashMap::new(),
        }
    }

    pub fn direction(&self) -> &'static str {
        self.direction
    }

    pub fn findings(&self) -> &[FindingRecord] {
        &self.findings
    }

    pub fn take_findings(&mut self) -> Vec<FindingRecord> {
        std::mem::take(&mut self.findings)
    }

    pub(crate) fn push_finding(&mut self, record: FindingRecord) {
        self.findings.push(record);
    }

    pub(crate) fn finding_mut(&mut self, index: usize) -> Option<&mut FindingRecord> {
        self.findings.get_mut(index)
    }

    fn number(&mut self, kind: Kind, label: &str, value: &str) -> usize {
        let labels = match kind {
            Kind::Redact => &mut self.redact_numbers,
            Kind::Token => &mut self.token_numbers,
        };
        // One lookup of the label when it is known (every finding after a
        // label's first); its key string only when it is not.
        let numbering = labels.numbering(label);
        if let Some(&n) = numbering.by_value.get(value) {
            return n;
        }
        numbering.last += 1;
        numbering.by_value.insert(value.to_string(), numbering.last);
        numbering.last
    }

    /// Appends `[EMAIL_1]` to `out`: the same value gets the same number
    /// within the request. Written in place: a rewrite appends one per
    /// finding.
    pub(crate) fn push_redact_placeholder(&mut self, out: &mut String, label: &str, value: &str) {
        let n = self.number(Kind::Redact, label, value);
        // By hand: `write!` costs about six times as much per placeholder.
        out.push('[');
        out.push_str(label);
        out.push('_');
        push_decimal(out, n);
        out.push(']');
    }

    /// `[EMAIL_TOKEN_1]`, remembered with the original for [`Self::restore`].
    pub(crate) fn token_placeholder(&mut self, label: &str, value: &str, original: &str) -> String {
        let n = self.number(Kind::Token, label, value);
        let placeholder = format!("[{label}_TOKEN_{n}]");
        if !self.vault.contains_key(&placeholder) {
            self.longest_token = self.longest_token.max(placeholder.len());
            self.vault.insert(placeholder.clone(), original.to_string());
        }
        placeholder
    }

    /// Number of tokenized values held.
    pub fn vault_len(&self) -> usize {
        self.vault.len()
    }

    /// Longest placeholder in the vault: a stream restorer holds back at
    /// most this many bytes so a placeholder split across chunks is still
    /// restored.
    pub fn longest_placeholder(&self) -> usize {
        self.longest_token
    }

    /// Puts tokenized originals back into `text` (response side). Text with
    /// no placeholder is returned borrowed.
    pub fn restore<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.vault.is_empty() || !text.contains("_TOKEN_") {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut i = 0;
        let b = text.as_bytes();
        while let Some(rel) = b.get(i..).and_then(|rest| rest.iter().position(|&c| c == b'[')) {
            let open = i + rel;
            let limit = (open + self.longest_token).min(b.len());
            let close = b.get(open..limit).and_then(|w| w.iter().position(|&c| c == b']')).map(|p| open + p);
            match close.and_then(|c| text.get(open..=c).map(|k| (c, k))) {
                Some((c, key)) => {
                    if let Some(original) = self.vault.get(key) {
                        out.push_str(text.get(last..open).unwrap_or(""));
                        out.push_str(original);
                        last = c + 1;
                        i = c + 1;
                    } else {
                        i = open + 1;
                    }
                }
                None => i = open + 1,
            }
        }
        if last == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(text.get(last..).unwrap_or(""));
        Cow::Owned(out)
    }
}

/// `n` in decimal, appended to `out`.
fn push_decimal(out: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 || at == 0 {
            break;
        }
    }
    for &d in digits.get(at..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    impl ScanSession {
        fn redact_placeholder(&mut self, label: &str, value: &str) -> String {
            let mut out = String::from("text before ");
            self.push_redact_placeholder(&mut out, label, value);
            out.strip_prefix("text before ").unwrap().to_string()
        }
    }

    #[test]
    fn decimals_match_display() {
        let mut powers: Vec<usize> = (0..20).map(|e| 10usize.saturating_pow(e)).collect();
        powers.extend(powers.clone().iter().map(|p| p.saturating_sub(1)));
        powers.extend([usize::MAX, 12_345, 1_000_001]);
        for n in powers.into_iter().chain(0..2_000) {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }

    #[test]
    fn numbering_is_stable_per_value_and_label() {
        let mut s = ScanSession::new("request");
        assert_eq!(s.redact_placeholder("EMAIL", "a@x.io"), "[EMAIL_1]");
        assert_eq!(s.redact_placeholder("EMAIL", "b@x.io"), "[EMAIL_2]");
        assert_eq!(s.redact_placeholder("EMAIL", "a@x.io"), "[EMAIL_1]");
        assert_eq!(s.redact_placeholder("CARD", "4111111111111111"), "[CARD_1]");
        // Tokens are numbered apart from redactions.
        assert_eq!(s.token_placeholder("EMAIL", "b@x.io", "b@x.io"), "[EMAIL_TOKEN_1]");
        assert_eq!(s.redact_placeholder("EMAIL", "c@x.io"), "[EMAIL_3]");
    }

    #[test]
    fn tokens_restore() {
        let mut s = ScanSession::new("request");
        let t = s.token_placeholder("EMAIL", "a@x.io", "a@x.io");
        assert_eq!(t, "[EMAIL_TOKEN_1]");
        assert_eq!(s.restore("write to [EMAIL_TOKEN_1] and [EMAIL_TOKEN_2] [x"), "write to a@x.io and [EMAIL_TOKEN_2] [x");
        assert!(matches!(s.restore("nothing here"), Cow::Borrowed(_)));
        assert_eq!(s.restore("[[EMAIL_TOKEN_1]]"), "[a@x.io]");
    }
}
