//! The pass over what all SeldonDeployments share: the extension object first (always
//! applied, holding what live routes still need from the filter; then the other kind's
//! removed), then the Gateways, then each model's verdict.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use kube::api::Api;
use modelgate_core::config::FilterConfig;

use super::apply::{call, error};
use super::context::{Context, SHARED_OBJECTS, lock};
use super::extension::{apply_extension, remove_other_kind};
use super::gateways::reconcile_gateways;
use super::model::{remove_managed, routes_on_header};
use super::recovery::{keep_live_keys, live_entry, live_filter_config, recover_last_good};
use super::verdict::record_verdicts;
use super::{ReconcileError, Writes};
use crate::gateway_api::HTTPRoute;
use crate::generate::filter_config::ModelEntry;
use crate::generate::{self, Generated};
use crate::istio::VirtualService;
use crate::seldon::SeldonDeployment;

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
    /// Models that have their first verdict as they are now (new or changed models,
    /// waiting for an extension object that knows them): reconcile them now.
    pub admitted: Vec<String>,
}

impl SharedOutcome {
    /// Whether everything reached the desired state.
    pub fn settled(&self) -> bool {
        self.failed.is_empty() && !self.held
    }
}

/// Reconciles what all SeldonDeployments share: the WasmPlugin, then managed Gateways.
/// The WasmPlugin is always applied: an object that cannot be read or written (a Gateway
/// in a namespace that does not exist, a removed model's route that cannot be deleted
/// yet) is reported, retried with its own backoff, and blocks nothing else; only the
/// WasmPlugin's own failure fails the pass. The filter forgets a model, or stops setting
/// its A/B header, only once no route of the model needs it.
pub async fn reconcile_global<S: Borrow<SeldonDeployment>>(
    ctx: &Context,
    sdeps: &[S],
) -> Result<SharedOutcome, ReconcileError> {
    let present: BTreeSet<String> = sdeps.iter().map(|s| s.borrow().model_id()).collect();
    lock(&ctx.last_good).retain(|id, _| present.contains(id));
    lock(&ctx.swept).retain(|id| present.contains(id));
    let namespaces: BTreeSet<&str> = sdeps
        .iter()
        .map(|s| s.borrow().namespace_or_empty())
        .collect();
    ctx.live
        .unwatched
        .retain_namespaces(|namespace| namespaces.contains(namespace));
    let generated = ctx.generate_shared(sdeps);
    for model in &generated.models {
        if let Some(good) = &model.known_good {
            lock(&ctx.last_good).insert(model.id.clone(), good.clone());
        }
    }
    // A generation is dropped before the next is made: at 100,000 models two at once
    // would be the controller's peak.
    let generated = if recover_last_good(ctx, &generated.models).await? {
        drop(generated);
        ctx.generate_shared(sdeps)
    } else {
        generated
    };
    ctx.jwks.track(&generated.jwks_uris);
    let generated = if keep_live_keys(ctx, &generated).await? {
        drop(generated);
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
    let (extension, document) = if outcome.held {
        let config = crate::generate::filter_config::build(&entries, &ctx.jwks.snapshot());
        let targets = generate::extension_targets(&generated.models, &ctx.settings);
        generate::render_extension_with_document(&config, &ctx.settings, &ctx.wasm, &targets)
    } else {
        (generated.extension.clone(), generated.document.clone())
    };
    // Served, and stored for every replica, before the object naming it is applied: a
    // gateway never asks for a document the controller does not have yet.
    let published = document.is_some();
    if let Some(document) = document {
        ctx.documents.publish(document).await.map_err(store_error)?;
    }
    apply_extension(ctx, &extension, &mut outcome.writes).await?;
    if published {
        // Older documents than those kept are named by nothing live any more.
        match ctx.documents.prune().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(documents = n, "deleted stored configurations"),
            Err(e) => tracing::warn!("stored configurations: {e}"),
        }
    }
    // Only once the new kind's object is applied: the gateway is never left without one.
    if let Err(e) = remove_other_kind(ctx, extension.kind(), &mut outcome.writes).await {
        outcome.failed.push(e);
    }
    ctx.metrics.set_models(generated.models.len());
    ctx.metrics.set_predictor_traffic(&entries);

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

/// A document that could not be stored, as the error of the pass.
fn store_error(e: crate::config_documents::StoreError) -> ReconcileError {
    match e {
        crate::config_documents::StoreError::Api {
            action,
            namespace,
            name,
            source,
        } => ReconcileError {
            action,
            kind: "ConfigMap".into(),
            namespace,
            name,
            source,
        },
        // Only reads check a stored document; a write has nothing to find invalid.
        invalid @ crate::config_documents::StoreError::Invalid(..) => ReconcileError {
            action: "apply",
            kind: "ConfigMap".into(),
            namespace: String::new(),
            name: String::new(),
            source: kube::Error::Service(invalid.to_string().into()),
        },
    }
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

/// Deletes the managed VirtualService and HTTPRoute of a model that is gone.
async fn remove_routes(
    ctx: &Context,
    namespace: &str,
    seldon_id: &str,
    writes: &mut Writes,
) -> Result<(), ReconcileError> {
    remove_managed::<VirtualService>(ctx, namespace, seldon_id, writes).await?;
    remove_managed::<HTTPRoute>(ctx, namespace, seldon_id, writes).await
}

/// Whether a model's live VirtualService or HTTPRoute has a route on the A/B header
/// `header`.
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
    if live.is_some_and(|vs| vs.spec.http.iter().any(|r| routes_on_header(r, header))) {
        return Ok(true);
    }
    let api: Api<HTTPRoute> = Api::namespaced(ctx.client.clone(), namespace);
    let live = call(ctx, api.get_opt(seldon_id))
        .await
        .map_err(|e| error::<HTTPRoute>("get", namespace, seldon_id, e))?;
    Ok(live.is_some_and(|route| {
        route
            .spec
            .rules
            .iter()
            .flat_map(|r| &r.matches)
            .any(|m| m.headers.iter().any(|h| h.name == header))
    }))
}
