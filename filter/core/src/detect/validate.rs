//! Validators: the second opinion after a pattern matched. Patterns find
//! shapes; validators check what a shape cannot (checksums, number ranges,
//! randomness, placeholders), which is where precision comes from.
//!
//! A validator gets the scanned text and the candidate span and returns the
//! span to act on — possibly narrowed (an IBAN trimmed to its country
//! length) or widened (a PEM header extended to its END line) — or `None`.

use std::ops::Range;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

/// Which check confirms a candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    /// The pattern alone decides.
    None,
    Email,
    Phone,
    /// Luhn plus known issuer prefixes and lengths.
    PaymentCard,
    /// Luhn only (custom detectors).
    Luhn,
    UsSsn,
    /// Country length table plus ISO 7064 mod-97.
    Iban,
    Ipv4,
    Ipv6,
    UkNino,
    /// A plausible calendar date (used with context patterns).
    Date,
    AwsAccessKeyId,
    /// A token with a fixed prefix: reject placeholders (`xxxx`, repeats)
    /// and require some randomness in the part after the prefix.
    Token { min_entropy: f64 },
    /// A PEM private key: widen the header to the END line (or to the end
    /// of the base64 body when the END line is missing).
    PrivateKey,
    Jwt,
    /// The password of a URL with credentials.
    UrlPassword,
    /// The value of a `password=` / `api_key:` style assignment.
    Assignment,
    /// Shannon entropy at least this many bits per character (custom).
    Entropy(f64),
}

impl Validator {
    /// Names accepted in custom detector configuration.
    pub const CUSTOM_NAMES: &'static [&'static str] = &["luhn", "iban", "us_ssn", "payment_card", "entropy"];

    pub fn check(self, hay: &str, span: Range<usize>) -> Option<Range<usize>> {
        let value = hay.get(span.clone())?;
        match self {
            Validator::None => Some(span),
            Validator::Email => email(value).then_some(span),
            Validator::Phone => phone(hay, span),
            Validator::PaymentCard => payment_card(hay, span),
            Validator::Luhn => luhn(&digits(value)).then_some(span),
            Validator::UsSsn => us_ssn(hay, span),
            Validator::Iban => iban(hay, span),
            Validator::Ipv4 => ipv4(hay, span),
            Validator::Ipv6 => ipv6(value).then_some(span),
            Validator::UkNino => uk_nino(value).then_some(span),
            Validator::Date => date(value).then_some(span),
            Validator::AwsAccessKeyId => aws_key_id(value).then_some(span),
            Validator::Token { min_entropy } => token(value, min_entropy).then_some(span),
            Validator::PrivateKey => private_key(hay, span),
            Validator::Jwt => jwt(value).then_some(span),
            Validator::UrlPassword => credential(value).then_some(span),
            Validator::Assignment => (assignment_value(value) && !benign_name(assigned_to(hay, span.start))).then_some(span),
            Validator::Entropy(min) => (shannon_entropy(value) >= min).then_some(span),
        }
    }
}

/// ASCII digits of a value, separators dropped.
pub fn digits(value: &str) -> Vec<u8> {
    // Sized up front: `collect` after `filter` grows from nothing.
    let mut out = Vec::with_capacity(value.len());
    out.extend(value.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0'));
    out
}

/// The ASCII digits of a short value, separators dropped, as
/// [`digits`] gives them but on the stack: validators run on every
/// candidate, and most values are a few digits long. `None` when there are
/// more than `N`.
fn digits_upto<const N: usize>(value: &str) -> Option<([u8; N], usize)> {
    let mut buf = [0u8; N];
    let mut len = 0;
    for b in value.bytes().filter(u8::is_ascii_digit) {
        *buf.get_mut(len)? = b - b'0';
        len += 1;
    }
    Some((buf, len))
}

/// The Luhn (mod 10) check used by payment cards.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.len() < 2 {
        return false;
    }
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut d = u32::from(d);
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

fn prefix_num(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0u32, |acc, &d| acc * 10 + u32::from(d))
}

/// Known issuer prefixes and lengths: a Luhn-valid number outside every
/// issuer range is almost always an order or tracking number, not a card.
pub fn card_issuer(digits: &[u8]) -> Option<&'static str> {
    let len = digits.len();
    let p1 = prefix_num(digits, 1);
    let p2 = prefix_num(digits, 2);
    let p3 = prefix_num(digits, 3);
    let p4 = prefix_num(digits, 4);
    let p6 = prefix_num(digits, 6);
    if p1 == 4 && matches!(len, 13 | 16 | 19) {
        return Some("visa");
    }
    if ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16 {
        return Some("mastercard");
    }
    if (p2 == 34 || p2 == 37) && len == 15 {
        return Some("amex");
    }
    if (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622_126..=622_925).contains(&p6)) && (16..=19).contains(&len) {
        return Some("discover");
    }
    // JCB's assigned range is 3528-3589; the whole 35 block is taken, as
    // card generators (Faker, and test data made with it) use it.
    if (p2 == 35 && (16..=19).contains(&len)) || ((p4 == 2131 || p4 == 1800) && len == 15) {
        return Some("jcb");
    }
    if ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && (14..=19).contains(&len) {
        return Some("diners");
    }
    if p2 == 62 && (16..=19).contains(&len) {
        return Some("unionpay");
    }
    if (p2 == 50 || (56..=69).contains(&p2)) && (12..=19).contains(&len) {
        return Some("maestro");
    }
    None
}

