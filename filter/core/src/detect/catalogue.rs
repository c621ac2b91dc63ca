//! The built-in detectors. Ids are stable: operators name them in policies
//! and SOC teams query decision records by them, so an id is never renamed.
//!
//! Patterns are written for the lazy DFA: ASCII classes (`[0-9]`, not `\d`)
//! and ASCII word boundaries (every `\b` here is compiled as `(?-u:\b)`),
//! because a Unicode word boundary makes the lazy DFA give up on non-ASCII
//! text and fall back to a much slower engine.

use super::validate::Validator;

/// What kind of data a detector finds; policies can select a whole category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Pii,
    Secret,
    Keyword,
    Custom,
}

impl Category {
    pub const ALL: [Category; 4] = [Category::Pii, Category::Secret, Category::Keyword, Category::Custom];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pii => "pii",
            Category::Secret => "secret",
            Category::Keyword => "keyword",
            Category::Custom => "custom",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Where a pattern can possibly match: cheap evidence found by one
/// aho-corasick pass and one byte pass, so the regex engines only run on
/// small windows around it instead of the whole text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// One of these literals, case-sensitive (token prefixes).
    Literal(&'static [&'static str]),
    /// One of these words, ASCII case-insensitive (context keywords).
    Word(&'static [&'static str]),
    /// A digit cluster (digits separated by at most 4 separator or hex
    /// characters) with at least `min` digits, `dots` dots and `colons`
    /// colons; `letters_before`: two ASCII letters right before it
    /// (IBAN country code, NINO prefix).
    Digits { min: usize, dots: usize, colons: usize, letters_before: bool },
    /// An `@`.
    At,
    /// Anywhere (custom patterns): the whole text is searched.
    Always,
}

/// One pattern of a detector. A match always lies within `back` bytes
/// before and `fwd` bytes after its trigger (the end of a digit cluster);
/// a match that reaches the window end is searched again without the
/// window, so the bound is about speed, never about what is found.
#[derive(Debug, Clone, Copy)]
pub struct Pat {
    pub regex: &'static str,
    /// Capture group holding the sensitive value (0 = whole match): for
    /// `password = "hunter2"` only the value is rewritten.
    pub group: usize,
    pub trigger: Trigger,
    pub back: usize,
    pub fwd: usize,
}

const fn pat(regex: &'static str, group: usize, trigger: Trigger, back: usize, fwd: usize) -> Pat {
    Pat { regex, group, trigger, back, fwd }
}

const fn digits(min: usize) -> Trigger {
    Trigger::Digits { min, dots: 0, colons: 0, letters_before: false }
}

/// One built-in detector.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub id: &'static str,
    pub category: Category,
    /// Placeholder label: `[EMAIL_1]`.
    pub label: &'static str,
    /// Patterns (any may match), each with the capture group that holds
    /// the sensitive value and the trigger that says where it can occur.
    pub patterns: &'static [Pat],
    pub validator: Validator,
    /// Overlapping findings keep the lowest priority value: a GitHub token
    /// inside a `token=` assignment is reported as a GitHub token.
    pub priority: u8,
    /// Characters `mask` leaves visible at the end unless configured.
    pub keep_last: usize,
    /// One line for the operator reference.
    pub summary: &'static str,
}

