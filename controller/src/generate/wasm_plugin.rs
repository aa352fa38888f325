//! The WasmPlugin `modelgate` in the ingress gateway's namespace: the filter, where to get
//! it, and the configuration of every model (what it carries: [`super::extension`]).

use modelgate_core::config::FilterConfig;

use super::extension::{Carried, EXTENSION_NAME, WasmSource};
use crate::istio::{WasmPlugin, WasmPluginSpec};
use crate::settings::Settings;

/// The WasmPlugin carrying a filter configuration.
pub fn render_wasm_plugin(
    config: &FilterConfig,
    settings: &Settings,
    wasm: &WasmSource,
) -> WasmPlugin {
    let carried = Carried::new(config, settings, wasm);
    WasmPlugin {
        metadata: super::managed_metadata(&settings.gateway_namespace, EXTENSION_NAME),
        spec: WasmPluginSpec {
            selector: carried.selector,
            url: carried.wasm.url,
            sha256: carried.wasm.sha256,
            phase: carried.phase.into(),
            fail_strategy: carried.fail_strategy.into(),
            plugin_name: carried.plugin_name.into(),
            plugin_config: carried.plugin_config,
        },
    }
}