fn payment_card(hay: &str, span: Range<usize>) -> Option<Range<usize>> {
    let value = hay.get(span.clone())?;
    let ok = |v: &str| {
        let Some((buf, len)) = digits_upto::<19>(v) else {
            return false;
        };
        let d = buf.get(..len).unwrap_or_default();
        (12..=19).contains(&len) && luhn(d) && card_issuer(d).is_some() && !all_same(d)
    };
    if ok(value) {
        return Some(span);
    }
    // The pattern is greedy across separators: a card followed by another
    // digit group ("4111 1111 1111 1111 2029") fails as a whole. Retry with
    // trailing groups dropped.
    let mut end = value.len();
    while let Some(cut) = value.get(..end).and_then(|v| v.rfind([' ', '-', '.'])) {
        let head = value.get(..cut)?.trim_end_matches([' ', '-', '.']);
        if head.bytes().filter(u8::is_ascii_digit).count() < 12 {
            break;
        }
        if ok(head) {
            return Some(span.start..span.start + head.len());
        }
        end = head.len();
    }
    None
}

fn all_same(d: &[u8]) -> bool {
    d.windows(2).all(|w| w.first() == w.get(1))
}

fn before(hay: &str, start: usize, window: usize) -> &str {
    let mut from = start.saturating_sub(window);
    while from > 0 && !hay.is_char_boundary(from) {
        from -= 1;
    }
    hay.get(from..start).unwrap_or("")
}

fn after(hay: &str, end: usize, window: usize) -> &str {
    let mut to = (end + window).min(hay.len());
    while to < hay.len() && !hay.is_char_boundary(to) {
        to += 1;
    }
    hay.get(end..to).unwrap_or("")
}

/// Case-insensitive ASCII containment, without allocating.
pub fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    !n.is_empty() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// [`contains_ci`] where the match is a whole word, or its plural: no
/// ASCII letter or digit right before it or after it (or after an `s`
/// there). "TIN:" and "SSNs" count; the "tin" of "Tintin" does not.
pub fn contains_word_ci(hay: &str, word: &str) -> bool {
    let (h, n) = (hay.as_bytes(), word.as_bytes());
    let alnum_at = |i: usize| h.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let ends_word = |i: usize| !alnum_at(i) || (h.get(i).is_some_and(|b| b.eq_ignore_ascii_case(&b's')) && !alnum_at(i + 1));
    !n.is_empty() && h.windows(n.len()).enumerate().any(|(i, w)| w.eq_ignore_ascii_case(n) && (i == 0 || !alnum_at(i - 1)) && ends_word(i + n.len()))
}

/// US SSN: area 001–899 except 666, group 01–99, serial 0001–9999, not the
/// advertising numbers. Separated forms (`123-45-6789`, `123 45 6789`) stand
/// alone; nine bare digits need context ("SSN", "social security") because
/// nine-digit numbers are everywhere in prose.
fn us_ssn(hay: &str, span: Range<usize>) -> Option<Range<usize>> {
    let value = hay.get(span.clone())?;
    let (d, 9) = digits_upto::<9>(value)? else {
        return None;
    };
    let area = prefix_num(&d, 3);
    let group = u32::from(d.get(3).copied()?) * 10 + u32::from(d.get(4).copied()?);
    let serial = d.iter().skip(5).fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return None;
    }
    if matches!(value, "078-05-1120" | "219-09-9999" | "123-45-6789") {
        return None;
    }
    let grouped = {
        let b = value.as_bytes();
        b.len() == 11 && b.get(3) == b.get(6) && matches!(b.get(3), Some(b'-' | b' ' | b'.'))
    };
    if grouped && value.bytes().filter(|b| !b.is_ascii_digit()).all(|s| s == b'-') {
        return Some(span);
    }
    let ctx = before(hay, span.start, 40);
    let has_context = ["ssn", "social security", "ss#", "ss #", "ss no", "tin"].iter().any(|k| contains_word_ci(ctx, k));
    (has_context || (grouped && after(hay, span.end, 1) != "-")).then_some(span)
}

