//! The detection engine: finds PII, secrets, operator keywords and custom
//! patterns in one text field and applies each finding's action.
//!
//! Everything expensive happens once, in [`PolicyEngine::compile`]: the
//! selected regex detectors become one multi-pattern `regex-automata` engine
//! (plus one small engine per detector for the precise pass), keyword lists
//! become one aho-corasick automaton. Per request, [`PolicyEngine::process`]
//! normalises the text (undoing obfuscation while keeping a map back to the
//! original bytes), finds candidates, confirms them with validators
//! (Luhn, mod-97, SSN ranges, entropy, placeholders), and rewrites.
//!
//! Modules, one concept each:
//! - [`catalogue`]: the built-in detectors (ids, categories, patterns).
//! - [`normalize`]: de-obfuscation with an offset map to original bytes.
//! - [`decode`]: base64 / hex segments decoded and scanned again.
//! - [`validate`]: checksum, range and entropy validators.
//! - [`keywords`], [`custom`]: operator-defined detectors from config.
//! - [`allow`]: values that are never findings (published examples, operator list).
//! - [`actions`]: what a finding turns into (mask, placeholder, ...).
//! - [`capture`]: value groups found with a smaller NFA where exact.
//! - [`starts`]: where a short pattern's matches can start, for anchored searches.
//! - [`session`]: per-request state (placeholder numbering, token vault).
//! - [`stream`]: what an incremental scan of a streamed text holds back.
//! - [`trigger`]: the prefilter that picks the windows worth a regex.
//! - [`wordscan`]: the trigger's search for token prefixes and context words.
//! - [`engine`]: compile and process.

use serde::Deserialize;

pub mod actions;
pub mod allow;
pub mod capture;
pub mod catalogue;
pub mod custom;
pub mod decode;
pub mod engine;
pub mod fingerprint;
pub mod keywords;
pub mod nibble_filter;
pub mod normalize;
pub mod session;
pub mod starts;
pub mod stream;
pub mod trigger;
pub mod validate;
pub mod wordscan;

pub use actions::{Action, DetectorSetting, SettingOptions};
pub use catalogue::{builtin_ids, Category};
pub use custom::CustomDetectorConfig;
pub use engine::{PolicyEngine, Processed};
pub use keywords::KeywordListConfig;
pub use normalize::NormalizeConfig;
pub use session::ScanSession;
pub use stream::StreamStep;

/// The top-level `detectors` section of the plugin configuration. Every field
/// has a default, so the built-in catalogue is usable with no section at all.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorsConfig {
    /// Key for keyed fingerprints (HMAC-SHA256): the `hash` action and the
    /// `fingerprints` of decision records. At least 16 bytes. Without it,
    /// records carry no fingerprints and `hash` is refused at configure time.
    #[serde(default)]
    pub fingerprint_key: Option<String>,
    /// De-obfuscation and scanning bounds.
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// Operator deny lists, matched by one aho-corasick automaton.
    #[serde(default)]
    pub keywords: Vec<KeywordListConfig>,
    /// Operator regexes (linear-time syntax only).
    #[serde(default)]
    pub custom: Vec<CustomDetectorConfig>,
    /// Exact values no regex detector reports (a support address, a test
    /// fixture's key), on top of the catalogue's published examples.
    #[serde(default)]
    pub allow_values: Vec<String>,
}
