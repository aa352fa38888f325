//! Controller settings: what generation needs (defaults for annotations, gateway and TLS
//! choices, where the filter's `.wasm` is served) and what `run` needs (listen address,
//! JWKS timing, leader election). Read from a YAML file, then the environment and flags,
//! each overriding the one before.

use std::collections::BTreeMap;
use std::num::NonZeroU16;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use crate::generate::by_reference::ConfigByReference;
pub use crate::generate::gateway_api_gateway::GatewayApiSettings;
use crate::jwks::target::{AllowedTarget, TargetPolicy};
use crate::tenancy::PatternsByNamespace;

/// `seldon.io/auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// Every request needs a valid JWT.
    Jwt,
    /// No authentication.
    None,
}

impl std::str::FromStr for AuthKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "jwt" => Ok(AuthKind::Jwt),
            "none" => Ok(AuthKind::None),
            other => Err(format!(
                "{other:?} is not an auth kind: expected jwt or none"
            )),
        }
    }
}

/// TLS mode of the generated DestinationRules (Istio's `ClientTLSSettings.TLSmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsMode {
    /// Plain text to the model.
    #[serde(rename = "DISABLE")]
    Disable,
    /// TLS to the model.
    #[serde(rename = "SIMPLE")]
    Simple,
    /// Mutual TLS with configured certificates.
    #[serde(rename = "MUTUAL")]
    Mutual,
    /// Istio's mutual TLS.
    #[serde(rename = "ISTIO_MUTUAL")]
    IstioMutual,
}

impl TlsMode {
    /// The mode as Istio spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "DISABLE",
            TlsMode::Simple => "SIMPLE",
            TlsMode::Mutual => "MUTUAL",
            TlsMode::IstioMutual => "ISTIO_MUTUAL",
        }
    }
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "DISABLE" => Ok(TlsMode::Disable),
            "SIMPLE" => Ok(TlsMode::Simple),
            "MUTUAL" => Ok(TlsMode::Mutual),
            "ISTIO_MUTUAL" => Ok(TlsMode::IstioMutual),
            other => Err(format!(
                "{other:?} is not a TLS mode: expected DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL"
            )),
        }
    }
}

/// The Istio object that carries the filter to the gateway (setting `extensionKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtensionKind {
    /// `run` uses a TrafficExtension when the API server serves
    /// `extensions.istio.io/v1alpha1` TrafficExtension (Istio 1.30 and later), a WasmPlugin
    /// otherwise; `render` and `check`, which ask no API server, a WasmPlugin.
    #[default]
    Auto,
    /// `extensions.istio.io/v1alpha1` TrafficExtension.
    TrafficExtension,
    /// `extensions.istio.io/v1alpha1` WasmPlugin.
    WasmPlugin,
}

impl ExtensionKind {
    /// The setting's value as written.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtensionKind::Auto => "auto",
            ExtensionKind::TrafficExtension => "traffic-extension",
            ExtensionKind::WasmPlugin => "wasm-plugin",
        }
    }

    /// The kind generated without asking the API server: `auto` is a WasmPlugin, which
    /// every Istio with Wasm support serves (1.30 converts it to a TrafficExtension).
    pub fn without_discovery(self) -> Self {
        match self {
            ExtensionKind::Auto => ExtensionKind::WasmPlugin,
            kind => kind,
        }
    }

    /// Whether a controller with this setting may write a WasmPlugin.
    pub fn may_write_wasm_plugin(self) -> bool {
        self != ExtensionKind::TrafficExtension
    }

    /// Whether a controller with this setting may write a TrafficExtension.
    pub fn may_write_traffic_extension(self) -> bool {
        self != ExtensionKind::WasmPlugin
    }
}

impl std::fmt::Display for ExtensionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ExtensionKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(ExtensionKind::Auto),
            "traffic-extension" => Ok(ExtensionKind::TrafficExtension),
            "wasm-plugin" => Ok(ExtensionKind::WasmPlugin),
            other => Err(format!(
                "{other:?} is not an extension kind: expected auto, traffic-extension or wasm-plugin"
            )),
        }
    }
}

/// The objects that route a model's requests (setting `routing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingApi {
    /// Istio's `networking.istio.io` VirtualService (and a DestinationRule per predictor),
    /// on Istio Gateways.
    #[default]
    Istio,
    /// Kubernetes Gateway API: an `HTTPRoute` per model on a `gateway.networking.k8s.io`
    /// Gateway, and the extension attached to that Gateway with `targetRefs`.
    GatewayApi,
}

impl RoutingApi {
    /// The setting's value as written.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingApi::Istio => "istio",
            RoutingApi::GatewayApi => "gateway-api",
        }
    }
}

impl std::fmt::Display for RoutingApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RoutingApi {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "istio" => Ok(RoutingApi::Istio),
            "gateway-api" => Ok(RoutingApi::GatewayApi),
            other => Err(format!(
                "{other:?} is not a routing API: expected istio or gateway-api"
            )),
        }
    }
}

