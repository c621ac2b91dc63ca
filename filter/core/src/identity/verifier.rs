//! Checking a compact JWT: its JOSE header first (ourselves, so no check
//! depends on a library default), then the signature with `jwt-simple`,
//! using a key chosen by `kid` and bound to the algorithm's key type.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
use jwt_simple::JWTError;
use serde::de::IgnoredAny;

use crate::config_error::ConfigError;

use super::jwks::{Jwk, KeyMaterial, KeySet};
use super::AuthError;

/// Kid-less tokens are tried against at most this many keys, so a forged
/// token cannot make one request cost a whole key set's worth of RSA.
pub(crate) const MAX_KEY_TRIES: usize = 4;
/// Largest decoded JOSE header; real ones are under 200 bytes.
const MAX_HEADER_BYTES: usize = 1024;

/// A JWS algorithm this build can verify. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    pub const ALL: [Alg; 12] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// Exact, case-sensitive match (RFC 7515: `alg` values are case-sensitive).
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512)
    }

    /// Smallest shared secret accepted for an HMAC algorithm: the hash size
    /// (RFC 7518 §3.2).
    pub(crate) fn min_hmac_key_bytes(self) -> usize {
        match self {
            Alg::HS384 => 48,
            Alg::HS512 => 64,
            _ => 32,
        }
    }
}

const DEFAULT_ALGS: [Alg; 9] =
    [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256, Alg::ES384, Alg::EdDSA];

pub(crate) fn compile_algorithms(cfg: Option<&[String]>, allow_hmac: bool, path: &str) -> Result<Vec<Alg>, ConfigError> {
    let Some(names) = cfg else {
        let mut algs = DEFAULT_ALGS.to_vec();
        if allow_hmac {
            algs.extend([Alg::HS256, Alg::HS384, Alg::HS512]);
        }
        return Ok(algs);
    };
    if names.is_empty() {
        return Err(ConfigError::new(path, "must list at least one algorithm"));
    }
    let mut algs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let Some(alg) = Alg::from_name(name) else {
            let msg = if name.eq_ignore_ascii_case("none") {
                format!("`{name}` means an unsigned token and is never accepted")
            } else {
                format!(
                    "unknown algorithm `{name}`; supported: {}",
                    Alg::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
                )
            };
            return Err(ConfigError::new(here, msg));
        };
        if alg.is_hmac() && !allow_hmac {
            return Err(ConfigError::new(
                here,
                format!("`{name}` uses a shared secret; set `allow_hmac: true` to accept it"),
            ));
        }
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    Ok(algs)
}

/// The JOSE header members we act on. Known members appear once (serde
/// rejects a duplicate `alg`); presence of the forbidden ones is checked on
/// the raw object so that even `"jku": null` is refused.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    crit: Option<IgnoredAny>,
}

fn malformed() -> AuthError {
    AuthError::new("malformed_token", "the token is not a compact JWT")
}

/// Verifies the header and signature of `token` and returns its payload
/// object. jwt-simple also checks `exp` (with our `now` and skew); every
/// claim is checked again in `claims`.
pub(crate) fn verify(
    token: &str,
    keys: &KeySet,
    allowed: &[Alg],
    skew_s: u64,
    max_token_bytes: usize,
    now_s: u64,
) -> Result<serde_json::Map<String, serde_json::Value>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if header_b64.len() > MAX_HEADER_BYTES * 4 / 3 + 4 {
        return Err(malformed());
    }
    let header_bytes = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| malformed())?;
    let raw_header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header_bytes).map_err(|_| malformed())?;
    let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| malformed())?;

    // The token must not name its own key: a key it carries or points to is
    // a key the attacker chose.
    if ["jwk", "jku", "x5u", "x5c"].iter().any(|m| raw_header.contains_key(*m)) {
        return Err(AuthError::new("forbidden_header", "the token header names its own key (jwk, jku, x5u or x5c)"));
    }
    // No extension is understood here, so any `crit` is unknown (RFC 7515 §4.1.11).
    if raw_header.contains_key("crit") {
        return Err(AuthError::new("unknown_crit", "the token header marks an extension critical that is not supported"));
    }
    if let Some(typ) = &header.typ {
        let t = typ.to_ascii_lowercase();
        if t != "jwt" && !t.ends_with("+jwt") {
            return Err(AuthError::new("malformed_token", "the token type is not JWT"));
        }
    }
    let alg = match Alg::from_name(&header.alg) {
        Some(alg) if allowed.contains(&alg) => alg,
        _ => return Err(AuthError::new("alg_not_allowed", "the token's signature algorithm is not accepted")),
    };

    // The payload must be a JSON object before any key work is spent on it.
    let payload_bytes = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| malformed())?;
    let payload: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&payload_bytes).map_err(|_| malformed())?;
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| malformed())?;
    let sig_len_ok = match alg {
        Alg::ES256 | Alg::EdDSA => sig.len() == 64,
        Alg::ES384 => sig.len() == 96,
        _ => !sig.is_empty(),
    };

    let candidates = select_keys(keys, header.kid.as_deref(), alg)?;
    if !sig_len_ok {
        return Err(AuthError::new("bad_signature", "the token signature does not verify"));
    }
    let options = VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(now_s)),
        time_tolerance: Some(Duration::from_secs(skew_s)),
        // iat and nbf are ours to check (claims.rs), so the reason given
        // does not depend on the library's order; its exp check agrees with ours.
        accept_future: true,
        max_token_length: Some(max_token_bytes),
        max_header_length: Some(MAX_HEADER_BYTES * 4 / 3 + 4),
        ..VerificationOptions::default()
    };
    for key in candidates {
        match verify_with(alg, &key.key, token, options.clone()) {
            Ok(()) => return Ok(payload),
            Err(err) => {
                let mapped = map_error(&err);
                if mapped.reason != "bad_signature" {
                    return Err(mapped);
                }
            }
        }
    }
    Err(AuthError::new("bad_signature", "the token signature does not verify"))
}

