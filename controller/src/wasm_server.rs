//! The controller's HTTP server: the embedded filter module at the URL put into the
//! WasmPlugin, `/metrics`, `/healthz` and `/readyz` (ready once the caches have synced).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::wasm::{FILTER_WASM, filter_sha256};

/// What the server answers from.
#[derive(Clone)]
pub struct ServerState {
    /// Metrics registry.
    pub registry: Arc<Registry>,
    /// Whether the controller is ready (caches synced).
    pub ready: Arc<AtomicBool>,
    sha256: Arc<String>,
}

impl ServerState {
    /// State over a registry, not ready yet.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
            ready: Arc::new(AtomicBool::new(false)),
            sha256: Arc::new(filter_sha256()),
        }
    }
}

/// The routes.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/filter/{file}", get(module))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

async fn module(State(state): State<ServerState>, Path(file): Path<String>) -> Response {
    if file == format!("modelgate-{}.wasm", state.sha256) {
        ([(header::CONTENT_TYPE, "application/wasm")], FILTER_WASM).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            "no such module: this controller serves only the one it embeds\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<ServerState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn ready(State(state): State<ServerState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet").into_response()
    }
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
