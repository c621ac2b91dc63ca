//! The plugin configuration: one versioned JSON document (Envoy `configuration`,
//! Istio `pluginConfig`), parsed and validated once at configure time.
//!
//! Parsing is strict (unknown fields are errors) and every error names its
//! field path, so a bad document fails plugin start with a reason an operator
//! can act on.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::classify::{Classifier, ClassifierConfig, InjectionConfig, InjectionPolicy};
use crate::config_error::{join, ConfigError};
use crate::detect::fingerprint::FingerprintKey;
use crate::detect::{DetectorSetting, DetectorsConfig, PolicyEngine};
use crate::identity::{AuthConfig, Authenticator, PolicyRule, PolicySelector};
use crate::encoding::CompressedRequests;
use crate::quota::RateLimitConfig;
use crate::rag::RagConfig;
use crate::request_rules::RequestRules;

/// The only configuration version this build understands.
pub const CONFIG_VERSION: u32 = 1;

/// Upper bound for any body cap: the filter buffers whole bodies in the VM's
/// linear memory, so an operator typo must not let one request take gigabytes.
pub const MAX_BODY_CAP_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub version: u32,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub sidecar: Option<SidecarConfig>,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Who may call. Required: running without authentication must be an
    /// explicit `{"mode": "none"}`, never an omission.
    pub auth: AuthConfig,
    /// Claim rules choosing a policy per caller; first match wins.
    #[serde(default)]
    pub policy_rules: Vec<PolicyRule>,
    #[serde(default)]
    pub detectors: DetectorsConfig,
    /// The prompt-injection model (embedded unless an operator supplies one).
    #[serde(default)]
    pub classifier: Option<ClassifierConfig>,
    pub default_policy: String,
    pub policies: BTreeMap<String, PolicyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body buffered and scanned; larger bodies get 413.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Largest non-streamed response body buffered and scanned; larger
    /// responses are replaced by an error, never passed unscanned.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

fn default_max_request_bytes() -> usize {
    1024 * 1024
}
fn default_max_response_bytes() -> usize {
    4 * 1024 * 1024
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: default_max_request_bytes(),
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

/// Where the native sidecar is: an Envoy cluster name, because the filter
/// can only reach the network through `dispatch_http_call`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarConfig {
    pub cluster: String,
    #[serde(default = "default_sidecar_authority")]
    pub authority: String,
    #[serde(default = "default_sidecar_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_sidecar_authority() -> String {
    "meshguard-sidecar".to_string()
}
fn default_sidecar_timeout_ms() -> u64 {
    250
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Also emit every decision record as a log line (Envoy's log, `info`).
    /// Off by default: the access log carries the same record through filter
    /// state, and the extra line costs Envoy about 12 µs per request.
    #[serde(default)]
    pub log_decisions: bool,
}

/// What happens when a check cannot complete (sidecar down or slow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Refuse the request with 503: nothing unscanned passes.
    #[default]
    Closed,
    /// Let it through and mark the decision record `degraded`.
    Open,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub fail_mode: FailMode,
    /// Detector id → what to do when it fires.
    #[serde(default)]
    pub detectors: BTreeMap<String, DetectorSetting>,
    /// Send the request's texts to the sidecar's `/v1/classify` for a second
    /// opinion before forwarding.
    #[serde(default)]
    pub sidecar_review: bool,
    /// Tighter request cap for this policy (bytes); must not exceed
    /// `limits.max_request_bytes`.
    #[serde(default)]
    pub max_request_bytes: Option<usize>,
    /// Models this policy's callers may use (exact names, or prefixes ending
    /// in `*`); absent: any model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Tools (function names) requests may offer the model; absent: any.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// Largest `max_tokens` / `max_completion_tokens` / `max_output_tokens`
    /// a request may ask for.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Largest prompt, in estimated tokens (about 4 bytes of text each).
    #[serde(default)]
    pub max_prompt_tokens: Option<u64>,
    /// Per-subject request rate and token budget, per Envoy instance.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// gzip / deflate request bodies: `decompress` (scan, re-encode) or `reject` (415).
    #[serde(default)]
    pub compressed_requests: CompressedRequests,
    /// A body that is not valid JSON: `reject` (400) or `forward` unscanned, logged.
    #[serde(default)]
    pub malformed_json: Unscannable,
    /// A body that is neither JSON nor text: `reject` (415) or `forward` unscanned, logged.
    #[serde(default)]
    pub other_media_types: Unscannable,
    /// Send prompts with findings of these categories to another upstream
    /// (e.g. a self-hosted model) instead of the external provider.
    #[serde(default)]
    pub sensitive_route: Option<SensitiveRoute>,
    /// Put a per-request canary into the system prompt and cut off any
    /// answer that repeats it (`system_prompt_leak`).
    #[serde(default)]
    pub canary: bool,
    /// A candidate policy evaluated beside this one on the same requests;
    /// its verdict is recorded, never enforced.
    #[serde(default)]
    pub shadow: Option<String>,
    /// Prompt-injection scoring: thresholds and which roles are scored.
    #[serde(default)]
    pub injection: Option<InjectionConfig>,
    /// Retrieved context from the sidecar on these routes.
    #[serde(default)]
    pub rag: Option<RagConfig>,
}

