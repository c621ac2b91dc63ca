//! The sidecar's HTTP API under `/v1/`, plus `/healthz` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use meshguard_core::detect::{Processed, ScanSession};
use meshguard_core::review::{ClassifyRequest, ClassifyResponse, CLASSIFY_PATH};
use meshguard_core::{ClientError, CompiledConfig};

pub struct AppState {
    pub config: CompiledConfig,
    pub metrics: Metrics,
}

#[derive(Default)]
pub struct Metrics {
    classify_allow: AtomicU64,
    classify_block: AtomicU64,
    classify_error: AtomicU64,
}

impl Metrics {
    fn render(&self) -> String {
        let mut out = String::from("# HELP meshguard_sidecar_classify_total Classification requests by verdict.\n# TYPE meshguard_sidecar_classify_total counter\n");
        for (verdict, counter) in [("allow", &self.classify_allow), ("block", &self.classify_block), ("error", &self.classify_error)] {
            out.push_str(&format!("meshguard_sidecar_classify_total{{verdict=\"{verdict}\"}} {}\n", counter.load(Ordering::Relaxed)));
        }
        out
    }
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(CLASSIFY_PATH, post(classify))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render())
}

fn error_response(error: ClientError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "application/json")], error.to_json()).into_response()
}

/// A second opinion on texts the filter forwards: the named policy's
/// detectors run here too (with the sidecar's own copy of the configuration),
/// and any `block` finding blocks.
async fn classify(State(state): State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let request: ClassifyRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            state.metrics.classify_error.fetch_add(1, Ordering::Relaxed);
            return error_response(ClientError::new(400, "invalid_request_error", "invalid_json", format!("invalid classify request: {err}")));
        }
    };
    let Some(policy) = state.config.policy(&request.policy) else {
        state.metrics.classify_error.fetch_add(1, Ordering::Relaxed);
        return error_response(ClientError::new(400, "invalid_request_error", "unknown_policy", format!("unknown policy `{}`", request.policy)));
    };
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    let mut session = ScanSession::new("request");
    for (index, text) in request.texts.iter().enumerate() {
        if let Processed::Blocked { detector_id } = policy.engine.process(text, &format!("texts[{index}]"), &mut session) {
            state.metrics.classify_block.fetch_add(1, Ordering::Relaxed);
            tracing::info!(request_id, policy = %policy.name, rule = %detector_id, "classify: block");
            return Json(ClassifyResponse { verdict: "block".into(), code: Some(detector_id) }).into_response();
        }
    }
    state.metrics.classify_allow.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(request_id, policy = %policy.name, "classify: allow");
    Json(ClassifyResponse { verdict: "allow".into(), code: None }).into_response()
}
