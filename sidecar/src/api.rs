//! The sidecar's HTTP API under `/v1/`, plus `/healthz` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use meshguard_core::detect::{PolicyEngine, Processed, ScanSession};
use meshguard_core::review::{ClassifyRequest, ClassifyResponse, CLASSIFY_PATH};
use meshguard_core::{ClientError, CompiledConfig};
use serde::Deserialize;

use crate::batch::{BatchSettings, Batcher};
use crate::guards::Guards;
use crate::ingest::{chunk, ingestion_engine, scan_chunk, Scanned};
use crate::model::Embedder;
use crate::settings::Settings;
use crate::store::{CleanChunk, DocumentMeta, Identity, QuarantinedChunk, Store};

pub const DOCUMENTS_PATH: &str = "/v1/documents";
pub const RETRIEVE_PATH: &str = "/v1/retrieve";
/// Verified subject, set by the filter (which strips client-sent copies).
pub const SUBJECT_HEADER: &str = "x-meshguard-subject";
/// Verified groups, comma-separated, set by the filter.
pub const GROUPS_HEADER: &str = "x-meshguard-groups";
/// Most texts one classify request may carry.
pub const MAX_CLASSIFY_TEXTS: usize = 256;

pub struct AppState {
    pub config: CompiledConfig,
    pub metrics: Metrics,
    pub batcher: Option<Batcher>,
    pub guards: Guards,
    pub store: Option<Arc<dyn Store>>,
    pub ingest_engine: PolicyEngine,
    pub chunk_chars: usize,
    pub chunk_overlap: usize,
    pub max_k: usize,
}

impl AppState {
    /// Everything expensive happens here, once: the model's batcher starts,
    /// guard examples are embedded, the store is opened. Must run inside a
    /// tokio runtime.
    pub async fn build(settings: &Settings, config: CompiledConfig, embedder: Option<Arc<dyn Embedder>>) -> Result<Self, String> {
        settings.check_policies(&config, embedder.is_some())?;
        let batcher = embedder.map(|e| {
            Batcher::spawn(
                e,
                BatchSettings { max_texts: settings.batch.max_texts, max_wait: std::time::Duration::from_millis(settings.batch.max_wait_ms) },
            )
        });
        let guards = match &batcher {
            Some(b) => Guards::compile(&settings.guards, b).await?,
            None => Guards::default(),
        };
        let store = match (settings.retrieval_field(), &batcher) {
            (Some(_), Some(b)) => crate::store::open(settings, b.dimension()).await?,
            (Some(field), None) => return Err(format!("{field}: retrieval needs the embedding model (set `model_dir` or --model-dir)")),
            (None, _) => None,
        };
        Ok(Self {
            config,
            metrics: Metrics::default(),
            batcher,
            guards,
            store,
            ingest_engine: ingestion_engine()?,
            chunk_chars: settings.retrieval.chunk_chars,
            chunk_overlap: settings.retrieval.chunk_overlap,
            max_k: settings.retrieval.max_k,
        })
    }
}

#[derive(Default)]
pub struct Metrics {
    classify_allow: AtomicU64,
    classify_block: AtomicU64,
    classify_error: AtomicU64,
    documents_ingested: AtomicU64,
    chunks_quarantined: AtomicU64,
    retrievals: AtomicU64,
}

impl Metrics {
    fn render(&self, batcher: Option<&Batcher>) -> String {
        let mut out = String::from("# HELP meshguard_sidecar_classify_total Classification requests by verdict.\n# TYPE meshguard_sidecar_classify_total counter\n");
        for (verdict, counter) in [("allow", &self.classify_allow), ("block", &self.classify_block), ("error", &self.classify_error)] {
            out.push_str(&format!("meshguard_sidecar_classify_total{{verdict=\"{verdict}\"}} {}\n", counter.load(Ordering::Relaxed)));
        }
        let mut counter = |name: &str, help: &str, value: u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        };
        counter("meshguard_sidecar_documents_ingested_total", "Documents ingested.", self.documents_ingested.load(Ordering::Relaxed));
        counter("meshguard_sidecar_chunks_quarantined_total", "Chunks quarantined at ingestion.", self.chunks_quarantined.load(Ordering::Relaxed));
        counter("meshguard_sidecar_retrievals_total", "Retrieval requests answered.", self.retrievals.load(Ordering::Relaxed));
        if let Some(b) = batcher {
            counter("meshguard_sidecar_embedding_batches_total", "Model calls (one per dynamic batch).", b.stats.batches.load(Ordering::Relaxed));
            counter("meshguard_sidecar_embedded_texts_total", "Texts embedded.", b.stats.texts.load(Ordering::Relaxed));
        }
        out
    }
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(CLASSIFY_PATH, post(classify))
        .route(DOCUMENTS_PATH, post(documents))
        .route(RETRIEVE_PATH, post(retrieve))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render(state.batcher.as_ref()))
}

