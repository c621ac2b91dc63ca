//! JSON Web Key Sets: parsed into ready verification keys once per
//! (re)load, never per request; and the refresh schedule of a remote set.
//!
//! Keys this build cannot use (encryption keys, other curves) are skipped so
//! an identity provider's full key set loads; a key of a supported type that
//! is malformed refuses the whole document, so a half-read set never
//! replaces a good one.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::config_error::{join, ConfigError};

use super::verifier::Alg;

/// A key set larger than this is refused: every kid-less key is a possible
/// signature check, and real sets hold a handful.
pub const MAX_JWKS_KEYS: usize = 64;

/// JWK members are base64url without padding (RFC 7517); some providers pad
/// anyway, which is harmless here.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A problem in a JWKS document, located relative to the document
/// (`keys[1].n`). Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksError {
    pub path: String,
    pub message: String,
}

impl JwksError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid JWKS: {}", self.message)
        } else {
            write!(f, "invalid JWKS at `{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for JwksError {}

/// RSA verification keys, one per algorithm the JWK may be used with.
#[derive(Debug)]
pub(crate) struct RsaKeys {
    pub rs256: Option<RS256PublicKey>,
    pub rs384: Option<RS384PublicKey>,
    pub rs512: Option<RS512PublicKey>,
    pub ps256: Option<PS256PublicKey>,
    pub ps384: Option<PS384PublicKey>,
    pub ps512: Option<PS512PublicKey>,
}

pub(crate) struct HmacKeys {
    pub len: usize,
    pub hs256: HS256Key,
    pub hs384: HS384Key,
    pub hs512: HS512Key,
}

impl std::fmt::Debug for HmacKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HmacKeys({} bytes)", self.len)
    }
}

#[derive(Debug)]
pub(crate) enum KeyMaterial {
    Rsa(Box<RsaKeys>),
    P256(ES256PublicKey),
    P384(ES384PublicKey),
    Ed25519(Ed25519PublicKey),
    Oct(Box<HmacKeys>),
}

#[derive(Debug)]
pub(crate) struct Jwk {
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it pins one.
    pub alg: Option<Alg>,
    pub key: KeyMaterial,
}

impl Jwk {
    /// The algorithm must match the key's type (and the key's own `alg`):
    /// this is what stops an HS256 token "signed" with an RSA public key.
    pub(crate) fn fits(&self, alg: Alg) -> bool {
        if self.alg.is_some_and(|pinned| pinned != alg) {
            return false;
        }
        match &self.key {
            KeyMaterial::Rsa(_) => alg.is_rsa(),
            KeyMaterial::P256(_) => alg == Alg::ES256,
            KeyMaterial::P384(_) => alg == Alg::ES384,
            KeyMaterial::Ed25519(_) => alg == Alg::EdDSA,
            KeyMaterial::Oct(k) => alg.is_hmac() && k.len >= alg.min_hmac_key_bytes(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    pub(crate) fn keys(&self) -> &[Jwk] {
        &self.keys
    }
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

fn str_member<'a>(obj: &'a serde_json::Map<String, Value>, name: &str, here: &str) -> Result<Option<&'a str>, JwksError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwksError::new(join(here, name), "must be a string")),
    }
}

fn bytes_member(obj: &serde_json::Map<String, Value>, name: &str, here: &str) -> Result<Vec<u8>, JwksError> {
    let text = str_member(obj, name, here)?.ok_or_else(|| JwksError::new(join(here, name), "is required"))?;
    JWK_B64.decode(text).map_err(|_| JwksError::new(join(here, name), "is not base64url"))
}

fn sized_member(obj: &serde_json::Map<String, Value>, name: &str, here: &str, len: usize) -> Result<Vec<u8>, JwksError> {
    let bytes = bytes_member(obj, name, here)?;
    if bytes.len() != len {
        return Err(JwksError::new(join(here, name), format!("must decode to {len} bytes, got {}", bytes.len())));
    }
    Ok(bytes)
}

/// Parses a JWKS document. `allowed` limits which algorithms keys are built
/// for; `strict` (inline configuration) turns an `oct` key without
/// `allow_hmac` into an error instead of skipping it.
pub(crate) fn parse(doc: &Value, allowed: &[Alg], allow_hmac: bool, strict: bool) -> Result<KeySet, JwksError> {
    let Some(list) = doc.get("keys") else {
        return Err(JwksError::new("keys", "is required: a JWKS is `{\"keys\": [...]}`"));
    };
    let Some(list) = list.as_array() else {
        return Err(JwksError::new("keys", "must be an array"));
    };
    if list.len() > MAX_JWKS_KEYS {
        return Err(JwksError::new("keys", format!("holds {} keys; at most {MAX_JWKS_KEYS} are accepted", list.len())));
    }
    let mut keys = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let here = format!("keys[{i}]");
        if let Some(jwk) = parse_key(entry, &here, allowed, allow_hmac, strict)? {
            keys.push(jwk);
        }
    }
    if keys.is_empty() {
        return Err(JwksError::new("keys", "holds no key usable for the configured algorithms"));
    }
    Ok(KeySet { keys })
}

