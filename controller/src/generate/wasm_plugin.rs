//! The WasmPlugin `modelgate` in the ingress gateway's namespace: the filter, where to get
//! it, and the configuration of every model.

use modelgate_core::config::FilterConfig;

use crate::istio::{WasmPlugin, WasmPluginSpec, WorkloadSelector};
use crate::settings::Settings;

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

/// The WasmPlugin carrying a filter configuration.
pub fn render_wasm_plugin(
    config: &FilterConfig,
    settings: &Settings,
    wasm: &WasmSource,
) -> WasmPlugin {
    WasmPlugin {
        metadata: super::managed_metadata(&settings.gateway_namespace, super::WASM_PLUGIN_NAME),
        spec: WasmPluginSpec {
            selector: WorkloadSelector {
                match_labels: settings.gateway_selector.clone(),
            },
            url: wasm.url.clone(),
            sha256: wasm.sha256.clone(),
            phase: "AUTHN".into(),
            fail_strategy: "FAIL_CLOSE".into(),
            plugin_name: super::FILTER_ROOT_ID.into(),
            plugin_config: plugin_config(config, settings),
        },
    }
}

/// The filter configuration as the WasmPlugin carries it: with the key channel when
/// `keyChannel` is on (added here rather than cloning a configuration of every model).
fn plugin_config(config: &FilterConfig, settings: &Settings) -> serde_json::Value {
    let mut value = serde_json::to_value(config).expect(
        "serialising a FilterConfig is infallible: derived Serialize, string map keys only",
    );
    if let (Some(channel), Some(object)) = (settings.key_channel(), value.as_object_mut()) {
        object.insert(
            "channel".into(),
            serde_json::to_value(channel).expect("a KeyChannel serialises: strings and numbers"),
        );
    }
    value
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
        render_wasm_plugin(&FilterConfig::new(), &settings, &wasm)
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
