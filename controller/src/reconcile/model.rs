//! One SeldonDeployment's own objects: its VirtualService or HTTPRoute (routable only once an applied
//! WasmPlugin knows the model as it is now), its DestinationRules (those of predictors
//! that are gone deleted) and its AuthorizationPolicy.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::apply::{Owned, apply_if_changed, call, delete, error, is_managed};
use super::context::{Context, lock};
use super::events::report;
use super::live::{Known, LiveObjects};
use super::recovery::recover_last_good;
use super::verdict::shape;
use super::{ReconcileError, Writes};
use crate::gateway_api::HTTPRoute;
use crate::generate::{MANAGED_BY, MODEL_LABEL, Routes};
use crate::istio::{AuthorizationPolicy, DestinationRule, VirtualService};
use crate::seldon::SeldonDeployment;

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
        objects.routes.drop_routes_on_header(&header);
        writes.waiting = true;
    }
    // The routes of this routing API, then the other's (after a change of `routing`): a
    // model is never left without routes, nor kept routed where the filter has left.
    // The other API's routes are not watched: only an earlier process with the other
    // setting can have left them, so they are looked for once per model and process (in
    // the namespace's list of managed ones, `unwatched`, not with a read per model).
    let sweep = !lock(&ctx.swept).contains(&model.id);
    match &objects.routes {
        Routes::VirtualService(vs) => {
            apply_if_changed(ctx, vs, &mut writes).await?;
            if sweep {
                remove_managed::<HTTPRoute>(ctx, &model.namespace, &model.seldon_id, &mut writes)
                    .await?;
            }
        }
        Routes::HttpRoute(route) => {
            apply_if_changed(ctx, route, &mut writes).await?;
            if sweep {
                remove_managed::<VirtualService>(
                    ctx,
                    &model.namespace,
                    &model.seldon_id,
                    &mut writes,
                )
                .await?;
            }
        }
    }
    let mut wanted = BTreeSet::new();
    for rule in &objects.destination_rules {
        apply_if_changed(ctx, rule, &mut writes).await?;
        wanted.insert(rule.name_any());
    }
    // DestinationRules of predictors that are gone.
    let live = match ctx
        .live
        .destination_rules
        .of_model(&model.namespace, &model.seldon_id)
    {
        Some(live) => live
            .into_iter()
            .filter(|(_, digest)| digest.has_label(MANAGED_BY.0, MANAGED_BY.1))
            .map(|(name, _)| name)
            .collect(),
        None => {
            let rules: Api<DestinationRule> = Api::namespaced(ctx.client.clone(), &model.namespace);
            let selector = format!(
                "{}={},{}={}",
                MANAGED_BY.0, MANAGED_BY.1, MODEL_LABEL, model.seldon_id
            );
            call(ctx, rules.list(&ListParams::default().labels(&selector)))
                .await
                .map_err(|e| error::<DestinationRule>("list", &model.namespace, "*", e))?
                .into_iter()
                .map(|rule| rule.name_any())
                .collect::<Vec<_>>()
        }
    };
    for name in live {
        if !wanted.contains(&name) {
            delete::<DestinationRule>(ctx, &model.namespace, &name, &mut writes).await?;
        }
    }
    match &objects.authorization_policy {
        Some(policy) => apply_if_changed(ctx, policy, &mut writes).await?,
        // With policies off they are not watched: looked for once, like the routes.
        None if sweep => {
            remove_managed::<AuthorizationPolicy>(
                ctx,
                &model.namespace,
                &model.seldon_id,
                &mut writes,
            )
            .await?;
        }
        None => {}
    }
    lock(&ctx.swept).insert(model.id.clone());
    if let Some(good) = model.known_good {
        // An equal entry stays: the shared pass's entries share their key sets and
        // policies across every model (one generation), where this one has its own copy.
        let mut last_good = lock(&ctx.last_good);
        if last_good.get(&model.id) != Some(&good) {
            last_good.insert(model.id.clone(), good);
        }
    }
    lock(&ctx.failures).remove(&model.id);
    Ok(writes)
}

/// Deletes the object `K` `<namespace>/<name>` when it exists and the controller made it:
/// known from the watch's cache, or for a kind not watched from the namespace's list of
/// managed ones ([`super::live::Unwatched`]), else read.
pub(super) async fn remove_managed<K: Owned>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    writes: &mut Writes,
) -> Result<(), ReconcileError> {
    let known = ctx
        .live
        .of::<K>()
        .map_or(Known::Unknown, |l| l.get(namespace, name));
    let listed = if known == Known::Unknown && !LiveObjects::watched::<K>(&ctx.settings) {
        ctx.live.unwatched.managed::<K>(ctx, namespace, name).await
    } else {
        None
    };
    let managed = match (known, listed) {
        (_, Some(managed)) => managed,
        (Known::Absent, None) => false,
        (Known::Present(digest), None) => digest.has_label(MANAGED_BY.0, MANAGED_BY.1),
        (Known::Unknown, None) => {
            let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
            call(ctx, api.get_opt(name))
                .await
                .map_err(|e| error::<K>("get", namespace, name, e))?
                .is_some_and(|object| is_managed(&object))
        }
    };
    if managed {
        delete::<K>(ctx, namespace, name, writes).await
    } else {
        Ok(())
    }
}

/// Whether a route matches on the header `header` (the A/B header's per-predictor routes).
pub(super) fn routes_on_header(route: &crate::istio::HttpRoute, header: &str) -> bool {
    route.r#match.iter().any(|m| m.headers.contains_key(header))
}