/// IBAN length per country (ISO 13616 registry).
pub fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "AD" => 24, "AE" => 23, "AL" => 28, "AT" => 20, "AZ" => 28, "BA" => 20, "BE" => 16,
        "BG" => 22, "BH" => 22, "BI" => 27, "BR" => 29, "BY" => 28, "CH" => 21, "CR" => 22,
        "CY" => 28, "CZ" => 24, "DE" => 22, "DJ" => 27, "DK" => 18, "DO" => 28, "EE" => 20,
        "EG" => 29, "ES" => 24, "FI" => 18, "FK" => 18, "FO" => 18, "FR" => 27, "GB" => 22,
        "GE" => 22, "GI" => 23, "GL" => 18, "GR" => 27, "GT" => 28, "HR" => 21, "HU" => 28,
        "IE" => 22, "IL" => 23, "IQ" => 23, "IS" => 26, "IT" => 27, "JO" => 30, "KW" => 30,
        "KZ" => 20, "LB" => 28, "LC" => 32, "LI" => 21, "LT" => 20, "LU" => 20, "LV" => 21,
        "LY" => 25, "MC" => 27, "MD" => 24, "ME" => 22, "MK" => 19, "MN" => 20, "MR" => 27,
        "MT" => 31, "MU" => 30, "NI" => 28, "NL" => 18, "NO" => 15, "OM" => 23, "PK" => 24,
        "PL" => 28, "PS" => 29, "PT" => 25, "QA" => 29, "RO" => 24, "RS" => 22, "RU" => 33,
        "SA" => 24, "SC" => 31, "SD" => 18, "SE" => 24, "SI" => 19, "SK" => 24, "SM" => 27,
        "SO" => 23, "ST" => 25, "SV" => 28, "TL" => 23, "TN" => 24, "TR" => 26, "UA" => 29,
        "VA" => 22, "VG" => 24, "XK" => 20, "YE" => 30,
        _ => return None,
    })
}

/// ISO 7064 mod 97-10 over an IBAN (country and check digits moved last).
pub fn iban_mod97(compact: &str) -> bool {
    let b = compact.as_bytes();
    if b.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b.iter().skip(4).chain(b.iter().take(4)) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            b'a'..=b'z' => u32::from(c - b'a') + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

fn iban(hay: &str, span: Range<usize>) -> Option<Range<usize>> {
    let value = hay.get(span.clone())?;
    let country = value.get(..2)?.to_ascii_uppercase();
    let want = iban_length(&country)?;
    // Trim to the country's length: the pattern may run on into a
    // following code-like word.
    let mut compact = String::with_capacity(want);
    let mut end = 0;
    for (i, c) in value.char_indices() {
        if c == ' ' {
            continue;
        }
        compact.push(c);
        if compact.len() == want {
            end = i + c.len_utf8();
            break;
        }
    }
    if compact.len() != want || !iban_mod97(&compact) {
        return None;
    }
    // The value must end at a token boundary, not in the middle of a word.
    let next = hay.get(span.start + end..)?.chars().next();
    if next.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(span.start..span.start + end)
}

fn ipv4(hay: &str, span: Range<usize>) -> Option<Range<usize>> {
    // Part of a longer dotted run (an OID, a version like 1.2.3.4.5) is not an address.
    let prev = before(hay, span.start, 1);
    let next = after(hay, span.end, 2);
    let nb = next.as_bytes();
    if prev == "." || (nb.first() == Some(&b'.') && nb.get(1).is_some_and(u8::is_ascii_digit)) {
        return None;
    }
    let value = hay.get(span.clone())?;
    value.parse::<std::net::Ipv4Addr>().ok().map(|_| span)
}

fn ipv6(value: &str) -> bool {
    let Ok(addr) = value.parse::<std::net::Ipv6Addr>() else {
        return false;
    };
    // `::`, `a::`, `add::beef` parse but are far more often code than
    // addresses; require some digits and two groups at least.
    let groups = value.split(':').filter(|g| !g.is_empty()).count();
    let has_digit = value.bytes().any(|b| b.is_ascii_digit());
    !addr.is_unspecified() && (groups >= 2 || addr.is_loopback()) && has_digit
}

fn uk_nino(value: &str) -> bool {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let prefix = compact.get(..2).unwrap_or("").to_ascii_uppercase();
    !matches!(prefix.as_str(), "BG" | "GB" | "KN" | "NK" | "NT" | "TN" | "ZZ")
}

fn month_of(name: &str) -> Option<u32> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    months.iter().position(|m| n.starts_with(m)).map(|i| i as u32 + 1)
}

/// A plausible date of birth: month 1–12, day 1–31, year 1900–2099 or two digits.
fn date(value: &str) -> bool {
    let parts: Vec<&str> = value
        .split(|c: char| c == '/' || c == '-' || c == '.' || c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty() && *p != "of")
        .collect();
    if parts.len() != 3 {
        return false;
    }
    let num = |s: &str| -> Option<u32> {
        let s = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        s.parse().ok()
    };
    let year_ok = |y: u32, s: &str| (s.len() == 4 && (1900..=2099).contains(&y)) || s.len() == 2;
    let day_ok = |d: u32| (1..=31).contains(&d);
    let (a, b, c) = (parts.first().copied().unwrap_or(""), parts.get(1).copied().unwrap_or(""), parts.get(2).copied().unwrap_or(""));
    // Month names: "March 3, 1985", "3rd of March 1985".
    if let Some(m) = month_of(a).filter(|_| a.chars().next().is_some_and(|ch| ch.is_ascii_alphabetic())) {
        return m > 0 && num(b).is_some_and(day_ok) && num(c).is_some_and(|y| year_ok(y, c));
    }
    if let Some(m) = month_of(b).filter(|_| b.chars().next().is_some_and(|ch| ch.is_ascii_alphabetic())) {
        return m > 0 && num(a).is_some_and(day_ok) && num(c).is_some_and(|y| year_ok(y, c));
    }
    let (Some(x), Some(y), Some(z)) = (num(a), num(b), num(c)) else {
        return false;
    };
    if a.len() == 4 {
        // ISO: year-month-day.
        return year_ok(x, a) && (1..=12).contains(&y) && day_ok(z);
    }
    // Day/month or month/day, year last.
    year_ok(z, c) && ((1..=12).contains(&x) && day_ok(y) || (1..=12).contains(&y) && day_ok(x))
}