/// Keys the token may be verified with. A token `kid` selects keys with that
/// kid plus keys that have none (as Envoy does); a token without `kid` tries
/// the keys of the right type, kid-less ones first, at most `MAX_KEY_TRIES`.
fn select_keys<'k>(keys: &'k KeySet, kid: Option<&str>, alg: Alg) -> Result<Vec<&'k Jwk>, AuthError> {
    let named: Vec<&Jwk> = keys
        .keys()
        .iter()
        .filter(|k| match (kid, k.kid.as_deref()) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .collect();
    if named.is_empty() {
        return Err(AuthError::new("unknown_kid", "the token's key id is not in the key set"));
    }
    let mut fitting: Vec<&Jwk> = named.into_iter().filter(|k| k.fits(alg)).collect();
    if fitting.is_empty() {
        return Err(AuthError::new("alg_key_mismatch", "the token's algorithm does not match the type of its key"));
    }
    fitting.sort_by_key(|k| k.kid.is_some());
    fitting.truncate(MAX_KEY_TRIES);
    Ok(fitting)
}

fn verify_with(alg: Alg, key: &KeyMaterial, token: &str, options: VerificationOptions) -> Result<(), jwt_simple::Error> {
    let opts = Some(options);
    let mismatch = || jwt_simple::Error::from(JWTError::AlgorithmMismatch);
    match key {
        KeyMaterial::Rsa(k) => match alg {
            Alg::RS256 => k.rs256.as_ref().ok_or_else(mismatch)?.verify_token::<NoCustomClaims>(token, opts).map(drop),
            Alg::RS384 => k.rs384.as_ref().ok_or_else(mismatch)?.verify_token::<NoCustomClaims>(token, opts).map(drop),
            Alg::RS512 => k.rs512.as_ref().ok_or_else(mismatch)?.verify_token::<NoCustomClaims>(token, opts).map(drop),
            Alg::PS256 => k.ps256.as_ref().ok_or_else(mismatch)?.verify_token::<NoCustomClaims>(token, opts).map(drop),
            Alg::PS384 => k.ps384.as_ref().ok_or_else(mismatch)?.verify_token::<NoCustomClaims>(token, opts).map(drop),
            Alg::PS512 => k.ps512.as_ref().ok_or_else(mismatch)?.verify_token::<NoCustomClaims>(token, opts).map(drop),
            _ => Err(mismatch()),
        },
        KeyMaterial::P256(k) if alg == Alg::ES256 => k.verify_token::<NoCustomClaims>(token, opts).map(drop),
        KeyMaterial::P384(k) if alg == Alg::ES384 => k.verify_token::<NoCustomClaims>(token, opts).map(drop),
        KeyMaterial::Ed25519(k) if alg == Alg::EdDSA => k.verify_token::<NoCustomClaims>(token, opts).map(drop),
        KeyMaterial::Oct(k) => match alg {
            Alg::HS256 => k.hs256.verify_token::<NoCustomClaims>(token, opts).map(drop),
            Alg::HS384 => k.hs384.verify_token::<NoCustomClaims>(token, opts).map(drop),
            Alg::HS512 => k.hs512.verify_token::<NoCustomClaims>(token, opts).map(drop),
            _ => Err(mismatch()),
        },
        // `select_keys` only hands over fitting keys; refuse anyway.
        _ => Err(mismatch()),
    }
}

fn map_error(err: &jwt_simple::Error) -> AuthError {
    match err.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature | JWTError::InvalidAuthenticationTag) => {
            AuthError::new("bad_signature", "the token signature does not verify")
        }
        Some(JWTError::TokenHasExpired) => AuthError::new("token_expired", "the token has expired"),
        Some(JWTError::TokenNotValidYet) => AuthError::new("token_not_yet_valid", "the token is not valid yet (nbf)"),
        Some(JWTError::ClockDrift) => AuthError::new("iat_in_future", "the token was issued in the future (iat)"),
        Some(JWTError::UnknownCriticalExtension) => {
            AuthError::new("unknown_crit", "the token header marks an extension critical that is not supported")
        }
        Some(JWTError::AlgorithmMismatch | JWTError::WeakKey | JWTError::InvalidPublicKey | JWTError::UnsupportedRSAModulus) => {
            AuthError::new("alg_key_mismatch", "the token's algorithm does not match the type of its key")
        }
        _ => AuthError::new("invalid_token", "the token could not be verified"),
    }
}
