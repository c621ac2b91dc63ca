//! The `auth` section: bad values fail configuration with their field path.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshguard_core::identity::{AuthConfig, AuthMode, Authenticator};
use serde_json::{json, Value};

const JWKS: &str = include_str!("data/identity/jwks.json");

fn base() -> Value {
    json!({
        "issuer": "https://issuer.test.meshguard.dev",
        "audiences": ["meshguard"],
        "jwks": serde_json::from_str::<Value>(JWKS).unwrap(),
    })
}

fn compile(doc: Value) -> Result<Authenticator, meshguard_core::ConfigError> {
    let cfg: AuthConfig = serde_json::from_value(doc).unwrap();
    Authenticator::compile(&cfg, "auth")
}

fn err(doc: Value) -> (String, String) {
    let e = compile(doc).unwrap_err();
    (e.path, e.message)
}

fn with(mut doc: Value, key: &str, v: Value) -> Value {
    doc[key] = v;
    doc
}

#[test]
fn defaults_compile() {
    let a = compile(base()).unwrap();
    assert_eq!(a.mode(), AuthMode::Jwt);
    assert_eq!(a.key_count(), 4);
}

#[test]
fn unknown_fields_are_refused() {
    assert!(serde_json::from_value::<AuthConfig>(with(base(), "isuser", json!("x"))).is_err());
}

#[test]
fn errors_name_the_field() {
    let mut doc = base();
    doc["jwks"]["keys"][1]["x"] = json!("AAAA");
    assert_eq!(err(doc).0, "auth.jwks.keys[1].x");

    let mut doc = base();
    doc["jwks"]["keys"][0]["n"] = json!("AQAB");
    let (path, msg) = err(doc);
    assert_eq!(path, "auth.jwks.keys[0].n");
    assert!(msg.contains("2048"), "{msg}");

    let mut doc = base();
    doc["jwks"]["keys"][0]["d"] = json!("AQAB");
    assert_eq!(err(doc).0, "auth.jwks.keys[0].d");

    assert_eq!(err(with(base(), "issuer", Value::Null)).0, "auth.issuer");
    assert_eq!(err(with(base(), "audiences", json!([]))).0, "auth.audiences");
    assert_eq!(err(with(base(), "clock_skew_s", json!(3600))).0, "auth.clock_skew_s");
    assert_eq!(err(with(base(), "algorithms", json!(["RS256", "none"]))).0, "auth.algorithms[1]");
    assert_eq!(err(with(base(), "algorithms", json!(["HS256"]))).0, "auth.algorithms[0]");
    assert_eq!(err(with(base(), "algorithms", json!(["rs256"]))).0, "auth.algorithms[0]");
    assert_eq!(err(with(base(), "token_sources", json!([{"header": "x", "cookie": "y"}]))).0, "auth.token_sources[0]");
    assert_eq!(err(with(base(), "token_sources", json!([{"cookie": "a b"}]))).0, "auth.token_sources[0].cookie");
    assert_eq!(err(with(base(), "required_claims", json!(["ok", ""]))).0, "auth.required_claims[1]");

    let hmac = json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2hvcnQ"}]});
    assert_eq!(err(with(base(), "jwks", hmac.clone())).0, "auth.jwks.keys[0].kty");
    let mut doc = with(base(), "jwks", hmac);
    doc["allow_hmac"] = json!(true);
    assert_eq!(err(doc).0, "auth.jwks.keys[0].k");
}

#[test]
fn keys_source_must_be_exactly_one() {
    let mut none = base();
    none.as_object_mut().unwrap().remove("jwks");
    assert_eq!(err(none).0, "auth.jwks");
    let both = with(base(), "remote_jwks", json!({"cluster": "idp", "path": "/jwks", "authority": "idp"}));
    assert_eq!(err(both).0, "auth.remote_jwks");
    let mut bad_remote = base();
    bad_remote.as_object_mut().unwrap().remove("jwks");
    bad_remote["remote_jwks"] = json!({"cluster": "idp", "path": "jwks", "authority": "idp"});
    assert_eq!(err(bad_remote).0, "auth.remote_jwks.path");
}

#[test]
fn unusable_keys_are_skipped_but_an_empty_set_is_an_error() {
    let mut doc = base();
    doc["jwks"]["keys"].as_array_mut().unwrap().push(json!({"kty": "RSA", "use": "enc", "n": "x", "e": "AQAB"}));
    doc["jwks"]["keys"].as_array_mut().unwrap().push(json!({"kty": "EC", "crv": "P-521", "x": "x", "y": "y"}));
    doc["jwks"]["keys"].as_array_mut().unwrap().push(json!({"kty": "OKP", "crv": "X25519", "x": "x"}));
    assert_eq!(compile(doc).unwrap().key_count(), 4);
    // Only ES256 allowed: the P-256 key is the one usable key.
    assert_eq!(compile(with(base(), "algorithms", json!(["ES256"]))).unwrap().key_count(), 1);
    let only_enc = json!({"keys": [{"kty": "RSA", "use": "enc", "n": "x", "e": "AQAB"}]});
    assert_eq!(err(with(base(), "jwks", only_enc)).0, "auth.jwks.keys");
}

#[test]
fn mode_none_and_trusted_metadata() {
    let none = compile(json!({"mode": "none"})).unwrap();
    assert_eq!(none.mode(), AuthMode::None);
    assert_eq!(err(json!({"mode": "none", "issuer": "x"})).0, "auth.issuer");
    let t = compile(json!({"mode": "trusted_metadata", "issuer": "https://idp", "metadata": {"payload_key": "https://idp"}})).unwrap();
    assert_eq!(t.metadata_location(), ("envoy.filters.http.jwt_authn", "https://idp"));
    assert_eq!(
        err(json!({"mode": "trusted_metadata", "issuer": "https://idp", "jwks": {"keys": []}})).0,
        "auth.jwks"
    );
    assert_eq!(err(json!({"mode": "trusted_metadata"})).0, "auth.issuer");
}

/// The demo key pair under envoy/demo-keys matches the demo `auth` section in
/// docs/identity.md: a token signed with the private key is accepted.
#[test]
fn demo_key_pair_and_demo_config_agree() {
    use jwt_simple::prelude::*;
    let jwks: Value = serde_json::from_str(include_str!("../../../envoy/demo-keys/public.jwks.json")).unwrap();
    let mut auth = compile(json!({
        "mode": "jwt",
        "issuer": "https://demo.meshguard.dev",
        "audiences": ["meshguard"],
        "jwks": jwks,
        "max_lifetime_s": 86400,
    }))
    .unwrap();
    let key = RS256KeyPair::from_pem(include_str!("../../../envoy/demo-keys/private.pem")).unwrap().with_key_id("meshguard-demo-1");
    let claims = Claims::with_custom_claims(json!({"tenant": "acme", "groups": ["finance"]}), Duration::from_hours(1))
        .with_issuer("https://demo.meshguard.dev")
        .with_audience("meshguard")
        .with_subject("demo-user");
    let token = key.sign(claims).unwrap();
    let now = Clock::now_since_epoch().as_secs();
    let id = auth.authenticate(&[("authorization".into(), format!("Bearer {token}"))], now).unwrap();
    assert_eq!((id.subject.as_str(), id.tenant.as_deref()), ("demo-user", Some("acme")));
}