fn error_response(error: ClientError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "application/json")], error.to_json()).into_response()
}

fn bad_request(code: &str, message: String) -> Response {
    error_response(ClientError::new(400, "invalid_request_error", code, message))
}

fn unavailable(code: &str, message: String) -> Response {
    error_response(ClientError::new(503, "service_unavailable", code, message))
}

/// A second opinion on texts the filter forwards: the named policy's
/// detectors run here too (with the sidecar's own copy of the configuration),
/// and any `block` finding blocks; then the policy's semantic guards (deny
/// topics) run on the texts' embeddings.
async fn classify(State(state): State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let request: ClassifyRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            state.metrics.classify_error.fetch_add(1, Ordering::Relaxed);
            return bad_request("invalid_json", format!("invalid classify request: {err}"));
        }
    };
    let Some(policy) = state.config.policy(&request.policy) else {
        state.metrics.classify_error.fetch_add(1, Ordering::Relaxed);
        return bad_request("unknown_policy", format!("unknown policy `{}`", request.policy));
    };
    if request.texts.len() > MAX_CLASSIFY_TEXTS {
        state.metrics.classify_error.fetch_add(1, Ordering::Relaxed);
        return bad_request("too_many_texts", format!("at most {MAX_CLASSIFY_TEXTS} texts per request"));
    }
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    let mut session = ScanSession::new("request");
    for (index, text) in request.texts.iter().enumerate() {
        if let Processed::Blocked { detector_id } = policy.engine.process(text, &format!("texts[{index}]"), &mut session) {
            state.metrics.classify_block.fetch_add(1, Ordering::Relaxed);
            tracing::info!(request_id, policy = %policy.name, rule = %detector_id, "classify: block");
            return Json(ClassifyResponse { verdict: "block".into(), code: Some(detector_id), scores: None }).into_response();
        }
    }
    let mut scores = None;
    if let (true, Some(batcher)) = (state.guards.has(&policy.name), &state.batcher) {
        let texts: Vec<String> = request.texts.iter().filter(|t| !t.trim().is_empty()).cloned().collect();
        let embeddings = match batcher.embed(texts).await {
            Ok(e) => e,
            Err(message) => {
                state.metrics.classify_error.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(request_id, policy = %policy.name, "classify: {message}");
                return unavailable("model_unavailable", message);
            }
        };
        let outcome = state.guards.check(&policy.name, &embeddings);
        if let Some(topic) = outcome.blocked_by {
            state.metrics.classify_block.fetch_add(1, Ordering::Relaxed);
            tracing::info!(request_id, policy = %policy.name, rule = %topic, "classify: block (deny topic)");
            return Json(ClassifyResponse { verdict: "block".into(), code: Some(topic), scores: Some(outcome.scores) }).into_response();
        }
        scores = Some(outcome.scores);
    }
    state.metrics.classify_allow.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(request_id, policy = %policy.name, "classify: allow");
    Json(ClassifyResponse { verdict: "allow".into(), code: None, scores }).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Readers {
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentRequest {
    id: String,
    text: String,
    #[serde(default)]
    source: String,
    readers: Readers,
    #[serde(default)]
    tags: Vec<String>,
}

fn retrieval_parts(state: &AppState) -> Result<(&Batcher, &Arc<dyn Store>), Box<Response>> {
    match (&state.batcher, &state.store) {
        (Some(b), Some(s)) => Ok((b, s)),
        _ => Err(Box::new(unavailable("retrieval_disabled", "retrieval is not configured: start the sidecar with a model and --data-dir".into()))),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && !name.contains(',') && !name.chars().any(char::is_control)
}

/// Ingests one document: chunk, scan (redact / quarantine), embed, store.
async fn documents(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let (batcher, store) = match retrieval_parts(&state) {
        Ok(parts) => parts,
        Err(response) => return *response,
    };
    let request: DocumentRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(err) => return bad_request("invalid_json", format!("invalid document: {err}")),
    };
    if !valid_name(&request.id) {
        return bad_request("invalid_document", "id: must be 1-256 characters, no commas or control characters".into());
    }
    if request.readers.subjects.is_empty() && request.readers.groups.is_empty() {
        return bad_request("invalid_document", "readers: name at least one subject or group; a document nobody may read is refused".into());
    }
    if let Some(bad) = request.readers.subjects.iter().chain(&request.readers.groups).find(|n| !valid_name(n)) {
        return bad_request("invalid_document", format!("readers: invalid name `{bad}`"));
    }
    let mut clean = Vec::new();
    let mut texts = Vec::new();
    let mut quarantined = Vec::new();
    let mut redacted = Vec::new();
    for (index, piece) in chunk(&request.text, state.chunk_chars, state.chunk_overlap).into_iter().enumerate() {
        match scan_chunk(&state.ingest_engine, &piece, &format!("chunks[{index}]")) {
            Scanned::Clean(text) => {
                clean.push(index);
                texts.push(text);
            }
            Scanned::Redacted { text, rules } => {
                redacted.push(serde_json::json!({"index": index, "rules": rules}));
                clean.push(index);
                texts.push(text);
            }
            Scanned::Quarantined { rule } => quarantined.push(QuarantinedChunk { index, rule }),
        }
    }
    let embeddings = match batcher.embed(texts.clone()).await {
        Ok(e) => e,
        Err(message) => return unavailable("model_unavailable", message),
    };
    let chunks: Vec<CleanChunk> =
        clean.into_iter().zip(texts).zip(embeddings).map(|((index, text), embedding)| CleanChunk { index, text, embedding }).collect();
    let mut readers: Vec<String> = request.readers.subjects.iter().map(|s| format!("user:{s}")).collect();
    readers.extend(request.readers.groups.iter().map(|g| format!("group:{g}")));
    let meta = DocumentMeta { id: request.id.clone(), source: request.source, readers, tags: request.tags };
    let store = Arc::clone(store);
    let stored = chunks.len();
    let quarantine_report = quarantined.clone();
    let result = tokio::task::spawn_blocking(move || store.ingest(&meta, &chunks, &quarantined)).await;
    let version = match result {
        Ok(Ok(v)) => v,
        Ok(Err(message)) => return unavailable("store_error", message),
        Err(e) => return unavailable("store_error", format!("store task failed: {e}")),
    };
    state.metrics.documents_ingested.fetch_add(1, Ordering::Relaxed);
    state.metrics.chunks_quarantined.fetch_add(quarantine_report.len() as u64, Ordering::Relaxed);
    if !quarantine_report.is_empty() {
        tracing::warn!(document = %request.id, quarantined = quarantine_report.len(), "ingest: chunks quarantined");
    }
    Json(serde_json::json!({
        "document_id": request.id,
        "kb_version": version,
        "chunks": stored + quarantine_report.len(),
        "stored": stored,
        "redacted": redacted,
        "quarantined": quarantine_report,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrieveRequest {
    query: String,
    #[serde(default = "default_k")]
    k: usize,
}

fn default_k() -> usize {
    4
}

/// The caller's identity from the filter's headers; no subject, no answer.
pub fn identity(headers: &HeaderMap) -> Option<Identity> {
    let subject = headers.get(SUBJECT_HEADER)?.to_str().ok()?.trim().to_string();
    if !valid_name(&subject) {
        return None;
    }
    let groups = headers
        .get_all(GROUPS_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|g| valid_name(g))
        .map(String::from)
        .collect();
    Some(Identity { subject, groups })
}

/// Top-k chunks for a query that the caller may read.
async fn retrieve(State(state): State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let (batcher, store) = match retrieval_parts(&state) {
        Ok(parts) => parts,
        Err(response) => return *response,
    };
    let Some(identity) = identity(&headers) else {
        return error_response(ClientError::new(401, "authentication_error", "missing_identity", format!("`{SUBJECT_HEADER}` is required")));
    };
    let request: RetrieveRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(err) => return bad_request("invalid_json", format!("invalid retrieve request: {err}")),
    };
    if request.k == 0 || request.k > state.max_k {
        return bad_request("invalid_k", format!("k: must be between 1 and {}", state.max_k));
    }
    let query = match batcher.embed(vec![request.query]).await {
        Ok(mut rows) => rows.pop().unwrap_or_default(),
        Err(message) => return unavailable("model_unavailable", message),
    };
    let store = Arc::clone(store);
    let k = request.k;
    let result = tokio::task::spawn_blocking(move || store.search(&identity, &query, k).and_then(|hits| Ok((hits, store.version()?)))).await;
    match result {
        Ok(Ok((hits, version))) => {
            state.metrics.retrievals.fetch_add(1, Ordering::Relaxed);
            Json(serde_json::json!({"kb_version": version, "chunks": hits})).into_response()
        }
        Ok(Err(message)) => unavailable("store_error", message),
        Err(e) => unavailable("store_error", format!("store task failed: {e}")),
    }
}
