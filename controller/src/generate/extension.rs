//! The object that carries the filter to the gateway, whichever its kind (setting
//! `extensionKind`): a WasmPlugin or a TrafficExtension. Both carry the same thing, built
//! here once: the served module and its `sha256`, the AUTHN phase, failing closed, the
//! filter's root id and the configuration of every model, on the gateway workload's pods
//! (`selector`), or, with `routing: gateway-api`, on the Gateway API Gateways the models
//! are routed on (`targetRefs`; never both, which both CRDs refuse).

use modelgate_core::config::FilterConfig;
use serde::Serialize;

use super::by_reference::{ConfigDocument, carry};
use super::traffic_extension::traffic_extension_carrying;
use super::wasm_plugin::wasm_plugin_carrying;
use crate::gateway_api::GROUP;
use crate::istio::{PolicyTargetReference, TrafficExtension, WasmPlugin, WorkloadSelector};
use crate::settings::{ExtensionKind, RoutingApi, Settings};

/// The name of the one extension object, whichever its kind.
pub const EXTENSION_NAME: &str = "modelgate";
/// The most Gateways the extension attaches to (both CRDs' bound on `targetRefs`).
pub const MAX_TARGET_REFS: usize = 16;

/// Where Istio fetches the filter module from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmSource {
    /// `http(s)://` or `oci://` URL.
    pub url: String,
    /// SHA-256 of the module (hex), when known.
    pub sha256: Option<String>,
}

impl WasmSource {
    /// The configured URL, or the controller's own server with the hash of the module it
    /// embeds (the hash is in the path, so a new module is a new URL for Istio's cache).
    pub fn from_settings(settings: &Settings, embedded_sha256: &str) -> Self {
        match &settings.wasm_url {
            Some(url) => Self {
                url: url.clone(),
                sha256: settings.wasm_sha256.clone(),
            },
            None => Self {
                url: format!(
                    "{}{}",
                    settings.service_url.trim_end_matches('/'),
                    served_path(embedded_sha256)
                ),
                sha256: Some(embedded_sha256.to_string()),
            },
        }
    }
}

/// The path the controller serves its module at.
pub fn served_path(sha256: &str) -> String {
    format!("/filter/modelgate-{sha256}.wasm")
}

/// What both kinds carry.
pub(super) struct Carried {
    /// The gateway workload's pods (Istio routing), else none.
    pub selector: Option<WorkloadSelector>,
    /// The Gateway API Gateways (Gateway API routing), else none.
    pub target_refs: Vec<PolicyTargetReference>,
    /// The module.
    pub wasm: WasmSource,
    /// `AUTHN`: before Istio's own authorization, like `jwt_authn`.
    pub phase: &'static str,
    /// `FAIL_CLOSE`: a module that cannot be loaded refuses every request it would guard.
    pub fail_strategy: &'static str,
    /// The filter's root id.
    pub plugin_name: &'static str,
    /// The filter configuration.
    pub plugin_config: serde_json::Value,
}

impl Carried {
    pub(super) fn new(
        config: &FilterConfig,
        settings: &Settings,
        wasm: &WasmSource,
        targets: &[String],
    ) -> Self {
        Self::carrying(carry(config, settings).0, settings, wasm, targets)
    }

    /// What both kinds carry, with this `pluginConfig` (inline, or a reference).
    fn carrying(
        plugin_config: serde_json::Value,
        settings: &Settings,
        wasm: &WasmSource,
        targets: &[String],
    ) -> Self {
        let gateway_api = settings.routing == RoutingApi::GatewayApi;
        Self {
            selector: (!gateway_api).then(|| WorkloadSelector {
                match_labels: settings.gateway_selector.clone(),
            }),
            target_refs: targets
                .iter()
                .filter(|_| gateway_api)
                .map(|name| PolicyTargetReference {
                    group: GROUP.into(),
                    kind: "Gateway".into(),
                    name: name.clone(),
                })
                .collect(),
            wasm: wasm.clone(),
            phase: "AUTHN",
            fail_strategy: "FAIL_CLOSE",
            plugin_name: super::FILTER_ROOT_ID,
            plugin_config,
        }
    }
}

/// The extension object: one per guarded gateway workload, in its namespace.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Extension {
    /// A WasmPlugin.
    WasmPlugin(WasmPlugin),
    /// A TrafficExtension.
    TrafficExtension(TrafficExtension),
}

impl Extension {
    /// Its kind.
    pub fn kind(&self) -> ExtensionKind {
        match self {
            Extension::WasmPlugin(_) => ExtensionKind::WasmPlugin,
            Extension::TrafficExtension(_) => ExtensionKind::TrafficExtension,
        }
    }

    /// The filter configuration it carries.
    pub fn plugin_config(&self) -> &serde_json::Value {
        match self {
            Extension::WasmPlugin(p) => &p.spec.plugin_config,
            Extension::TrafficExtension(t) => &t.spec.wasm.plugin_config,
        }
    }
}

/// The extension object of the settings' kind carrying a filter configuration, attached
/// to the Gateways `targets` (in `gatewayNamespace`; [`super::extension_targets`]) with
/// `routing: gateway-api`, to the gateway pods otherwise. Without discovery (`render`,
/// `check`, or `run` before it resolved `auto`), `auto` is a WasmPlugin.
pub fn render_extension(
    config: &FilterConfig,
    settings: &Settings,
    wasm: &WasmSource,
    targets: &[String],
) -> Extension {
    render_extension_with_document(config, settings, wasm, targets).0
}

/// [`render_extension`], with the document its `pluginConfig` refers to when it is a
/// reference (setting `configByReference`), which the controller must serve before the
/// object is applied.
pub fn render_extension_with_document(
    config: &FilterConfig,
    settings: &Settings,
    wasm: &WasmSource,
    targets: &[String],
) -> (Extension, Option<ConfigDocument>) {
    let (plugin_config, document) = carry(config, settings);
    let carried = Carried::carrying(plugin_config, settings, wasm, targets);
    let extension = match settings.extension_kind.without_discovery() {
        ExtensionKind::TrafficExtension => {
            Extension::TrafficExtension(traffic_extension_carrying(carried, settings))
        }
        ExtensionKind::WasmPlugin | ExtensionKind::Auto => {
            Extension::WasmPlugin(wasm_plugin_carrying(carried, settings))
        }
    };
    (extension, document)
}
