//! The TrafficExtension `modelgate` in the ingress gateway's namespace (Istio 1.30 and
//! later): what the WasmPlugin carries ([`super::extension`]), the Wasm settings under
//! `wasm`, attached to the gateway's pods by `selector`, or to Gateway API Gateways by
//! `targetRefs` (never both: the CRD refuses it).

use modelgate_core::config::FilterConfig;

use super::extension::{Carried, EXTENSION_NAME, WasmSource};
use crate::istio::{TrafficExtension, TrafficExtensionSpec, TrafficExtensionWasm};
use crate::settings::Settings;

/// The TrafficExtension carrying a filter configuration, attached to the Gateways
/// `targets` with `routing: gateway-api` (see [`super::render_extension`]).
pub fn render_traffic_extension(
    config: &FilterConfig,
    settings: &Settings,
    wasm: &WasmSource,
    targets: &[String],
) -> TrafficExtension {
    traffic_extension_carrying(Carried::new(config, settings, wasm, targets), settings)
}

/// The TrafficExtension carrying `carried`.
pub(super) fn traffic_extension_carrying(
    carried: Carried,
    settings: &Settings,
) -> TrafficExtension {
    TrafficExtension {
        metadata: super::managed_metadata(&settings.gateway_namespace, EXTENSION_NAME),
        spec: TrafficExtensionSpec {
            selector: carried.selector,
            target_refs: carried.target_refs,
            phase: carried.phase.into(),
            wasm: TrafficExtensionWasm {
                url: carried.wasm.url,
                sha256: carried.wasm.sha256,
                plugin_name: carried.plugin_name.into(),
                plugin_config: carried.plugin_config,
                fail_strategy: carried.fail_strategy.into(),
            },
        },
    }
}
