//! `modelgate run`: the controller process. Checks that the CRDs exist, serves the filter
//! module and metrics on every replica, and, while it holds the leader Lease, leads
//! (`lead`): watches SeldonDeployments and the objects it owns, keeps the shared Gateways
//! and the extension object (WasmPlugin or TrafficExtension, `auto` settled here by API
//! discovery) in step (`shared_objects`), and refreshes JWKS (`jwks_refresh`). Shuts
//! down gracefully on SIGTERM or Ctrl-C.

mod jwks_refresh;
mod lead;
mod shared_objects;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use kube::runtime::events::Reporter;
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::generate::WasmSource;
use crate::jwks::on_demand::OnDemand;
use crate::reconcile::Context;
use crate::settings::{ExtensionKind, RunSettings, Settings};
use crate::wasm::filter_sha256;
use crate::wasm_server::{KeyEndpoint, ServerState, serve};

/// At most one fetch per JWKS URI in this long on the key channel's requests (the filter
/// asks each key set at most as often).
pub const KEY_CHANNEL_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(modelgate_core::config::DEFAULT_REFETCH_SECS as u64);
use lead::lead;

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No cluster configuration, or the API server cannot be reached.
    #[error("connecting to the cluster: {0}")]
    Kube(#[from] kube::Error),
    /// A CRD the controller needs is not installed.
    #[error("the CRD {name} is not installed: {hint}")]
    MissingCrd {
        /// The CRD.
        name: String,
        /// How to install it.
        hint: &'static str,
    },
    /// The HTTP server cannot listen.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// The JWKS HTTP client cannot be built.
    #[error(transparent)]
    JwksClient(#[from] crate::jwks::fetch::ClientError),
}

/// CRDs the controller needs, with install hints.
pub fn required_crds(settings: &Settings) -> Vec<(&'static str, &'static str)> {
    const ISTIO: &str =
        "install Istio (for example `istioctl install` or the istio/base Helm chart)";
    let mut crds = vec![
        (
            "seldondeployments.machinelearning.seldon.io",
            "install the Seldon Core v1 operator (Helm chart seldon-core-operator)",
        ),
        ("virtualservices.networking.istio.io", ISTIO),
        ("destinationrules.networking.istio.io", ISTIO),
        ("gateways.networking.istio.io", ISTIO),
    ];
    // `auto` settles on one of them at start-up; permissions cover either.
    if settings.extension_kind.may_write_wasm_plugin() {
        crds.push(("wasmplugins.extensions.istio.io", ISTIO));
    }
    if settings.extension_kind.may_write_traffic_extension() {
        crds.push((
            "trafficextensions.extensions.istio.io",
            "install Istio 1.30 or later, or set extensionKind: wasm-plugin",
        ));
    }
    if settings.authorization_policy {
        crds.push(("authorizationpolicies.security.istio.io", ISTIO));
    }
    if settings.routing == crate::settings::RoutingApi::GatewayApi {
        crds.push((
            "httproutes.gateway.networking.k8s.io",
            "install the Kubernetes Gateway API CRDs (v1.2 or later, standard channel), or set routing: istio",
        ));
    }
    crds
}

/// The extension kind `run` uses: the setting's, or for `auto`, a TrafficExtension when
/// the API server serves `extensions.istio.io/v1alpha1` TrafficExtension, else a
/// WasmPlugin. API discovery needs no permission beyond being authenticated.
pub async fn discover_extension_kind(
    client: &Client,
    setting: ExtensionKind,
) -> Result<ExtensionKind, RunError> {
    if setting != ExtensionKind::Auto {
        return Ok(setting);
    }
    let served = match client
        .list_api_group_resources(TRAFFIC_EXTENSION_API_VERSION)
        .await
    {
        Ok(list) => list.resources.iter().any(|r| r.kind == "TrafficExtension"),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(e) => return Err(e.into()),
    };
    Ok(if served {
        ExtensionKind::TrafficExtension
    } else {
        ExtensionKind::WasmPlugin
    })
}

/// The API version `auto` looks for TrafficExtension in.
const TRAFFIC_EXTENSION_API_VERSION: &str = "extensions.istio.io/v1alpha1";

/// Fails with an install hint when a needed CRD is missing.
pub async fn check_crds(client: &Client, settings: &Settings) -> Result<(), RunError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (name, hint) in required_crds(settings) {
        if api.get_opt(name).await?.is_none() {
            return Err(RunError::MissingCrd {
                name: name.into(),
                hint,
            });
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

/// While this replica follows, its JWKS cache tracks the URIs of the live configuration,
/// so that it answers the key channel as the leader would (re-read every interval).
async fn follow_key_sets(
    ctx: Arc<Context>,
    leading: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if !leading.load(Ordering::Relaxed)
            && let Err(e) = crate::reconcile::follow_live_key_sets(&ctx).await
        {
            tracing::warn!("key channel: cannot read the live configuration's key sets: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(KEY_CHANNEL_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Runs the controller until it is told to stop.
pub async fn run(settings: Settings, run: RunSettings) -> Result<(), RunError> {
    crate::install_crypto_provider();
    let jwks_fetcher = crate::jwks::Fetcher::new(&settings.jwks, run.jwks_timeout)?;
    let client = Client::try_default().await?;
    let mut settings = settings;
    settings.extension_kind = discover_extension_kind(&client, settings.extension_kind).await?;
    tracing::info!(kind = %settings.extension_kind, "extension object");
    check_crds(&client, &settings).await?;

    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "modelgate".into());
    let wasm = WasmSource::from_settings(&settings, &filter_sha256());
    let reporter = Reporter {
        controller: "modelgate".into(),
        instance: Some(identity.clone()),
    };
    let mut context = Context::new(client.clone(), settings.clone(), wasm, Some(reporter));
    if settings.config_by_reference != crate::settings::ConfigByReference::Never {
        // Stored in the cluster too: every replica answers, and a new leader recovers.
        context.documents = crate::config_documents::ConfigDocuments::stored(
            client.clone(),
            run.lease_namespace.clone(),
            settings.referenced_config_max_bytes,
            context.api_timeout,
        );
    }
    let ctx = Arc::new(context);
    let mut registry = Registry::default();
    ctx.metrics.register(&mut registry);
    let mut server = ServerState::new(registry).with_config_documents(ctx.documents.clone());
    if settings.key_channel {
        // Leader or not, every replica answers: the gateway reaches any of them through the
        // Service. A follower's cache knows only what the live configuration holds
        // ([`follow_key_sets`]).
        server = server.with_key_endpoint(KeyEndpoint {
            on_demand: OnDemand {
                cache: ctx.jwks.clone(),
                fetcher: jwks_fetcher.clone(),
                schedule: crate::jwks::Schedule {
                    refresh: run.jwks_refresh,
                    retry: run.jwks_retry,
                },
                interval: KEY_CHANNEL_INTERVAL,
                limits: crate::generate::filter_config::key_limits(settings.key_limits()),
            },
            metrics: ctx.metrics.clone(),
        });
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(async move {
        termination().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(&run.listen)
        .await
        .map_err(|source| RunError::Listen {
            address: run.listen.clone(),
            source,
        })?;
    tracing::info!(address = %run.listen, module = %ctx.wasm.url, "serving the filter module and metrics");
    let http = tokio::spawn(serve(listener, server.clone(), stopped(stop_rx.clone())));
    // Every replica serves the module; followers are ready as soon as they do.
    server.ready.store(true, Ordering::Relaxed);

    let leading = Arc::new(AtomicBool::new(false));
    if settings.key_channel {
        tokio::spawn(follow_key_sets(
            ctx.clone(),
            leading.clone(),
            stop_rx.clone(),
        ));
    }

    let lease = LeaseManagerBuilder::new(client.clone(), &run.lease_name)
        .with_namespace(&run.lease_namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut leader, lease_task) = lease.watch().await;
    loop {
        tokio::select! {
            _ = stopped(stop_rx.clone()) => break,
            changed = leader.changed() => if changed.is_err() { break },
        }
        if !*leader.borrow() {
            continue;
        }
        tracing::info!(%identity, "leading");
        leading.store(true, Ordering::Relaxed);
        server.ready.store(false, Ordering::Relaxed);
        let mut lost = leader.clone();
        let lost_or_stopped = {
            let stop = stop_rx.clone();
            async move {
                tokio::select! {
                    _ = stopped(stop) => {}
                    _ = lost.wait_for(|l| !*l) => {}
                }
            }
        };
        lead(
            ctx.clone(),
            &run,
            &jwks_fetcher,
            server.clone(),
            lost_or_stopped,
        )
        .await;
        if *stop_rx.borrow() {
            break;
        }
        tracing::warn!("lost the lease; following");
        leading.store(false, Ordering::Relaxed);
        server.ready.store(true, Ordering::Relaxed);
    }
    drop(leader);
    let _ = lease_task.await;
    let _ = http.await;
    Ok(())
}