/// A bad setting: which one, the value, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A setting's value is not usable.
    #[error("setting {setting} = {value:?}: {expected}")]
    Invalid {
        /// The setting's name in the config file.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// The config file cannot be read.
    #[error("config file {path}: {source}")]
    File {
        /// Its path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The config file does not parse.
    #[error("config file {path}: {source}")]
    Parse {
        /// Its path.
        path: String,
        /// Why.
        source: serde_yaml_ng::Error,
    },
}

fn invalid(
    setting: &'static str,
    value: impl Into<String>,
    expected: impl Into<String>,
) -> SettingsError {
    SettingsError::Invalid {
        setting,
        value: value.into(),
        expected: expected.into(),
    }
}

/// Everything generation depends on besides the SeldonDeployments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// Gateway of models without `seldon.io/istio-gateway`.
    pub default_gateway: String,
    /// `seldon.io/auth` of models without the annotation.
    pub default_auth: AuthKind,
    /// Issuer of models without `seldon.io/jwt-issuer`.
    pub default_issuer: Option<String>,
    /// JWKS URI of models without `seldon.io/jwt-jwks-uri` or `seldon.io/jwt-jwks`.
    pub default_jwks_uri: Option<String>,
    /// TLS mode of the DestinationRules; none leaves TLS to Istio's auto mTLS.
    pub destination_tls_mode: Option<TlsMode>,
    /// Labels selecting the ingress gateway's pods (managed Gateways, WasmPlugin).
    pub gateway_selector: BTreeMap<String, String>,
    /// Namespace of the ingress gateway workload, where the WasmPlugin or
    /// TrafficExtension goes.
    pub gateway_namespace: String,
    /// The object carrying the filter: a TrafficExtension or a WasmPlugin, or `auto`.
    pub extension_kind: ExtensionKind,
    /// What routes models' requests: Istio's VirtualServices or Gateway API HTTPRoutes.
    pub routing: RoutingApi,
    /// Secret with the certificate of managed Gateways' HTTPS server; none means HTTP only.
    pub gateway_tls_secret: Option<String>,
    /// SPIFFE principal of the ingress gateway, allowed by the AuthorizationPolicies.
    pub gateway_principal: String,
    /// Whether to generate an AuthorizationPolicy per SeldonDeployment.
    pub authorization_policy: bool,
    /// `oci://` or `https://` URL of the filter, replacing the controller's own server.
    pub wasm_url: Option<String>,
    /// SHA-256 of the module at `wasmUrl` (hex), checked by Istio when set.
    pub wasm_sha256: Option<String>,
    /// Base URL of the controller's own Service, where it serves the `.wasm`.
    pub service_url: String,
    /// Whether the filter asks the controller (`/keys` on [`Settings::service_url`]'s
    /// Service) for a key set when a token names a `kid` it lacks, instead of refusing it
    /// until the next configuration.
    pub key_channel: bool,
    /// Whether the extension object carries the configuration or only a reference to it,
    /// served by this controller at `/config/<sha256>` on [`Settings::service_url`]'s
    /// Service: `never` (the default), `auto` (over
    /// [`Settings::config_by_reference_bytes`]) or `always`.
    pub config_by_reference: ConfigByReference,
    /// Over this many bytes, `auto` passes the configuration by reference.
    pub config_by_reference_bytes: usize,
    /// The most a configuration passed by reference may take, in bytes; over it, the most
    /// recently created models are refused (as over `pluginConfigMaxBytes` inline).
    pub referenced_config_max_bytes: usize,
    /// Namespace of SeldonDeployments whose manifest names none (`render`).
    pub default_namespace: String,
    /// The most the WasmPlugin's `pluginConfig` may take, in bytes: the object must stay
    /// under etcd's 1.5 MiB. Over it, the most recently created models are refused.
    pub plugin_config_max_bytes: usize,
    /// The longest RSA modulus accepted in any key, in bits: 4096, or up to 8192 for an
    /// issuer that needs it (a larger key costs every gateway worker more per token).
    pub max_rsa_bits: u32,
    /// The Gateway API Gateways the controller creates (`routing: gateway-api`).
    pub gateway_api: GatewayApiSettings,
    /// What a tenant's SeldonDeployment may claim beyond its own namespace.
    pub tenancy: TenancySettings,
    /// Which JWKS URIs the controller fetches at all, and how much it reads.
    pub jwks: JwksSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_gateway: "istio-system/seldon-gateway".into(),
            default_auth: AuthKind::Jwt,
            default_issuer: None,
            default_jwks_uri: None,
            destination_tls_mode: None,
            gateway_selector: [("istio".to_string(), "ingressgateway".to_string())].into(),
            gateway_namespace: "istio-system".into(),
            extension_kind: ExtensionKind::Auto,
            routing: RoutingApi::Istio,
            gateway_tls_secret: None,
            gateway_principal:
                "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account".into(),
            authorization_policy: false,
            wasm_url: None,
            wasm_sha256: None,
            service_url: "http://modelgate.modelgate-system.svc.cluster.local:8080".into(),
            key_channel: false,
            config_by_reference: ConfigByReference::Never,
            config_by_reference_bytes: DEFAULT_CONFIG_BY_REFERENCE_BYTES,
            referenced_config_max_bytes: DEFAULT_REFERENCED_CONFIG_MAX_BYTES,
            default_namespace: "default".into(),
            plugin_config_max_bytes: crate::generate::filter_config::MAX_CONFIG_BYTES,
            max_rsa_bits: modelgate_core::auth::keys::DEFAULT_MAX_RSA_BITS as u32,
            gateway_api: GatewayApiSettings::default(),
            tenancy: TenancySettings::default(),
            jwks: JwksSettings::default(),
        }
    }
}

/// [`Settings::config_by_reference_bytes`] when the settings do not say: 256 KiB, a sixth of
/// etcd's 1.5 MiB object limit (about 4,700 models), so istiod's push of the extension
/// object stays small long before the limit is near.
pub const DEFAULT_CONFIG_BY_REFERENCE_BYTES: usize = 256 * 1024;

/// [`Settings::referenced_config_max_bytes`] when the settings do not say: 16 MiB (about
/// 290,000 models sharing a policy), half of what the filter reads
/// ([`modelgate_core::by_reference::MAX_DOCUMENT_BYTES`]).
pub const DEFAULT_REFERENCED_CONFIG_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The most [`Settings::referenced_config_max_bytes`] may be: what the filter reads, less
/// 1 MiB for what the budget does not count (the channel, the JSON around the models).
pub const MAX_REFERENCED_CONFIG_BYTES: usize =
    modelgate_core::by_reference::MAX_DOCUMENT_BYTES - 1024 * 1024;

/// [`JwksSettings::max_bytes`] when the settings do not say: 1 MiB, far above any real
/// JWKS (a few KiB) and far below the controller's memory limit.
pub const DEFAULT_JWKS_MAX_BYTES: u64 = 1024 * 1024;

/// What the controller fetches as a JWKS (settings `jwks`), whoever names the URI.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JwksSettings {
    /// Whether `http://` JWKS URIs are fetched (only `https://` otherwise).
    pub allow_http: bool,
    /// Largest JWKS body read, in bytes; a larger one fails the fetch.
    pub max_bytes: u64,
    /// Networks and host names admitted despite being internal: loopback, link-local,
    /// private and other non-public addresses, and cluster names (`*.svc`,
    /// `*.cluster.local`, single labels) are refused otherwise.
    pub allowed_targets: Vec<AllowedTarget>,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            allow_http: false,
            max_bytes: DEFAULT_JWKS_MAX_BYTES,
            allowed_targets: Vec::new(),
        }
    }
}

