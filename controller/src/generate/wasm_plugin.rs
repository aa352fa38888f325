//! The WasmPlugin `modelgate` in the ingress gateway's namespace: the filter, where to get
//! it, and the configuration of every model (what it carries: [`super::extension`]).

use modelgate_core::config::FilterConfig;

use super::extension::{Carried, EXTENSION_NAME, WasmSource};
use crate::istio::{WasmPlugin, WasmPluginSpec};
use crate::settings::Settings;

/// The WasmPlugin carrying a filter configuration, attached to the Gateways `targets`
/// with `routing: gateway-api` (see [`super::render_extension`]).
pub fn render_wasm_plugin(
    config: &FilterConfig,
    settings: &Settings,
    wasm: &WasmSource,
    targets: &[String],
) -> WasmPlugin {
    wasm_plugin_carrying(Carried::new(config, settings, wasm, targets), settings)
}

/// The WasmPlugin carrying `carried`.
pub(super) fn wasm_plugin_carrying(carried: Carried, settings: &Settings) -> WasmPlugin {
    WasmPlugin {
        metadata: super::managed_metadata(&settings.gateway_namespace, EXTENSION_NAME),
        spec: WasmPluginSpec {
            selector: carried.selector,
            target_refs: carried.target_refs,
            url: carried.wasm.url,
            sha256: carried.wasm.sha256,
            phase: carried.phase.into(),
            fail_strategy: carried.fail_strategy.into(),
            plugin_name: carried.plugin_name.into(),
            plugin_config: carried.plugin_config,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_core::CompiledConfig;

    fn plugin(key_channel: bool) -> WasmPlugin {
        let settings = Settings {
            key_channel,
            ..Settings::default()
        };
        let wasm = WasmSource::from_settings(&settings, &"0".repeat(64));
        render_wasm_plugin(&FilterConfig::new(), &settings, &wasm, &[])
    }

    #[test]
    fn the_channel_is_written_only_when_the_key_channel_is_on() {
        assert!(plugin(false).spec.plugin_config.get("channel").is_none());
        let config = plugin(true).spec.plugin_config;
        assert_eq!(
            config["channel"]["cluster"],
            "outbound|8080||modelgate.modelgate-system.svc.cluster.local"
        );
        // The filter's own compiler takes it as is.
        let (compiled, warnings) =
            CompiledConfig::from_json(config.to_string().as_bytes()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let channel = compiled.channel.unwrap();
        assert_eq!(
            (
                channel.keys_path.as_str(),
                channel.timeout_ms,
                channel.refetch_secs
            ),
            ("/keys", 2000, 30)
        );
    }
}
