//! Checks on a token's payload, made by us on the raw JSON whatever the
//! library already did: issuer, audience, times, lifetime, required claims,
//! and the shape of the values that leave as headers.

use serde_json::{Map, Value};

use super::{AuthError, Identity};

/// Values copied into upstream headers (subject, tenant) are capped and must
/// be free of control characters, so a claim cannot forge a header.
const MAX_IDENTITY_VALUE_BYTES: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct ClaimChecks {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub skew_s: u64,
    pub max_lifetime_s: Option<u64>,
    pub require_exp: bool,
    pub required_claims: Vec<String>,
    pub tenant_claim: String,
}

fn bad_claims() -> AuthError {
    AuthError::new("bad_claims", "a token claim has an unexpected type or value")
}

/// RFC 7519 NumericDate: seconds, possibly fractional; a fraction is dropped.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else {
                match n.as_f64() {
                    Some(f) if (0.0..1.0e15).contains(&f) => Ok(Some(f as u64)),
                    _ => Err(bad_claims()),
                }
            }
        }
        Some(_) => Err(bad_claims()),
    }
}

fn header_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_IDENTITY_VALUE_BYTES && !value.chars().any(char::is_control)
}

impl ClaimChecks {
    pub(crate) fn check(&self, claims: Map<String, Value>, now_s: u64) -> Result<Identity, AuthError> {
        let skew = self.skew_s;
        let exp = numeric_date(&claims, "exp")?;
        let nbf = numeric_date(&claims, "nbf")?;
        let iat = numeric_date(&claims, "iat")?;
        match exp {
            Some(exp) if now_s > exp.saturating_add(skew) => {
                return Err(AuthError::new("token_expired", "the token has expired"));
            }
            None if self.require_exp => return Err(AuthError::new("exp_missing", "the token has no expiry (exp)")),
            _ => {}
        }
        if nbf.is_some_and(|nbf| nbf > now_s.saturating_add(skew)) {
            return Err(AuthError::new("token_not_yet_valid", "the token is not valid yet (nbf)"));
        }
        if iat.is_some_and(|iat| iat > now_s.saturating_add(skew)) {
            return Err(AuthError::new("iat_in_future", "the token was issued in the future (iat)"));
        }
        if let Some(max) = self.max_lifetime_s {
            let (Some(exp), Some(iat)) = (exp, iat) else {
                return Err(AuthError::new(
                    "token_lifetime_too_long",
                    "the token must carry iat and exp so its lifetime can be bounded",
                ));
            };
            if exp.saturating_sub(iat) > max {
                return Err(AuthError::new("token_lifetime_too_long", "the token's lifetime (exp - iat) is too long"));
            }
        }

        let issuer = match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => iss.clone(),
            _ => return Err(AuthError::new("bad_issuer", "the token was not issued by the configured issuer")),
        };
        if !self.audiences.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => self.audiences.iter().any(|a| a == aud),
                Some(Value::Array(list)) => {
                    list.iter().any(|v| v.as_str().is_some_and(|aud| self.audiences.iter().any(|a| a == aud)))
                }
                _ => false,
            };
            if !ok {
                return Err(AuthError::new("bad_audience", "the token is not meant for this service (aud)"));
            }
        }
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            None | Some(Value::Null) => return Err(AuthError::new("subject_missing", "the token has no subject (sub)")),
            _ => return Err(bad_claims()),
        };
        if !header_safe(&subject) {
            return Err(bad_claims());
        }
        for name in &self.required_claims {
            if claims.get(name).is_none_or(Value::is_null) {
                return Err(AuthError::new("claim_missing", "the token lacks a claim this service requires"));
            }
        }
        let tenant = match claims.get(&self.tenant_claim) {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if header_safe(t) => Some(t.clone()),
            Some(_) => return Err(bad_claims()),
        };
        Ok(Identity { subject, issuer, tenant, claims: Value::Object(claims) })
    }

    /// Until when a verified token may be served from the cache: its expiry
    /// plus the skew allowed at verification. Tokens without `exp` are not
    /// cached.
    pub(crate) fn valid_until(&self, claims: &Value) -> Option<u64> {
        let map = claims.as_object()?;
        numeric_date(map, "exp").ok().flatten().map(|exp| exp.saturating_add(self.skew_s))
    }
}