fn parse_key(entry: &Value, here: &str, allowed: &[Alg], allow_hmac: bool, strict: bool) -> Result<Option<Jwk>, JwksError> {
    let Some(obj) = entry.as_object() else {
        return Err(JwksError::new(here, "must be a JSON object"));
    };
    let kty = str_member(obj, "kty", here)?.ok_or_else(|| JwksError::new(join(here, "kty"), "is required"))?;
    let kid = str_member(obj, "kid", here)?.map(str::to_string);
    if str_member(obj, "use", here)?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = obj.get("key_ops") {
        let Some(ops) = ops.as_array() else {
            return Err(JwksError::new(join(here, "key_ops"), "must be an array"));
        };
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Ok(None);
        }
    }
    let pinned = match str_member(obj, "alg", here)? {
        None => None,
        Some(name) => match Alg::from_name(name) {
            Some(alg) if allowed.contains(&alg) => Some(alg),
            // An algorithm we do not accept (or an encryption one): the key
            // can never verify a token here.
            _ => return Ok(None),
        },
    };
    let usable = |alg: Alg| allowed.contains(&alg) && pinned.is_none_or(|p| p == alg);

    let key = match kty {
        "RSA" => {
            if obj.contains_key("d") {
                return Err(JwksError::new(join(here, "d"), "a private key does not belong in a JWKS; publish only `n` and `e`"));
            }
            let n = bytes_member(obj, "n", here)?;
            let e = bytes_member(obj, "e", here)?;
            if !Alg::ALL.iter().any(|a| a.is_rsa() && usable(*a)) {
                return Ok(None);
            }
            let bad_n = |_| JwksError::new(join(here, "n"), "is not an acceptable RSA public key (2048 to 4096 bits, e = 65537)");
            let mut keys = RsaKeys { rs256: None, rs384: None, rs512: None, ps256: None, ps384: None, ps512: None };
            if usable(Alg::RS256) {
                keys.rs256 = Some(RS256PublicKey::from_components(&n, &e).map_err(bad_n)?);
            }
            if usable(Alg::RS384) {
                keys.rs384 = Some(RS384PublicKey::from_components(&n, &e).map_err(bad_n)?);
            }
            if usable(Alg::RS512) {
                keys.rs512 = Some(RS512PublicKey::from_components(&n, &e).map_err(bad_n)?);
            }
            if usable(Alg::PS256) {
                keys.ps256 = Some(PS256PublicKey::from_components(&n, &e).map_err(bad_n)?);
            }
            if usable(Alg::PS384) {
                keys.ps384 = Some(PS384PublicKey::from_components(&n, &e).map_err(bad_n)?);
            }
            if usable(Alg::PS512) {
                keys.ps512 = Some(PS512PublicKey::from_components(&n, &e).map_err(bad_n)?);
            }
            KeyMaterial::Rsa(Box::new(keys))
        }
        "EC" => {
            if obj.contains_key("d") {
                return Err(JwksError::new(join(here, "d"), "a private key does not belong in a JWKS; publish only `x` and `y`"));
            }
            let crv = str_member(obj, "crv", here)?.ok_or_else(|| JwksError::new(join(here, "crv"), "is required"))?;
            let (size, alg) = match crv {
                "P-256" => (32, Alg::ES256),
                "P-384" => (48, Alg::ES384),
                _ => return Ok(None),
            };
            let x = sized_member(obj, "x", here, size)?;
            let y = sized_member(obj, "y", here, size)?;
            if !usable(alg) {
                return Ok(None);
            }
            let mut sec1 = Vec::with_capacity(1 + 2 * size);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            let bad = |_| JwksError::new(join(here, "x"), format!("(`x`, `y`) is not a point on {crv}"));
            if alg == Alg::ES256 {
                KeyMaterial::P256(ES256PublicKey::from_bytes(&sec1).map_err(bad)?)
            } else {
                KeyMaterial::P384(ES384PublicKey::from_bytes(&sec1).map_err(bad)?)
            }
        }
        "OKP" => {
            if obj.contains_key("d") {
                return Err(JwksError::new(join(here, "d"), "a private key does not belong in a JWKS; publish only `x`"));
            }
            let crv = str_member(obj, "crv", here)?.ok_or_else(|| JwksError::new(join(here, "crv"), "is required"))?;
            if crv != "Ed25519" {
                return Ok(None);
            }
            let x = sized_member(obj, "x", here, 32)?;
            if !usable(Alg::EdDSA) {
                return Ok(None);
            }
            let key = Ed25519PublicKey::from_bytes(&x)
                .map_err(|_| JwksError::new(join(here, "x"), "is not an Ed25519 public key"))?;
            KeyMaterial::Ed25519(key)
        }
        "oct" => {
            if !allow_hmac {
                if strict {
                    return Err(JwksError::new(
                        join(here, "kty"),
                        "is a shared secret (`oct`); set `allow_hmac: true` to verify HS256/384/512 tokens with it",
                    ));
                }
                return Ok(None);
            }
            let k = bytes_member(obj, "k", here)?;
            if k.len() < 32 {
                return Err(JwksError::new(join(here, "k"), format!("must be at least 32 bytes, got {}", k.len())));
            }
            if ![Alg::HS256, Alg::HS384, Alg::HS512].into_iter().any(|a| usable(a) && k.len() >= a.min_hmac_key_bytes()) {
                return Ok(None);
            }
            KeyMaterial::Oct(Box::new(HmacKeys {
                len: k.len(),
                hs256: HS256Key::from_bytes(&k),
                hs384: HS384Key::from_bytes(&k),
                hs512: HS512Key::from_bytes(&k),
            }))
        }
        _ => return Ok(None),
    };
    Ok(Some(Jwk { kid, alg: pinned, key }))
}

