//! Applying generated objects to the cluster. Per SeldonDeployment: its VirtualService,
//! DestinationRules and AuthorizationPolicy, and the removal of DestinationRules of
//! predictors that are gone. Globally: managed Gateways (created when missing, deleted
//! when unreferenced, never touching unmanaged ones) and the WasmPlugin. Writes are
//! server-side applies (field manager `modelgate`, forced) and happen only when the live
//! object differs from the desired one. Every API call has a timeout; after a restart,
//! the live WasmPlugin stands in for what the process has not learned yet (JWKS keys not
//! fetched, broken models' last good configurations).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use modelgate_core::config::{FilterConfig, Policy};

use crate::annotations::{self, GatewayRef, KeySource, ModelError, ModelWarning, PolicySpec};
use crate::filter_config::ModelEntry;
use crate::generate::{
    self, Generated, Inputs, KnownGood, MANAGED_BY, MODEL_LABEL, WASM_PLUGIN_NAME, WasmSource,
};
use crate::istio::{AuthorizationPolicy, DestinationRule, Gateway, VirtualService, WasmPlugin};
use crate::jwks::JwksCache;
use crate::metrics::Metrics;
use crate::seldon::SeldonDeployment;
use crate::settings::Settings;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "modelgate";

/// The key of the shared objects (Gateways, WasmPlugin) in [`Context::failures`]; no
/// model id looks like it (ids are `<namespace>/<name>`).
pub const SHARED_OBJECTS: &str = "(shared objects)";

/// How long one API call may take by default before it counts as failed.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed reconciliation: the API call and object concerned.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {namespace}/{name}: {source}")]
pub struct ReconcileError {
    /// What was attempted (`get`, `apply`, `delete`, `list`).
    pub action: &'static str,
    /// The object's kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name (or `*` for lists).
    pub name: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// Shared state of the controller.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Generation settings.
    pub settings: Settings,
    /// Where the filter module is.
    pub wasm: WasmSource,
    /// Fetched JWKS.
    pub jwks: JwksCache,
    /// Each model's last good configuration.
    pub last_good: Mutex<BTreeMap<String, KnownGood>>,
    /// Broken models whose last good configuration was looked up in the cluster (done
    /// once per model and process: it only matters after a restart).
    pub looked_up: Mutex<BTreeSet<String>>,
    /// Problems already reported as Events, per model, so each is reported once.
    pub reported: Mutex<BTreeMap<String, Vec<String>>>,
    /// Consecutive failures per model (and of the shared objects, [`SHARED_OBJECTS`]),
    /// for backoff.
    pub failures: Mutex<BTreeMap<String, u32>>,
    /// How long one API call may take before it counts as failed. The client has no read
    /// timeout of its own (kube leaves it unset so watches live), so without this a
    /// stalled API server would hold a reconcile, or the shared objects' loop, forever.
    pub api_timeout: Duration,
    /// Metrics.
    pub metrics: Metrics,
    /// Who reports Events; `None` leaves Events out (tests of the apply logic).
    pub reporter: Option<Reporter>,
    /// What the shared objects' loop decided per model with the WasmPlugin it last got
    /// applied; a model's VirtualService waits for it (see [`Verdict`]).
    pub verdicts: Mutex<BTreeMap<String, Verdict>>,
    /// Shared objects that failed, by `<Kind> <ns>/<name>`: when to try again and why.
    pub retry_at: Mutex<BTreeMap<String, (Instant, String)>>,
}

/// What the shared objects' loop knows about one model once a WasmPlugin holding it has
/// been applied. A model's VirtualService is written only when the verdict is for the
/// model as it is now ([`shape`]): so the filter knows a model before it is routable, and
/// problems only the whole set or the cluster shows (a host claimed earlier, a Gateway
/// that may not be created or that the filter does not guard) stop it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The [`shape`] of the SeldonDeployment it was decided for.
    pub shape: u64,
    /// The A/B header the filter sets for the model in the applied WasmPlugin, if any.
    pub routing_header: Option<String>,
    /// Errors: the model's objects are not written, its last good ones stay.
    pub errors: Vec<ModelError>,
    /// Warnings, such as a Gateway not applied yet.
    pub warnings: Vec<ModelWarning>,
}

