//! Shared test helpers: a plugin configuration, a cheap deterministic
//! embedder, the router, and request helpers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use clap::Parser;
use http_body_util::BodyExt;
use meshguard_core::CompiledConfig;
use meshguard_sidecar::api::{router, AppState};
use meshguard_sidecar::model::Embedder;
use meshguard_sidecar::settings::{Flags, Settings};
use tower::ServiceExt;

pub const PLUGIN_CONFIG: &str = r#"{
  "version": 1,
  "auth": {"mode": "none"},
  "default_policy": "standard",
  "policies": {
    "standard": {"fail_mode": "closed", "detectors": {"category:pii": "redact", "category:secret": "redact", "private_key": "block"}},
    "finance": {"fail_mode": "closed", "detectors": {"category:pii": "redact"}}
  }
}"#;

/// Bag of words hashed into 64 dimensions, L2-normalised: texts sharing
/// words are close, others are not. Counts its calls.
#[derive(Default)]
pub struct WordsEmbedder {
    pub calls: AtomicUsize,
    pub delay_ms: u64,
}

impl Embedder for WordsEmbedder {
    fn dimension(&self) -> usize {
        64
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.delay_ms));
        }
        Ok(texts.iter().map(|t| words_vector(t)).collect())
    }
}

pub fn words_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; 64];
    for word in text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let h = word.bytes().fold(1469598103934665603u64, |h, b| (h ^ u64::from(b)).wrapping_mul(1099511628211));
        v[(h % 64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / norm).collect()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mg-sidecar-{name}-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// Settings from a JSON settings document (written to a temp file) plus
/// flags, exactly as the binary resolves them.
pub fn settings(json: &str, extra_flags: &[&str]) -> Result<Settings, String> {
    let dir = temp_dir("settings");
    std::fs::write(dir.join("plugin.json"), PLUGIN_CONFIG).unwrap();
    std::fs::write(dir.join("sidecar.json"), json).unwrap();
    let mut args = vec![
        "sidecar".to_string(),
        "--config".into(),
        dir.join("sidecar.json").to_string_lossy().into_owned(),
        "--plugin-config".into(),
        dir.join("plugin.json").to_string_lossy().into_owned(),
    ];
    args.extend(extra_flags.iter().map(|s| s.to_string()));
    Settings::resolve(Flags::parse_from(args))
}

pub async fn app(json: &str, extra_flags: &[&str], embedder: Option<Arc<dyn Embedder>>) -> Result<Router, String> {
    let settings = settings(json, extra_flags)?;
    let config = CompiledConfig::from_json(PLUGIN_CONFIG.as_bytes()).map_err(|e| e.to_string())?;
    let state = AppState::build(&settings, config, embedder).await?;
    Ok(router(Arc::new(state), settings.max_body_bytes))
}

pub async fn post(app: &Router, path: &str, headers: &[(&str, &str)], body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    let mut request = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app.clone().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub async fn get_text(app: &Router, path: &str) -> (StatusCode, String) {
    let response = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
