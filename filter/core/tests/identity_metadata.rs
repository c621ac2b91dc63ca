//! Mode `trusted_metadata`: claims verified by Envoy's jwt_authn, read from
//! dynamic metadata, still pass issuer, audience, time and claim checks.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshguard_core::identity::{AuthConfig, Authenticator};
use serde_json::json;

const NOW: u64 = 1_767_226_200;

fn auth(extra: serde_json::Value) -> Authenticator {
    let mut doc = json!({"mode": "trusted_metadata", "issuer": "https://idp.example", "audiences": ["meshguard"]});
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    let cfg: AuthConfig = serde_json::from_value(doc).unwrap();
    Authenticator::compile(&cfg, "auth").unwrap()
}

fn metadata(key: &str, claims: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ key: claims })).unwrap()
}

fn claims() -> serde_json::Value {
    // Envoy stores numbers in a protobuf Struct, so they come back as doubles.
    json!({"iss": "https://idp.example", "aud": ["meshguard"], "sub": "bob", "tenant": "acme",
           "groups": ["support"], "iat": 1767225900.0, "exp": 1767229500.0})
}

#[test]
fn reads_claims_from_the_jwt_authn_namespace() {
    let a = auth(json!({}));
    let id = a.authenticate_metadata(&metadata("jwt_payload", claims()), NOW).unwrap();
    assert_eq!((id.subject.as_str(), id.tenant.as_deref()), ("bob", Some("acme")));
    assert_eq!(id.claims["groups"], json!(["support"]));
}

#[test]
fn istio_style_payload_key_is_the_issuer() {
    let a = auth(json!({"metadata": {"payload_key": "https://idp.example"}}));
    assert!(a.authenticate_metadata(&metadata("https://idp.example", claims()), NOW).is_ok());
    assert_eq!(a.authenticate_metadata(&metadata("jwt_payload", claims()), NOW).unwrap_err().reason, "token_missing");
}

#[test]
fn checks_still_apply() {
    let a = auth(json!({"required_claims": ["groups"]}));
    let reason = |c: serde_json::Value| a.authenticate_metadata(&metadata("jwt_payload", c), NOW).unwrap_err().reason;
    let mut c = claims();
    c["iss"] = json!("https://other.example");
    assert_eq!(reason(c), "bad_issuer");
    let mut c = claims();
    c["aud"] = json!("other");
    assert_eq!(reason(c), "bad_audience");
    let mut c = claims();
    c["exp"] = json!(1767226000.0);
    assert_eq!(reason(c), "token_expired");
    let mut c = claims();
    c.as_object_mut().unwrap().remove("groups");
    assert_eq!(reason(c), "claim_missing");
}

#[test]
fn absent_or_malformed_metadata() {
    let a = auth(json!({}));
    assert_eq!(a.authenticate_metadata(b"", NOW).unwrap_err().reason, "token_missing");
    assert_eq!(a.authenticate_metadata(b"{}", NOW).unwrap_err().reason, "token_missing");
    assert_eq!(a.authenticate_metadata(b"[1]", NOW).unwrap_err().reason, "bad_metadata");
    assert_eq!(a.authenticate_metadata(br#"{"jwt_payload": "x"}"#, NOW).unwrap_err().reason, "bad_metadata");
}
