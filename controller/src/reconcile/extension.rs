//! The extension object (WasmPlugin or TrafficExtension) in the gateway's namespace: the
//! one of the kind in use is applied, and then, only then, the other kind's is deleted
//! when modelgate made it. After a change of kind the gateway briefly has both (both
//! carry the same configuration and fail closed), never neither.

use kube::api::Api;

use super::apply::{apply_if_changed, call, delete, error, is_managed};
use super::context::Context;
use super::{ReconcileError, Writes};
use crate::generate::{EXTENSION_NAME, Extension};
use crate::istio::{TrafficExtension, WasmPlugin};
use crate::settings::ExtensionKind;

/// Applies the extension object when the live one differs.
pub(super) async fn apply_extension(
    ctx: &Context,
    extension: &Extension,
    writes: &mut Writes,
) -> Result<(), ReconcileError> {
    match extension {
        Extension::WasmPlugin(plugin) => apply_if_changed(ctx, plugin, writes).await,
        Extension::TrafficExtension(traffic) => apply_if_changed(ctx, traffic, writes).await,
    }
}

/// Deletes the managed extension object of the kind not in use, if there is one (left by
/// this controller before its kind changed). A kind the API server does not serve has
/// none.
pub(super) async fn remove_other_kind(
    ctx: &Context,
    in_use: ExtensionKind,
    writes: &mut Writes,
) -> Result<(), ReconcileError> {
    let namespace = ctx.settings.gateway_namespace.as_str();
    match in_use {
        ExtensionKind::TrafficExtension => {
            let api: Api<WasmPlugin> = Api::namespaced(ctx.client.clone(), namespace);
            let live = call(ctx, api.get_opt(EXTENSION_NAME))
                .await
                .map_err(|e| error::<WasmPlugin>("get", namespace, EXTENSION_NAME, e))?;
            if live.as_ref().is_some_and(is_managed) {
                delete::<WasmPlugin>(ctx, namespace, EXTENSION_NAME, writes).await?;
            }
        }
        ExtensionKind::WasmPlugin | ExtensionKind::Auto => {
            let api: Api<TrafficExtension> = Api::namespaced(ctx.client.clone(), namespace);
            let live = call(ctx, api.get_opt(EXTENSION_NAME))
                .await
                .map_err(|e| error::<TrafficExtension>("get", namespace, EXTENSION_NAME, e))?;
            if live.as_ref().is_some_and(is_managed) {
                delete::<TrafficExtension>(ctx, namespace, EXTENSION_NAME, writes).await?;
            }
        }
    }
    Ok(())
}