/// The catalogue, in reporting order.
pub static BUILTINS: &[Builtin] = &[
    // ---- PII ----
    Builtin {
        id: "email",
        category: Category::Pii,
        label: "EMAIL",
        patterns: &[pat(r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}\b", 0, Trigger::At, 64, 200)],
        validator: Validator::Email,
        priority: 3,
        keep_last: 0,
        summary: "email addresses (RFC 5322 dot-atom local part, dotted domain with an alphabetic TLD)",
    },
    Builtin {
        id: "phone",
        category: Category::Pii,
        label: "PHONE",
        patterns: &[
            // E.164, digits may be split by spaces, dots, dashes, parentheses.
            // These two take an extension (`x4587`, ` ext. 12`) with the
            // number; the validator judges what follows it.
            pat(r"\+[1-9](?:[ .\-]{0,2}\(?[0-9]\)?){7,14}(?:(?i:x| ?ext\.? ?)[0-9]{1,5})?", 0, digits(8), 2, 12),
            // North American: (415) 555-0132, 415-555-0132, 415.555.0132.
            pat(r"(?:\b1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|\b[2-9][0-9]{2}[ .\-])[0-9]{3}[ .\-][0-9]{4}(?:(?i:x| ?ext\.? ?)[0-9]{1,5})?", 0, digits(10), 4, 12),
            // National formats with a trunk 0: 020 7946 0958, 07700 900123, 01 23 45 67 89.
            pat(r"\b0[1-9][0-9]{0,4}[ .\-][0-9]{2,4}(?:[ .\-][0-9]{2,4}){0,3}\b", 0, digits(7), 1, 1),
            pat(r"\(0?[1-9][0-9]{0,3}\)[ .\-]?[0-9]{3,4}[ .\-]?[0-9]{3,4}\b", 0, digits(7), 2, 2),
            // Anything number-like right after "phone", "tel", "mobile", ...
            // ... and after "call me on", "call us at".
            pat(r"(?i:\b(?:phone|tel|telephone|mobile|cell|fax|call|whatsapp)\b)(?:(?i:\s+(?:me|us)\s+(?:on|at)\b)|[a-zA-Z.]{0,8}(?:\s*(?:no\.?|number|#))?)[\s:]{0,4}(\(?[0-9][0-9 ().\-]{4,16}[0-9])", 1, Trigger::Word(&["phone", "tel", "telephone", "mobile", "cell", "fax", "call", "whatsapp"]), 0, 60),
            // A number labelled after it, as in address blocks and
            // signatures: "781 1704 office", "3660170548-Fax". At most 13
            // characters, so a postcode before it is not taken along; the
            // window reaches back to it and forward over the word.
            pat(r"(\(?\b[0-9][0-9 ().\-]{4,11}[0-9])[ ,\-]{0,3}(?i:office|fax|mobile|cell)\b", 1, Trigger::Word(&["office", "fax", "mobile", "cell"]), 20, 8),
        ],
        validator: Validator::Phone,
        priority: 4,
        keep_last: 2,
        summary: "phone numbers: E.164 (+ and 8-15 digits), North American, national formats with a trunk 0, any number after phone/tel/mobile/call (me on) or labelled office/fax/mobile after it; an extension (x4587, ext. 12) is part of the number",
    },
    Builtin {
        id: "credit_card",
        category: Category::Pii,
        label: "CARD",
        patterns: &[pat(r"\b[1-6](?:[ \-.]{0,2}[0-9]){11,18}\b", 0, digits(12), 0, 1)],
        validator: Validator::PaymentCard,
        priority: 2,
        keep_last: 4,
        summary: "payment card numbers, 12-19 digits, separators allowed; Luhn and issuer ranges (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro)",
    },
    Builtin {
        id: "us_ssn",
        category: Category::Pii,
        label: "SSN",
        patterns: &[
            pat(r"\b[0-9]{3}[ \-.]?[0-9]{2}[ \-.]?[0-9]{4}\b", 0, digits(9), 0, 1),
            pat(r"\b[0-9](?:[ \-.]{1,2}[0-9]){8}\b", 0, digits(9), 0, 1),
        ],
        validator: Validator::UsSsn,
        priority: 2,
        keep_last: 4,
        summary: "US social security numbers with valid area/group/serial; 123-45-6789 form alone, other forms only after SSN context (the words SSN, social security, TIN, ...)",
    },
    Builtin {
        id: "iban",
        category: Category::Pii,
        label: "IBAN",
        patterns: &[pat(r"\b[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]){11,30}\b", 0, Trigger::Digits { min: 2, dots: 0, colons: 0, letters_before: true }, 3, 50)],
        validator: Validator::Iban,
        priority: 2,
        keep_last: 4,
        summary: "international bank account numbers: per-country length and ISO 7064 mod-97",
    },
    Builtin {
        id: "ipv4",
        category: Category::Pii,
        label: "IP",
        patterns: &[pat(r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\b", 0, Trigger::Digits { min: 4, dots: 3, colons: 0, letters_before: false }, 0, 1)],
        validator: Validator::Ipv4,
        priority: 5,
        keep_last: 0,
        summary: "IPv4 addresses in dotted-quad form, not inside longer dotted runs (versions, OIDs)",
    },
    Builtin {
        id: "ipv6",
        category: Category::Pii,
        label: "IP",
        patterns: &[pat(r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}", 0, Trigger::Digits { min: 1, dots: 0, colons: 2, letters_before: false }, 40, 40),
            pat(r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}", 0, Trigger::Literal(&["::"]), 40, 40)],
        validator: Validator::Ipv6,
        priority: 5,
        keep_last: 0,
        summary: "IPv6 addresses (full and compressed), parsed strictly; needs a digit and two groups, so C++ `a::b` is not flagged",
    },
    Builtin {
        id: "uk_nino",
        category: Category::Pii,
        label: "UK_NINO",
        patterns: &[pat(r"\b[A-CEGHJ-PR-TW-Za-ceghj-pr-tw-z][A-CEGHJ-NPR-TW-Za-ceghj-npr-tw-z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-Da-d]\b", 0, digits(6), 3, 3)],
        validator: Validator::UkNino,
        priority: 3,
        keep_last: 0,
        summary: "UK National Insurance numbers (valid prefix letters, suffix A-D)",
    },
    Builtin {
        id: "date_of_birth",
        category: Category::Pii,
        label: "DOB",
        patterns: &[pat(r"(?i)\b(?:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*date|birthday|born(?:\s+on)?)[\s:=,\-]{0,5}(?:on\s+|is\s+)?([0-9]{1,4}[/.\-][0-9]{1,2}[/.\-][0-9]{2,4}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?\s+[0-9]{1,2}(?:st|nd|rd|th)?,?\s+[0-9]{4}|[0-9]{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?,?\s+[0-9]{4})\b", 1, Trigger::Word(&["dob", "d.o.b", "birth", "born"]), 16, 100)],
        validator: Validator::Date,
        priority: 3,
        keep_last: 0,
        summary: "dates right after DOB / date of birth / born (on); a date without that context is not flagged",
    },
    // ---- Secrets ----
    Builtin {
        id: "private_key",
        category: Category::Secret,
        label: "PRIVATE_KEY",
        patterns: &[pat(r"-----BEGIN[ A-Z0-9_\-]{0,40}PRIVATE KEY(?: BLOCK)?-----", 0, Trigger::Literal(&["-----BEGIN"]), 0, 120)],
        validator: Validator::PrivateKey,
        priority: 1,
        keep_last: 0,
        summary: "PEM private keys (RSA, EC, DSA, PKCS#8, encrypted, OpenSSH, PGP): header through END line, or the body when truncated",
    },
    Builtin {
        id: "google_service_account_key",
        category: Category::Secret,
        label: "GCP_KEY",
        patterns: &[pat(r#""private_key"\s*:\s*"(-----BEGIN[A-Z ]*PRIVATE KEY-----[^"]+)""#, 1, Trigger::Literal(&["\"private_key\""]), 0, 8192)],
        validator: Validator::None,
        priority: 0,
        keep_last: 0,
        summary: "the private_key value of a Google service-account JSON pasted as text",
    },
    Builtin {
        id: "aws_access_key_id",
        category: Category::Secret,
        label: "AWS_KEY",
        patterns: &[pat(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b", 0, Trigger::Literal(&["AKIA", "ASIA", "ABIA", "ACCA", "A3T"]), 0, 24)],
        validator: Validator::AwsAccessKeyId,
        priority: 1,
        keep_last: 0,
        summary: "AWS access key ids (AKIA, ASIA, ...); the documentation example *EXAMPLE is ignored",
    },
    Builtin {
        id: "aws_secret_access_key",
        category: Category::Secret,
        label: "AWS_SECRET",
        patterns: &[
            pat(r#"(?i:aws|amazon)[A-Za-z0-9_.\-]{0,20}(?i:secret|sak)[A-Za-z0-9_.\-]{0,20}['"]?\s{0,3}(?::|=>|:=|=)\s{0,3}['"]?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#, 1, Trigger::Word(&["aws", "amazon"]), 0, 140),
            pat(r#"(?i:secret[_\-]?access[_\-]?key)['"]?\s{0,3}(?::|=>|:=|=)\s{0,3}['"]?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#, 1, Trigger::Word(&["secret"]), 0, 100),
        ],
        validator: Validator::Token { min_entropy: 3.5 },
        priority: 1,
        keep_last: 0,
        summary: "AWS secret access keys (40 base64 characters) assigned to an aws/secret-named key",
    },
    Builtin {
        id: "github_token",
        category: Category::Secret,
        label: "GITHUB_TOKEN",
        patterns: &[pat(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", 0, Trigger::Literal(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]), 0, 260)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "GitHub classic PAT (ghp_), OAuth (gho_), user-to-server and app (ghu_, ghs_), refresh (ghr_) tokens",
    },
    Builtin {
        id: "github_fine_grained_token",
        category: Category::Secret,
        label: "GITHUB_TOKEN",
        patterns: &[pat(r"\bgithub_pat_[A-Za-z0-9_]{50,255}\b", 0, Trigger::Literal(&["github_pat_"]), 0, 270)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "GitHub fine-grained personal access tokens (github_pat_)",
    },
    Builtin {
        id: "gitlab_token",
        category: Category::Secret,
        label: "GITLAB_TOKEN",
        // Each type at its documented length (routable tokens: a longer
        // body and a `.` suffix), and not followed by a word character: a
        // longer or shorter run is not that token.
        patterns: &[
            pat(r"\b((?:glpat|gldt|glrt|glft|glsoat|glffct)-(?:[A-Za-z0-9_\-]{27,300}\.[0-9a-z]{2,16}|[A-Za-z0-9_\-]{20,50})|glcbt-(?:[0-9a-fA-F]{1,5}_)?[A-Za-z0-9_\-]{20,50}|glimt-[A-Za-z0-9_\-]{25}|glptt-[A-Za-z0-9_\-]{40}|glagent-[A-Za-z0-9_\-]{50,300}|gloas-[A-Za-z0-9_\-]{64})(?:[^A-Za-z0-9_]|$)", 1, Trigger::Literal(&["glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glft-", "glimt-", "glagent-", "glsoat-", "gloas-", "glffct-"]), 0, 340),
            pat(r"\b(GR1348941[A-Za-z0-9_\-]{20,50})(?:[^A-Za-z0-9_]|$)", 1, Trigger::Literal(&["GR1348941"]), 0, 80),
        ],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "GitLab personal, deploy, runner, trigger, CI job, feed, incoming mail, agent, SCIM and OAuth tokens, each at its documented length",
    },
    Builtin {
        id: "slack_token",
        category: Category::Secret,
        label: "SLACK_TOKEN",
        patterns: &[
            // Shapes from Slack's token formats: bot, user, legacy, config, refresh, app.
            pat(r"\bxoxb-[0-9]{8,14}-(?:[0-9]{10,13}-)?[A-Za-z0-9]{18,34}", 0, Trigger::Literal(&["xoxb-"]), 0, 120),
            pat(r"\bxox[pe](?:-[0-9]{10,13}){3}-[A-Za-z0-9\-]{28,34}", 0, Trigger::Literal(&["xoxp-", "xoxe-"]), 0, 120),
            pat(r"\bxox[os]-[0-9]+-[0-9]+-[0-9]+-[A-Fa-f0-9]+", 0, Trigger::Literal(&["xoxo-", "xoxs-"]), 0, 200),
            pat(r"\bxox[ar]-(?:[0-9]-)?[A-Za-z0-9]{8,48}\b", 0, Trigger::Literal(&["xoxa-", "xoxr-"]), 0, 60),
            // Legacy and test-era shapes: numeric ids of five digits or
            // more, then the secret part, which ends the token.
            pat(r"\b(xox[aboprs]-(?:[0-9]-)?(?:[0-9]{5,13}-){1,3}[A-Za-z0-9]{10,64})(?:[^A-Za-z0-9\-]|$)", 1, Trigger::Literal(&["xoxa-", "xoxb-", "xoxo-", "xoxp-", "xoxr-", "xoxs-"]), 0, 120),
            // Configuration tokens: base64 of any case.
            pat(r"\bxoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{163,166}", 0, Trigger::Literal(&["xoxe."]), 0, 190),
            pat(r"\bxoxe-[0-9]-[A-Za-z0-9]{146}", 0, Trigger::Literal(&["xoxe-"]), 0, 160),
            pat(r"\bxapp-[0-9]-[A-Z0-9]{6,20}-[0-9]{6,20}-[A-Za-z0-9]{20,100}", 0, Trigger::Literal(&["xapp-"]), 0, 160),
        ],
        validator: Validator::Token { min_entropy: 2.5 },
        priority: 1,
        keep_last: 0,
        summary: "Slack bot, user, app, config, refresh and legacy tokens (xoxb-, xoxp-, xoxa-, xoxs-, xapp-, xoxe.)",
    },
    Builtin {
        id: "slack_webhook",
        category: Category::Secret,
        label: "SLACK_WEBHOOK",
        patterns: &[pat(r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}", 0, Trigger::Literal(&["hooks.slack.com"]), 8, 90)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 0,
        keep_last: 0,
        summary: "Slack incoming-webhook and workflow URLs",
    },
    Builtin {
        id: "stripe_key",
        category: Category::Secret,
        label: "STRIPE_KEY",
        patterns: &[pat(r"\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99}\b", 0, Trigger::Literal(&["sk_", "rk_"]), 0, 110)],
        validator: Validator::Token { min_entropy: 2.5 },
        priority: 1,
        keep_last: 0,
        summary: "Stripe secret and restricted keys (sk_live_, rk_live_, test and prod); publishable pk_ keys are not secrets",
    },
    Builtin {
        id: "openai_api_key",
        category: Category::Secret,
        label: "OPENAI_KEY",
        patterns: &[
            pat(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,250}", 0, Trigger::Literal(&["sk-"]), 0, 260),
            pat(r"\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b", 0, Trigger::Literal(&["sk-"]), 0, 260),
            pat(r"\bsk-[A-Za-z0-9]{48}\b", 0, Trigger::Literal(&["sk-"]), 0, 260),
        ],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "OpenAI API keys: project, service-account, admin and legacy sk- keys",
    },
    Builtin {
        id: "anthropic_api_key",
        category: Category::Secret,
        label: "ANTHROPIC_KEY",
        patterns: &[pat(r"\bsk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_\-]{93}AA", 0, Trigger::Literal(&["sk-ant-"]), 0, 270)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "Anthropic API and admin keys in their exact format (sk-ant-api03-, sk-ant-admin01-, 93 characters, AA)",
    },
    Builtin {
        id: "google_api_key",
        category: Category::Secret,
        label: "GOOGLE_API_KEY",
        // Exactly 39 characters: a longer run is not a key.
        patterns: &[pat(r"\b(AIza[0-9A-Za-z_\-]{35})(?:[^0-9A-Za-z_\-]|$)", 1, Trigger::Literal(&["AIza"]), 0, 40)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "Google API keys (AIza, exactly 39 characters); the Firebase SDK's published test keys are not reported",
    },
    Builtin {
        id: "azure_connection_string",
        category: Category::Secret,
        label: "AZURE_SECRET",
        patterns: &[pat(r"(?i)(?:DefaultEndpointsProtocol=https?;AccountName=[A-Za-z0-9\-]+;AccountKey=[A-Za-z0-9+/]{86}==(?:;EndpointSuffix=[A-Za-z0-9.\-]+)?|Endpoint=sb://[A-Za-z0-9.\-]+/?;SharedAccessKeyName=[^;\s]+;SharedAccessKey=[A-Za-z0-9+/]{43}=)", 0, Trigger::Word(&["DefaultEndpointsProtocol", "Endpoint=sb://"]), 0, 600)],
        validator: Validator::None,
        priority: 0,
        keep_last: 0,
        summary: "Azure storage and Service Bus / Event Hubs connection strings (the whole string)",
    },
    Builtin {
        id: "azure_storage_key",
        category: Category::Secret,
        label: "AZURE_KEY",
        patterns: &[pat(r#"(?i:AccountKey|azure[_\-.]?storage[_\-.]?(?:account[_\-.]?)?key)['"]?\s{0,3}[=:]\s{0,3}['"]?([A-Za-z0-9+/]{86}==)"#, 1, Trigger::Word(&["AccountKey", "azure"]), 0, 160)],
        validator: Validator::Token { min_entropy: 4.0 },
        priority: 1,
        keep_last: 0,
        summary: "Azure storage account keys (88 base64 characters after AccountKey= or an azure storage key name)",
    },
    Builtin {
        id: "azure_ad_client_secret",
        category: Category::Secret,
        label: "AZURE_SECRET",
        // Back 7: four bytes before `Q~` and the character before them,
        // up to three bytes (U+2028 and U+3000 are `\s`).
        patterns: &[pat(r#"(?:^|[\s'"=:,(>])([A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34})(?:[^A-Za-z0-9_~.\-]|$)"#, 1, Trigger::Literal(&["Q~"]), 7, 40)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "Microsoft Entra ID (Azure AD) client secrets (the `Q~` format)",
    },
    Builtin {
        id: "twilio_api_key",
        category: Category::Secret,
        label: "TWILIO_KEY",
        patterns: &[
            pat(r"\bSK[0-9a-fA-F]{32}\b", 0, Trigger::Literal(&["SK"]), 0, 36),
            pat(r#"(?i)twilio[A-Za-z0-9_ .\-]{0,20}(?:auth|token|secret)[A-Za-z0-9_ .\-]{0,10}['"]?\s{0,3}[=:]\s{0,3}['"]?([0-9a-f]{32})\b"#, 1, Trigger::Word(&["twilio"]), 0, 120),
        ],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "Twilio API keys (SK + 32 hex) and auth tokens assigned to a twilio-named key",
    },
    Builtin {
        id: "sendgrid_api_key",
        category: Category::Secret,
        label: "SENDGRID_KEY",
        patterns: &[pat(r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}", 0, Trigger::Literal(&["SG."]), 0, 72)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "SendGrid API keys (SG.xxx.yyy)",
    },
    Builtin {
        id: "npm_token",
        category: Category::Secret,
        label: "NPM_TOKEN",
        patterns: &[pat(r"\bnpm_[A-Za-z0-9]{36}\b", 0, Trigger::Literal(&["npm_"]), 0, 42)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "npm access tokens (npm_)",
    },
    Builtin {
        id: "pypi_token",
        category: Category::Secret,
        label: "PYPI_TOKEN",
        // A macaroon: 70 characters or more after the prefix (real ones run
        // to about 160); a shorter run is a fragment.
        patterns: &[pat(r"\bpypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{70,}", 0, Trigger::Literal(&["pypi-"]), 0, 400)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "PyPI and TestPyPI upload tokens (pypi-AgEI...)",
    },
    Builtin {
        id: "huggingface_token",
        category: Category::Secret,
        label: "HF_TOKEN",
        patterns: &[pat(r"\b(?:hf_|api_org_)[A-Za-z]{34}\b", 0, Trigger::Literal(&["hf_", "api_org_"]), 0, 45)],
        validator: Validator::Token { min_entropy: 3.0 },
        priority: 1,
        keep_last: 0,
        summary: "Hugging Face user and organisation tokens (hf_, api_org_)",
    },
    Builtin {
        id: "jwt",
        category: Category::Secret,
        label: "JWT",
        // The signature part is optional: an unsigned token still carries
        // its claims.
        patterns: &[pat(r"\beyJ[A-Za-z0-9_\-]{8,}\.ey[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*)?", 0, Trigger::Literal(&["eyJ"]), 0, 4096)],
        validator: Validator::Jwt,
        priority: 2,
        keep_last: 0,
        summary: "JSON Web Tokens, signed or not, whose header and payload decode to whole JSON objects (header with alg or typ)",
    },
    Builtin {
        id: "database_url",
        category: Category::Secret,
        label: "DB_PASSWORD",
        patterns: &[pat(r"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|clickhouse|cockroachdb|oracle|jdbc:[a-z]+)://[^\s:/@'\x22]{1,64}:([^\s@'\x22/]{1,128})@", 1, Trigger::Literal(&["://"]), 24, 200)],
        validator: Validator::UrlPassword,
        priority: 0,
        keep_last: 0,
        summary: "the password of a database URL (postgres, mysql, mongodb, redis, amqp, mssql, jdbc, ...)",
    },
    Builtin {
        id: "url_password",
        category: Category::Secret,
        label: "PASSWORD",
        patterns: &[
            pat(r"(?i)\b(?:https?|ftps?|sftp|smtps?|ldaps?|ssh|git)://[^\s:/@'\x22]{1,64}:([^\s@'\x22/]{1,128})@", 1, Trigger::Literal(&["://"]), 10, 200),
            // `curl -u user:password` (or `--user`) in the same command: no
            // `;`, `|`, `&` or unescaped line break between (a streamed
            // answer is held only while the command can still hold one).
            // The whole credential is the value: an API key is often the
            // user part (`-u sk_live_...:`).
            pat(r#"(?i)\bcurl\s(?:(?:[^;|&\n]|\\\r?\n){0,200}?\s)?(?:-u|--user)(?:\s{1,8}|=)['"]?([^\s'":]{1,64}['"]?:(?:['"]?[^\s'"]{1,128})?|:[^\s'"]{1,128})"#, 1, Trigger::Word(&["curl"]), 0, 420),
        ],
        validator: Validator::UrlPassword,
        priority: 0,
        keep_last: 0,
        summary: "the password of an http, ftp, smtp, ldap, ssh or git URL with credentials; the user:password of `curl -u`",
    },
    Builtin {
        id: "bearer_token",
        category: Category::Secret,
        label: "TOKEN",
        patterns: &[
            pat(r"(?i)\b(?:bearer|token)\s+([A-Za-z0-9_\-.=+/~]{20,500})", 1, Trigger::Word(&["bearer", "token"]), 0, 520),
            // `Authorization: Basic <base64 of user:password>`, and a bare
            // credential as the whole header value (up to a quote or the
            // line's end: `AWS4-HMAC-SHA256 Credential=...` is a scheme).
            pat(r#"(?i)\bauthorization['"]?\s{0,3}[:=]\s{0,3}['"]?basic\s+([A-Za-z0-9+/]{8,500}={0,2})"#, 1, Trigger::Word(&["authorization"]), 0, 540),
            pat(r#"(?i)\bauthorization['"]?\s{0,3}[:=]\s{0,3}['"]?([A-Za-z0-9_\-.=+/~]{16,500})(?:['"\r\n]|$)"#, 1, Trigger::Word(&["authorization"]), 0, 540),
        ],
        validator: Validator::Token { min_entropy: 3.2 },
        priority: 2,
        keep_last: 0,
        summary: "the credential after `Bearer` / `Token` / `Authorization: Basic`, or a bare `Authorization:` value (headers pasted into prompts), gated by entropy",
    },
    Builtin {
        id: "secret_assignment",
        category: Category::Secret,
        label: "SECRET",
        patterns: &[pat(r#"(?i)(?:password|passwd|pwd|passphrase|secret|secret[_\-.]?key|api[_\-.]?key|apikey|api[_\-.]?secret|access[_\-.]?key|access[_\-.]?token|auth[_\-.]?token|client[_\-.]?secret|private[_\-.]?key|refresh[_\-.]?token|token|credentials?|auth)['"]?\s{0,3}(?::=|=>|==|=|:)\s{0,3}['"`]?([^\s'"`,;]{6,200})"#, 1, Trigger::Word(&["password", "passwd", "pwd", "passphrase", "secret", "api", "apikey", "access", "auth", "client", "private", "refresh", "token", "credential"]), 0, 260)],
        validator: Validator::Assignment,
        priority: 6,
        keep_last: 0,
        summary: "values assigned to password / secret / api_key / token / credentials names (`password=...`, `\"api_key\": \"...\"`), gated by entropy and character classes; placeholders (xxxx, <your-key>, ${VAR}, changeme) and anti-forgery, public and pagination tokens rejected",
    },
];

/// Values published as examples, which match a detector's shape but grant
/// nothing: the Google API keys in the Firebase Android SDK's tests (the same
/// list gitleaks allow-lists). Never findings; operators add their own with
/// `detectors.allow_values`. AWS's documented examples end in `EXAMPLE` and
/// are turned away by the AWS validators already.
pub static PUBLISHED_EXAMPLES: &[&str] = &[
    "AIzaSyabcdefghijklmnopqrstuvwxyz1234567",
    "AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs",
    "AIzaSyCkEhVjf3pduRDt6d1yKOMitrUEke8agEM",
    "AIzaSyDMAScliyLx7F0NPDEJi1QmyCgHIAODrlU",
    "AIzaSyD3asb-2pEZVqMkmL6M9N6nHZRR_znhrh0",
    "AIzayDNSXIbFmlXbIE6mCzDLQAqITYefhixbX4A",
    "AIzaSyAdOS2zB6NCsk1pCdZ4-P6GBdi_UUPwX7c",
    "AIzaSyASWm6HmTMdYWpgMnjRBjxcQ9CKctWmLd4",
    "AIzaSyANUvH9H9BsUccjsu2pCmEkOPjjaXeDQgY",
    "AIzaSyA5_iVawFQ8ABuTZNUdcwERLJv_a_p4wtM",
    "AIzaSyA4UrcGxgwQFTfaI3no3t7Lt1sjmdnP5sQ",
    "AIzaSyDSb51JiIcB6OJpwwMicseKRhhrOq1cS7g",
    "AIzaSyBF2RrAIm4a0mO64EShQfqfd2AFnzAvvuU",
    "AIzaSyBcE-OOIbhjyR83gm4r2MFCu4MJmprNXsw",
    "AIzaSyB8qGxt4ec15vitgn44duC5ucxaOi4FmqE",
    "AIzaSyA8vmApnrHNFE0bApF4hoZ11srVL_n0nvY",
];

/// Every built-in id, in catalogue order (for error messages and docs).
pub fn builtin_ids() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.id)
}

pub fn builtin(id: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.id == id)
}

/// Makes every `\b` an ASCII word boundary (see the module doc).
pub fn ascii_boundaries(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ids_are_unique_snake_case() {
        let mut seen = BTreeSet::new();
        for b in BUILTINS {
            assert!(seen.insert(b.id), "duplicate id {}", b.id);
            assert!(b.id.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'), "{}", b.id);
            assert!(b.label.bytes().all(|c| c.is_ascii_uppercase() || c == b'_'), "{}", b.label);
        }
    }

    #[test]
    fn every_pattern_compiles_with_its_group() {
        for b in BUILTINS {
            for p in b.patterns {
                let re = regex_automata::meta::Regex::new(&ascii_boundaries(p.regex)).unwrap_or_else(|e| panic!("{}: {e}", b.id));
                assert!(re.group_info().group_len(regex_automata::PatternID::ZERO) > p.group, "{}", b.id);
            }
        }
    }
}