fn aws_key_id(value: &str) -> bool {
    !value.ends_with("EXAMPLE") && !has_placeholder_run(value)
}

/// Shannon entropy in bits per character.
pub fn shannon_entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    // Which bytes occur: the sum visits only those, in ascending byte
    // order like a walk over all 256, so it adds the same terms in the
    // same order (a threshold compares the same bits).
    let mut seen = [0u64; 4];
    let mut n = 0u32;
    for b in value.bytes() {
        let i = usize::from(b);
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
        if let Some(word) = seen.get_mut(i >> 6) {
            *word |= 1 << (i & 63);
        }
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    let term = |c: u32| {
        let p = f64::from(c) / n;
        -p * p.log2()
    };
    // Counts repeat (most bytes of a token occur once or twice): each
    // small count's term is computed once.
    let mut small: [Option<f64>; 16] = [None; 16];
    // `f64`'s `Sum` starts from -0.0; so does this.
    let mut sum = -0.0;
    for (w, &word) in seen.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let i = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let c = counts.get(i).copied().unwrap_or(0);
            sum += match small.get_mut(c as usize) {
                Some(Some(t)) => *t,
                Some(slot) => *slot.insert(term(c)),
                None => term(c),
            };
        }
    }
    sum
}

/// Runs like `xxxx`, `0000`, `****`, `XXXXXXXX`, `abcdefgh`: the shape of
/// documentation placeholders, never of a generated secret.
fn has_placeholder_run(value: &str) -> bool {
    // One pass over runs of the same byte (ASCII case folded): five of
    // any non-digit, four of `x` or `*`, ten of `0`; and over runs of
    // letters in alphabet order (`abcdefgh`): eight. (Digits in order are
    // left alone: `Summer12345678` is a weak password, still a password.)
    // A byte either repeats the one before or not, so each byte updates
    // one of the two runs.
    let mut prev = 0u8;
    let (mut run, mut ascending) = (0u32, 0u32);
    for b in value.bytes().map(|b| b.to_ascii_lowercase()) {
        if b == prev {
            run += 1;
            ascending = 1;
            let placeholder_at = match b {
                b'x' | b'*' => 4,
                b'0' => 10,
                b'1'..=b'9' => u32::MAX,
                _ => 5,
            };
            if run >= placeholder_at {
                return true;
            }
        } else {
            run = 1;
            // `b` in b..=z, right after the letter before it.
            let next_in_order = b.wrapping_sub(b'b') < 25 && prev.wrapping_add(1) == b;
            ascending = if next_in_order { ascending + 1 } else { 1 };
            if ascending >= 8 {
                return true;
            }
        }
        prev = b;
    }
    false
}

const PLACEHOLDER_WORDS: &[&str] = &[
    "example", "changeme", "change_me", "change-me", "placeholder", "your_", "your-", "yourkey", "yourtoken",
    "yourpassword", "yoursecret", "insert", "redacted", "dummy", "sample", "replace", "secret_here", "token_here",
    "key_here", "password_here", "notreal", "not_real", "fake", "foobar", "lorem", "<", ">", "${", "{{", "}}", "%(",
];

/// How many of [`PLACEHOLDER_WORDS`] the token validators look for (the
/// rest are template syntax, which random token bodies may hold).
const TOKEN_PLACEHOLDER_WORDS: usize = 20;

/// [`PLACEHOLDER_WORDS`] as one automaton, built by
/// [`prepare`]: every secret candidate is tested against all of them, and
/// one substring loop per word cost more than the rest of validation.
static PLACEHOLDER_AUTOMATON: OnceLock<Option<AhoCorasick>> = OnceLock::new();

/// Builds what validators share, once: the engine calls it at configure
/// time so no request pays for it.
pub fn prepare() {
    PLACEHOLDER_AUTOMATON.get_or_init(|| {
        AhoCorasick::builder().kind(Some(AhoCorasickKind::DFA)).ascii_case_insensitive(true).build(PLACEHOLDER_WORDS).ok()
    });
}

/// Whether `value` holds one of the first `among` placeholder words, in
/// any ASCII case.
fn has_placeholder_word(value: &str, among: usize) -> bool {
    match PLACEHOLDER_AUTOMATON.get().and_then(Option::as_ref) {
        // Overlapping: a later word must not hide an earlier one.
        Some(ac) => ac.find_overlapping_iter(value).any(|m| m.pattern().as_usize() < among),
        None => PLACEHOLDER_WORDS.iter().take(among).any(|w| contains_ci(value, w)),
    }
}

