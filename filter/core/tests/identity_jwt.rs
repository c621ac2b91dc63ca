//! JWT verification against tokens minted by PyJWT with real RSA, EC and
//! Ed25519 keys (tests/data/identity, test-only keys).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshguard_core::identity::{AuthConfig, AuthError, Authenticator, Identity};
use serde_json::{json, Value};

const JWKS: &str = include_str!("data/identity/jwks.json");
const JWKS_ROTATED: &str = include_str!("data/identity/jwks_rotated.json");
const JWKS_HMAC: &str = include_str!("data/identity/jwks_hmac.json");
const JWKS_NOKID: &str = include_str!("data/identity/jwks_nokid.json");
const TOKENS: &str = include_str!("data/identity/tokens.json");

fn fixtures() -> Value {
    serde_json::from_str(TOKENS).unwrap()
}

fn now() -> u64 {
    fixtures()["now"].as_u64().unwrap()
}

fn token(name: &str) -> String {
    let f = fixtures();
    let t = &f["tokens"];
    t["valid"][name]
        .as_str()
        .or_else(|| t["attack"][name][0].as_str())
        .or_else(|| t[name].as_str())
        .unwrap_or_else(|| panic!("no fixture token {name}"))
        .to_string()
}

fn config(extra: Value, jwks: &str) -> AuthConfig {
    let mut doc = json!({
        "issuer": "https://issuer.test.meshguard.dev",
        "audiences": ["meshguard"],
        "jwks": serde_json::from_str::<Value>(jwks).unwrap(),
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    serde_json::from_value(doc).unwrap()
}

fn auth(extra: Value) -> Authenticator {
    Authenticator::compile(&config(extra, JWKS), "auth").unwrap()
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("authorization".to_string(), format!("Bearer {token}"))]
}

fn run(a: &mut Authenticator, token: &str) -> Result<Identity, AuthError> {
    a.authenticate(&bearer(token), now())
}

#[test]
fn accepts_every_supported_algorithm() {
    let f = fixtures();
    let valid = f["tokens"]["valid"].as_object().unwrap();
    assert!(valid.len() >= 9);
    for (name, tok) in valid {
        // A fresh authenticator per token, so none is answered from the cache.
        let mut a = auth(json!({}));
        let id = run(&mut a, tok.as_str().unwrap()).unwrap_or_else(|e| panic!("{name}: rejected with {e}"));
        assert_eq!(id.subject, "alice@example.com", "{name}");
        assert_eq!(id.issuer, "https://issuer.test.meshguard.dev", "{name}");
    }
    let id = run(&mut auth(json!({})), &token("es256")).unwrap();
    assert_eq!(id.tenant.as_deref(), Some("acme"));
    assert_eq!(id.claims["groups"], json!(["finance", "staff"]));
    assert_eq!(run(&mut auth(json!({})), &token("no_tenant")).unwrap().tenant, None);
}

#[test]
fn attack_table_is_rejected_with_the_right_reason() {
    let f = fixtures();
    let attacks = f["tokens"]["attack"].as_object().unwrap();
    assert!(attacks.len() >= 20);
    for (name, case) in attacks {
        let tok = case[0].as_str().unwrap();
        let want = case[1].as_str().unwrap();
        let mut a = auth(json!({}));
        match run(&mut a, tok) {
            Ok(id) => panic!("{name}: accepted as {}", id.subject),
            Err(err) => {
                assert_eq!(err.reason, want, "{name}: {err}");
                assert_eq!(err.status(), 401, "{name}");
                // Nothing of the token leaks into the error.
                for part in tok.split('.').filter(|p| p.len() >= 8) {
                    assert!(!err.message.contains(part) && !err.www_authenticate().contains(part), "{name}");
                }
            }
        }
    }
}

#[test]
fn hs256_with_rsa_public_key_is_rejected_even_with_hmac_enabled() {
    let tok = token("hs256_with_rsa_public_key");
    let mut a = Authenticator::compile(&config(json!({"allow_hmac": true}), JWKS_HMAC), "auth").unwrap();
    // The kid names the RSA key: an HMAC algorithm never fits an RSA key.
    assert_eq!(run(&mut a, &tok).unwrap_err().reason, "alg_key_mismatch");
    // The real shared secret works once HMAC is enabled...
    assert_eq!(run(&mut a, &token("hs256")).unwrap().subject, "alice@example.com");
    // ...and not without it.
    let mut strict = Authenticator::compile(&config(json!({}), JWKS), "auth").unwrap();
    assert_eq!(run(&mut strict, &token("hs256")).unwrap_err().reason, "alg_not_allowed");
}

#[test]
fn algorithm_allow_list_is_enforced() {
    let mut a = auth(json!({"algorithms": ["ES256"]}));
    assert_eq!(run(&mut a, &token("rs256")).unwrap_err().reason, "alg_not_allowed");
    assert!(run(&mut a, &token("es256")).is_ok());
}

#[test]
fn two_tokens_are_rejected() {
    let tok = token("rs256");
    let mut a = auth(json!({}));
    let two_headers = vec![
        ("authorization".to_string(), format!("Bearer {tok}")),
        ("authorization".to_string(), format!("Bearer {tok}")),
    ];
    assert_eq!(a.authenticate(&two_headers, now()).unwrap_err().reason, "multiple_tokens");
    // Joined by a proxy into one header value: still two tokens.
    let comma_joined = vec![("authorization".to_string(), format!("Bearer {tok}, Bearer {tok}"))];
    assert_eq!(a.authenticate(&comma_joined, now()).unwrap_err().reason, "multiple_tokens");

    let mut both = auth(json!({"token_sources": [
        {"header": "authorization", "prefix": "Bearer "},
        {"cookie": "session"}
    ]}));
    let header_and_cookie = vec![
        ("authorization".to_string(), format!("Bearer {tok}")),
        ("cookie".to_string(), format!("theme=dark; session={tok}")),
    ];
    assert_eq!(both.authenticate(&header_and_cookie, now()).unwrap_err().reason, "multiple_tokens");
    let cookie_only = vec![("cookie".to_string(), format!("theme=dark; session={tok}"))];
    assert!(both.authenticate(&cookie_only, now()).is_ok());
}

#[test]
fn token_sources() {
    let tok = token("es256");
    let mut a = auth(json!({"token_sources": [{"header": "X-Token"}]}));
    assert!(a.authenticate(&[("x-token".into(), tok.clone())], now()).is_ok());
    assert_eq!(a.authenticate(&bearer(&tok), now()).unwrap_err().reason, "token_missing");
    assert_eq!(a.authenticate(&[], now()).unwrap_err().reason, "token_missing");
    let mut d = auth(json!({}));
    assert_eq!(d.authenticate(&[("authorization".into(), format!("Basic {tok}"))], now()).unwrap_err().reason, "malformed_token");
}

#[test]
fn time_checks_use_the_skew() {
    let tok = token("rs256"); // iat = nbf = now - 300, exp = now + 3300
    let exp = now() + 3300;
    let mut a = auth(json!({}));
    assert!(a.authenticate(&bearer(&tok), exp + 60).is_ok());
    let mut a = auth(json!({}));
    assert_eq!(a.authenticate(&bearer(&tok), exp + 61).unwrap_err().reason, "token_expired");
    let mut a = auth(json!({"clock_skew_s": 0}));
    assert_eq!(a.authenticate(&bearer(&tok), exp + 1).unwrap_err().reason, "token_expired");
    // nbf = now - 300: valid from nbf - skew.
    let mut a = auth(json!({}));
    assert!(a.authenticate(&bearer(&tok), now() - 360).is_ok());
    let mut a = auth(json!({}));
    assert_eq!(a.authenticate(&bearer(&tok), now() - 361).unwrap_err().reason, "token_not_yet_valid");
}

#[test]
fn exp_can_be_made_optional() {
    let mut a = auth(json!({"require_exp": false}));
    assert!(run(&mut a, &token("missing_exp")).is_ok());
}

#[test]
fn max_lifetime_and_required_claims() {
    let mut a = auth(json!({"max_lifetime_s": 86400, "required_claims": ["groups"]}));
    assert!(run(&mut a, &token("rs256")).is_ok());
    assert_eq!(run(&mut a, &token("long_lifetime")).unwrap_err().reason, "token_lifetime_too_long");
    assert_eq!(run(&mut a, &token("no_iat")).unwrap_err().reason, "token_lifetime_too_long");
    assert_eq!(run(&mut a, &token("no_groups")).unwrap_err().reason, "claim_missing");
    let mut lax = auth(json!({}));
    assert!(run(&mut lax, &token("long_lifetime")).is_ok());
    assert!(run(&mut lax, &token("no_groups")).is_ok());
}

#[test]
fn cache_hit_still_checks_expiry() {
    let tok = token("rs256");
    let exp = now() + 3300;
    let mut a = auth(json!({}));
    assert!(a.authenticate(&bearer(&tok), now()).is_ok());
    // Served from the cache (same result), then refused once expired.
    assert!(a.authenticate(&bearer(&tok), now() + 10).is_ok());
    assert_eq!(a.authenticate(&bearer(&tok), exp + 61).unwrap_err().reason, "token_expired");
}

#[test]
fn cache_does_not_mask_a_tampered_token() {
    let mut a = auth(json!({}));
    assert!(run(&mut a, &token("rs256")).is_ok());
    assert_eq!(run(&mut a, &token("tampered_payload")).unwrap_err().reason, "bad_signature");
}

#[test]
fn rotation_without_restart() {
    let mut a = auth(json!({}));
    let new_tok = token("rs256_rotated");
    assert_eq!(run(&mut a, &new_tok).unwrap_err().reason, "unknown_kid");
    assert!(run(&mut a, &token("rs256")).is_ok());
    assert_eq!(a.update_jwks(JWKS_ROTATED.as_bytes(), now()).unwrap(), 4);
    assert!(run(&mut a, &new_tok).is_ok());
    // The retired key stops working at once, even for a token cached before.
    assert_eq!(run(&mut a, &token("rs256")).unwrap_err().reason, "unknown_kid");
}

#[test]
fn bad_jwks_update_keeps_old_keys() {
    let mut a = auth(json!({}));
    assert!(a.update_jwks(b"not json", now()).is_err());
    let err = a.update_jwks(br#"{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}]}"#, now()).unwrap_err();
    assert_eq!(err.path, "keys[0].n");
    let err = a.update_jwks(br#"{"keys":[]}"#, now()).unwrap_err();
    assert_eq!(err.path, "keys");
    assert_eq!(a.key_count(), 4);
    assert!(run(&mut a, &token("rs256")).is_ok());
}

#[test]
fn kidless_tokens_try_each_key_of_the_right_type() {
    let mut a = Authenticator::compile(&config(json!({}), JWKS_NOKID), "auth").unwrap();
    // rs256_nokid is signed by the second RSA key of jwks_nokid.json.
    assert!(run(&mut a, &token("rs256_nokid")).is_ok());
    assert!(run(&mut a, &token("es256_nokid")).is_ok());
    // A token with a kid also matches kid-less keys (as Envoy's jwt_authn does).
    assert!(run(&mut a, &token("rs256")).is_ok());
    // With kids in the set, a kid-less token tries keys of its type.
    let mut b = auth(json!({}));
    assert!(run(&mut b, &token("es256_nokid")).is_ok());
}

#[test]
fn remote_jwks_schedule_and_staleness() {
    let mut a = Authenticator::compile(
        &serde_json::from_value(json!({
            "issuer": "https://issuer.test.meshguard.dev",
            "audiences": ["meshguard"],
            "remote_jwks": {"cluster": "idp", "path": "/jwks.json", "authority": "idp.example", "refresh_s": 300, "stale_ttl_s": 600}
        }))
        .unwrap(),
        "auth",
    )
    .unwrap();
    let t0 = now();
    assert!(a.jwks_fetch_due(t0));
    let err = run(&mut a, &token("rs256")).unwrap_err();
    assert_eq!((err.reason, err.status()), ("jwks_unavailable", 503));
    a.update_jwks(JWKS.as_bytes(), t0).unwrap();
    assert!(!a.jwks_fetch_due(t0 + 299));
    assert!(a.jwks_fetch_due(t0 + 300));
    a.jwks_fetch_failed(t0 + 300);
    assert!(!a.jwks_fetch_due(t0 + 301));
    assert!(a.jwks_fetch_due(t0 + 302));
    // Stale keys keep working until refresh_s + stale_ttl_s after the last success...
    assert!(a.authenticate(&bearer(&token("rs256")), t0 + 900).is_ok());
    // ...then fail closed, cached tokens included.
    assert_eq!(a.authenticate(&bearer(&token("rs256")), t0 + 901).unwrap_err().reason, "jwks_unavailable");
}

#[test]
fn www_authenticate_names_invalid_token() {
    let err = run(&mut auth(json!({})), &token("expired")).unwrap_err();
    assert!(err.www_authenticate().starts_with("Bearer "));
    assert!(err.www_authenticate().contains("error=\"invalid_token\""));
}

#[test]
fn wrong_mode_is_refused() {
    let a = auth(json!({}));
    assert_eq!(a.authenticate_metadata(b"{}", now()).unwrap_err().reason, "auth_mode_mismatch");
}

/// Re-encodes the header of a valid token (the signature no longer matches,
/// which must not matter: these are refused before any key is used).
fn with_raw_header(header_json: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let valid = token("rs256");
    let mut parts = valid.splitn(2, '.');
    let _ = parts.next();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header_json), parts.next().unwrap())
}

#[test]
fn header_tricks_are_refused_before_any_key_is_used() {
    let cases = [
        (r#"{"alg":"RS256","kid":"rsa-1","alg":"none"}"#, "malformed_token"),
        (r#"{"alg":"RS256","kid":"rsa-1","jku":null}"#, "forbidden_header"),
        (r#"{"alg":"RS256","kid":"rsa-1","crit":[]}"#, "unknown_crit"),
        (r#"{"alg":"RS256","kid":"rsa-1","typ":"JWE"}"#, "malformed_token"),
        (r#"{"alg":"rs256","kid":"rsa-1"}"#, "alg_not_allowed"),
        (r#"{"alg":"RS256","kid":7}"#, "malformed_token"),
        (r#"["RS256"]"#, "malformed_token"),
        (r#"{"kid":"rsa-1"}"#, "malformed_token"),
    ];
    for (header, want) in cases {
        let mut a = auth(json!({}));
        assert_eq!(run(&mut a, &with_raw_header(header)).unwrap_err().reason, want, "{header}");
    }
    // Control: a well-formed header gets as far as the signature check.
    let mut a = auth(json!({}));
    assert_eq!(run(&mut a, &with_raw_header(r#"{"alg":"RS256","kid":"rsa-1"}"#)).unwrap_err().reason, "bad_signature");
}