/// Marks a request for another upstream when its findings include one of
/// `categories`. The mark is a top-level body field (`meshguard_route`)
/// because the route is chosen once the body is complete: Envoy's
/// `json_to_metadata` filter after meshguard turns it into `envoy.lb`
/// metadata and the cluster's subset load balancer picks the endpoint (see
/// envoy/sensitive-routing.yaml). proxy-wasm cannot hold request headers
/// while it reads the body, so it cannot rewrite the route itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitiveRoute {
    pub categories: Vec<String>,
    /// The value of `meshguard_route`, matched by the Envoy configuration.
    pub to: String,
}

/// The body field that carries a routing decision to Envoy.
pub const ROUTE_FIELD: &str = "meshguard_route";

/// What to do with a body that cannot be scanned. Forwarding is an explicit
/// fail-open: the record's `reason` says the body went unscanned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unscannable {
    #[default]
    Reject,
    Forward,
}

/// A policy ready for the data path: detectors compiled, limits resolved.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub fail_mode: FailMode,
    pub sidecar_review: bool,
    pub max_request_bytes: usize,
    pub rules: RequestRules,
    pub rate_limit: RateLimitConfig,
    pub compressed_requests: CompressedRequests,
    pub malformed_json: Unscannable,
    pub other_media_types: Unscannable,
    pub sensitive_route: Option<SensitiveRoute>,
    pub canary: bool,
    pub shadow: Option<String>,
    pub engine: PolicyEngine,
    pub injection: Option<InjectionPolicy>,
    pub rag: Option<RagConfig>,
}

/// The whole configuration, validated and compiled. Built once per plugin
/// (re)configure; the data path only reads it.
#[derive(Debug)]
pub struct CompiledConfig {
    pub limits: Limits,
    pub sidecar: Option<SidecarConfig>,
    pub audit: AuditConfig,
    pub policies: BTreeMap<String, Policy>,
    pub default_policy: String,
    /// The compiled `auth` section. The filter takes it out once (it keeps a
    /// per-worker token cache and a replaceable key set).
    pub authenticator: Option<Authenticator>,
    pub selector: PolicySelector,
    /// Key for prompt fingerprints (`detectors.fingerprint_key`).
    pub fingerprint_key: Option<FingerprintKey>,
    /// The loaded injection model, shared by the policies that use it;
    /// loaded only when a policy has `injection` or a model is configured.
    pub classifier: Option<Arc<Classifier>>,
    /// Short stable hash of the configuration document, for the decision
    /// record: a SOC analyst can tell which policy text made a decision.
    pub config_hash: String,
}

impl CompiledConfig {
    /// Parses, validates and compiles a configuration document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = parse(bytes)?;
        let config_hash = crate::hash::short_hex(bytes);
        compile(config, config_hash)
    }

    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    pub fn default_policy(&self) -> Option<&Policy> {
        self.policies.get(&self.default_policy)
    }
}