const PLACEHOLDER_VALUES: &[&str] = &[
    "password", "passwd", "pass", "secret", "token", "apikey", "api_key", "api-key", "null", "none", "nil",
    "undefined", "true", "false", "test", "testing", "admin", "root", "user", "username", "default", "empty",
    "string", "value", "required", "optional", "hidden", "masked", "abc123", "123456", "12345678", "qwerty",
    "letmein", "password123", "mypassword", "secret123", "str", "bool", "int", "env", "bearer", "basic",
];

/// Documentation placeholders and template variables: `<your-key>`,
/// `${API_KEY}`, `changeme`, `xxxxxxxx`.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let trimmed = lower.trim_matches(|c: char| c == '"' || c == '\'' || c == '`');
    PLACEHOLDER_VALUES.contains(&trimmed)
        || has_placeholder_word(trimmed, PLACEHOLDER_WORDS.len())
        || has_placeholder_run(trimmed)
        || trimmed.starts_with('$')
        || trimmed.starts_with('%')
        || trimmed.starts_with('@')
}

fn char_classes(value: &str) -> usize {
    let b = value.as_bytes();
    usize::from(b.iter().any(u8::is_ascii_lowercase))
        + usize::from(b.iter().any(u8::is_ascii_uppercase))
        + usize::from(b.iter().any(u8::is_ascii_digit))
        + usize::from(b.iter().any(|c| !c.is_ascii_alphanumeric()))
}

fn token(value: &str, min_entropy: f64) -> bool {
    // Judge the random part: after the last `_`/`-` prefix separator when
    // the prefix is short (ghp_, glpat-, xoxb-), else the whole value.
    let body = match value.find(['_', '-']) {
        Some(i) if i <= 12 => value.get(i + 1..).unwrap_or(value),
        _ => value,
    };
    !has_placeholder_run(body) && !has_placeholder_word(body, TOKEN_PLACEHOLDER_WORDS) && shannon_entropy(body) >= min_entropy
}

fn private_key(hay: &str, span: Range<usize>) -> Option<Range<usize>> {
    const MAX_KEY: usize = 16 * 1024;
    let rest = hay.get(span.end..)?;
    let window = rest.get(..rest.len().min(MAX_KEY)).or_else(|| {
        let mut cut = rest.len().min(MAX_KEY);
        while cut > 0 && !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        rest.get(..cut)
    })?;
    if let Some(pos) = window.find("-----END") {
        let tail = window.get(pos + 8..)?;
        let close = tail.find("-----")?;
        if close > 40 {
            return None;
        }
        let body = window.get(..pos)?;
        if base64_chars(body) < 32 {
            return None;
        }
        return Some(span.start..span.end + pos + 8 + close + 5);
    }
    // No END line (truncated paste): take the base64 body that follows.
    let body_len = window
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '\r' | '\n' | '\\' | ':' | ',' | '-')))
        .map_or(window.len(), |(i, _)| i);
    let body = window.get(..body_len)?;
    (base64_chars(body) >= 64).then(|| span.start..span.end + body_len)
}

fn base64_chars(body: &str) -> usize {
    // Literal `\n` sequences (keys pasted from JSON) are not body characters.
    let without_escapes = body.replace("\\n", "").replace("\\r", "");
    without_escapes.bytes().filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')).count()
}

fn jwt(value: &str) -> bool {
    let mut parts = value.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Some(h), Some(p)) = (crate::detect::decode::base64_decode(header), crate::detect::decode::base64_decode(payload)) else {
        return false;
    };
    let h = String::from_utf8_lossy(&h);
    let p = String::from_utf8_lossy(&p);
    // Whole objects: a header cut short (`{"alg":"HS256","typ":"JWT"`) is
    // a fragment, not a token.
    let object = |s: &str| s.trim_start().starts_with('{') && s.trim_end().ends_with('}');
    object(&h) && (h.contains("\"alg\"") || h.contains("\"typ\"")) && object(&p)
}

fn unquoted(s: &str) -> &str {
    s.trim_matches(|c: char| c == '"' || c == '\'')
}

/// A URL's password, or a `user:password` pair (`curl -u`): the password,
/// or the user where the password is empty (an API key as the user), must
/// not be a placeholder (`pass`, `[PASSWORD]`, `$PW`); in a pair, nor
/// shorter than four characters (`xxx:yyy`).
fn credential(value: &str) -> bool {
    let judged = match value.split_once(':').map(|(user, password)| (unquoted(user), unquoted(password))) {
        Some((user, "")) => user,
        Some((_, password)) => password,
        None => value,
    };
    let bracketed = judged.starts_with('[') && judged.ends_with(']');
    let long_enough = !value.contains(':') || judged.len() >= 4;
    long_enough && !bracketed && !is_placeholder(judged) && !judged.starts_with('$')
}

/// The name a value is assigned to: the run of name characters before the
/// operator and quotes (`x-csrf-token` in `x-csrf-token: "..."`).
fn assigned_to(hay: &str, value_start: usize) -> &str {
    let head = before(hay, value_start, 64);
    let name_end = head.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ':' | '=' | '>'));
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let start = name_end.char_indices().rev().find(|&(_, c)| !is_name(c)).map_or(0, |(i, c)| i + c.len_utf8());
    name_end.get(start..).unwrap_or("")
}

