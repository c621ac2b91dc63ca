//! Who is calling: the verified identity of a request, and the policy it
//! selects.
//!
//! One component per file, named after what it does (as Envoy's `jwt_authn`
//! does): `token` finds the one bearer token, `jwks` turns key sets into
//! verification keys, `verifier` checks the JOSE header and the signature,
//! `claims` checks the payload, `cache` remembers verified tokens, `metadata`
//! reads claims Envoy already verified, and `rules` maps claims to a policy.
//!
//! Nothing here reads a clock or the network: the glue passes `now` and the
//! fetched JWKS bytes in, so every decision is reproducible in a test.

mod cache;
mod claims;
mod jwks;
mod metadata;
mod rules;
mod token;
mod verifier;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config_error::{join, ConfigError};

pub use cache::DEFAULT_CACHE_ENTRIES;
pub use jwks::{JwksError, JwksSchedule, RemoteJwksConfig, MAX_JWKS_KEYS};
pub use metadata::MetadataConfig;
pub use rules::{ClaimCondition, ClaimName, PolicyRule, PolicySelector};
pub use token::TokenSourceConfig;
pub use verifier::Alg;

use cache::TokenCache;
use claims::ClaimChecks;
use jwks::KeySet;
use token::TokenSource;

/// Largest token accepted, in bytes. Real access tokens are a few hundred
/// bytes to a few KiB; the cap bounds base64 and JSON work per request.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
const MAX_TOKEN_BYTES_LIMIT: usize = 64 * 1024;
/// Clock skew is capped so a typo cannot turn expiry off.
const MAX_CLOCK_SKEW_S: u64 = 600;

/// How a request's identity is established.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Verify a JWT here, against the configured JWKS.
    #[default]
    Jwt,
    /// Trust claims that Envoy's `jwt_authn` filter (or Istio
    /// `RequestAuthentication`) verified and put in dynamic metadata.
    TrustedMetadata,
    /// No authentication at all: every request gets the default policy and
    /// no identity. For demos and tests only.
    None,
}

/// The plugin configuration's `auth` section. See docs/identity.md.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub mode: AuthMode,
    /// Exact `iss` value required.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The token's `aud` (string or array) must contain at least one of these.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Inline JWKS document (`{"keys": [...]}`), kept as JSON so errors can
    /// name `auth.jwks.keys[1].n`.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// JWKS fetched by the glue from an Envoy cluster.
    #[serde(default)]
    pub remote_jwks: Option<RemoteJwksConfig>,
    /// Where the token comes from; default `Authorization: Bearer`.
    #[serde(default)]
    pub token_sources: Option<Vec<TokenSourceConfig>>,
    /// Accepted `alg` values; default all asymmetric ones.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// HS256/384/512 need a shared secret in the key set; off unless asked.
    #[serde(default)]
    pub allow_hmac: bool,
    #[serde(default = "default_clock_skew_s")]
    pub clock_skew_s: u64,
    /// Longest accepted `exp - iat`; when set, `iat` is required.
    #[serde(default)]
    pub max_lifetime_s: Option<u64>,
    #[serde(default = "yes")]
    pub require_exp: bool,
    /// Claims that must be present (and not null).
    #[serde(default)]
    pub required_claims: Vec<String>,
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Verified tokens remembered per worker; 0 turns the cache off.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Where Envoy's verified claims are (mode `trusted_metadata`).
    #[serde(default)]
    pub metadata: Option<MetadataConfig>,
}

fn default_clock_skew_s() -> u64 {
    60
}
fn yes() -> bool {
    true
}
fn default_tenant_claim() -> String {
    "tenant".to_string()
}
fn default_cache_entries() -> usize {
    DEFAULT_CACHE_ENTRIES
}
fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Jwt,
            issuer: None,
            audiences: Vec::new(),
            jwks: None,
            remote_jwks: None,
            token_sources: None,
            algorithms: None,
            allow_hmac: false,
            clock_skew_s: default_clock_skew_s(),
            max_lifetime_s: None,
            require_exp: true,
            required_claims: Vec::new(),
            tenant_claim: default_tenant_claim(),
            cache_entries: default_cache_entries(),
            max_token_bytes: default_max_token_bytes(),
            metadata: None,
        }
    }
}

