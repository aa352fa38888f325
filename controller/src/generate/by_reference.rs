//! Configuration by reference (setting `configByReference`): a `pluginConfig` too large
//! for the extension object (or any, with `always`) is replaced by a reference to the
//! document, which the controller serves at `/config/<sha256>` ([`crate::wasm_server`]) and
//! the filter fetches over the channel. Pure: the document goes back to the caller, which
//! publishes it before applying the object that names it.

use std::sync::Arc;

use modelgate_core::by_reference::sha256_hex;
use modelgate_core::config::{
    CONFIG_VERSION, ConfigReference, FilterConfig, KeyChannel, ReferenceDocument,
};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// Where the controller's server answers referenced documents: `/config/<sha256>`.
pub const CONFIG_PATH_PREFIX: &str = "/config/";

/// When `pluginConfig` is a reference (setting `configByReference`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigByReference {
    /// Always inline, within `pluginConfigMaxBytes` (as before).
    #[default]
    Never,
    /// A reference when the document is over `configByReferenceBytes`.
    Auto,
    /// Always a reference.
    Always,
}

impl std::str::FromStr for ConfigByReference {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never" => Ok(Self::Never),
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            other => Err(format!("{other:?}: expected never, auto or always")),
        }
    }
}

/// A referenced configuration: the exact bytes the filter must hash to `sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDocument {
    /// SHA-256 of `bytes`, lowercase hex.
    pub sha256: String,
    /// The `pluginConfig` document.
    pub bytes: Arc<[u8]>,
}

/// The filter configuration as the extension carries it: with the key channel when
/// `keyChannel` is on and the configuration has none, added while writing rather than
/// into a copy of every model's entry.
#[derive(Serialize)]
struct WithChannel<'a> {
    #[serde(flatten)]
    config: &'a FilterConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<KeyChannel>,
}

const INFALLIBLE: &str =
    "serialising a FilterConfig is infallible: derived Serialize, string map keys only";

impl<'a> WithChannel<'a> {
    fn new(config: &'a FilterConfig, settings: &Settings) -> Self {
        Self {
            config,
            channel: settings.key_channel().filter(|_| config.channel.is_none()),
        }
    }

    fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect(INFALLIBLE)
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect(INFALLIBLE)
    }
}

/// The `pluginConfig` to carry for the full configuration `config`: the configuration
/// itself, or, when the settings say so, a reference to it with the document to serve. A
/// document is written straight from `config` to its bytes: at 100,000 models a JSON tree
/// of it would take ten times the memory of those bytes.
pub fn carry(
    config: &FilterConfig,
    settings: &Settings,
) -> (serde_json::Value, Option<ConfigDocument>) {
    let carried = WithChannel::new(config, settings);
    let Some(channel) = settings.channel() else {
        return (carried.to_value(), None);
    };
    let bytes = match settings.config_by_reference {
        ConfigByReference::Never => return (carried.to_value(), None),
        ConfigByReference::Always => carried.to_bytes(),
        ConfigByReference::Auto => {
            let bytes = carried.to_bytes();
            if bytes.len() <= settings.config_by_reference_bytes {
                return (carried.to_value(), None);
            }
            bytes
        }
    };
    let sha256 = sha256_hex(&bytes);
    let reference = ReferenceDocument {
        version: CONFIG_VERSION,
        channel,
        reference: ConfigReference {
            path: format!("{CONFIG_PATH_PREFIX}{sha256}"),
            sha256: sha256.clone(),
            version: format!("{} models, {} bytes", config.models.len(), bytes.len()),
        },
    };
    let reference = serde_json::to_value(&reference)
        .expect("a ReferenceDocument serialises: strings and numbers");
    (
        reference,
        Some(ConfigDocument {
            sha256,
            bytes: bytes.into(),
        }),
    )
}

/// The referenced document named by a live `pluginConfig`, if it is a reference.
pub fn referenced_sha256(plugin_config: &serde_json::Value) -> Option<String> {
    // Read in place: an inline configuration fails at its first field a reference lacks.
    ReferenceDocument::deserialize(plugin_config)
        .ok()
        .map(|r| r.reference.sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_core::CompiledConfig;
    use serde_json::json;

    fn settings(mode: ConfigByReference, threshold: usize) -> Settings {
        Settings {
            config_by_reference: mode,
            config_by_reference_bytes: threshold,
            ..Settings::default()
        }
    }

    fn config_of(models: usize) -> FilterConfig {
        let models: serde_json::Map<_, _> = (0..models)
            .map(|i| (format!("team/m{i}"), json!({"policy": "open"})))
            .collect();
        serde_json::from_value(
            json!({"version": 1, "policies": {"open": {"auth": "none"}}, "models": models}),
        )
        .unwrap()
    }

    #[test]
    fn never_and_small_documents_stay_inline() {
        let config = config_of(3);
        let value = serde_json::to_value(&config).unwrap();
        for s in [
            settings(ConfigByReference::Never, 0),
            settings(ConfigByReference::Auto, 1 << 20),
        ] {
            let (carried, document) = carry(&config, &s);
            assert_eq!(carried, value);
            assert!(document.is_none());
        }
    }

    #[test]
    fn a_reference_names_the_exact_bytes_and_nothing_of_any_model() {
        let config = config_of(500);
        let value = serde_json::to_value(&config).unwrap();
        let (carried, document) = carry(&config, &settings(ConfigByReference::Auto, 1024));
        let document = document.expect("over the threshold: by reference");
        let read_back: FilterConfig = serde_json::from_slice(&document.bytes).unwrap();
        assert_eq!(read_back, config);
        let text = serde_json::to_string(&carried).unwrap();
        assert!(!text.contains("team/m"), "{text}");
        assert!(text.len() < 1024, "{} bytes", text.len());
        let reference: ReferenceDocument = serde_json::from_value(carried.clone()).unwrap();
        assert_eq!(reference.reference.sha256, sha256_hex(&document.bytes));
        assert_eq!(
            reference.reference.path,
            format!("/config/{}", document.sha256)
        );
        assert_eq!(
            reference.channel.cluster,
            "outbound|8080||modelgate.modelgate-system.svc.cluster.local"
        );
        assert_eq!(referenced_sha256(&carried), Some(document.sha256.clone()));
        assert_eq!(referenced_sha256(&value), None);
        // The filter reads both halves: the reference, then the document it names.
        let read = modelgate_core::by_reference::read_reference(text.as_bytes())
            .unwrap()
            .unwrap();
        modelgate_core::by_reference::verify(&document.bytes, &read.reference).unwrap();
        let (compiled, warnings) = CompiledConfig::from_json(&document.bytes).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(compiled.models.len(), 500);
    }

    #[test]
    fn always_refers_even_to_a_small_document() {
        let (carried, document) = carry(&config_of(1), &settings(ConfigByReference::Always, 0));
        assert!(document.is_some());
        assert!(referenced_sha256(&carried).is_some());
    }

    #[test]
    fn the_key_channel_goes_with_the_configuration_inline_and_by_reference() {
        for mode in [ConfigByReference::Never, ConfigByReference::Always] {
            let s = Settings {
                key_channel: true,
                ..settings(mode, 0)
            };
            let (carried, document) = carry(&config_of(2), &s);
            let config: FilterConfig = match &document {
                Some(document) => serde_json::from_slice(&document.bytes).unwrap(),
                None => serde_json::from_value(carried).unwrap(),
            };
            assert!(s.key_channel().is_some());
            assert_eq!(config.channel, s.key_channel(), "{mode:?}");
            assert_eq!(config.models.len(), 2);
        }
    }
}
