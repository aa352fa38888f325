//! `modelgate run`: the controller process. Checks that the CRDs exist, serves the filter
//! module and metrics on every replica, and, while it holds the leader Lease, watches
//! SeldonDeployments and the objects it owns, keeps the shared Gateways and WasmPlugin in
//! step, and refreshes JWKS. Shuts down gracefully on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch};

use crate::generate::WasmSource;
use crate::istio::{AuthorizationPolicy, DestinationRule, VirtualService};
use crate::reconcile::{
    Context, ReconcileError, SHARED_OBJECTS, reconcile_global, reconcile_model,
};
use crate::seldon::SeldonDeployment;
use crate::settings::{RunSettings, Settings};
use crate::wasm::filter_sha256;
use crate::wasm_server::{ServerState, serve};

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
        ("wasmplugins.extensions.istio.io", ISTIO),
    ];
    if settings.authorization_policy {
        crds.push(("authorizationpolicies.security.istio.io", ISTIO));
    }
    crds
}

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

/// Runs the controller until it is told to stop.
pub async fn run(settings: Settings, run: RunSettings) -> Result<(), RunError> {
    crate::install_crypto_provider();
    let jwks_fetcher = crate::jwks::Fetcher::new(&settings.jwks, run.jwks_timeout)?;
    let client = Client::try_default().await?;
    check_crds(&client, &settings).await?;

    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "modelgate".into());
    let wasm = WasmSource::from_settings(&settings, &filter_sha256());
    let reporter = Reporter {
        controller: "modelgate".into(),
        instance: Some(identity.clone()),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings.clone(),
        wasm,
        Some(reporter),
    ));
    let mut registry = Registry::default();
    ctx.metrics.register(&mut registry);
    let server = ServerState::new(registry);

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
        server.ready.store(true, Ordering::Relaxed);
    }
    drop(leader);
    let _ = lease_task.await;
    let _ = http.await;
    Ok(())
}