/// A verified caller. `claims` is the whole verified payload, for policy rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub subject: String,
    pub issuer: String,
    pub tenant: Option<String>,
    pub claims: serde_json::Value,
}

/// Why a request was not authenticated. Both fields are fixed strings chosen
/// here: nothing from the token (not even its `kid` or `iss`) ever reaches a
/// client error or a log line through this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthError {
    /// Short stable code for the client error's `code` and the decision record.
    pub reason: &'static str,
    pub message: &'static str,
}

impl AuthError {
    pub(crate) const fn new(reason: &'static str, message: &'static str) -> Self {
        Self { reason, message }
    }

    /// 503 when the filter cannot verify anything (no usable keys); 401 for
    /// everything the client can fix.
    pub fn status(&self) -> u16 {
        if self.reason == "jwks_unavailable" {
            503
        } else {
            401
        }
    }

    /// Value for the `WWW-Authenticate` response header (RFC 6750).
    pub fn www_authenticate(&self) -> String {
        format!("Bearer realm=\"meshguard\", error=\"invalid_token\", error_description=\"{}\"", self.message)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

impl std::error::Error for AuthError {}

/// The `auth` section compiled once at configure time. Holds the key set
/// (replaceable at run time) and the per-worker cache of verified tokens.
#[derive(Debug)]
pub struct Authenticator {
    mode: AuthMode,
    sources: Vec<TokenSource>,
    algorithms: Vec<Alg>,
    allow_hmac: bool,
    max_token_bytes: usize,
    checks: ClaimChecks,
    keys: Option<KeySet>,
    remote: Option<RemoteJwksConfig>,
    schedule: Option<JwksSchedule>,
    cache: TokenCache,
    metadata: MetadataConfig,
}

impl Authenticator {
    /// Validates the `auth` section; `path` is where it sits in the document
    /// (normally `auth`), so errors read `auth.jwks.keys[1].n`.
    pub fn compile(cfg: &AuthConfig, path: &str) -> Result<Self, ConfigError> {
        if cfg.clock_skew_s > MAX_CLOCK_SKEW_S {
            return Err(ConfigError::new(
                join(path, "clock_skew_s"),
                format!("must be at most {MAX_CLOCK_SKEW_S} seconds, got {}", cfg.clock_skew_s),
            ));
        }
        if cfg.max_token_bytes < 256 || cfg.max_token_bytes > MAX_TOKEN_BYTES_LIMIT {
            return Err(ConfigError::new(
                join(path, "max_token_bytes"),
                format!("must be between 256 and {MAX_TOKEN_BYTES_LIMIT}, got {}", cfg.max_token_bytes),
            ));
        }
        if cfg.cache_entries > cache::MAX_CACHE_ENTRIES {
            return Err(ConfigError::new(
                join(path, "cache_entries"),
                format!("must be at most {}, got {}", cache::MAX_CACHE_ENTRIES, cfg.cache_entries),
            ));
        }
        if let Some(max) = cfg.max_lifetime_s {
            if max == 0 {
                return Err(ConfigError::new(join(path, "max_lifetime_s"), "must be at least 1 second"));
            }
        }
        if cfg.tenant_claim.is_empty() {
            return Err(ConfigError::new(join(path, "tenant_claim"), "must name a claim"));
        }
        for (i, name) in cfg.required_claims.iter().enumerate() {
            if name.is_empty() {
                return Err(ConfigError::new(format!("{}[{i}]", join(path, "required_claims")), "must name a claim"));
            }
        }

        let algorithms = verifier::compile_algorithms(cfg.algorithms.as_deref(), cfg.allow_hmac, &join(path, "algorithms"))?;
        let sources = token::compile_sources(cfg.token_sources.as_deref(), &join(path, "token_sources"))?;

        match cfg.mode {
            AuthMode::None => {
                for (set, field) in [
                    (cfg.issuer.is_some(), "issuer"),
                    (cfg.jwks.is_some(), "jwks"),
                    (cfg.remote_jwks.is_some(), "remote_jwks"),
                    (cfg.metadata.is_some(), "metadata"),
                ] {
                    if set {
                        return Err(ConfigError::new(
                            join(path, field),
                            "is set but `mode` is `none`, which ignores it; remove it or choose mode `jwt` or `trusted_metadata`",
                        ));
                    }
                }
            }
            AuthMode::Jwt | AuthMode::TrustedMetadata => {
                match &cfg.issuer {
                    Some(iss) if !iss.is_empty() => {}
                    _ => return Err(ConfigError::new(join(path, "issuer"), "is required: the exact `iss` value tokens must carry")),
                }
                for (i, aud) in cfg.audiences.iter().enumerate() {
                    if aud.is_empty() {
                        return Err(ConfigError::new(format!("{}[{i}]", join(path, "audiences")), "must not be empty"));
                    }
                }
            }
        }

        let mut keys = None;
        let mut remote = None;
        let mut schedule = None;
        match cfg.mode {
            AuthMode::Jwt => {
                if cfg.audiences.is_empty() {
                    return Err(ConfigError::new(
                        join(path, "audiences"),
                        "at least one audience is required; a token minted for another service must not be accepted here",
                    ));
                }
                if cfg.metadata.is_some() {
                    return Err(ConfigError::new(join(path, "metadata"), "only applies to mode `trusted_metadata`"));
                }
                match (&cfg.jwks, &cfg.remote_jwks) {
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::new(join(path, "remote_jwks"), "set either `jwks` (inline) or `remote_jwks`, not both"));
                    }
                    (None, None) => {
                        return Err(ConfigError::new(join(path, "jwks"), "mode `jwt` needs keys: set `jwks` (inline) or `remote_jwks`"));
                    }
                    (Some(doc), None) => {
                        let jwks_path = join(path, "jwks");
                        let set = jwks::parse(doc, &algorithms, cfg.allow_hmac, true)
                            .map_err(|e| ConfigError::new(join(&jwks_path, &e.path), e.message))?;
                        keys = Some(set);
                    }
                    (None, Some(r)) => {
                        r.validate(&join(path, "remote_jwks"))?;
                        schedule = Some(JwksSchedule::new(r));
                        remote = Some(r.clone());
                    }
                }
            }
            AuthMode::TrustedMetadata => {
                for (set, field) in [
                    (cfg.jwks.is_some(), "jwks"),
                    (cfg.remote_jwks.is_some(), "remote_jwks"),
                    (cfg.token_sources.is_some(), "token_sources"),
                    (cfg.algorithms.is_some(), "algorithms"),
                ] {
                    if set {
                        return Err(ConfigError::new(
                            join(path, field),
                            "does not apply to mode `trusted_metadata`: Envoy's jwt_authn verifies the token there",
                        ));
                    }
                }
            }
            AuthMode::None => {}
        }
        let metadata = cfg.metadata.clone().unwrap_or_default();
        metadata.validate(&join(path, "metadata"))?;

        Ok(Self {
            mode: cfg.mode,
            sources,
            algorithms,
            allow_hmac: cfg.allow_hmac,
            max_token_bytes: cfg.max_token_bytes,
            checks: ClaimChecks {
                issuer: cfg.issuer.clone().unwrap_or_default(),
                audiences: cfg.audiences.clone(),
                skew_s: cfg.clock_skew_s,
                max_lifetime_s: cfg.max_lifetime_s,
                require_exp: cfg.require_exp,
                required_claims: cfg.required_claims.clone(),
                tenant_claim: cfg.tenant_claim.clone(),
            },
            keys,
            remote,
            schedule,
            cache: TokenCache::new(cfg.cache_entries),
            metadata,
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Where the glue fetches the JWKS from, when it is remote.
    pub fn remote_jwks(&self) -> Option<&RemoteJwksConfig> {
        self.remote.as_ref()
    }

    /// Whether the glue should fetch the remote JWKS now (first fetch,
    /// periodic refresh, or a retry after a failure with backoff).
    pub fn jwks_fetch_due(&self, now_s: u64) -> bool {
        self.schedule.as_ref().is_some_and(|s| s.due(now_s))
    }

    /// The glue reports a failed fetch (timeout, non-200): the next try is
    /// pushed back, and the current keys stay in use until they go stale.
    pub fn jwks_fetch_failed(&mut self, now_s: u64) {
        if let Some(s) = self.schedule.as_mut() {
            s.on_failure(now_s);
        }
    }

    /// Number of keys currently usable (0 before the first remote fetch).
    pub fn key_count(&self) -> usize {
        self.keys.as_ref().map_or(0, KeySet::len)
    }

    /// Replaces the key set (remote refresh, rotation without restart). A
    /// document that does not parse, or has no usable key, is refused and the
    /// old keys stay. The verified-token cache is emptied so a key removed by
    /// the issuer stops working at once.
    pub fn update_jwks(&mut self, jwks_json: &[u8], now_s: u64) -> Result<usize, JwksError> {
        let parsed = serde_json::from_slice::<serde_json::Value>(jwks_json)
            .map_err(|_| JwksError::new("", "is not a JSON document"))
            .and_then(|doc| jwks::parse(&doc, &self.algorithms, self.allow_hmac, false));
        match parsed {
            Ok(set) => {
                let count = set.len();
                self.keys = Some(set);
                self.cache.clear();
                if let Some(s) = self.schedule.as_mut() {
                    s.on_success(now_s);
                }
                Ok(count)
            }
            Err(err) => {
                if let Some(s) = self.schedule.as_mut() {
                    s.on_failure(now_s);
                }
                Err(err)
            }
        }
    }

    /// Authenticates a request from its headers (lower-case names, every
    /// occurrence). Mode `jwt` only; the other modes answer
    /// `auth_mode_mismatch` so a glue bug cannot skip verification silently.
    pub fn authenticate(&mut self, headers: &[(String, String)], now_s: u64) -> Result<Identity, AuthError> {
        if self.mode != AuthMode::Jwt {
            return Err(AuthError::new("auth_mode_mismatch", "authentication is not configured for bearer tokens"));
        }
        let token = token::extract(&self.sources, headers)?;
        if token.len() > self.max_token_bytes {
            return Err(AuthError::new("malformed_token", "the token is larger than this route accepts"));
        }
        // Stale keys fail closed for cached tokens too: the cache only saves
        // work, it never extends what the key set allows.
        if let Some(s) = &self.schedule {
            if !s.keys_usable(now_s) {
                return Err(AuthError::new("jwks_unavailable", "signing keys are not available; try again later"));
            }
        }
        if let Some(identity) = self.cache.get(token.as_bytes(), now_s) {
            return Ok(identity);
        }
        let keys = self
            .keys
            .as_ref()
            .ok_or(AuthError::new("jwks_unavailable", "signing keys are not available; try again later"))?;
        let payload = verifier::verify(token, keys, &self.algorithms, self.checks.skew_s, self.max_token_bytes, now_s)?;
        let identity = self.checks.check(payload, now_s)?;
        if let Some(valid_until) = self.checks.valid_until(&identity.claims) {
            self.cache.insert(token.as_bytes(), identity.clone(), valid_until);
        }
        Ok(identity)
    }

    /// Mode `trusted_metadata`: `metadata_json` is the dynamic-metadata
    /// namespace written by Envoy's `jwt_authn` filter (by default
    /// `envoy.filters.http.jwt_authn`), as a JSON object. The payload under
    /// the configured key is checked for issuer, audience, time and required
    /// claims like a token verified here.
    pub fn authenticate_metadata(&self, metadata_json: &[u8], now_s: u64) -> Result<Identity, AuthError> {
        if self.mode != AuthMode::TrustedMetadata {
            return Err(AuthError::new("auth_mode_mismatch", "authentication is not configured for trusted metadata"));
        }
        let payload = metadata::payload(&self.metadata, metadata_json)?;
        self.checks.check(payload, now_s)
    }

    /// The dynamic-metadata namespace and key the glue reads in mode
    /// `trusted_metadata`.
    pub fn metadata_location(&self) -> (&str, &str) {
        (&self.metadata.namespace, &self.metadata.payload_key)
    }
}
