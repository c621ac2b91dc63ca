//! Mode `trusted_metadata`: claims that Envoy's `jwt_authn` filter (or
//! Istio `RequestAuthentication`, which configures that filter) has already
//! verified, read from dynamic metadata, so a token is not verified twice.
//!
//! Dynamic metadata cannot be set by a client; only filters earlier in the
//! chain write it. The claims still go through the issuer, audience, time and
//! required-claim checks, which cost microseconds.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config_error::{join, ConfigError};

use super::AuthError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// Dynamic-metadata namespace: the filter name of `jwt_authn`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Key under the namespace that holds the payload: `payload_in_metadata`
    /// of the `jwt_authn` provider. Istio sets it to the issuer.
    #[serde(default = "default_payload_key")]
    pub payload_key: String,
}

fn default_namespace() -> String {
    "envoy.filters.http.jwt_authn".to_string()
}
fn default_payload_key() -> String {
    "jwt_payload".to_string()
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self { namespace: default_namespace(), payload_key: default_payload_key() }
    }
}

impl MetadataConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.namespace.is_empty() {
            return Err(ConfigError::new(join(path, "namespace"), "must name the metadata namespace"));
        }
        if self.payload_key.is_empty() {
            return Err(ConfigError::new(join(path, "payload_key"), "must name the payload key"));
        }
        Ok(())
    }
}

/// Takes the namespace object (`{"jwt_payload": {...claims...}}`) and returns
/// the claims. Missing metadata means no token was verified upstream.
pub(crate) fn payload(cfg: &MetadataConfig, metadata_json: &[u8]) -> Result<Map<String, Value>, AuthError> {
    let missing = AuthError::new("token_missing", "a bearer token is required");
    if metadata_json.iter().all(u8::is_ascii_whitespace) {
        return Err(missing);
    }
    let Ok(Value::Object(mut ns)) = serde_json::from_slice::<Value>(metadata_json) else {
        return Err(AuthError::new("bad_metadata", "the verified claims in dynamic metadata are not a JSON object"));
    };
    match ns.remove(&cfg.payload_key) {
        None | Some(Value::Null) => Err(missing),
        Some(Value::Object(claims)) => Ok(claims),
        Some(_) => Err(AuthError::new("bad_metadata", "the verified claims in dynamic metadata are not a JSON object")),
    }
}
