//! meshguard-sidecar: the native service the filter calls for work that does
//! not fit in a wasm VM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use meshguard_core::CompiledConfig;

use meshguard_sidecar::api::{self, AppState};
use meshguard_sidecar::model::{select_device, BertEmbedder, Embedder};
use meshguard_sidecar::settings::{DeviceKind, Flags, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(false)
        .init();
    match run(Flags::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    let settings = Settings::resolve(flags)?;
    let bytes = std::fs::read(&settings.plugin_config)
        .map_err(|e| format!("cannot read plugin configuration {}: {e}", settings.plugin_config.display()))?;
    let config = CompiledConfig::from_json(&bytes).map_err(|e| format!("{}: {e}", settings.plugin_config.display()))?;
    let embedder = match &settings.model_dir {
        Some(_) if !settings.needs_model() => {
            tracing::info!("no semantic guards and no data_dir: the embedding model is not loaded");
            None
        }
        Some(dir) => {
            let device = select_device(settings.device == DeviceKind::Cuda)?;
            let (dir, max_tokens) = (dir.clone(), settings.max_tokens);
            let started = std::time::Instant::now();
            let model = tokio::task::spawn_blocking(move || BertEmbedder::load(&dir, device, max_tokens))
                .await
                .map_err(|e| format!("model loader failed: {e}"))??;
            tracing::info!(model_dir = %settings.model_dir.as_deref().unwrap_or(std::path::Path::new("")).display(), ms = started.elapsed().as_millis() as u64, "embedding model loaded");
            Some(Arc::new(model) as Arc<dyn Embedder>)
        }
        None => {
            tracing::info!("no embedding model (--model-dir): semantic guards and retrieval are off");
            None
        }
    };
    let state = Arc::new(AppState::build(&settings, config, embedder).await?);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    tracing::info!(listen = %settings.listen, "meshguard-sidecar ready");
    axum::serve(listener, api::router(state, settings.max_body_bytes))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("meshguard-sidecar stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM, so in-flight requests finish before exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}