/// The leader's work: the controller, the shared-object loop and the JWKS loop, until
/// `until` resolves.
async fn lead(
    ctx: Arc<Context>,
    run: &RunSettings,
    jwks_fetcher: &crate::jwks::Fetcher,
    server: ServerState,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = ctx.client.clone();
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=modelgate");
    let mut controller = Controller::new(
        Api::<SeldonDeployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(run.concurrency.get()))
    .owns(Api::<VirtualService>::all(client.clone()), managed.clone())
    .owns(Api::<DestinationRule>::all(client.clone()), managed.clone());
    if ctx.settings.authorization_policy {
        controller = controller.owns(Api::<AuthorizationPolicy>::all(client.clone()), managed);
    }
    // Models whose verdict from the shared objects' loop changed while they did not (a
    // Gateway went missing, a host claim was decided): rare, so all are reconciled again.
    let (again_tx, again_rx) = futures::channel::mpsc::unbounded::<()>();
    controller = controller.reconcile_all_on(again_rx);
    let store = controller.store();
    let wake = Arc::new(Notify::new());
    let (done_tx, done_rx) = watch::channel(false);

    let namespaces = run.namespaces.clone();
    let watched = move |s: &SeldonDeployment| {
        namespaces.is_empty() || namespaces.contains(&s.namespace_or_empty().to_string())
    };

    // Shared objects: after model changes and key changes, and every few seconds; writes
    // happen only when the desired state changed or at a periodic full check.
    let shared = {
        let ctx = ctx.clone();
        let wake = wake.clone();
        let store = store.clone();
        let watched = watched.clone();
        let mut done = done_rx.clone();
        let server = server.clone();
        tokio::spawn(async move {
            // kube-runtime's readiness signal wakes only the task that polled it last (a
            // oneshot keeps one waker), and the Controller polls it too: poll again every
            // second, which returns at once after anyone has seen the store ready.
            loop {
                match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_elapsed) => continue,
                }
            }
            server.ready.store(true, Ordering::Relaxed);
            let mut last: Option<(u64, Instant)> = None;
            loop {
                let mut pause = Duration::from_secs(5);
                let sdeps: Vec<SeldonDeployment> = store
                    .state()
                    .iter()
                    .map(|s| (**s).clone())
                    .filter(|s| watched(s))
                    .collect();
                let fingerprint = fingerprint(&ctx, &sdeps);
                let fresh = last.is_some_and(|(f, at)| {
                    f == fingerprint && at.elapsed() < Duration::from_secs(300)
                });
                if !fresh {
                    match reconcile_global(&ctx, &sdeps).await {
                        Ok(outcome) => {
                            if outcome.settled() {
                                last = Some((fingerprint, Instant::now()));
                            } else {
                                // Each failed object waits for its own retry time; the
                                // WasmPlugin keeps being applied meanwhile.
                                last = None;
                                if !outcome.failed.is_empty() {
                                    ctx.metrics.reconciled(false);
                                }
                            }
                            if !outcome.changed.is_empty() {
                                let _ = again_tx.unbounded_send(());
                            }
                        }
                        Err(e) => {
                            // Back off like a model does, so a failing API server is not
                            // asked every 5 s for as long as it fails.
                            pause = ctx.failed(SHARED_OBJECTS);
                            tracing::warn!(retry_in = ?pause, "shared objects: {e}");
                            ctx.metrics.reconciled(false);
                        }
                    }
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                    _ = done.wait_for(|d| *d) => return,
                }
            }
        })
    };

    let keys = {
        let ctx = ctx.clone();
        let wake = wake.clone();
        let refresher = crate::jwks::Refresher::new(
            jwks_fetcher.clone(),
            crate::jwks::Schedule {
                refresh: run.jwks_refresh,
                retry: run.jwks_retry,
            },
            run.jwks_concurrency,
        );
        let mut done = done_rx.clone();
        tokio::spawn(async move {
            // Each URI is fetched on a task of its own and reports here when done, so new
            // keys are applied at once, whatever other URIs are still doing.
            let (results, mut fetched) = tokio::sync::mpsc::unbounded_channel();
            loop {
                refresher.start_due(&ctx.jwks, &results);
                let next = ctx.jwks.next_due().map_or(Duration::from_secs(1), |d| {
                    d.saturating_duration_since(Instant::now())
                        .min(Duration::from_secs(1))
                });
                tokio::select! {
                    Some(crate::jwks::Fetched { uri, outcome }) = fetched.recv() => match outcome {
                        Ok(changed) => {
                            ctx.metrics.jwks_fetched(true);
                            if changed {
                                tracing::info!(%uri, "JWKS keys changed");
                                wake.notify_one();
                            }
                        }
                        Err(e) => {
                            let failures = ctx.jwks.backoff(&uri).map_or(0, |(n, _)| n);
                            tracing::warn!(%uri, failures, "JWKS refresh failed, keeping the last good keys: {e}");
                            ctx.metrics.jwks_fetched(false);
                        }
                    },
                    _ = tokio::time::sleep(next) => {}
                    _ = done.wait_for(|d| *d) => return,
                }
            }
        })
    };

    let reconcile = {
        let wake = wake.clone();
        let watched = watched.clone();
        move |sdep: Arc<SeldonDeployment>, ctx: Arc<Context>| {
            let wake = wake.clone();
            let watched = watched(&sdep);
            async move {
                if !watched {
                    return Ok::<_, ReconcileError>(Action::await_change());
                }
                let span = tracing::info_span!("reconcile", model = %sdep.model_id());
                let _enter = span.enter();
                let writes = reconcile_model(&ctx, &sdep).await;
                ctx.metrics.reconciled(writes.is_ok());
                let writes = writes?;
                wake.notify_one();
                if writes.waiting {
                    // Its routes wait for a WasmPlugin that knows the model as it is now.
                    return Ok(Action::requeue(Duration::from_secs(2)));
                }
                Ok(Action::requeue(Duration::from_secs(300)))
            }
        }
    };
    let error_policy = |sdep: Arc<SeldonDeployment>, error: &ReconcileError, ctx: Arc<Context>| {
        let delay = ctx.failed(&sdep.model_id());
        tracing::warn!(model = %sdep.model_id(), retry_in = ?delay, "{error}");
        Action::requeue(delay)
    };
    // The controller wants a Sync future; hand the signal over through a oneshot.
    let (until_tx, until_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        until.await;
        let _ = until_tx.send(());
    });
    controller
        .graceful_shutdown_on(async move {
            let _ = until_rx.await;
        })
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("controller: {e}");
            }
        })
        .await;
    let _ = done_tx.send(true);
    let _ = shared.await;
    let _ = keys.await;
    tracing::info!(models = store.state().len(), "stopped leading");
}

/// A hash of what the shared objects depend on, to skip API calls when nothing changed.
fn fingerprint(ctx: &Context, sdeps: &[SeldonDeployment]) -> u64 {
    use std::hash::{Hash, Hasher};
    let generated = ctx.generate_shared(sdeps);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for gateway in &generated.gateways {
        serde_json::to_string(gateway)
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    serde_json::to_string(&generated.wasm_plugin)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}