/// Strict serde parse; the error carries the path serde was at.
pub fn parse(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ConfigError::new("", "the configuration is empty; expected a JSON object with `version`, `default_policy` and `policies`"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, err.inner().to_string())
    })
}

fn compile(config: PluginConfig, config_hash: String) -> Result<CompiledConfig, ConfigError> {
    if config.version != CONFIG_VERSION {
        return Err(ConfigError::new(
            "version",
            format!("unsupported version {}; this build understands version {CONFIG_VERSION}", config.version),
        ));
    }
    validate_cap("limits.max_request_bytes", config.limits.max_request_bytes)?;
    validate_cap("limits.max_response_bytes", config.limits.max_response_bytes)?;
    if let Some(sidecar) = &config.sidecar {
        if sidecar.cluster.trim().is_empty() {
            return Err(ConfigError::new("sidecar.cluster", "must name the Envoy cluster of the sidecar"));
        }
        if sidecar.timeout_ms == 0 || sidecar.timeout_ms > 60_000 {
            return Err(ConfigError::new("sidecar.timeout_ms", "must be between 1 and 60000"));
        }
    }
    if config.policies.is_empty() {
        return Err(ConfigError::new("policies", "at least one policy is required"));
    }
    if !config.policies.contains_key(&config.default_policy) {
        return Err(ConfigError::new(
            "default_policy",
            format!(
                "names policy `{}`, which is not defined under `policies` (defined: {})",
                config.default_policy,
                config.policies.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }

    let classifier = load_classifier(&config)?;
    let mut policies = BTreeMap::new();
    for (name, policy) in &config.policies {
        let path = join("policies", name);
        if policy.sidecar_review && config.sidecar.is_none() {
            return Err(ConfigError::new(
                join(&path, "sidecar_review"),
                "is true but no `sidecar` is configured",
            ));
        }
        let max_request_bytes = match policy.max_request_bytes {
            Some(cap) => {
                let cap_path = join(&path, "max_request_bytes");
                validate_cap(&cap_path, cap)?;
                if cap > config.limits.max_request_bytes {
                    return Err(ConfigError::new(
                        cap_path,
                        format!("{cap} exceeds limits.max_request_bytes ({})", config.limits.max_request_bytes),
                    ));
                }
                cap
            }
            None => config.limits.max_request_bytes,
        };
        let engine = PolicyEngine::compile(&config.detectors, &policy.detectors, &path)?;
        for (field, list) in [("models", &policy.models), ("tools", &policy.tools)] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                return Err(ConfigError::new(join(&path, field), "an empty list allows nothing; omit it to allow any"));
            }
        }
        for (field, value) in [("max_output_tokens", policy.max_output_tokens), ("max_prompt_tokens", policy.max_prompt_tokens)] {
            if value == Some(0) {
                return Err(ConfigError::new(join(&path, field), "must be at least 1 (omit it for no limit)"));
            }
        }
        if let Some(route) = &policy.sensitive_route {
            let route_path = join(&path, "sensitive_route");
            const CATEGORIES: [&str; 4] = ["pii", "secret", "keyword", "custom"];
            if route.categories.is_empty() {
                return Err(ConfigError::new(join(&route_path, "categories"), "must name at least one category"));
            }
            if let Some(bad) = route.categories.iter().find(|c| !CATEGORIES.contains(&c.as_str())) {
                return Err(ConfigError::new(join(&route_path, "categories"), format!("unknown category `{bad}`; known: {}", CATEGORIES.join(", "))));
            }
            if route.to.is_empty() || !route.to.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(ConfigError::new(join(&route_path, "to"), "must be a non-empty name of letters, digits, `_` or `-`"));
            }
        }
        if let Some(shadow) = &policy.shadow {
            if shadow == name || !config.policies.contains_key(shadow) {
                return Err(ConfigError::new(
                    join(&path, "shadow"),
                    format!("must name another policy defined under `policies`, got `{shadow}`"),
                ));
            }
        }
        let injection = match (&policy.injection, &classifier) {
            (Some(cfg), Some(model)) => Some(InjectionPolicy::compile(cfg, model.clone(), &join(&path, "injection"))?),
            _ => None,
        };
        if injection.as_ref().is_some_and(|i| i.escalation_budget_ms.is_some()) && config.sidecar.is_none() {
            return Err(ConfigError::new(join(&join(&path, "injection"), "escalation_budget_ms"), "escalation needs the sidecar: no `sidecar` is configured"));
        }
        if let Some(rag) = &policy.rag {
            let rag_path = join(&path, "rag");
            if config.sidecar.is_none() {
                return Err(ConfigError::new(rag_path, "retrieval needs the sidecar: no `sidecar` is configured"));
            }
            rag.validate(&rag_path)?;
        }
        let rate_limit = policy.rate_limit.clone().unwrap_or_default();
        rate_limit.validate(&join(&path, "rate_limit"))?;
        policies.insert(
            name.clone(),
            Policy {
                name: name.clone(),
                fail_mode: policy.fail_mode,
                sidecar_review: policy.sidecar_review,
                max_request_bytes,
                rules: RequestRules {
                    models: policy.models.clone(),
                    tools: policy.tools.clone(),
                    max_output_tokens: policy.max_output_tokens,
                    max_prompt_tokens: policy.max_prompt_tokens,
                },
                rate_limit,
                compressed_requests: policy.compressed_requests,
                malformed_json: policy.malformed_json,
                other_media_types: policy.other_media_types,
                sensitive_route: policy.sensitive_route.clone(),
                canary: policy.canary,
                shadow: policy.shadow.clone(),
                engine,
                injection,
                rag: policy.rag.clone(),
            },
        );
    }

    let authenticator = Authenticator::compile(&config.auth, "auth")?;
    let known: std::collections::BTreeSet<String> = config.policies.keys().cloned().collect();
    let selector = PolicySelector::compile(&config.policy_rules, &known, &config.default_policy, "policy_rules")?;

    let fingerprint_key = config.detectors.fingerprint_key.as_deref().and_then(FingerprintKey::new);
    Ok(CompiledConfig {
        fingerprint_key,
        classifier,
        authenticator: Some(authenticator),
        selector,
        limits: config.limits,
        sidecar: config.sidecar,
        audit: config.audit,
        policies,
        default_policy: config.default_policy,
        config_hash,
    })
}