/// Where the glue fetches a remote JWKS: an Envoy cluster, because a wasm
/// filter reaches the network only through `dispatch_http_call`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJwksConfig {
    pub cluster: String,
    pub path: String,
    /// `:authority` of the fetch (the identity provider's host name).
    pub authority: String,
    /// Refresh period after a successful fetch.
    #[serde(default = "default_refresh_s")]
    pub refresh_s: u64,
    /// How long the last good keys stay in use while fetches fail, counted
    /// from when the next refresh was due. Past that, requests get 503.
    #[serde(default = "default_stale_ttl_s")]
    pub stale_ttl_s: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_refresh_s() -> u64 {
    300
}
fn default_stale_ttl_s() -> u64 {
    3600
}
fn default_timeout_ms() -> u64 {
    2000
}

impl RemoteJwksConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.cluster.trim().is_empty() {
            return Err(ConfigError::new(join(path, "cluster"), "must name the Envoy cluster that serves the JWKS"));
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::new(join(path, "path"), "must start with `/`"));
        }
        if self.authority.trim().is_empty() {
            return Err(ConfigError::new(join(path, "authority"), "must name the JWKS host"));
        }
        if !(10..=86_400).contains(&self.refresh_s) {
            return Err(ConfigError::new(join(path, "refresh_s"), "must be between 10 and 86400"));
        }
        if self.stale_ttl_s > 7 * 86_400 {
            return Err(ConfigError::new(join(path, "stale_ttl_s"), "must be at most 604800 (7 days)"));
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(ConfigError::new(join(path, "timeout_ms"), "must be between 1 and 60000"));
        }
        Ok(())
    }
}

/// First retry after a failed fetch; doubles up to `refresh_s`.
const RETRY_MIN_S: u64 = 2;

/// When to fetch a remote JWKS and whether the keys held may still be used.
/// Pure: the glue calls `due` from its tick and reports outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSchedule {
    refresh_s: u64,
    stale_ttl_s: u64,
    next_at: u64,
    last_ok: Option<u64>,
    failures: u32,
}

impl JwksSchedule {
    pub fn new(cfg: &RemoteJwksConfig) -> Self {
        Self { refresh_s: cfg.refresh_s, stale_ttl_s: cfg.stale_ttl_s, next_at: 0, last_ok: None, failures: 0 }
    }

    pub fn due(&self, now_s: u64) -> bool {
        now_s >= self.next_at
    }

    pub fn on_success(&mut self, now_s: u64) {
        self.last_ok = Some(now_s);
        self.failures = 0;
        self.next_at = now_s.saturating_add(self.refresh_s);
    }

    pub fn on_failure(&mut self, now_s: u64) {
        let backoff = RETRY_MIN_S.saturating_mul(1u64 << self.failures.min(20)).min(self.refresh_s);
        self.failures = self.failures.saturating_add(1);
        self.next_at = now_s.saturating_add(backoff);
    }

    /// Keys are usable until `refresh_s + stale_ttl_s` after the last good
    /// fetch; never before the first one.
    pub fn keys_usable(&self, now_s: u64) -> bool {
        self.last_ok.is_some_and(|t| now_s <= t.saturating_add(self.refresh_s).saturating_add(self.stale_ttl_s))
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }
}
