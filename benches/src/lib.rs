//! Shared inputs for the benchmarks and the quality report: deterministic
//! prose with sprinkled PII and secrets, so every run measures the same
//! bytes.

use std::collections::BTreeMap;

use meshguard_core::detect::{DetectorSetting, DetectorsConfig, PolicyEngine};

/// The default catalogue as a policy would select it: every PII and secret
/// detector, redacting.
pub fn default_engine() -> Result<PolicyEngine, meshguard_core::ConfigError> {
    let selection: BTreeMap<String, DetectorSetting> = serde_json::from_str(r#"{"category:pii": "redact", "category:secret": "redact"}"#)
        .map_err(|e| meshguard_core::ConfigError::new("", e.to_string()))?;
    PolicyEngine::compile(&DetectorsConfig::default(), &selection, "policies.bench")
}

const SENTENCES: &[&str] = &[
    "The quarterly planning review covers revenue, hiring and the migration of the billing service to the new cluster.",
    "Could you summarise the attached design document in three bullet points for the leadership sync on Thursday?",
    "Our on-call rotation changed last week, so please double-check who owns the alerting runbooks before the release.",
    "The customer reported that exports time out after roughly 30 seconds when the report covers more than 12 months.",
    "Version 2.14.3 fixes the race in the cache invalidation path; upgrade before enabling the new scheduler.",
    "We measured p99 latency at 184 ms on Tuesday, up from 121 ms, mostly from the retry storm at 14:05 UTC.",
    "Please rewrite this paragraph so it sounds friendlier, but keep the legal disclaimer exactly as it is.",
    "The warehouse in Rotterdam shipped 4,210 orders in March, which is 7.5% more than in February.",
    "Translate the following onboarding checklist into German and keep the numbered list format intact.",
    "When the job fails, the scheduler retries three times with exponential backoff starting at 250 milliseconds.",
    "Draft a polite reply declining the meeting, and suggest two alternative slots next Wednesday afternoon.",
    "The function returns a HashMap<String, Vec<u64>> keyed by tenant, sorted by the first timestamp seen.",
];

const SPRINKLES: &[&str] = &[
    "You can reach Dana at dana.whitfield@example.org or +1 415 555 0132 after six.",
    "The refund goes to card 4111 1111 1111 1111, expiry 09/27, per the ticket.",
    "Her SSN is 536-22-1234 and the account IBAN is DE89 3704 0044 0532 0130 00.",
    "Deploy with AWS_ACCESS_KEY_ID=AKIAQ3EGRK5NW7XZLM4P from the 10.20.30.40 bastion.",
    "I pasted my token ghp_4fTq9LmZ2xVb7NcR1sYk3JhG8dWp6UeA0oIi by mistake, sorry.",
    "DATABASE_URL=postgres://app:S3cr3t-p4ss@db.internal:5432/app is in the env file.",
];

/// About `bytes` of prose, one sprinkled finding every eight sentences.
pub fn prose(bytes: usize) -> String {
    prose_every(bytes, 8)
}

/// The same prose with no sprinkled sentence: nothing for the detectors.
pub fn clean_prose(bytes: usize) -> String {
    prose_every(bytes, 0)
}

/// About `bytes` of prose where every `every`-th sentence carries PII or a
/// secret (about 100 bytes a sentence); `every` 0 means none.
pub fn prose_every(bytes: usize, every: usize) -> String {
    let mut out = String::with_capacity(bytes + 256);
    let mut i = 0usize;
    while out.len() < bytes {
        let sprinkled = every > 0 && i % every == every - 1;
        let s = if sprinkled { SPRINKLES.get((i / every) % SPRINKLES.len()) } else { SENTENCES.get(i % SENTENCES.len()) };
        out.push_str(s.copied().unwrap_or(""));
        out.push(if i % 5 == 4 { '\n' } else { ' ' });
        i += 1;
    }
    let mut cut = bytes.min(out.len());
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out
}
