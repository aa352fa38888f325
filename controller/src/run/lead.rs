//! The leader's work: kube's Controller over SeldonDeployments and the objects the
//! controller owns, beside the shared objects' loop and the JWKS loop, until the lease is
//! lost or the process stops.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::{Notify, watch};

use super::jwks_refresh::jwks_refresh_loop;
use super::shared_objects::shared_objects_loop;
use crate::gateway_api::HTTPRoute;
use crate::istio::{AuthorizationPolicy, DestinationRule, VirtualService};
use crate::reconcile::live::{LiveKind, LiveObjects};
use crate::reconcile::{Context, ReconcileError, reconcile_model};
use crate::seldon::SeldonDeployment;
use crate::settings::RunSettings;
use crate::wasm_server::ServerState;

/// The namespaces whose SeldonDeployments the controller reconciles (all when empty).
#[derive(Debug, Clone)]
pub(super) struct Watched(Vec<String>);

impl Watched {
    pub(super) fn covers(&self, sdep: &SeldonDeployment) -> bool {
        self.0.is_empty() || self.0.contains(&sdep.namespace_or_empty().to_string())
    }
}

/// The leader's work: the controller, the shared-object loop and the JWKS loop, until
/// `until` resolves.
pub(super) async fn lead(
    ctx: Arc<Context>,
    run: &RunSettings,
    jwks_fetcher: &crate::jwks::Fetcher,
    server: ServerState,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = ctx.client.clone();
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=modelgate");
    // The SeldonDeployments are cached whole (the reconciles and the shared objects' loop
    // read them), less what the controller never reads and can be most of an object:
    // field managers and kubectl's copy of the last applied object.
    let (reader, writer) = reflector::store();
    let sdeps = watcher(
        Api::<SeldonDeployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .modify(trim)
    .reflect(writer)
    .applied_objects();
    // Owned objects: their watches feed the digests reconciles compare with
    // (`reconcile::live`), then wake their owners as kube's `owns` would.
    let live = &ctx.live;
    let mut controller = Controller::for_stream(sdeps, reader)
        .with_config(controller::Config::default().concurrency(run.concurrency.get()))
        .owns_stream(follow::<VirtualService>(
            &client,
            &live.virtual_services,
            &managed,
        ))
        .owns_stream(follow::<DestinationRule>(
            &client,
            &live.destination_rules,
            &managed,
        ));
    // The kinds `LiveObjects::watched` names: the reconciles look the others up in lists.
    if LiveObjects::watched::<HTTPRoute>(&ctx.settings) {
        controller =
            controller.owns_stream(follow::<HTTPRoute>(&client, &live.http_routes, &managed));
    }
    if LiveObjects::watched::<AuthorizationPolicy>(&ctx.settings) {
        controller = controller.owns_stream(follow::<AuthorizationPolicy>(
            &client,
            &live.authorization_policies,
            &managed,
        ));
    }
    // Models whose verdict from the shared objects' loop changed while they did not (a
    // Gateway went missing, a host claim was decided), and models an applied extension
    // object now knows (their routes waited for it): each reconciled again at once.
    let (again_tx, again_rx) = futures::channel::mpsc::unbounded::<ObjectRef<SeldonDeployment>>();
    controller = controller.reconcile_on(again_rx);
    let store = controller.store();
    // Also fired by the key channel's fetches (`/keys`) that bring new keys.
    let wake = server.keys_changed.clone();
    let (done_tx, done_rx) = watch::channel(false);
    let watched = Watched(run.namespaces.clone());

    let shared = tokio::spawn(shared_objects_loop(
        ctx.clone(),
        store.clone(),
        watched.clone(),
        wake.clone(),
        server,
        again_tx,
        done_rx.clone(),
    ));
    let refresher = crate::jwks::Refresher::new(
        jwks_fetcher.clone(),
        crate::jwks::Schedule {
            refresh: run.jwks_refresh,
            retry: run.jwks_retry,
        },
        run.jwks_concurrency,
    );
    let keys = tokio::spawn(jwks_refresh_loop(
        ctx.clone(),
        refresher,
        wake.clone(),
        done_rx,
    ));

    let reconciler = move |sdep: Arc<SeldonDeployment>, ctx: Arc<Context>| {
        let wake = wake.clone();
        let watched = watched.covers(&sdep);
        async move {
            if !watched {
                return Ok::<_, ReconcileError>(Action::await_change());
            }
            // On a task of its own: the Controller polls its reconciles inside its own
            // stream, so without this they all share the thread that polls it.
            match tokio::spawn(reconcile(sdep, ctx, wake)).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down.
                Err(_) => Ok(Action::await_change()),
            }
        }
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
        .run(reconciler, error_policy, ctx.clone())
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

/// The watch of one owned kind, through its cache of digests.
fn follow<K>(
    client: &kube::Client,
    cache: &Arc<LiveKind>,
    config: &watcher::Config,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    cache
        .clone()
        .follow(watcher(Api::<K>::all(client.clone()), config.clone()))
}

/// Drops from a cached SeldonDeployment what the controller never reads.
fn trim(sdep: &mut SeldonDeployment) {
    sdep.metadata.managed_fields = None;
    if let Some(annotations) = &mut sdep.metadata.annotations {
        annotations.remove(LAST_APPLIED);
    }
}

/// kubectl's copy of the object as last applied, in an annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One watched SeldonDeployment's reconcile; the shared objects' loop is woken after it.
async fn reconcile(
    sdep: Arc<SeldonDeployment>,
    ctx: Arc<Context>,
    wake: Arc<Notify>,
) -> Result<Action, ReconcileError> {
    use tracing::Instrument;
    let span = tracing::info_span!("reconcile", model = %sdep.model_id());
    // Instrumented, not entered: a guard held across awaits would tag whatever else the
    // thread runs meanwhile with this model.
    let writes = reconcile_model(&ctx, &sdep).instrument(span).await;
    ctx.metrics.reconciled(writes.is_ok());
    let writes = writes?;
    wake.notify_one();
    if writes.waiting {
        // Its routes wait for a WasmPlugin that knows the model as it is now.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// A failed reconcile is retried with the model's backoff.
fn error_policy(sdep: Arc<SeldonDeployment>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let delay = ctx.failed(&sdep.model_id());
    tracing::warn!(model = %sdep.model_id(), retry_in = ?delay, "{error}");
    Action::requeue(delay)
}