/// Parts of names whose values are not secrets, though the name holds a
/// secret-like word: anti-forgery tokens, public and publishable keys,
/// pagination tokens, `io.jsonwebtoken` (a Java package).
const BENIGN_NAME_PARTS: &[&str] =
    &["csrf", "xsrf", "public", "publishable", "jsonweb", "pagetoken", "page_token", "nexttoken", "next_token", "continuation", "cancellation"];

fn benign_name(name: &str) -> bool {
    BENIGN_NAME_PARTS.iter().any(|part| contains_ci(name, part))
}

/// The value of a keyword assignment. Real passwords and keys vary; what
/// rejects the false positives is what they are not: placeholders, template
/// variables, identifiers (`settings.SECRET_KEY`), function calls, words.
fn assignment_value(value: &str) -> bool {
    let v = value.trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c == ')' || c == '(');
    if v.len() < 6 || is_placeholder(v) {
        return false;
    }
    // Identifiers and dotted paths: `os.environ`, `config.api_key`, `get_token()`.
    let identifier = |b: &[u8]| {
        b.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'(' | b')' | b'[' | b']'))
            && !b.iter().any(u8::is_ascii_digit)
    };
    if identifier(v.as_bytes()) {
        return false;
    }
    // The name of the next assignment, when this one is empty
    // (`GITHUB_KEY= OTHER_KEY=`): an identifier with a `_` or `.` and `=`.
    if v.strip_suffix('=').is_some_and(|name| identifier(name.as_bytes()) && name.contains(['_', '.'])) {
        return false;
    }
    if v.contains("()") || v.contains("](") || v.starts_with("process.env") || v.starts_with("os.") {
        return false;
    }
    if file_path(v) {
        return false;
    }
    let classes = char_classes(v);
    let entropy = shannon_entropy(v);
    (classes >= 3 && entropy >= 2.5) || (classes >= 2 && entropy >= 3.0 && v.len() >= 8) || (entropy >= 3.5 && v.len() >= 12)
}

/// A file path where a secret's location is configured (`~/.aws/credentials`,
/// `/run/secrets/db`): relative, home, or absolute with a lower-case first
/// directory (a base64 value starting `/` rarely has one).
fn file_path(v: &str) -> bool {
    if v.starts_with("~/") || v.starts_with("./") || v.starts_with("../") {
        return true;
    }
    let Some(rest) = v.strip_prefix('/') else {
        return false;
    };
    let first_dir = rest.split('/').next().unwrap_or_default();
    rest.len() > first_dir.len() && !first_dir.is_empty() && first_dir.bytes().all(|c| c.is_ascii_lowercase())
}

fn email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && domain.contains('.')
        && !domain.starts_with(['-', '.'])
        && !domain.contains("..")
        && domain.rsplit('.').next().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()))
}

/// Phones: E.164 (`+` and 8–15 digits) or a national format with
/// separators. Bare digit runs are not phones here (precision first).
fn phone(hay: &str, span: Range<usize>) -> Option<Range<usize>> {
    let value = hay.get(span.clone())?;
    // An extension (`x4587`, ` ext. 12`) is matched with the number but
    // is not one of its digits.
    let number = value.get(..value.len() - extension_len(value)).unwrap_or(value);
    // More than 15 digits is no phone number in either format.
    let (buf, len) = digits_upto::<15>(number)?;
    let d = buf.get(..len).unwrap_or_default();
    let prev = before(hay, span.start, 1);
    let next = after(hay, span.end, 2);
    // Inside a longer number or dotted run (versions, IPs, dates).
    if prev.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/' || c == '-')
        || next.starts_with(|c: char| c.is_ascii_alphanumeric())
        || (next.starts_with(['.', '/', '-']) && next.chars().nth(1).is_some_and(|c| c.is_ascii_digit()))
    {
        return None;
    }
    if all_same(d) || is_year_range(number) {
        return None;
    }
    if value.starts_with('+') {
        return (8..=15).contains(&len).then_some(span);
    }
    (7..=13).contains(&len).then_some(span)
}

/// Two years, as in "2019 - 2023" or "2019-2023": eight digits the phone
/// patterns next to a label ("fax 2019-2023", "2019 - 2023 office") would
/// otherwise take.
fn is_year_range(number: &str) -> bool {
    let mut groups = number.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty());
    let year = |g: Option<&str>| g.is_some_and(|g| g.len() == 4 && (g.starts_with("19") || g.starts_with("20")));
    year(groups.next()) && year(groups.next()) && groups.next().is_none()
}

