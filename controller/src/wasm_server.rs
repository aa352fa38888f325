//! The controller's HTTP server: the embedded filter module at the URL put into the
//! WasmPlugin, the key channel's `/keys` (when `keyChannel` is on), referenced
//! configurations at `/config/<sha256>` (`configByReference`), `/metrics`, `/healthz` and
//! `/readyz` (ready once the caches have synced).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modelgate_core::http::query_values;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use crate::config_documents::ConfigDocuments;
use crate::jwks::on_demand::{OnDemand, Outcome};
use crate::metrics::Metrics;
use crate::wasm::{FILTER_WASM, filter_sha256};

/// The path of the key channel's endpoint (the filter's `channel.keysPath` default).
pub const KEYS_PATH: &str = modelgate_core::config::DEFAULT_KEYS_PATH;

/// What the server answers from.
#[derive(Clone)]
pub struct ServerState {
    /// Metrics registry.
    pub registry: Arc<Registry>,
    /// Whether the controller is ready (caches synced).
    pub ready: Arc<AtomicBool>,
    /// Fired when the key channel brought new keys, for the next configuration.
    pub keys_changed: Arc<Notify>,
    keys: Option<Arc<KeyEndpoint>>,
    documents: ConfigDocuments,
    sha256: Arc<String>,
}

/// What `/keys` answers from.
#[derive(Debug)]
pub struct KeyEndpoint {
    /// The fetches it may make.
    pub on_demand: OnDemand,
    /// Where it counts them.
    pub metrics: Metrics,
}

impl ServerState {
    /// State over a registry, not ready yet.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
            ready: Arc::new(AtomicBool::new(false)),
            keys_changed: Arc::new(Notify::new()),
            keys: None,
            documents: ConfigDocuments::default(),
            sha256: Arc::new(filter_sha256()),
        }
    }

    /// The same, answering `/keys` from `endpoint` (setting `keyChannel`).
    pub fn with_key_endpoint(mut self, endpoint: KeyEndpoint) -> Self {
        self.keys = Some(Arc::new(endpoint));
        self
    }

    /// The same, answering `/config/<sha256>` from `documents` (setting
    /// `configByReference`; the reconcile loop publishes into them).
    pub fn with_config_documents(mut self, documents: ConfigDocuments) -> Self {
        self.documents = documents;
        self
    }
}

/// The routes.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/filter/{file}", get(module))
        .route(KEYS_PATH, get(keys))
        .route("/config/{sha256}", get(config_document))
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

/// `GET /keys?uri=<JWKS URI>`: the keys of a URI in use, as a JWKS, fetched anew at most
/// once per interval. Any other URI is `404`: whoever can reach this endpoint must not
/// have the controller fetch what it chooses.
async fn keys(State(state): State<ServerState>, uri: Uri) -> Response {
    let Some(endpoint) = &state.keys else {
        return (
            StatusCode::NOT_FOUND,
            "the key channel is off (keyChannel)\n",
        )
            .into_response();
    };
    let mut values = query_values(uri.query().unwrap_or(""), "uri");
    let (Some(jwks_uri), None) = (values.next(), values.next()) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected one uri query parameter, the JWKS URI\n",
        )
            .into_response();
    };
    let (outcome, keys) = endpoint.on_demand.keys(&jwks_uri).await;
    endpoint.metrics.key_refetched(outcome.as_str());
    if outcome == Outcome::Changed {
        state.keys_changed.notify_one();
    }
    match (outcome, keys) {
        (Outcome::Untracked, _) => {
            (StatusCode::NOT_FOUND, "not a JWKS URI in use\n").into_response()
        }
        (_, Some(keys)) => match serde_json::to_vec(&keys) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        (_, None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no keys fetched for this URI yet\n",
        )
            .into_response(),
    }
}

/// `GET /config/<sha256>`: a referenced configuration, byte for byte, while it is kept.
/// Content-addressed, so immutable. Any replica answers: one not holding it in memory
/// reads it from the cluster (`config_documents`). A document found nowhere (older than
/// those kept) is `404`, and the filter keeps its configuration and asks again later.
async fn config_document(State(state): State<ServerState>, Path(sha256): Path<String>) -> Response {
    match state.documents.get(&sha256).await {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            axum::body::Bytes::from_owner(bytes),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no such configuration: not the current one, nor a recent one\n",
        )
            .into_response(),
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
