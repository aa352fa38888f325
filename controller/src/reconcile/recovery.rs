//! Restart recovery: a new leader knows no fetched keys and no last good configurations
//! yet, so until it learns them it takes them from the live extension object, WasmPlugin or
//! TrafficExtension (and a broken
//! model's gateway from its live VirtualService).

use std::collections::BTreeSet;

use kube::api::Api;
use modelgate_core::config::{FilterConfig, Policy};

use super::ReconcileError;
use super::apply::{call, error, is_managed};
use super::context::{Context, lock};
use crate::annotations::PolicySpec;
use crate::annotations::{self, KeySource};
use crate::gateway_api::HTTPRoute;
use crate::generate::filter_config::ModelEntry;
use crate::generate::{self, EXTENSION_NAME, Generated, KnownGood};
use crate::istio::{TrafficExtension, VirtualService, WasmPlugin};
use crate::settings::{ExtensionKind, RoutingApi};

/// A new leader's JWKS cache is empty until its first fetches, and the issuer may be down
/// then: generating without keys would replace the keys the filter is using with empty
/// sets and deny every JWT model. So each URI not fetched yet takes the keys the live
/// WasmPlugin has from that very URI (a key set records its `source`) until a fetch
/// replaces them. Keys given inline, or of a set that does not say where it came from
/// (written by an older controller), are never taken: a model naming a URI must not
/// inherit keys another model brought along. Returns whether any were taken.
pub(super) async fn keep_live_keys(
    ctx: &Context,
    generated: &Generated,
) -> Result<bool, ReconcileError> {
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

/// A follower generates nothing, so it tracks no JWKS URI; yet the gateway's key channel
/// reaches any replica. So a follower learns the URIs, and their keys, from the live
/// WasmPlugin: those the leader's key sets name as their source. Returns how many URIs it
/// now tracks.
pub async fn follow_live_key_sets(ctx: &Context) -> Result<usize, ReconcileError> {
    let Some(live) = live_filter_config(ctx).await? else {
        ctx.jwks.track(&BTreeSet::new());
        return Ok(0);
    };
    let fetched: Vec<(&String, &modelgate_core::config::KeySet)> = live
        .key_sets
        .values()
        .filter_map(|set| {
            let uri = set.source.as_ref()?;
            (uri.starts_with("https://") || uri.starts_with("http://")).then_some((uri, set))
        })
        .collect();
    let uris: BTreeSet<String> = fetched.iter().map(|(uri, _)| (*uri).clone()).collect();
    ctx.jwks.track(&uris);
    for (uri, set) in fetched {
        if !set.keys.is_empty() {
            ctx.jwks.keep(uri, set.clone());
        }
    }
    Ok(uris.len())
}

/// A restarted controller knows no last good configurations, so a model whose annotations
/// broke before the restart would lose its own: its entry would become `deny` and its
/// Gateway, when no other model names it, would be deleted under its VirtualService. Such
/// a model takes its last good configuration from the cluster instead: its entry in the
/// live WasmPlugin (with the keys the filter has, inline) and the gateway of its live
/// VirtualService. Returns whether any was found.
pub(super) async fn recover_last_good(
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
            let gateway = match ctx.settings.routing {
                RoutingApi::Istio => {
                    let api: Api<VirtualService> =
                        Api::namespaced(ctx.client.clone(), &model.namespace);
                    call(ctx, api.get_opt(&model.seldon_id))
                        .await
                        .map_err(|e| {
                            error::<VirtualService>("get", &model.namespace, &model.seldon_id, e)
                        })?
                        .filter(is_managed)
                        .and_then(|vs| vs.spec.gateways.first().cloned())
                }
                RoutingApi::GatewayApi => {
                    let api: Api<HTTPRoute> = Api::namespaced(ctx.client.clone(), &model.namespace);
                    call(ctx, api.get_opt(&model.seldon_id))
                        .await
                        .map_err(|e| {
                            error::<HTTPRoute>("get", &model.namespace, &model.seldon_id, e)
                        })?
                        .filter(is_managed)
                        .and_then(|route| route.spec.parent_refs.first().cloned())
                        .map(|p| format!("{}/{}", p.namespace, p.name))
                }
            }
            .and_then(|g| annotations::parse_gateway(&g, &model.namespace).ok());
            if let Some(gateway) = gateway {
                lock(&ctx.last_good)
                    .entry(model.id.clone())
                    .or_insert(KnownGood { entry, gateway });
                ctx.recovered
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                found = true;
            }
        }
        lock(&ctx.looked_up).insert(model.id.clone());
    }
    Ok(found)
}

/// A model's usable entry in a filter configuration (a `deny` is none), its keys inline.
pub(super) fn live_entry(config: &FilterConfig, id: &str) -> Option<ModelEntry> {
    let model = config.models.get(id)?;
    let policy = match config.policies.get(&model.policy)? {
        Policy::None => PolicySpec::None,
        Policy::Deny { .. } => return None,
        Policy::Jwt(jwt) => {
            let keys = config.key_sets.get(&jwt.key_set)?.clone();
            PolicySpec::Jwt(jwt.clone().into(), KeySource::Inline(keys.into()))
        }
    };
    Some(ModelEntry {
        policy,
        routing: model.routing.clone(),
    })
}

/// The filter configuration of the live extension object, if there is one that parses:
/// the one of the kind in use, or, until it exists (just after the kind changed), the
/// other kind's.
pub(super) async fn live_filter_config(
    ctx: &Context,
) -> Result<Option<FilterConfig>, ReconcileError> {
    let (first, second) = match ctx.settings.extension_kind.without_discovery() {
        ExtensionKind::TrafficExtension => {
            (ExtensionKind::TrafficExtension, ExtensionKind::WasmPlugin)
        }
        _ => (ExtensionKind::WasmPlugin, ExtensionKind::TrafficExtension),
    };
    for kind in [first, second] {
        if let Some(config) = live_plugin_config(ctx, kind).await? {
            // A reference is read from the document: kept in memory, or stored in the
            // cluster by whichever process published it (after a restart, or a change of
            // leader). One that is nowhere reads as holding nothing.
            if let Some(sha256) = crate::generate::by_reference::referenced_sha256(&config) {
                return Ok(ctx
                    .documents
                    .get(&sha256)
                    .await
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok()));
            }
            return Ok(serde_json::from_value(config).ok());
        }
    }
    Ok(None)
}

/// The `pluginConfig` of the live extension object of one kind, if it exists. A kind
/// the API server does not serve reads as absent (404).
async fn live_plugin_config(
    ctx: &Context,
    kind: ExtensionKind,
) -> Result<Option<serde_json::Value>, ReconcileError> {
    let namespace = &ctx.settings.gateway_namespace;
    Ok(match kind {
        ExtensionKind::TrafficExtension => {
            let api: Api<TrafficExtension> = Api::namespaced(ctx.client.clone(), namespace);
            call(ctx, api.get_opt(EXTENSION_NAME))
                .await
                .map_err(|e| error::<TrafficExtension>("get", namespace, EXTENSION_NAME, e))?
                .map(|t| t.spec.wasm.plugin_config)
        }
        ExtensionKind::WasmPlugin | ExtensionKind::Auto => {
            let api: Api<WasmPlugin> = Api::namespaced(ctx.client.clone(), namespace);
            call(ctx, api.get_opt(EXTENSION_NAME))
                .await
                .map_err(|e| error::<WasmPlugin>("get", namespace, EXTENSION_NAME, e))?
                .map(|p| p.spec.plugin_config)
        }
    })
}