/// Loads (and optimises) the injection model once, if anything needs it.
fn load_classifier(config: &PluginConfig) -> Result<Option<Arc<Classifier>>, ConfigError> {
    let user = config.policies.iter().find(|(_, p)| p.injection.is_some()).map(|(name, _)| name);
    let model = config.classifier.as_ref().and_then(|c| c.model_base64.as_deref());
    if user.is_none() && model.is_none() {
        return Ok(None);
    }
    #[cfg(feature = "classifier")]
    {
        let loaded = match model {
            Some(encoded) => Classifier::from_base64(encoded, "classifier.model_base64")?,
            None => Classifier::embedded()?,
        };
        Ok(Some(Arc::new(loaded)))
    }
    #[cfg(not(feature = "classifier"))]
    {
        let path = match user {
            Some(name) => join(&join("policies", name), "injection"),
            None => "classifier.model_base64".to_string(),
        };
        Err(ConfigError::new(path, "this build of the filter has no classifier (built with `--no-default-features`); use the default build, or classify in the sidecar"))
    }
}

fn validate_cap(path: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 || value > MAX_BODY_CAP_BYTES {
        return Err(ConfigError::new(path, format!("must be between 1 and {MAX_BODY_CAP_BYTES} bytes, got {value}")));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"version": 1, "auth": {"mode": "none"}, "default_policy": "p", "policies": {"p": {}}}"#;

    #[test]
    fn decision_log_lines_are_off_unless_asked_for() {
        assert!(!CompiledConfig::from_json(MINIMAL.as_bytes()).unwrap().audit.log_decisions);
        let on = MINIMAL.replacen('{', r#"{"audit": {"log_decisions": true}, "#, 1);
        assert!(CompiledConfig::from_json(on.as_bytes()).unwrap().audit.log_decisions);
        let empty = MINIMAL.replacen('{', r#"{"audit": {}, "#, 1);
        assert!(!CompiledConfig::from_json(empty.as_bytes()).unwrap().audit.log_decisions);
    }
}