impl JwksSettings {
    /// The scheme and target rules these settings make.
    pub fn target_policy(&self) -> TargetPolicy {
        TargetPolicy {
            allow_http: self.allow_http,
            allowed: self.allowed_targets.clone(),
        }
    }
}

/// What a host that no `hosts` pattern grants gets (`tenancy.ungrantedHosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UngrantedHosts {
    /// The first namespace to claim it (by creation time) has it, provided no earlier
    /// model of another namespace is served on it already (through `*` or the host).
    #[default]
    FirstClaim,
    /// Refused: only `*` and granted hosts may be used.
    Refuse,
}

/// What a tenant, who may edit SeldonDeployments in its own namespace only, may make the
/// controller do outside that namespace: create Gateways, and bind hostnames that other
/// namespaces' models or other applications are served on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TenancySettings {
    /// Namespaces where a Gateway a model names is created for a model of any namespace.
    /// Without them, modelgate creates a Gateway only in the model's own namespace, or the
    /// `defaultGateway` (the platform's); naming another Gateway elsewhere only references
    /// it, and it must exist.
    pub gateway_namespaces: Vec<String>,
    /// Host patterns (`*`, `host`, `*.domain`) granted to namespaces; the key `*` grants
    /// to every namespace. A host granted to some namespaces is refused to the others.
    pub hosts: BTreeMap<String, Vec<String>>,
    /// What a host that no pattern grants gets.
    pub ungranted_hosts: UngrantedHosts,
    /// Issuers models may name in `seldon.io/jwt-issuer`, by namespace (`*`: every
    /// namespace); patterns are exact or a prefix ending in `*`. Empty: any.
    pub allowed_issuers: PatternsByNamespace,
    /// JWKS URIs models may name in `seldon.io/jwt-jwks-uri`, likewise; empty: any (that
    /// the `jwks` target rules admit).
    pub allowed_jwks_uris: PatternsByNamespace,
    /// Whether models may carry their keys inline (`seldon.io/jwt-jwks`).
    pub allow_inline_jwks: bool,
}

impl Default for TenancySettings {
    fn default() -> Self {
        Self {
            gateway_namespaces: Vec::new(),
            hosts: BTreeMap::new(),
            ungranted_hosts: UngrantedHosts::default(),
            allowed_issuers: BTreeMap::new(),
            allowed_jwks_uris: BTreeMap::new(),
            allow_inline_jwks: true,
        }
    }
}