/// A hash of what generation reads from a SeldonDeployment (its annotations and spec).
pub fn shape(sdep: &SeldonDeployment) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sdep.model_id().hash(&mut hasher);
    serde_json::to_string(&sdep.metadata.annotations)
        .unwrap_or_default()
        .hash(&mut hasher);
    serde_json::to_string(&sdep.spec)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

impl Context {
    /// A context over a client.
    pub fn new(
        client: Client,
        settings: Settings,
        wasm: WasmSource,
        reporter: Option<Reporter>,
    ) -> Self {
        Self {
            client,
            settings,
            wasm,
            jwks: JwksCache::default(),
            last_good: Mutex::default(),
            looked_up: Mutex::default(),
            reported: Mutex::default(),
            failures: Mutex::default(),
            api_timeout: DEFAULT_API_TIMEOUT,
            metrics: Metrics::default(),
            reporter,
            verdicts: Mutex::default(),
            retry_at: Mutex::default(),
        }
    }

    /// Generates everything from these SeldonDeployments with the current keys and last
    /// good configurations.
    pub fn generate(&self, sdeps: &[SeldonDeployment]) -> Generated {
        self.generate_with(sdeps, generate::generate)
    }

    /// [`Context::generate`] without the models' own objects ([`generate::shared`]): what
    /// the Gateways and the WasmPlugin need.
    pub fn generate_shared(&self, sdeps: &[SeldonDeployment]) -> Generated {
        self.generate_with(sdeps, generate::shared)
    }

