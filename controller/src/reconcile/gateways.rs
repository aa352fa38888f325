//! The Gateways models name (Istio's, or Gateway API's with `routing: gateway-api`): managed
//! ones created when missing and deleted when no model needs them, others only read and
//! checked to be where the filter guards. Each is retried with its own backoff, blocking
//! no other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::ReconcileError;
use super::SharedOutcome;
use super::apply::{apply, call, delete, differs, error, is_managed};
use super::context::{Context, lock};
use crate::annotations::GatewayRef;
use crate::gateway_api;
use crate::generate::gateway_api_gateway::{claimed_gateway_api_gateways, default_name};
use crate::generate::{Generated, MANAGED_BY};
use crate::istio::Gateway;
use crate::settings::{RoutingApi, Settings};

/// What the shared objects' pass found out about a Gateway models name.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum GatewayState {
    /// There, and on pods the extension reaches (its selector, or its `targetRefs`).
    Guarded,
    /// Not there, and the controller may not create it for the models naming it.
    Missing,
    /// There, but its selector may pick pods the extension does not select (or, with
    /// Gateway API, not among the extension's `targetRefs`).
    Unguarded(BTreeMap<String, String>),
    /// Could not be read or written (yet): why.
    Failed(String),
}

/// Creates the managed Gateways models need (each on its own: one that fails waits for its
/// own retry and blocks no other), checks the other Gateways models name, and deletes
/// managed Gateways no model needs any more.
pub(super) async fn reconcile_gateways(
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
    let named = if ctx.settings.routing == RoutingApi::GatewayApi {
        states = reconcile_gateway_api_gateways(ctx, generated, named, outcome).await;
        BTreeSet::new()
    } else {
        // Switched back to istio: the managed Gateway API Gateways go.
        if let Some(live) = list_managed_gateway_api_gateways(ctx, outcome).await {
            delete_gateway_api_gateways(ctx, live.into_iter(), outcome).await;
        }
        named
    };
    for gateway in named {
        let GatewayRef::Named { namespace, name } = &gateway else {
            continue;
        };
        let key = format!("Gateway {namespace}/{name}");
        let state = match held(ctx, &key) {
            Some(why) => {
                outcome.held = true;
                GatewayState::Failed(why)
            }
            None => {
                let desired = creatable.get(&gateway).copied();
                let result = check_gateway(ctx, namespace, name, desired, outcome).await;
                settle(ctx, key, result, outcome)
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

/// Why a Gateway waits for its retry, if it does.
fn held(ctx: &Context, key: &str) -> Option<String> {
    lock(&ctx.retry_at)
        .get(key)
        .filter(|(at, _)| Instant::now() < *at)
        .map(|(_, why)| why.clone())
}

/// A Gateway's state from its check: a failure waits for its own retry, with backoff.
fn settle(
    ctx: &Context,
    key: String,
    result: Result<GatewayState, ReconcileError>,
    outcome: &mut SharedOutcome,
) -> GatewayState {
    match result {
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
    }
}

/// With `routing: gateway-api`: the Gateways models name, each read on its own; the managed
/// ones created when missing (a Gateway someone else made is never modified), and those no
/// model needs any more deleted. The extension reaches a Gateway by name (`targetRefs`):
/// one it is not attached to is unguarded.
async fn reconcile_gateway_api_gateways(
    ctx: &Context,
    generated: &Generated,
    named: BTreeSet<GatewayRef>,
    outcome: &mut SharedOutcome,
) -> BTreeMap<GatewayRef, GatewayState> {
    let targets = crate::generate::extension_targets(&generated.models, &ctx.settings);
    let live = list_managed_gateway_api_gateways(ctx, outcome).await;
    let claimed = claimed_gateway_api_gateways(&generated.models, &ctx.settings);
    let wanted = wanted_gateway_api_gateways(
        generated,
        &claimed,
        live.as_ref().unwrap_or(&BTreeSet::new()),
        &ctx.settings,
    );
    let mut states = BTreeMap::new();
    for gateway in named {
        let name = match &gateway {
            GatewayRef::Named { namespace, name }
                if *namespace == ctx.settings.gateway_namespace && targets.contains(name) =>
            {
                name.clone()
            }
            _ => {
                states.insert(gateway, GatewayState::Unguarded(BTreeMap::new()));
                continue;
            }
        };
        let key = format!("Gateway API Gateway {gateway}");
        let state = match held(ctx, &key) {
            Some(why) => {
                outcome.held = true;
                GatewayState::Failed(why)
            }
            None => {
                let desired = wanted.get(&name).copied();
                let result = check_gateway_api_gateway(ctx, &name, desired, outcome).await;
                settle(ctx, key, result, outcome)
            }
        };
        states.insert(gateway, state);
    }
    if let Some(live) = live {
        let unused = live.into_iter().filter(|name| !wanted.contains_key(name));
        delete_gateway_api_gateways(ctx, unused, outcome).await;
    }
    states
}

/// The managed Gateway API Gateways to keep or create. One the controller created keeps its
/// place while models name it, so a model that comes to name another Gateway, however old,
/// never takes a Gateway away from the models on it; the Gateways generation orders (the
/// default, then by their oldest model) fill what the bound leaves. With a lowered bound,
/// the managed ones generation still orders within it are kept first.
fn wanted_gateway_api_gateways<'a>(
    generated: &'a Generated,
    claimed: &'a BTreeMap<String, gateway_api::Gateway>,
    live: &BTreeSet<String>,
    settings: &Settings,
) -> BTreeMap<String, &'a gateway_api::Gateway> {
    let default = default_name(settings);
    let ordered: Vec<&str> = generated
        .gateway_api_gateways
        .iter()
        .map(|g| g.metadata.name.as_deref().unwrap_or_default())
        .collect();
    let kept_live = ordered
        .iter()
        .copied()
        .filter(|name| live.contains(*name))
        .chain(
            claimed
                .keys()
                .map(String::as_str)
                .filter(|name| live.contains(*name) && !ordered.contains(name)),
        );
    let new = ordered.iter().copied().filter(|name| !live.contains(*name));
    let mut wanted = BTreeMap::new();
    let mut others = 0;
    for name in kept_live.chain(new) {
        let Some(gateway) = claimed.get(name) else {
            continue;
        };
        if Some(name) != default.as_deref() {
            if others == settings.gateway_api.max_created_gateways {
                continue;
            }
            others += 1;
        }
        wanted.insert(name.to_string(), gateway);
    }
    wanted
}

/// One Gateway API Gateway in `gatewayNamespace`: created, or kept as generated when
/// managed, when it is wanted; otherwise only read.
async fn check_gateway_api_gateway(
    ctx: &Context,
    name: &str,
    desired: Option<&gateway_api::Gateway>,
    outcome: &mut SharedOutcome,
) -> Result<GatewayState, ReconcileError> {
    let namespace = &ctx.settings.gateway_namespace;
    let api: Api<gateway_api::Gateway> = Api::namespaced(ctx.client.clone(), namespace);
    let live = call(ctx, api.get_opt(name))
        .await
        .map_err(|e| error::<gateway_api::Gateway>("get", namespace, name, e))?;
    match (live, desired) {
        (Some(live), Some(desired)) if is_managed(&live) => {
            if differs(desired, &live) {
                apply::<gateway_api::Gateway>(ctx, desired, &mut outcome.writes).await?;
            }
        }
        (None, Some(desired)) => {
            apply::<gateway_api::Gateway>(ctx, desired, &mut outcome.writes).await?;
        }
        (None, None) => return Ok(GatewayState::Missing),
        // Not ours: never modified. The extension is attached to it by name.
        (Some(_), _) => {}
    }
    Ok(GatewayState::Guarded)
}

/// The names of the managed Gateway API Gateways in `gatewayNamespace`; none where Gateway
/// API is not installed, and `None` (nothing known, so nothing deleted) when the list fails.
async fn list_managed_gateway_api_gateways(
    ctx: &Context,
    outcome: &mut SharedOutcome,
) -> Option<BTreeSet<String>> {
    let namespace = &ctx.settings.gateway_namespace;
    let api: Api<gateway_api::Gateway> = Api::namespaced(ctx.client.clone(), namespace);
    let managed = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    match call(ctx, api.list(&managed)).await {
        Ok(listed) => Some(listed.into_iter().map(|g| g.name_any()).collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Some(BTreeSet::new()),
        Err(e) => {
            outcome
                .failed
                .push(error::<gateway_api::Gateway>("list", namespace, "*", e));
            None
        }
    }
}

/// Deletes managed Gateway API Gateways in `gatewayNamespace`, each on its own.
async fn delete_gateway_api_gateways(
    ctx: &Context,
    names: impl Iterator<Item = String>,
    outcome: &mut SharedOutcome,
) {
    let namespace = &ctx.settings.gateway_namespace;
    for name in names {
        if let Err(e) =
            delete::<gateway_api::Gateway>(ctx, namespace, &name, &mut outcome.writes).await
        {
            outcome.failed.push(e);
        }
    }
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