impl TenancySettings {
    fn validate(&self) -> Result<(), SettingsError> {
        for namespace in &self.gateway_namespaces {
            if !modelgate_core::names::is_dns_label(namespace) {
                return Err(invalid(
                    "tenancy.gatewayNamespaces",
                    namespace,
                    "namespace names",
                ));
            }
        }
        for (namespace, patterns) in &self.hosts {
            if namespace != "*" && !modelgate_core::names::is_dns_label(namespace) {
                return Err(invalid(
                    "tenancy.hosts",
                    namespace,
                    "namespace names, or * for every namespace",
                ));
            }
            for pattern in patterns {
                let name = pattern.strip_prefix("*.").unwrap_or(pattern);
                if pattern != "*" && !modelgate_core::names::is_dns_subdomain(name) {
                    return Err(invalid(
                        "tenancy.hosts",
                        pattern,
                        "host patterns: *, a lowercase DNS name or *.<DNS name>",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// [`RunSettings::concurrency`] when the settings do not say.
pub const DEFAULT_CONCURRENCY: NonZeroU16 = NonZeroU16::new(16).unwrap();

/// [`RunSettings::jwks_concurrency`] when the settings do not say.
pub const DEFAULT_JWKS_CONCURRENCY: NonZeroU16 = NonZeroU16::new(8).unwrap();

/// Settings of `modelgate run` only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RunSettings {
    /// Namespaces to watch; empty watches all.
    pub namespaces: Vec<String>,
    /// Address of the HTTP server (`.wasm`, `/metrics`, `/healthz`, `/readyz`).
    pub listen: String,
    /// How often JWKS URIs are fetched again.
    #[serde(with = "humantime_serde_shim")]
    pub jwks_refresh: Duration,
    /// How soon a failed JWKS fetch is tried again; each further failure doubles the
    /// wait, up to `jwks_refresh`.
    #[serde(with = "humantime_serde_shim")]
    pub jwks_retry: Duration,
    /// Timeout of one JWKS fetch (connection, answer and body).
    #[serde(with = "humantime_serde_shim")]
    pub jwks_timeout: Duration,
    /// JWKS fetches at once, in each of two pools: URIs that answered since the
    /// controller started, and the others (new or failing), so tenants' slow or dead
    /// URIs never hold up the issuers that work.
    pub jwks_concurrency: NonZeroU16,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// Namespace of the Lease (the controller's own).
    pub lease_namespace: String,
    /// Models reconciled at once. Each holds API requests in flight, so this bounds the
    /// controller's memory and its load on the API server when thousands of models need
    /// work at once (at start-up, or after the settings change); kube's default is
    /// unbounded.
    pub concurrency: NonZeroU16,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            listen: "0.0.0.0:8080".into(),
            jwks_refresh: Duration::from_secs(20 * 60),
            jwks_retry: Duration::from_secs(30),
            jwks_timeout: Duration::from_secs(10),
            jwks_concurrency: DEFAULT_JWKS_CONCURRENCY,
            lease_name: "modelgate-leader".into(),
            lease_namespace: "modelgate-system".into(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Durations in the config file are written as `20m`, `30s`.
mod humantime_serde_shim {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// The config file: generation settings and run settings side by side.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Generation settings.
    #[serde(flatten)]
    pub settings: Settings,
    /// Run settings.
    pub run: RunSettings,
}

impl ConfigFile {
    /// Reads a YAML config file.
    pub fn read(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::File {
            path: path.display().to_string(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.display().to_string(),
            source,
        })
    }
}

impl Settings {
    /// What keys may cost, as the filter is told (`limits` of its configuration).
    pub fn key_limits(&self) -> modelgate_core::config::Limits {
        modelgate_core::config::Limits {
            max_rsa_bits: self.max_rsa_bits,
        }
    }

    /// The filter's way back to this controller when `keyChannel` is on: Istio's outbound
    /// cluster of the Service in `serviceUrl` (`outbound|<port>||<host>`), that host as
    /// `:authority`, and `/keys`.
    pub fn key_channel(&self) -> Option<modelgate_core::config::KeyChannel> {
        if !self.key_channel {
            return None;
        }
        self.channel()
    }

    /// The filter's way back to this controller, whatever it is used for: the key channel
    /// ([`Settings::key_channel`]) or configuration by reference.
    pub fn channel(&self) -> Option<modelgate_core::config::KeyChannel> {
        let (host, port) = service_host_port(&self.service_url)?;
        Some(modelgate_core::config::KeyChannel {
            cluster: format!("outbound|{port}||{host}"),
            authority: host.to_string(),
            keys_path: modelgate_core::config::DEFAULT_KEYS_PATH.into(),
            timeout_ms: modelgate_core::config::DEFAULT_CHANNEL_TIMEOUT_MS,
            refetch_secs: modelgate_core::config::DEFAULT_REFETCH_SECS,
        })
    }

    /// What the whole filter configuration may take: `pluginConfigMaxBytes` inline, or
    /// `referencedConfigMaxBytes` when it may go by reference.
    pub fn config_budget_bytes(&self) -> usize {
        match self.config_by_reference {
            ConfigByReference::Never => self.plugin_config_max_bytes,
            ConfigByReference::Auto | ConfigByReference::Always => self.referenced_config_max_bytes,
        }
    }

    /// Checks every setting; the controller refuses to start on the first bad one.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let default_gateway = crate::annotations::parse_gateway(&self.default_gateway, "")
            .map_err(|e| invalid("defaultGateway", &self.default_gateway, e))?;
        if self.routing == RoutingApi::GatewayApi {
            match default_gateway {
                crate::annotations::GatewayRef::Named { namespace, .. }
                    if namespace == self.gateway_namespace => {}
                _ => {
                    return Err(invalid(
                        "defaultGateway",
                        &self.default_gateway,
                        format!(
                            "with routing gateway-api, a Gateway API Gateway in gatewayNamespace ({}), where the filter is attached to it",
                            self.gateway_namespace
                        ),
                    ));
                }
            }
        }
        if let Some(issuer) = &self.default_issuer
            && issuer.trim().is_empty()
        {
            return Err(invalid("defaultIssuer", issuer, "a non-empty issuer"));
        }
        if let Some(uri) = &self.default_jwks_uri {
            crate::annotations::parse_jwks_uri(uri)
                .and_then(|u| reqwest::Url::parse(&u).map_err(|e| e.to_string()))
                .and_then(|url| self.jwks.target_policy().check_uri(&url))
                .map_err(|e| invalid("defaultJwksUri", uri, e))?;
        }
        if self.jwks.max_bytes == 0 {
            return Err(invalid(
                "jwks.maxBytes",
                "0",
                "a number of bytes, 1 or more",
            ));
        }
        if let Some((setting, value, expected)) = self.gateway_api.problem() {
            return Err(invalid(setting, value, expected));
        }
        crate::tenancy::validate_rules(&self.tenancy)
            .map_err(|(setting, value, expected)| invalid(setting, value, expected))?;
        if self.gateway_selector.is_empty() {
            return Err(invalid("gatewaySelector", "{}", "at least one label"));
        }
        for (key, value) in &self.gateway_selector {
            if !is_label_key(key) || !is_label_value(value) {
                return Err(invalid(
                    "gatewaySelector",
                    format!("{key}={value}"),
                    "Kubernetes label keys and values",
                ));
            }
        }
        if !modelgate_core::names::is_dns_label(&self.gateway_namespace) {
            return Err(invalid(
                "gatewayNamespace",
                &self.gateway_namespace,
                "a namespace name",
            ));
        }
        let rsa_bits = modelgate_core::auth::keys::MIN_RSA_BITS
            ..=modelgate_core::auth::keys::MAX_RSA_BITS_CEILING;
        if !rsa_bits.contains(&(self.max_rsa_bits as usize)) {
            return Err(invalid(
                "maxRsaBits",
                self.max_rsa_bits.to_string(),
                format!(
                    "a number of bits from {} to {}",
                    rsa_bits.start(),
                    rsa_bits.end()
                ),
            ));
        }
        if self.plugin_config_max_bytes < crate::generate::filter_config::MAX_MODEL_BYTES {
            return Err(invalid(
                "pluginConfigMaxBytes",
                self.plugin_config_max_bytes.to_string(),
                format!(
                    "a number of bytes, at least one model's budget ({})",
                    crate::generate::filter_config::MAX_MODEL_BYTES
                ),
            ));
        }
        if !modelgate_core::names::is_dns_label(&self.default_namespace) {
            return Err(invalid(
                "defaultNamespace",
                &self.default_namespace,
                "a namespace name",
            ));
        }
        if let Some(secret) = &self.gateway_tls_secret
            && !modelgate_core::names::is_dns_subdomain(secret)
        {
            return Err(invalid("gatewayTlsSecret", secret, "a Secret name"));
        }
        if !self.gateway_principal.starts_with("cluster.local/")
            && !self.gateway_principal.contains("/ns/")
        {
            return Err(invalid(
                "gatewayPrincipal",
                &self.gateway_principal,
                "a SPIFFE principal such as cluster.local/ns/<ns>/sa/<service account>",
            ));
        }
        match &self.wasm_url {
            Some(url)
                if !(url.starts_with("oci://")
                    || url.starts_with("https://")
                    || url.starts_with("http://")) =>
            {
                return Err(invalid(
                    "wasmUrl",
                    url,
                    "an oci://, https:// or http:// URL",
                ));
            }
            None if self.wasm_sha256.is_some() => {
                return Err(invalid(
                    "wasmSha256",
                    self.wasm_sha256.clone().unwrap_or_default(),
                    "only with wasmUrl (the controller hashes the module it serves itself)",
                ));
            }
            _ => {}
        }
        if let Some(sha) = &self.wasm_sha256
            && !(sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(invalid("wasmSha256", sha, "64 lowercase hex digits"));
        }
        self.tenancy.validate()?;
        if !(self.service_url.starts_with("http://") || self.service_url.starts_with("https://")) {
            return Err(invalid(
                "serviceUrl",
                &self.service_url,
                "an http:// or https:// URL",
            ));
        }
        let limit = MAX_REFERENCED_CONFIG_BYTES;
        if !(crate::generate::filter_config::MAX_MODEL_BYTES..=limit)
            .contains(&self.referenced_config_max_bytes)
        {
            return Err(invalid(
                "referencedConfigMaxBytes",
                self.referenced_config_max_bytes.to_string(),
                format!(
                    "a number of bytes from one model's budget ({}) to what the filter reads ({limit})",
                    crate::generate::filter_config::MAX_MODEL_BYTES
                ),
            ));
        }
        if self.config_by_reference_bytes > self.plugin_config_max_bytes {
            return Err(invalid(
                "configByReferenceBytes",
                self.config_by_reference_bytes.to_string(),
                format!(
                    "at most pluginConfigMaxBytes ({})",
                    self.plugin_config_max_bytes
                ),
            ));
        }
        if self.config_by_reference != ConfigByReference::Never
            && service_host_port(&self.service_url).is_none()
        {
            return Err(invalid(
                "serviceUrl",
                &self.service_url,
                "a URL whose host is the controller's Service name, as configByReference needs (http://<service>.<namespace>.svc.cluster.local:<port>)",
            ));
        }
        if self.key_channel && service_host_port(&self.service_url).is_none() {
            return Err(invalid(
                "serviceUrl",
                &self.service_url,
                "a URL whose host is the controller's Service name, as keyChannel needs (http://<service>.<namespace>.svc.cluster.local:<port>)",
            ));
        }
        Ok(())
    }
}

fn is_label_key(key: &str) -> bool {
    let name = key.rsplit_once('/').map_or(key, |(prefix, name)| {
        if modelgate_core::names::is_dns_subdomain(prefix) {
            name
        } else {
            ""
        }
    });
    is_label_value(name) && !name.is_empty()
}

fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !value.starts_with(['-', '_', '.'])
        && !value.ends_with(['-', '_', '.'])
}

/// The host and port of an `http://` or `https://` URL (the scheme's port when none).
fn service_host_port(url: &str) -> Option<(&str, u16)> {
    let (rest, default_port) = match url.split_once("://")? {
        ("http", rest) => (rest, 80),
        ("https", rest) => (rest, 443),
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, default_port),
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    (!host.is_empty() && host.bytes().all(plain)).then_some((host, port))
}

/// Settings given on the command line or in the environment; each overrides the config
/// file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SettingsArgs {
    /// YAML config file (camelCase keys of the settings, and a `run:` section).
    #[arg(long, env = "MODELGATE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Gateway of models without seldon.io/istio-gateway.
    #[arg(long, env = "MODELGATE_DEFAULT_GATEWAY")]
    pub default_gateway: Option<String>,
    /// seldon.io/auth of models without the annotation: jwt or none.
    #[arg(long, env = "MODELGATE_DEFAULT_AUTH")]
    pub default_auth: Option<AuthKind>,
    /// Issuer of models without seldon.io/jwt-issuer.
    #[arg(long, env = "MODELGATE_DEFAULT_ISSUER")]
    pub default_issuer: Option<String>,
    /// JWKS URI of models without seldon.io/jwt-jwks-uri or seldon.io/jwt-jwks.
    #[arg(long, env = "MODELGATE_DEFAULT_JWKS_URI")]
    pub default_jwks_uri: Option<String>,
    /// TLS mode of the DestinationRules: DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL.
    #[arg(long, env = "MODELGATE_DESTINATION_TLS_MODE")]
    pub destination_tls_mode: Option<TlsMode>,
    /// Labels of the ingress gateway pods, as key=value (repeat for several).
    #[arg(long, env = "MODELGATE_GATEWAY_SELECTOR", value_delimiter = ',')]
    pub gateway_selector: Vec<String>,
    /// Namespace of the ingress gateway workload (where the WasmPlugin goes).
    #[arg(long, env = "MODELGATE_GATEWAY_NAMESPACE")]
    pub gateway_namespace: Option<String>,
    /// The object carrying the filter: auto, traffic-extension or wasm-plugin.
    #[arg(long, env = "MODELGATE_EXTENSION_KIND")]
    pub extension_kind: Option<ExtensionKind>,
    /// What routes models' requests: istio (VirtualServices) or gateway-api (HTTPRoutes).
    #[arg(long, env = "MODELGATE_ROUTING")]
    pub routing: Option<RoutingApi>,
    /// Secret with the HTTPS certificate of managed Gateways.
    #[arg(long, env = "MODELGATE_GATEWAY_TLS_SECRET")]
    pub gateway_tls_secret: Option<String>,
    /// SPIFFE principal of the ingress gateway (AuthorizationPolicies).
    #[arg(long, env = "MODELGATE_GATEWAY_PRINCIPAL")]
    pub gateway_principal: Option<String>,
    /// Generate an AuthorizationPolicy per SeldonDeployment.
    #[arg(long, env = "MODELGATE_AUTHORIZATION_POLICY")]
    pub authorization_policy: Option<bool>,
    /// oci:// or https:// URL of the filter module, instead of the controller's own server.
    #[arg(long, env = "MODELGATE_WASM_URL")]
    pub wasm_url: Option<String>,
    /// SHA-256 of the module at --wasm-url.
    #[arg(long, env = "MODELGATE_WASM_SHA256")]
    pub wasm_sha256: Option<String>,
    /// Base URL of the controller's Service, where it serves the filter module.
    #[arg(long, env = "MODELGATE_SERVICE_URL")]
    pub service_url: Option<String>,
    /// Let the filter ask this controller (/keys) for a key set when a token names a kid
    /// the set lacks.
    #[arg(long, env = "MODELGATE_KEY_CHANNEL")]
    pub key_channel: Option<bool>,
    /// Pass the filter configuration by reference (served at `/config/<sha256>`): never,
    /// auto (over --config-by-reference-bytes) or always.
    #[arg(long, env = "MODELGATE_CONFIG_BY_REFERENCE")]
    pub config_by_reference: Option<ConfigByReference>,
    /// Over this many bytes, configByReference auto passes the configuration by reference.
    #[arg(long, env = "MODELGATE_CONFIG_BY_REFERENCE_BYTES")]
    pub config_by_reference_bytes: Option<usize>,
    /// The most a configuration passed by reference may take, in bytes.
    #[arg(long, env = "MODELGATE_REFERENCED_CONFIG_MAX_BYTES")]
    pub referenced_config_max_bytes: Option<usize>,
    /// Namespace of SeldonDeployments whose manifest names none.
    #[arg(long, short = 'n', env = "MODELGATE_DEFAULT_NAMESPACE")]
    pub default_namespace: Option<String>,
    /// The most the WasmPlugin's pluginConfig may take, in bytes.
    #[arg(long, env = "MODELGATE_PLUGIN_CONFIG_MAX_BYTES")]
    pub plugin_config_max_bytes: Option<usize>,
    /// The longest RSA modulus accepted in any key, in bits (4096; at most 8192).
    #[arg(long, env = "MODELGATE_MAX_RSA_BITS")]
    pub max_rsa_bits: Option<u32>,
    /// Fetch http:// JWKS URIs too (only https:// otherwise).
    #[arg(long, env = "MODELGATE_JWKS_ALLOW_HTTP")]
    pub jwks_allow_http: Option<bool>,
    /// Largest JWKS body read, in bytes.
    #[arg(long, env = "MODELGATE_JWKS_MAX_BYTES")]
    pub jwks_max_bytes: Option<u64>,
    /// Networks (10.0.0.0/8, 127.0.0.1) and host names (idp.auth.svc.cluster.local,
    /// *.corp.example) JWKS may be fetched from although internal (comma-separated).
    #[arg(long, env = "MODELGATE_JWKS_ALLOWED_TARGETS", value_delimiter = ',')]
    pub jwks_allowed_targets: Vec<String>,
    /// Whether models may carry inline keys (seldon.io/jwt-jwks).
    #[arg(long, env = "MODELGATE_TENANTS_ALLOW_INLINE_JWKS")]
    pub tenancy_allow_inline_jwks: Option<bool>,
}

impl SettingsArgs {
    /// The config file (or the defaults), overridden by these arguments, validated.
    pub fn resolve(&self) -> Result<ConfigFile, SettingsError> {
        let mut file = match &self.config {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        let s = &mut file.settings;
        given(&mut s.default_gateway, &self.default_gateway);
        given(&mut s.gateway_namespace, &self.gateway_namespace);
        given(&mut s.gateway_principal, &self.gateway_principal);
        given(&mut s.service_url, &self.service_url);
        given(&mut s.default_namespace, &self.default_namespace);
        given(
            &mut s.plugin_config_max_bytes,
            &self.plugin_config_max_bytes,
        );
        given(&mut s.max_rsa_bits, &self.max_rsa_bits);
        given(&mut s.default_auth, &self.default_auth);
        given(&mut s.extension_kind, &self.extension_kind);
        given(&mut s.routing, &self.routing);
        given_optional(&mut s.default_issuer, &self.default_issuer);
        given_optional(&mut s.default_jwks_uri, &self.default_jwks_uri);
        given_optional(&mut s.destination_tls_mode, &self.destination_tls_mode);
        if !self.gateway_selector.is_empty() {
            s.gateway_selector.clear();
            for pair in &self.gateway_selector {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| invalid("gatewaySelector", pair, "key=value"))?;
                s.gateway_selector.insert(k.trim().into(), v.trim().into());
            }
        }
        given_optional(&mut s.gateway_tls_secret, &self.gateway_tls_secret);
        given(&mut s.authorization_policy, &self.authorization_policy);
        given(&mut s.key_channel, &self.key_channel);
        given(&mut s.config_by_reference, &self.config_by_reference);
        given(
            &mut s.config_by_reference_bytes,
            &self.config_by_reference_bytes,
        );
        given(
            &mut s.referenced_config_max_bytes,
            &self.referenced_config_max_bytes,
        );
        given_optional(&mut s.wasm_url, &self.wasm_url);
        given_optional(&mut s.wasm_sha256, &self.wasm_sha256);
        given(&mut s.jwks.allow_http, &self.jwks_allow_http);
        given(&mut s.jwks.max_bytes, &self.jwks_max_bytes);
        if !self.jwks_allowed_targets.is_empty() {
            s.jwks.allowed_targets = self
                .jwks_allowed_targets
                .iter()
                .map(|t| {
                    AllowedTarget::try_from(t.clone())
                        .map_err(|e| invalid("jwks.allowedTargets", t, e))
                })
                .collect::<Result<_, _>>()?;
        }
        given(
            &mut s.tenancy.allow_inline_jwks,
            &self.tenancy_allow_inline_jwks,
        );
        s.validate()?;
        Ok(file)
    }
}

/// Settings of `modelgate run` given on the command line or in the environment; each
/// overrides the config file's `run:` section.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunSettingsArgs {
    /// Namespaces to watch (comma-separated); all when not given.
    #[arg(long, env = "MODELGATE_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Address of the HTTP server (filter module, /metrics, /healthz, /readyz).
    #[arg(long, env = "MODELGATE_LISTEN")]
    pub listen: Option<String>,
    /// How often JWKS URIs are fetched again, like 20m.
    #[arg(long, env = "MODELGATE_JWKS_REFRESH", value_parser = humantime::parse_duration)]
    pub jwks_refresh: Option<Duration>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "MODELGATE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Models reconciled at once (at least 1; default 16).
    #[arg(long, env = "MODELGATE_CONCURRENCY")]
    pub concurrency: Option<NonZeroU16>,
    /// Log as JSON lines.
    #[arg(long, env = "MODELGATE_LOG_JSON")]
    pub log_json: bool,
}

impl RunSettingsArgs {
    /// The config file's run settings, overridden by these arguments.
    pub fn resolve(&self, mut run: RunSettings) -> RunSettings {
        if !self.namespaces.is_empty() {
            run.namespaces.clone_from(&self.namespaces);
        }
        given(&mut run.listen, &self.listen);
        given(&mut run.jwks_refresh, &self.jwks_refresh);
        given(&mut run.lease_namespace, &self.lease_namespace);
        given(&mut run.concurrency, &self.concurrency);
        run
    }
}

/// A setting given on the command line replaces the file's.
fn given<T: Clone>(setting: &mut T, arg: &Option<T>) {
    if let Some(value) = arg {
        setting.clone_from(value);
    }
}

/// [`given`] for a setting that may be unset: given, it replaces the file's.
fn given_optional<T: Clone>(setting: &mut Option<T>, arg: &Option<T>) {
    if arg.is_some() {
        setting.clone_from(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_unknown_tls_modes_are_refused() {
        Settings::default().validate().unwrap();
        assert_eq!("ISTIO_MUTUAL".parse::<TlsMode>(), Ok(TlsMode::IstioMutual));
        let err = "istio_mutual".parse::<TlsMode>().unwrap_err();
        assert!(err.contains("ISTIO_MUTUAL"), "{err}");
        let err = serde_yaml_ng::from_str::<ConfigFile>("destinationTlsMode: STRICT").unwrap_err();
        assert!(err.to_string().contains("STRICT"), "{err}");
    }

    #[test]
    fn config_file_reads_both_sections_and_refuses_typos() {
        let file: ConfigFile = serde_yaml_ng::from_str(
            "defaultIssuer: https://issuer\nauthorizationPolicy: true\nrun:\n  jwksRefresh: 5m\n  namespaces: [models]\n",
        )
        .unwrap();
        assert_eq!(
            file.settings.default_issuer.as_deref(),
            Some("https://issuer")
        );
        assert!(file.settings.authorization_policy);
        assert_eq!(file.run.jwks_refresh, Duration::from_secs(300));
        assert_eq!(file.run.namespaces, ["models"]);
        assert!(serde_yaml_ng::from_str::<ConfigFile>("defaultIsuer: x").is_err());
    }

    #[test]
    fn tenancy_settings_are_read_and_checked() {
        let file: ConfigFile = serde_yaml_ng::from_str(
            "tenancy:\n  gatewayNamespaces: [istio-system]\n  hosts:\n    team-a: ['*.team-a.example.com']\n    '*': []\n  ungrantedHosts: refuse\n",
        )
        .unwrap();
        let tenancy = &file.settings.tenancy;
        assert_eq!(tenancy.gateway_namespaces, ["istio-system"]);
        assert_eq!(tenancy.hosts["team-a"], ["*.team-a.example.com"]);
        assert_eq!(tenancy.ungranted_hosts, UngrantedHosts::Refuse);
        file.settings.validate().unwrap();
        let mut settings = Settings::default();
        settings
            .tenancy
            .hosts
            .insert("team-a".into(), vec!["bad host".into()]);
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("tenancy.hosts"), "{err}");
        assert!(
            serde_yaml_ng::from_str::<ConfigFile>("tenancy:\n  gatewayNamespace: [x]\n").is_err()
        );
    }

    #[test]
    fn routing_is_istio_by_default_and_read_from_file_or_flag() {
        assert_eq!(Settings::default().routing, RoutingApi::Istio);
        let file: ConfigFile = serde_yaml_ng::from_str("routing: gateway-api\n").unwrap();
        assert_eq!(file.settings.routing, RoutingApi::GatewayApi);
        let err = serde_yaml_ng::from_str::<ConfigFile>("routing: gatewayapi\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gateway-api"), "{err}");
        let args = SettingsArgs {
            routing: Some("gateway-api".parse().unwrap()),
            ..SettingsArgs::default()
        };
        assert_eq!(
            args.resolve().unwrap().settings.routing,
            RoutingApi::GatewayApi
        );
        let err = "HTTPRoute".parse::<RoutingApi>().unwrap_err();
        assert!(err.contains("istio or gateway-api"), "{err}");
        // The filter attaches to Gateways of its own namespace only.
        let elsewhere = Settings {
            routing: RoutingApi::GatewayApi,
            default_gateway: "ingress/public".into(),
            ..Settings::default()
        };
        let err = elsewhere.validate().unwrap_err().to_string();
        assert!(err.contains("gatewayNamespace (istio-system)"), "{err}");
        let mesh = Settings {
            routing: RoutingApi::GatewayApi,
            default_gateway: "mesh".into(),
            ..Settings::default()
        };
        assert!(mesh.validate().is_err());
    }

    #[test]
    fn the_extension_kind_is_auto_by_default_and_read_from_file_or_flag() {
        assert_eq!(Settings::default().extension_kind, ExtensionKind::Auto);
        assert_eq!(
            ExtensionKind::Auto.without_discovery(),
            ExtensionKind::WasmPlugin
        );
        assert_eq!(
            ExtensionKind::TrafficExtension.without_discovery(),
            ExtensionKind::TrafficExtension
        );
        let file: ConfigFile =
            serde_yaml_ng::from_str("extensionKind: traffic-extension\n").unwrap();
        assert_eq!(
            file.settings.extension_kind,
            ExtensionKind::TrafficExtension
        );
        let err = serde_yaml_ng::from_str::<ConfigFile>("extensionKind: TrafficExtension\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("wasm-plugin"), "{err}");
        let args = SettingsArgs {
            extension_kind: Some("wasm-plugin".parse().unwrap()),
            ..SettingsArgs::default()
        };
        assert_eq!(
            args.resolve().unwrap().settings.extension_kind,
            ExtensionKind::WasmPlugin
        );
        let err = "wasmplugin".parse::<ExtensionKind>().unwrap_err();
        assert!(err.contains("traffic-extension"), "{err}");
    }

    #[test]
    fn reconcile_concurrency_is_bounded_and_never_zero() {
        assert_eq!(RunSettings::default().concurrency.get(), 16);
        let file: ConfigFile = serde_yaml_ng::from_str("run:\n  concurrency: 4\n").unwrap();
        assert_eq!(file.run.concurrency.get(), 4);
        // Zero would be kube's "unbounded": refused, with the setting named.
        let err = serde_yaml_ng::from_str::<ConfigFile>("run:\n  concurrency: 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("concurrency") && err.contains("nonzero"),
            "{err}"
        );
    }

    #[test]
    fn jwks_settings_are_strict_by_default_and_flags_relax_them() {
        let defaults = Settings::default();
        assert!(!defaults.jwks.allow_http);
        assert_eq!(defaults.jwks.max_bytes, 1024 * 1024);
        assert!(defaults.jwks.allowed_targets.is_empty());
        assert!(defaults.key_channel().is_none(), "off by default");
        assert!(defaults.tenancy.allow_inline_jwks);
        assert_eq!(RunSettings::default().jwks_concurrency.get(), 8);
        let args = SettingsArgs {
            default_jwks_uri: Some("http://keycloak.auth.svc.cluster.local/certs".into()),
            jwks_allow_http: Some(true),
            jwks_max_bytes: Some(4096),
            jwks_allowed_targets: vec![
                "keycloak.auth.svc.cluster.local".into(),
                "10.0.0.0/8".into(),
            ],
            tenancy_allow_inline_jwks: Some(false),
            ..SettingsArgs::default()
        };
        let s = args.resolve().unwrap().settings;
        assert!(s.jwks.allow_http && !s.tenancy.allow_inline_jwks);
        assert_eq!((s.jwks.max_bytes, s.jwks.allowed_targets.len()), (4096, 2));
        let bad = SettingsArgs {
            jwks_allowed_targets: vec!["https://x/".into()],
            ..SettingsArgs::default()
        };
        let err = bad.resolve().unwrap_err().to_string();
        assert!(err.contains("jwks.allowedTargets"), "{err}");
        let err = serde_yaml_ng::from_str::<ConfigFile>("jwks: {allowHtp: true}").unwrap_err();
        assert!(err.to_string().contains("allowHtp"), "{err}");
    }

    #[test]
    fn bad_settings_name_the_setting() {
        type Change = fn(&mut Settings);
        let cases: [(&str, Change); 9] = [
            ("defaultJwksUri", |s| {
                s.default_jwks_uri = Some("http://idp.example.com/jwks".into())
            }),
            ("defaultJwksUri", |s| {
                s.default_jwks_uri = Some("https://keycloak.auth.svc.cluster.local/certs".into())
            }),
            ("jwks.maxBytes", |s| s.jwks.max_bytes = 0),
            ("tenancy.allowedJwksUris", |s| {
                s.tenancy = serde_yaml_ng::from_str("allowedJwksUris: {x: [https://a*]}").unwrap()
            }),
            ("defaultGateway", |s| s.default_gateway = "a/b/c".into()),
            ("defaultJwksUri", |s| {
                s.default_jwks_uri = Some("ftp://x".into())
            }),
            ("wasmUrl", |s| s.wasm_url = Some("file:///x.wasm".into())),
            ("wasmSha256", |s| {
                s.wasm_url = Some("oci://r/x:1".into());
                s.wasm_sha256 = Some("ABC".into())
            }),
            ("gatewaySelector", |s| s.gateway_selector.clear()),
        ];
        for (name, change) in cases {
            let mut settings = Settings::default();
            change(&mut settings);
            let err = settings.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn the_key_channel_names_istios_outbound_cluster_of_the_service() {
        let on = |url: &str| Settings {
            key_channel: true,
            service_url: url.into(),
            ..Settings::default()
        };
        let channel = on("http://modelgate.modelgate-system.svc.cluster.local:8080")
            .key_channel()
            .unwrap();
        assert_eq!(
            channel.cluster,
            "outbound|8080||modelgate.modelgate-system.svc.cluster.local"
        );
        assert_eq!(
            channel.authority,
            "modelgate.modelgate-system.svc.cluster.local"
        );
        assert_eq!(channel.keys_path, "/keys");
        let https = on("https://gate.example/base/").key_channel().unwrap();
        assert_eq!(https.cluster, "outbound|443||gate.example");
        for bad in ["http://user@host:80", "http://[::1]:80", "http://:80"] {
            assert!(on(bad).key_channel().is_none(), "{bad}");
            assert!(on(bad).validate().is_err(), "{bad}");
        }
        assert!(on("http://host:80").validate().is_ok());
    }

    #[test]
    fn configuration_by_reference_has_its_own_budget_and_needs_the_services_name() {
        let with = |mode: ConfigByReference| Settings {
            config_by_reference: mode,
            ..Settings::default()
        };
        assert_eq!(
            with(ConfigByReference::Never).config_budget_bytes(),
            crate::generate::filter_config::MAX_CONFIG_BYTES
        );
        for mode in [ConfigByReference::Auto, ConfigByReference::Always] {
            assert_eq!(
                with(mode).config_budget_bytes(),
                DEFAULT_REFERENCED_CONFIG_MAX_BYTES
            );
            assert!(with(mode).validate().is_ok());
            let bad = Settings {
                service_url: "http://user@host:80".into(),
                ..with(mode)
            };
            assert!(bad.validate().is_err());
        }
        let too_large = Settings {
            referenced_config_max_bytes: MAX_REFERENCED_CONFIG_BYTES + 1,
            ..with(ConfigByReference::Always)
        };
        assert!(too_large.validate().is_err());
        let over_inline = Settings {
            config_by_reference_bytes: crate::generate::filter_config::MAX_CONFIG_BYTES + 1,
            ..with(ConfigByReference::Auto)
        };
        assert!(over_inline.validate().is_err());
        let file: Settings =
            serde_yaml_ng::from_str("configByReference: auto\nconfigByReferenceBytes: 1000\n")
                .unwrap();
        assert_eq!(file.config_by_reference, ConfigByReference::Auto);
        assert_eq!(file.config_by_reference_bytes, 1000);
    }
}
