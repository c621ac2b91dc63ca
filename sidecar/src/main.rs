//! meshguard-sidecar: the native service the filter calls for work that does
//! not fit in a wasm VM.

mod api;
mod settings;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use meshguard_core::CompiledConfig;

use crate::api::{AppState, Metrics};
use crate::settings::{Flags, Settings};

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
    let state = Arc::new(AppState { config, metrics: Metrics::default() });
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