    fn generate_with(
        &self,
        sdeps: &[SeldonDeployment],
        generate: fn(&[SeldonDeployment], Inputs<'_>) -> Generated,
    ) -> Generated {
        let keys = self.jwks.snapshot();
        // Only these models' entries: a model's reconcile must not copy every model's
        // (thousands of key sets, in each of the concurrent reconciles).
        let last_good: BTreeMap<String, KnownGood> = {
            let all = lock(&self.last_good);
            sdeps
                .iter()
                .filter_map(|s| {
                    let id = s.model_id();
                    let good = all.get(&id)?.clone();
                    Some((id, good))
                })
                .collect()
        };
        generate(
            sdeps,
            Inputs {
                settings: &self.settings,
                jwks: &keys,
                last_good: &last_good,
                wasm: &self.wasm,
            },
        )
    }

    /// The requeue delay after a model's `failures`-th consecutive failure: 5 s doubling
    /// up to 5 min.
    pub fn backoff(failures: u32) -> Duration {
        Duration::from_secs(
            5u64.saturating_mul(1 << failures.saturating_sub(1).min(6))
                .min(300),
        )
    }

    /// Records a failure of a model and returns how long to wait before retrying.
    pub fn failed(&self, model: &str) -> Duration {
        let mut failures = lock(&self.failures);
        let n = failures.entry(model.to_string()).or_insert(0);
        *n += 1;
        Self::backoff(*n)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a reconciliation wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Writes {
    /// `<Kind> <ns>/<name>` applied.
    pub applied: Vec<String>,
    /// `<Kind> <ns>/<name>` deleted.
    pub deleted: Vec<String>,
    /// The model waits for the shared objects' loop: no WasmPlugin holding it as it is
    /// now has been applied yet, so its routes are not (all) written; try again soon.
    pub waiting: bool,
}

/// What a pass over the shared objects did.
#[derive(Debug, Default)]
pub struct SharedOutcome {
    /// What it wrote.
    pub writes: Writes,
    /// Objects that could not be read or written (each retried with its own backoff);
    /// the WasmPlugin was applied all the same.
    pub failed: Vec<ReconcileError>,
    /// Whether the WasmPlugin still holds something the cluster's routes need (a removed
    /// model's entry, an A/B header a VirtualService still routes on): run again soon.
    pub held: bool,
    /// Models whose verdict changed while they did not: reconcile them again.
    pub changed: Vec<String>,
}

impl SharedOutcome {
    /// Whether everything reached the desired state.
    pub fn settled(&self) -> bool {
        self.failed.is_empty() && !self.held
    }
}

/// Reconciles one SeldonDeployment's own objects. A model whose annotations do not parse
/// keeps its objects as they are (its last good configuration) and gets a Warning Event.
pub async fn reconcile_model(
    ctx: &Context,
    sdep: &SeldonDeployment,
) -> Result<Writes, ReconcileError> {
    let generated = ctx.generate(std::slice::from_ref(sdep));
    recover_last_good(ctx, &generated.models).await?;
    let Some(mut model) = generated.models.into_iter().next() else {
        return Ok(Writes::default());
    };
    let mut writes = Writes::default();
    let verdict = lock(&ctx.verdicts)
        .get(&model.id)
        .filter(|v| v.shape == shape(sdep))
        .cloned();
    match (&verdict, &mut model.objects) {
        // Valid on its own, but not yet in an applied WasmPlugin: not routable yet.
        (None, Ok(_)) => {
            report(ctx, sdep, &model).await;
            writes.waiting = true;
            return Ok(writes);
        }
        (None, Err(_)) => {}
        (Some(verdict), objects) => {
            let mut errors = objects.as_ref().err().cloned().unwrap_or_default();
            for e in &verdict.errors {
                if !errors.contains(e) {
                    errors.push(e.clone());
                }
            }
            if !errors.is_empty() {
                *objects = Err(errors);
            }
            for w in &verdict.warnings {
                if !model.warnings.contains(w) {
                    model.warnings.push(w.clone());
                }
            }
        }
    }
    report(ctx, sdep, &model).await;
    let Ok(Some(objects)) = &mut model.objects else {
        // `generate` renders every valid model's objects: only an invalid one lands here.
        ctx.metrics.model_errors(&model.id, model.objects.is_err());
        return Ok(writes);
    };
    ctx.metrics.model_errors(&model.id, false);
    // Routes on the A/B header only once the filter sets that header for the model (it
    // replaces what the client sent); until then the model's default routes only.
    let needs = model
        .known_good
        .as_ref()
        .and_then(|g| g.entry.routing.as_ref())
        .map(|r| r.header.clone());
    let knows = verdict.as_ref().and_then(|v| v.routing_header.clone());
    if let Some(header) = needs
        && knows.as_ref() != Some(&header)
    {
        objects
            .virtual_service
            .spec
            .http
            .retain(|route| !routes_on_header(route, &header));
        writes.waiting = true;
    }
    apply_if_changed(ctx, &objects.virtual_service, &mut writes).await?;
    let mut wanted = BTreeSet::new();
    for rule in &objects.destination_rules {
        apply_if_changed(ctx, rule, &mut writes).await?;
        wanted.insert(rule.name_any());
    }
    // DestinationRules of predictors that are gone.
    let rules: Api<DestinationRule> = Api::namespaced(ctx.client.clone(), &model.namespace);
    let selector = format!(
        "{}={},{}={}",
        MANAGED_BY.0, MANAGED_BY.1, MODEL_LABEL, model.seldon_id
    );
    let live = call(ctx, rules.list(&ListParams::default().labels(&selector)))
        .await
        .map_err(|e| error::<DestinationRule>("list", &model.namespace, "*", e))?;
    for rule in live {
        if !wanted.contains(&rule.name_any()) {
            delete::<DestinationRule>(ctx, &model.namespace, &rule.name_any(), &mut writes).await?;
        }
    }
    let policies: Api<AuthorizationPolicy> = Api::namespaced(ctx.client.clone(), &model.namespace);
    match &objects.authorization_policy {
        Some(policy) => apply_if_changed(ctx, policy, &mut writes).await?,
        None => {
            if let Some(live) = call(ctx, policies.get_opt(&model.seldon_id))
                .await
                .map_err(|e| {
                    error::<AuthorizationPolicy>("get", &model.namespace, &model.seldon_id, e)
                })?
                && is_managed(&live)
            {
                delete::<AuthorizationPolicy>(ctx, &model.namespace, &model.seldon_id, &mut writes)
                    .await?;
            }
        }
    }
    if let Some(good) = model.known_good {
        lock(&ctx.last_good).insert(model.id.clone(), good);
    }
    lock(&ctx.failures).remove(&model.id);
    Ok(writes)
}

/// Reconciles what all SeldonDeployments share: the WasmPlugin, then managed Gateways.
/// The WasmPlugin is always applied: an object that cannot be read or written (a Gateway
/// in a namespace that does not exist, a removed model's route that cannot be deleted
/// yet) is reported, retried with its own backoff, and blocks nothing else; only the
/// WasmPlugin's own failure fails the pass. The filter forgets a model, or stops setting
/// its A/B header, only once no route of the model needs it.
pub async fn reconcile_global(
    ctx: &Context,
    sdeps: &[SeldonDeployment],
) -> Result<SharedOutcome, ReconcileError> {
    let present: BTreeSet<String> = sdeps.iter().map(SeldonDeployment::model_id).collect();
    lock(&ctx.last_good).retain(|id, _| present.contains(id));
    let generated = ctx.generate_shared(sdeps);
    for model in &generated.models {
        if let Some(good) = &model.known_good {
            lock(&ctx.last_good).insert(model.id.clone(), good.clone());
        }
    }
    let generated = if recover_last_good(ctx, &generated.models).await? {
        ctx.generate_shared(sdeps)
    } else {
        generated
    };
    ctx.jwks.track(&generated.jwks_uris);
    let generated = if keep_live_keys(ctx, &generated).await? {
        ctx.generate_shared(sdeps)
    } else {
        generated
    };
    let mut outcome = SharedOutcome::default();
    let live = live_filter_config(ctx).await?;
    let mut entries = generated.entries.clone();
    if let Some(live) = &live {
        outcome.held =
            hold_what_routes_need(ctx, live, &generated, &mut entries, &mut outcome).await;
    }
    let wasm_plugin = if outcome.held {
        let config = crate::filter_config::build(&entries, &ctx.jwks.snapshot());
        generate::render_wasm_plugin(&config, &ctx.settings, &ctx.wasm)
    } else {
        generated.wasm_plugin.clone()
    };
    apply_if_changed(ctx, &wasm_plugin, &mut outcome.writes).await?;
    ctx.metrics.set_models(generated.models.len());

    let gateways = reconcile_gateways(ctx, &generated, &mut outcome).await;
    record_verdicts(ctx, sdeps, &generated, &entries, &gateways, &mut outcome);
    for e in &outcome.failed {
        tracing::warn!("shared objects: {e}");
        ctx.metrics.object_failed(&e.kind);
    }
    if outcome.failed.is_empty() {
        lock(&ctx.failures).remove(SHARED_OBJECTS);
    }
    Ok(outcome)
}

/// Keeps in `entries` what live routes still need from the filter: the entry of a model
/// that is gone until its VirtualService is deleted (by this function: the garbage
/// collector's timing is not ours), and the A/B header of a model whose live
/// VirtualService still routes on it. Returns whether anything was held.
async fn hold_what_routes_need(
    ctx: &Context,
    live: &FilterConfig,
    generated: &Generated,
    entries: &mut BTreeMap<String, ModelEntry>,
    outcome: &mut SharedOutcome,
) -> bool {
    let models: BTreeMap<&str, &generate::GeneratedModel> = generated
        .models
        .iter()
        .map(|m| (m.id.as_str(), m))
        .collect();
    let mut held = false;
    for (id, live_model) in &live.models {
        let Some((namespace, name)) = id.split_once('/') else {
            continue;
        };
        match models.get(id.as_str()) {
            None => {
                let seldon_id = crate::seldon::seldon_name(name.to_string());
                if let Err(e) = remove_routes(ctx, namespace, &seldon_id, &mut outcome.writes).await
                {
                    if let Some(entry) = live_entry(live, id) {
                        entries.insert(id.clone(), entry);
                    }
                    outcome.failed.push(e);
                    held = true;
                }
            }
            Some(model) => {
                let Some(routing) = &live_model.routing else {
                    continue;
                };
                let Some(entry) = entries.get_mut(id) else {
                    continue;
                };
                if entry.routing.as_ref().map(|r| &r.header) == Some(&routing.header) {
                    continue;
                }
                let still = vs_routes_on(ctx, namespace, &model.seldon_id, &routing.header).await;
                match still {
                    Ok(false) => {}
                    Ok(true) => {
                        entry.routing = Some(routing.clone());
                        held = true;
                    }
                    Err(e) => {
                        entry.routing = Some(routing.clone());
                        outcome.failed.push(e);
                        held = true;
                    }
                }
            }
        }
    }
    held
}

/// Deletes the managed VirtualService of a model that is gone.
async fn remove_routes(
    ctx: &Context,
    namespace: &str,
    seldon_id: &str,
    writes: &mut Writes,
) -> Result<(), ReconcileError> {
    let api: Api<VirtualService> = Api::namespaced(ctx.client.clone(), namespace);
    let live = call(ctx, api.get_opt(seldon_id))
        .await
        .map_err(|e| error::<VirtualService>("get", namespace, seldon_id, e))?;
    match live {
        Some(vs) if is_managed(&vs) => {
            delete::<VirtualService>(ctx, namespace, seldon_id, writes).await
        }
        _ => Ok(()),
    }
}

/// Whether a model's live VirtualService has a route on the A/B header `header`.
async fn vs_routes_on(
    ctx: &Context,
    namespace: &str,
    seldon_id: &str,
    header: &str,
) -> Result<bool, ReconcileError> {
    let api: Api<VirtualService> = Api::namespaced(ctx.client.clone(), namespace);
    let live = call(ctx, api.get_opt(seldon_id))
        .await
        .map_err(|e| error::<VirtualService>("get", namespace, seldon_id, e))?;
    Ok(live.is_some_and(|vs| vs.spec.http.iter().any(|r| routes_on_header(r, header))))
}

/// Whether a route matches on the header `header` (the A/B header's per-predictor routes).
fn routes_on_header(route: &crate::istio::HttpRoute, header: &str) -> bool {
    route.r#match.iter().any(|m| m.headers.contains_key(header))
}

/// What the shared objects' pass found out about a Gateway models name.
#[derive(Debug, Clone, PartialEq)]
enum GatewayState {
    /// There, and on pods the WasmPlugin selects.
    Guarded,
    /// Not there, and the controller may not create it for the models naming it.
    Missing,
    /// There, but its selector may pick pods the WasmPlugin does not select.
    Unguarded(BTreeMap<String, String>),
    /// Could not be read or written (yet): why.
    Failed(String),
}

/// Creates the managed Gateways models need (each on its own: one that fails waits for its
/// own retry and blocks no other), checks the other Gateways models name, and deletes
/// managed Gateways no model needs any more.
async fn reconcile_gateways(
    ctx: &Context,
    generated: &Generated,
    outcome: &mut SharedOutcome,
) -> BTreeMap<GatewayRef, GatewayState> {
    let creatable: BTreeMap<GatewayRef, &Gateway> = generated
        .gateways
        .iter()
        .map(|g| {
            let key = GatewayRef::Named {
                namespace: g.namespace().unwrap_or_default(),
                name: g.name_any(),
            };
            (key, g)
        })
        .collect();
    let named: BTreeSet<GatewayRef> = generated
        .models
        .iter()
        .filter_map(|m| m.gateway.clone())
        .filter(|g| *g != GatewayRef::Mesh)
        .chain(creatable.keys().cloned())
        .collect();
    let mut states = BTreeMap::new();
    for gateway in named {
        let GatewayRef::Named { namespace, name } = &gateway else {
            continue;
        };
        let key = format!("Gateway {namespace}/{name}");
        let waiting = lock(&ctx.retry_at)
            .get(&key)
            .filter(|(at, _)| Instant::now() < *at)
            .map(|(_, why)| why.clone());
        if let Some(why) = waiting {
            outcome.held = true;
            states.insert(gateway.clone(), GatewayState::Failed(why));
            continue;
        }
        let state = match check_gateway(
            ctx,
            namespace,
            name,
            creatable.get(&gateway).copied(),
            outcome,
        )
        .await
        {
            Ok(state) => {
                lock(&ctx.retry_at).remove(&key);
                lock(&ctx.failures).remove(&key);
                state
            }
            Err(e) => {
                let why = e.to_string();
                let delay = ctx.failed(&key);
                lock(&ctx.retry_at).insert(key, (Instant::now() + delay, why.clone()));
                outcome.failed.push(e);
                GatewayState::Failed(why)
            }
        };
        states.insert(gateway, state);
    }
    let all: Api<Gateway> = Api::all(ctx.client.clone());
    let listed = call(
        ctx,
        all.list(&ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1))),
    )
    .await
    .map_err(|e| error::<Gateway>("list", "*", "*", e));
    match listed {
        Ok(managed) => {
            for gateway in managed {
                let key = GatewayRef::Named {
                    namespace: gateway.namespace().unwrap_or_default(),
                    name: gateway.name_any(),
                };
                if let GatewayRef::Named { namespace, name } = &key
                    && !creatable.contains_key(&key)
                    && let Err(e) =
                        delete::<Gateway>(ctx, namespace, name, &mut outcome.writes).await
                {
                    outcome.failed.push(e);
                }
            }
        }
        Err(e) => outcome.failed.push(e),
    }
    states
}

/// One Gateway: created or updated when the controller may manage it for its models,
/// otherwise only read.
async fn check_gateway(
    ctx: &Context,
    namespace: &str,
    name: &str,
    desired: Option<&Gateway>,
    outcome: &mut SharedOutcome,
) -> Result<GatewayState, ReconcileError> {
    let api: Api<Gateway> = Api::namespaced(ctx.client.clone(), namespace);
    let live = call(ctx, api.get_opt(name))
        .await
        .map_err(|e| error::<Gateway>("get", namespace, name, e))?;
    let live = match (live, desired) {
        // Managed and wanted: kept as generated (with the configured selector).
        (Some(live), Some(desired)) if is_managed(&live) => {
            if differs(desired, &live) {
                apply::<Gateway>(ctx, desired, &mut outcome.writes).await?;
            }
            return Ok(GatewayState::Guarded);
        }
        (None, Some(desired)) => {
            apply::<Gateway>(ctx, desired, &mut outcome.writes).await?;
            return Ok(GatewayState::Guarded);
        }
        (None, None) => return Ok(GatewayState::Missing),
        // Not ours (never modified), or ours but kept by other models: only checked.
        (Some(live), _) => live,
    };
    let guarded = ctx
        .settings
        .gateway_selector
        .iter()
        .all(|(k, v)| live.spec.selector.get(k) == Some(v));
    Ok(if guarded {
        GatewayState::Guarded
    } else {
        GatewayState::Unguarded(live.spec.selector)
    })
}

/// Records, once the WasmPlugin is applied, what each model's reconcile needs to know.
fn record_verdicts(
    ctx: &Context,
    sdeps: &[SeldonDeployment],
    generated: &Generated,
    entries: &BTreeMap<String, ModelEntry>,
    gateways: &BTreeMap<GatewayRef, GatewayState>,
    outcome: &mut SharedOutcome,
) {
    let shapes: BTreeMap<String, u64> = sdeps.iter().map(|s| (s.model_id(), shape(s))).collect();
    let selector: Vec<String> = ctx
        .settings
        .gateway_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut verdicts = BTreeMap::new();
    for model in &generated.models {
        let mut errors = model.objects.as_ref().err().cloned().unwrap_or_default();
        let mut warnings = Vec::new();
        if let Some(gateway) = &model.gateway {
            let problem = |expected: String| ModelError::Spec {
                object: model.id.clone(),
                field: annotations::ISTIO_GATEWAY.into(),
                value: gateway.to_string(),
                expected,
            };
            match gateways.get(gateway) {
                Some(GatewayState::Missing) => errors.push(problem(format!(
                    "an existing Gateway: it does not exist, and modelgate creates Gateways only in the model's own namespace, in the namespaces of setting tenancy.gatewayNamespaces, or the defaultGateway {}",
                    ctx.settings.default_gateway
                ))),
                Some(GatewayState::Unguarded(found)) => errors.push(problem(format!(
                    "a Gateway on the ingress pods the modelgate filter is installed on (gatewaySelector {}): its selector {found:?} may pick pods the filter does not guard, so the model would be open",
                    selector.join(",")
                ))),
                Some(GatewayState::Failed(why)) => warnings.push(ModelWarning {
                    object: model.id.clone(),
                    annotation: annotations::ISTIO_GATEWAY.into(),
                    message: format!("{gateway}: cannot be applied or read yet ({why}); retried with backoff"),
                }),
                Some(GatewayState::Guarded) | None => {}
            }
        }
        let Some(shape) = shapes.get(&model.id) else {
            continue;
        };
        let verdict = Verdict {
            shape: *shape,
            routing_header: entries
                .get(&model.id)
                .and_then(|e| e.routing.as_ref())
                .map(|r| r.header.clone()),
            errors,
            warnings,
        };
        verdicts.insert(model.id.clone(), verdict);
    }
    let mut recorded = lock(&ctx.verdicts);
    for (id, verdict) in &verdicts {
        if let Some(before) = recorded.get(id)
            && before.shape == verdict.shape
            && (before.errors != verdict.errors || before.warnings != verdict.warnings)
        {
            outcome.changed.push(id.clone());
        }
    }
    *recorded = verdicts;
}

/// A new leader's JWKS cache is empty until its first fetches, and the issuer may be down
/// then: generating without keys would replace the keys the filter is using with empty
/// sets and deny every JWT model. So each URI not fetched yet takes the keys the live
/// WasmPlugin has from that very URI (a key set records its `source`) until a fetch
/// replaces them. Keys given inline, or of a set that does not say where it came from
/// (written by an older controller), are never taken: a model naming a URI must not
/// inherit keys another model brought along. Returns whether any were taken.
async fn keep_live_keys(ctx: &Context, generated: &Generated) -> Result<bool, ReconcileError> {
    let fetched = ctx.jwks.snapshot();
    let missing: BTreeSet<&String> = generated
        .jwks_uris
        .iter()
        .filter(|uri| !fetched.contains_key(*uri))
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let Some(live) = live_filter_config(ctx).await? else {
        return Ok(false);
    };
    let mut kept = false;
    for uri in missing {
        let keys = live
            .key_sets
            .values()
            .find(|set| set.source.as_ref() == Some(uri) && !set.keys.is_empty());
        if let Some(keys) = keys {
            kept |= ctx.jwks.keep(uri, keys.clone());
        }
    }
    Ok(kept)
}

/// A restarted controller knows no last good configurations, so a model whose annotations
/// broke before the restart would lose its own: its entry would become `deny` and its
/// Gateway, when no other model names it, would be deleted under its VirtualService. Such
/// a model takes its last good configuration from the cluster instead: its entry in the
/// live WasmPlugin (with the keys the filter has, inline) and the gateway of its live
/// VirtualService. Returns whether any was found.
async fn recover_last_good(
    ctx: &Context,
    models: &[generate::GeneratedModel],
) -> Result<bool, ReconcileError> {
    let lost: Vec<&generate::GeneratedModel> = {
        let last_good = lock(&ctx.last_good);
        let looked_up = lock(&ctx.looked_up);
        models
            .iter()
            .filter(|m| {
                m.objects.is_err() && !last_good.contains_key(&m.id) && !looked_up.contains(&m.id)
            })
            .collect()
    };
    if lost.is_empty() {
        return Ok(false);
    }
    let config = live_filter_config(ctx).await?;
    let mut found = false;
    for model in lost {
        let entry = config.as_ref().and_then(|c| live_entry(c, &model.id));
        if let Some(entry) = entry {
            let api: Api<VirtualService> = Api::namespaced(ctx.client.clone(), &model.namespace);
            let live = call(ctx, api.get_opt(&model.seldon_id))
                .await
                .map_err(|e| {
                    error::<VirtualService>("get", &model.namespace, &model.seldon_id, e)
                })?;
            let gateway = live
                .filter(is_managed)
                .and_then(|vs| vs.spec.gateways.first().cloned())
                .and_then(|g| annotations::parse_gateway(&g, &model.namespace).ok());
            if let Some(gateway) = gateway {
                lock(&ctx.last_good)
                    .entry(model.id.clone())
                    .or_insert(KnownGood { entry, gateway });
                found = true;
            }
        }
        lock(&ctx.looked_up).insert(model.id.clone());
    }
    Ok(found)
}

/// A model's usable entry in a filter configuration (a `deny` is none), its keys inline.
fn live_entry(config: &FilterConfig, id: &str) -> Option<ModelEntry> {
    let model = config.models.get(id)?;
    let policy = match config.policies.get(&model.policy)? {
        Policy::None => PolicySpec::None,
        Policy::Deny { .. } => return None,
        Policy::Jwt(jwt) => {
            let keys = config.key_sets.get(&jwt.key_set)?.clone();
            PolicySpec::Jwt(Box::new(jwt.clone()), KeySource::Inline(keys))
        }
    };
    Some(ModelEntry {
        policy,
        routing: model.routing.clone(),
    })
}

/// The filter configuration of the live WasmPlugin, if there is one that parses.
async fn live_filter_config(ctx: &Context) -> Result<Option<FilterConfig>, ReconcileError> {
    let namespace = &ctx.settings.gateway_namespace;
    let api: Api<WasmPlugin> = Api::namespaced(ctx.client.clone(), namespace);
    let live = call(ctx, api.get_opt(WASM_PLUGIN_NAME))
        .await
        .map_err(|e| error::<WasmPlugin>("get", namespace, WASM_PLUGIN_NAME, e))?;
    Ok(live.and_then(|p| serde_json::from_value(p.spec.plugin_config).ok()))
}

/// Emits a Warning Event for each new problem of a model (errors and warnings).
async fn report(ctx: &Context, sdep: &SeldonDeployment, model: &generate::GeneratedModel) {
    let mut messages: Vec<(String, String)> = Vec::new();
    if let Err(errors) = &model.objects {
        let kept = if lock(&ctx.last_good).contains_key(&model.id) {
            "its last good configuration is kept"
        } else {
            "it never had a valid configuration, so its requests are denied"
        };
        for e in errors {
            messages.push(("InvalidAnnotation".into(), format!("{e}; {kept}")));
        }
    }
    for w in &model.warnings {
        messages.push(("AnnotationWarning".into(), w.to_string()));
    }
    let texts: Vec<String> = messages.iter().map(|(_, m)| m.clone()).collect();
    {
        let mut reported = lock(&ctx.reported);
        if reported.get(&model.id) == Some(&texts) {
            return;
        }
        reported.insert(model.id.clone(), texts);
    }
    for (reason, note) in messages {
        tracing::warn!(model = %model.id, %reason, "{note}");
        if let Some(reporter) = &ctx.reporter {
            // A Recorder folds every Event with the same reason on the same object into the
            // series of the first one, note included, so a second, different problem would
            // show as one more count of the first. Problems are already reported once each
            // (above), so each gets its own Event: a Recorder without history.
            let recorder = Recorder::new(ctx.client.clone(), reporter.clone());
            let event = Event {
                type_: EventType::Warning,
                reason,
                note: Some(note.chars().take(1024).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            let published = call(ctx, recorder.publish(&event, &sdep.object_ref(&()))).await;
            if let Err(e) = published {
                tracing::warn!(model = %model.id, "cannot publish an Event: {e}");
            }
        }
    }
}

fn is_managed<K: Resource>(object: &K) -> bool {
    object.labels().get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1)
}

/// Whether the live object differs from the desired one in what this controller sets:
/// the spec, its labels and owner references.
fn differs<K: Resource + Serialize>(desired: &K, live: &K) -> bool {
    let spec = |k: &K| serde_json::to_value(k).ok().map(|v| v["spec"].clone());
    let labels_held = desired
        .labels()
        .iter()
        .all(|(k, v)| live.labels().get(k) == Some(v));
    let owners_held = desired
        .owner_references()
        .iter()
        .all(|o| live.owner_references().iter().any(|l| l.uid == o.uid));
    // Numbers round-trip through the typed spec, so 25 and 25.0 compare equal.
    spec(desired) != spec(live) || !labels_held || !owners_held
}

async fn apply_if_changed<K>(
    ctx: &Context,
    desired: &K,
    writes: &mut Writes,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let namespace = desired.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let live = call(ctx, api.get_opt(&desired.name_any()))
        .await
        .map_err(|e| error::<K>("get", &namespace, &desired.name_any(), e))?;
    if live.as_ref().is_some_and(|live| !differs(desired, live)) {
        return Ok(());
    }
    apply(ctx, desired, writes).await
}

async fn apply<K>(ctx: &Context, desired: &K, writes: &mut Writes) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    call(
        ctx,
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(desired),
        ),
    )
    .await
    .map_err(|e| error::<K>("apply", &namespace, &name, e))?;
    tracing::info!(kind = %K::kind(&()), %namespace, %name, "applied");
    writes
        .applied
        .push(format!("{} {namespace}/{name}", K::kind(&())));
    Ok(())
}

async fn delete<K>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    writes: &mut Writes,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match call(ctx, api.delete(name, &DeleteParams::default())).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(error::<K>("delete", namespace, name, e)),
    }
    tracing::info!(kind = %K::kind(&()), %namespace, %name, "deleted");
    writes
        .deleted
        .push(format!("{} {namespace}/{name}", K::kind(&())));
    Ok(())
}

/// One API call, failed as a transport error when it takes longer than
/// [`Context::api_timeout`].
async fn call<T>(
    ctx: &Context,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(ctx.api_timeout, request).await {
        Ok(result) => result,
        Err(_elapsed) => Err(kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from the API server within {:?}", ctx.api_timeout),
        )))),
    }
}

fn error<K: Resource<DynamicType = ()>>(
    action: &'static str,
    namespace: &str,
    name: &str,
    source: kube::Error,
) -> ReconcileError {
    ReconcileError {
        action,
        kind: K::kind(&()).into_owned(),
        namespace: namespace.into(),
        name: name.into(),
        source,
    }
}