/// The length of the extension that ends a matched phone number (`x4587`,
/// `ext.12`, ` ext. 12`: a marker, then one to five digits), or 0.
fn extension_len(value: &str) -> usize {
    let b = value.as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    let head = b.get(..b.len() - digits).unwrap_or_default();
    let marker = |m: &[u8]| head.len() >= m.len() && head.get(head.len() - m.len()..).is_some_and(|t| t.eq_ignore_ascii_case(m));
    let marker_len = [&b" ext. "[..], b" ext.", b"ext. ", b" ext ", b"ext.", b" ext", b"ext ", b"ext", b"x"].iter().find(|m| marker(m)).map_or(0, |m| m.len());
    if marker_len > 0 && (1..=5).contains(&digits) {
        marker_len + digits
    } else {
        0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ok(v: Validator, s: &str) -> bool {
        v.check(s, 0..s.len()).is_some()
    }

    /// The one-pass run check answers what the checks it replaced answer:
    /// a run of five equal non-digits (in any case), `xxxx`, `****`,
    /// `0000000000`, or eight letters in alphabet order, anywhere.
    #[test]
    fn placeholder_runs_in_one_pass() {
        fn reference(value: &str) -> bool {
            let b = value.as_bytes();
            let mut run = 1;
            for w in b.windows(2) {
                if w[0].eq_ignore_ascii_case(&w[1]) && !w[0].is_ascii_digit() {
                    run += 1;
                    if run >= 5 {
                        return true;
                    }
                } else {
                    run = 1;
                }
            }
            let lower = value.to_ascii_lowercase();
            let alphabet = "abcdefghijklmnopqrstuvwxyz".as_bytes();
            let in_order = alphabet.windows(8).any(|w| lower.as_bytes().windows(8).any(|v| v == w));
            lower.contains("xxxx") || lower.contains("****") || lower.contains("0000000000") || in_order
        }
        let pieces = ["x", "X", "*", "0", "1", "a", "A", "é", "-", "xx", "00000", "aaaa", "**", "abcd", "EFGH", "efg", "hij", "b"];
        let mut next = crate::test_rng::xorshift(0x3c6e_f372_fe94_f82b);
        let mut found = 0;
        for _ in 0..20_000 {
            let count = (next() % 14) as usize;
            let v: String = (0..count).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect();
            assert_eq!(has_placeholder_run(&v), reference(&v), "{v:?}");
            found += usize::from(reference(&v));
        }
        assert!(found > 1000, "{found}");
    }

    #[test]
    fn digits_on_the_stack_are_the_digits() {
        for v in ["", "abc", "4111 1111-1111.1111", "+1 (415) 555-0132", "536-22-1234", "1234567890123456789", "12345678901234567890", "é7日8"] {
            let want = digits(v);
            let got = digits_upto::<19>(v).map(|(buf, len)| buf[..len].to_vec());
            assert_eq!(got, (want.len() <= 19).then_some(want), "{v:?}");
        }
        assert_eq!(digits_upto::<9>("536-22-12345"), None, "ten digits do not fit nine");
    }

    /// The automaton answers what one substring loop per word answers
    /// (in any ASCII case), for the whole list and for the token
    /// validators' first words, on mixtures of the words in lower and upper
    /// case, their pieces and overlaps.
    #[test]
    fn placeholder_automaton_finds_what_the_loops_find() {
        prepare();
        assert!(PLACEHOLDER_AUTOMATON.get().and_then(Option::as_ref).is_some());
        let mut pieces: Vec<String> = PLACEHOLDER_WORDS.iter().map(|w| w.to_string()).collect();
        pieces.extend(PLACEHOLDER_WORDS.iter().map(|w| w.chars().skip(1).collect::<String>()));
        pieces.extend(PLACEHOLDER_WORDS.iter().map(|w| w.to_ascii_uppercase()));
        pieces.extend(["a", "9", "_", "-", "z", "fakexample", "{{your_"].map(String::from));
        let mut next = crate::test_rng::xorshift(0x51a3_70b5_9e1c_04d7);
        for _ in 0..5000 {
            let count = (next() % 5) as usize;
            let hay: String = (0..count).map(|_| pieces[(next() % pieces.len() as u64) as usize].as_str()).collect();
            for among in [TOKEN_PLACEHOLDER_WORDS, PLACEHOLDER_WORDS.len()] {
                let loops = PLACEHOLDER_WORDS.iter().take(among).any(|w| hay.to_ascii_lowercase().contains(w));
                assert_eq!(has_placeholder_word(&hay, among), loops, "{hay:?} among {among}");
            }
        }
    }

    #[test]
    fn luhn_known_values() {
        assert!(luhn(&digits("4111 1111 1111 1111")));
        assert!(luhn(&digits("79927398713")));
        assert!(!luhn(&digits("4111 1111 1111 1112")));
        assert!(!luhn(&[]));
    }

    #[test]
    fn card_issuers() {
        assert_eq!(card_issuer(&digits("4111111111111111")), Some("visa"));
        assert_eq!(card_issuer(&digits("5555555555554444")), Some("mastercard"));
        assert_eq!(card_issuer(&digits("2223003122003222")), Some("mastercard"));
        assert_eq!(card_issuer(&digits("378282246310005")), Some("amex"));
        assert_eq!(card_issuer(&digits("6011111111111117")), Some("discover"));
        assert_eq!(card_issuer(&digits("3530111333300000")), Some("jcb"));
        assert_eq!(card_issuer(&digits("3598899323053410")), Some("jcb"));
        assert_eq!(card_issuer(&digits("359889932305341")), None, "15 digits");
        assert_eq!(card_issuer(&digits("1234567812345670")), None);
    }

    #[test]
    fn card_trims_trailing_group() {
        let s = "4111 1111 1111 1111 2029";
        assert_eq!(Validator::PaymentCard.check(s, 0..s.len()), Some(0..19));
    }

    #[test]
    fn ssn_rules() {
        assert!(ok(Validator::UsSsn, "536-22-1234"));
        assert!(!ok(Validator::UsSsn, "000-22-1234"));
        assert!(!ok(Validator::UsSsn, "666-22-1234"));
        assert!(!ok(Validator::UsSsn, "912-22-1234"));
        assert!(!ok(Validator::UsSsn, "536-00-1234"));
        assert!(!ok(Validator::UsSsn, "536-22-0000"));
        assert!(!ok(Validator::UsSsn, "536221234"));
        let s = "SSN: 536221234";
        assert_eq!(Validator::UsSsn.check(s, 5..s.len()), Some(5..14));
        // Context is a whole word: "TIN" counts, the "tin" of a name does not.
        let s = "TIN 53622 1234";
        assert_eq!(Validator::UsSsn.check(s, 4..s.len()), Some(4..14));
        let s = "Tintin Forsberg 53622 1234 Main St";
        assert_eq!(Validator::UsSsn.check(s, 16..26), None);
        let s = "SSNs: 536221234";
        assert_eq!(Validator::UsSsn.check(s, 6..s.len()), Some(6..15), "the plural counts");
        let s = "tinsel 536221234";
        assert_eq!(Validator::UsSsn.check(s, 7..s.len()), None);
    }

    #[test]
    fn iban_checks() {
        assert!(ok(Validator::Iban, "DE89370400440532013000"));
        assert!(ok(Validator::Iban, "GB82 WEST 1234 5698 7654 32"));
        assert!(!ok(Validator::Iban, "DE89370400440532013001"));
        assert!(!ok(Validator::Iban, "XX89370400440532013000"));
        let s = "GB82 WEST 1234 5698 7654 32 AB";
        assert_eq!(Validator::Iban.check(s, 0..s.len()), Some(0..27));
    }

    /// The walk over all 256 counts that `shannon_entropy` replaced.
    fn entropy_over_all_counts(value: &str) -> f64 {
        let mut counts = [0u32; 256];
        for b in value.bytes() {
            counts[usize::from(b)] += 1;
        }
        let n = f64::from(value.len() as u32);
        if value.is_empty() {
            return 0.0;
        }
        counts.iter().filter(|&&c| c > 0).map(|&c| -(f64::from(c) / n) * (f64::from(c) / n).log2()).sum()
    }

    #[test]
    fn entropy_is_bit_identical_to_the_walk_over_all_counts() {
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        let alphabets: [&[u8]; 4] = [b"ab", b"0123456789abcdef", b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", b"xX*0 _-.:"];
        for round in 0..20_000 {
            let alphabet = alphabets[round % alphabets.len()];
            let len = (next() % 300) as usize;
            let text: String = (0..len).map(|_| char::from(alphabet[(next() % alphabet.len() as u64) as usize])).collect();
            assert_eq!(shannon_entropy(&text).to_bits(), entropy_over_all_counts(&text).to_bits(), "{text:?}");
        }
        for text in ["", "a", "aaaa", "é", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "\u{ff}\u{0}"] {
            assert_eq!(shannon_entropy(text).to_bits(), entropy_over_all_counts(text).to_bits(), "{text:?}");
        }
    }

    #[test]
    fn entropy_and_placeholders() {
        assert!(shannon_entropy("aaaaaaaa") < 0.01);
        assert!(shannon_entropy("wJalrXUtnFEMI/K7MDENG/bPxRfiCY") > 4.0);
        assert!(is_placeholder("<your-api-key>"));
        assert!(is_placeholder("${API_KEY}"));
        assert!(is_placeholder("changeme"));
        assert!(is_placeholder("xxxxxxxxxxxx"));
        assert!(!is_placeholder("h7Gq2LzP9vWx"));
        assert!(ok(Validator::Assignment, "h7Gq2LzP9vWx"));
        assert!(!ok(Validator::Assignment, "settings.SECRET_KEY"));
        assert!(!ok(Validator::Assignment, "hello"));
    }

    #[test]
    fn dates() {
        assert!(ok(Validator::Date, "03/14/1985"));
        assert!(ok(Validator::Date, "1985-03-14"));
        assert!(ok(Validator::Date, "March 14, 1985"));
        assert!(ok(Validator::Date, "14th March 1985"));
        assert!(!ok(Validator::Date, "13/13/1985"));
        assert!(!ok(Validator::Date, "1985-13-01"));
    }

    #[test]
    fn ip_checks() {
        assert!(ok(Validator::Ipv6, "2001:db8::8a2e:370:7334"));
        assert!(!ok(Validator::Ipv6, "add::beef"));
        let s = "version 1.2.3.4.5";
        assert_eq!(Validator::Ipv4.check(s, 8..15), None);
    }
}
