//! The Gateways models name: managed ones created when missing and deleted when no model
//! needs them, others only read and checked to be on pods the filter guards. Each is
//! retried with its own backoff, blocking no other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::ReconcileError;
use super::SharedOutcome;
use super::apply::{apply, call, delete, differs, error, is_managed};
use super::context::{Context, lock};
use crate::annotations::GatewayRef;
use crate::generate::{Generated, MANAGED_BY};
use crate::istio::Gateway;
use crate::settings::RoutingApi;

/// What the shared objects' pass found out about a Gateway models name.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum GatewayState {
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
        // Gateway API Gateways are the platform's, never created here; the extension is
        // attached to each one models name (`targetRefs`), up to its bound.
        let targets = crate::generate::extension_targets(&generated.models, &ctx.settings);
        for gateway in named {
            let guarded = matches!(&gateway, GatewayRef::Named { namespace, name }
                if *namespace == ctx.settings.gateway_namespace && targets.contains(name));
            let state = if guarded {
                GatewayState::Guarded
            } else {
                GatewayState::Unguarded(BTreeMap::new())
            };
            states.insert(gateway, state);
        }
        BTreeSet::new()
    } else {
        named
    };
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
