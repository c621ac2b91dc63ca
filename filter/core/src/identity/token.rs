//! Finding the one token in a request.
//!
//! A request must carry exactly one token across every configured source:
//! two `Authorization` headers, or a header and a cookie, are refused rather
//! than guessing which one a downstream service will read.

use serde::Deserialize;

use crate::config_error::{join, ConfigError};

use super::AuthError;

/// One place a token may come from: `{"header": "authorization", "prefix":
/// "Bearer "}`, `{"header": "x-token"}` or `{"cookie": "session"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSourceConfig {
    #[serde(default)]
    pub header: Option<String>,
    /// Scheme before the token, matched without regard to case (RFC 7235).
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub cookie: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenSource {
    Header { name: String, prefix: Option<String> },
    Cookie { name: String },
}

fn default_sources() -> Vec<TokenSource> {
    vec![TokenSource::Header { name: "authorization".to_string(), prefix: Some("Bearer ".to_string()) }]
}

pub(crate) fn compile_sources(cfg: Option<&[TokenSourceConfig]>, path: &str) -> Result<Vec<TokenSource>, ConfigError> {
    let Some(cfg) = cfg else {
        return Ok(default_sources());
    };
    if cfg.is_empty() {
        return Err(ConfigError::new(path, "must list at least one token source (or be left out for `Authorization: Bearer`)"));
    }
    let mut out = Vec::with_capacity(cfg.len());
    for (i, src) in cfg.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let source = match (&src.header, &src.cookie) {
            (Some(header), None) => {
                let name = header.trim().to_ascii_lowercase();
                if name.is_empty() || !name.bytes().all(is_header_name_byte) {
                    return Err(ConfigError::new(join(&here, "header"), "must be an HTTP header name"));
                }
                if name == "cookie" {
                    return Err(ConfigError::new(join(&here, "header"), "use `{\"cookie\": NAME}` to read a cookie"));
                }
                if let Some(prefix) = &src.prefix {
                    if prefix.trim().is_empty() {
                        return Err(ConfigError::new(join(&here, "prefix"), "must not be empty; leave it out for a bare token"));
                    }
                }
                TokenSource::Header { name, prefix: src.prefix.clone() }
            }
            (None, Some(cookie)) => {
                if src.prefix.is_some() {
                    return Err(ConfigError::new(join(&here, "prefix"), "only applies to a `header` source"));
                }
                if cookie.is_empty() || cookie.bytes().any(|b| b <= b' ' || b == b'=' || b == b';' || b >= 0x7f) {
                    return Err(ConfigError::new(join(&here, "cookie"), "must be a cookie name"));
                }
                TokenSource::Cookie { name: cookie.clone() }
            }
            _ => return Err(ConfigError::new(here, "set exactly one of `header` or `cookie`")),
        };
        if out.contains(&source) {
            return Err(ConfigError::new(here, "is listed twice"));
        }
        out.push(source);
    }
    Ok(out)
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Returns the single token carried by the request. Token bytes are checked
/// to be base64url and dots only, which also rules out header folding and
/// comma-joined duplicates.
pub(crate) fn extract<'h>(sources: &[TokenSource], headers: &'h [(String, String)]) -> Result<&'h str, AuthError> {
    let mut found: Option<Result<&'h str, AuthError>> = None;
    let mut count = 0usize;
    for (name, value) in headers {
        for source in sources {
            match source {
                TokenSource::Header { name: want, prefix } if name == want => {
                    // A proxy may join repeated headers with commas; a JWT
                    // never contains one, so each part is a token of its own.
                    for part in value.split(',') {
                        count += 1;
                        found = Some(strip_prefix(part, prefix.as_deref()));
                    }
                }
                TokenSource::Cookie { name: want } if name == "cookie" => {
                    for pair in value.split(';') {
                        if let Some((k, v)) = pair.split_once('=') {
                            if k.trim() == want {
                                count += 1;
                                found = Some(Ok(v.trim()));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if count > 1 {
        return Err(AuthError::new("multiple_tokens", "the request carries more than one token; send exactly one"));
    }
    let token = match found {
        None => return Err(AuthError::new("token_missing", "a bearer token is required")),
        Some(result) => result?,
    };
    if token.is_empty() {
        return Err(AuthError::new("token_missing", "a bearer token is required"));
    }
    if !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        return Err(AuthError::new("malformed_token", "the token is not a compact JWT"));
    }
    Ok(token)
}

fn strip_prefix<'h>(value: &'h str, prefix: Option<&str>) -> Result<&'h str, AuthError> {
    let value = value.trim();
    let Some(prefix) = prefix else {
        return Ok(value);
    };
    let scheme = prefix.trim_end();
    // `get` keeps this panic-free on multi-byte input.
    match value.get(..scheme.len()) {
        Some(head) if head.eq_ignore_ascii_case(scheme) => {
            let rest = value.get(scheme.len()..).unwrap_or("");
            // A scheme must be followed by whitespace (`Bearer x`), unless the
            // configured prefix has none (`Token:`).
            if scheme.len() != prefix.len() && !rest.starts_with([' ', '\t']) && !rest.is_empty() {
                return Err(AuthError::new("malformed_token", "the credential does not use the expected scheme"));
            }
            Ok(rest.trim_start())
        }
        _ => Err(AuthError::new("malformed_token", "the credential does not use the expected scheme")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let src = default_sources();
        assert_eq!(extract(&src, &h(&[("authorization", "bearer a.b.c")])), Ok("a.b.c"));
        assert_eq!(extract(&src, &h(&[("authorization", "Bearer  a.b.c ")])), Ok("a.b.c"));
        assert_eq!(extract(&src, &h(&[("authorization", "Basic dXNlcg==")])).map_err(|e| e.reason), Err("malformed_token"));
        assert_eq!(extract(&src, &h(&[("authorization", "Bearera.b.c")])).map_err(|e| e.reason), Err("malformed_token"));
        assert_eq!(extract(&src, &h(&[("authorization", "Bearer")])).map_err(|e| e.reason), Err("token_missing"));
        assert_eq!(extract(&src, &h(&[("authorization", "Bé")])).map_err(|e| e.reason), Err("malformed_token"));
    }

    #[test]
    fn cookie_among_others() {
        let src = vec![TokenSource::Cookie { name: "session".into() }];
        assert_eq!(extract(&src, &h(&[("cookie", "a=1; session=x.y.z; b=2")])), Ok("x.y.z"));
        assert_eq!(
            extract(&src, &h(&[("cookie", "session=x.y.z"), ("cookie", "session=p.q.r")])).map_err(|e| e.reason),
            Err("multiple_tokens")
        );
        assert_eq!(extract(&src, &h(&[("cookie", "sessionx=1")])).map_err(|e| e.reason), Err("token_missing"));
    }
}
