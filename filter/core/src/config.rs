//! The filter configuration: the JSON document the controller writes into the WasmPlugin's
//! `pluginConfig` and the filter reads in `on_configure`. This is the one definition of the
//! contract between the two; `filter/README.md` documents it with an example.
//!
//! Identical policies and key sets are stored once and referenced by id, which keeps the
//! document small when thousands of models share an issuer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The configuration format this build reads and writes.
pub const CONFIG_VERSION: u32 = 1;

/// The filter's root id: the WasmPlugin's `pluginName`, and the name Envoy gives the
/// filter's ECDS resource and statistics.
pub const FILTER_ROOT_ID: &str = "modelgate";

/// The routing header used when a model does not name one (`seldon.io/ab-header`).
pub const DEFAULT_AB_HEADER: &str = "x-seldon-predictor";

/// Where tokens are looked for when a policy does not say (`seldon.io/jwt-from`).
pub const DEFAULT_TOKEN_SOURCE: &str = "header:authorization";

/// The whole filter configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterConfig {
    /// Format version; must equal [`CONFIG_VERSION`].
    pub version: u32,
    /// JSON Web Key Sets by id, referenced from policies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_sets: BTreeMap<String, KeySet>,
    /// Authorization policies by id, referenced from models.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, Policy>,
    /// Models by `<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, Model>,
    /// What keys may cost, when not the defaults.
    #[serde(default, skip_serializing_if = "Limits::is_default")]
    pub limits: Limits,
    /// Where the filter asks the controller for a key set when a token's `kid` is not in
    /// it; absent, the filter never asks (keys change only with the configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<KeyChannel>,
}

/// The way back to the controller (controller setting `keyChannel`): an Envoy cluster
/// that reaches the controller's HTTP server, and the path of its key endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyChannel {
    /// The Envoy cluster; in Istio `outbound|<port>||<service FQDN>`.
    pub cluster: String,
    /// The `:authority` of the requests (the Service's host name).
    pub authority: String,
    /// The key endpoint's path; the JWKS URI is passed as its `uri` query parameter.
    #[serde(default = "default_keys_path")]
    pub keys_path: String,
    /// How long a request may wait for the answer, in milliseconds.
    #[serde(default = "default_channel_timeout_ms")]
    pub timeout_ms: u32,
    /// At most one request to the controller per key set in this many seconds.
    #[serde(default = "default_refetch_secs")]
    pub refetch_secs: u32,
}

/// [`KeyChannel::keys_path`] when not given.
pub const DEFAULT_KEYS_PATH: &str = "/keys";
/// [`KeyChannel::timeout_ms`] when not given.
pub const DEFAULT_CHANNEL_TIMEOUT_MS: u32 = 2000;
/// [`KeyChannel::refetch_secs`] when not given.
pub const DEFAULT_REFETCH_SECS: u32 = 30;

fn default_keys_path() -> String {
    DEFAULT_KEYS_PATH.to_string()
}

fn default_channel_timeout_ms() -> u32 {
    DEFAULT_CHANNEL_TIMEOUT_MS
}

fn default_refetch_secs() -> u32 {
    DEFAULT_REFETCH_SECS
}

/// What keys may cost: the platform's choice (controller setting `maxRsaBits`), the same
/// for every model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// The longest RSA modulus accepted, in bits: 2048 to 8192.
    pub max_rsa_bits: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rsa_bits: crate::auth::keys::DEFAULT_MAX_RSA_BITS as u32,
        }
    }
}

impl Limits {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl FilterConfig {
    /// An empty configuration of the current version.
    pub fn new() -> Self {
        Self {
            version: CONFIG_VERSION,
            key_sets: BTreeMap::new(),
            policies: BTreeMap::new(),
            models: BTreeMap::new(),
            limits: Limits::default(),
            channel: None,
        }
    }
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A JWKS document (`{"keys": [...]}`). Keys stay raw JSON here: an issuer may publish keys
/// this filter cannot use (encryption keys, HMAC secrets, unknown types), and those are
/// skipped one by one when the configuration is compiled rather than failing the whole set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeySet {
    /// Where the keys came from: the JWKS URI they were fetched from, or `inline` for keys
    /// a model carries in `seldon.io/jwt-jwks`. The filter does not read it; a restarted
    /// controller reuses live keys for a URI only from a set with that URI as its source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The keys, as published by the issuer.
    pub keys: Vec<serde_json::Value>,
}

/// How requests to a model are authorized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "auth", rename_all = "lowercase")]
pub enum Policy {
    /// Every request needs a valid JWT (`seldon.io/auth: jwt`).
    Jwt(JwtPolicy),
    /// No authentication (`seldon.io/auth: none`).
    None,
    /// The model's annotations never produced a usable policy: every request is refused
    /// with `403`, and the reason is logged (fail closed).
    Deny {
        /// Why the policy is unusable, for logs and metrics; never sent to clients.
        reason: String,
    },
}

/// A JWT policy (the `seldon.io/jwt-*` and `seldon.io/auth-mode` annotations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtPolicy {
    /// `enforce` refuses bad requests; `audit` only logs and counts what it would refuse.
    #[serde(default, skip_serializing_if = "AuthMode::is_enforce")]
    pub mode: AuthMode,
    /// The required `iss`.
    pub issuer: String,
    /// When not empty, `aud` must contain one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Id of the key set in [`FilterConfig::key_sets`] that signs this issuer's tokens.
    pub key_set: String,
    /// Required claims: every listed claim must hold one of its listed values. Dotted names
    /// reach nested claims.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<String>>,
    /// Where the token is: `header:<name>` or `query:<param>`; empty means
    /// [`DEFAULT_TOKEN_SOURCE`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_from: Vec<String>,
    /// Claims copied into upstream request headers: claim name to header name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forward_claims: BTreeMap<String, String>,
    /// `false` removes the token from the request before it reaches the model.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub forward_token: bool,
}

/// `seldon.io/auth-mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Refuse what fails the policy.
    #[default]
    Enforce,
    /// Decide and count as `enforce` would, log the would-be denial, let the request through.
    Audit,
}

impl AuthMode {
    fn is_enforce(&self) -> bool {
        *self == AuthMode::Enforce
    }
}

/// One SeldonDeployment, as the filter sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Model {
    /// Id of the policy in [`FilterConfig::policies`].
    pub policy: String,
    /// A/B routing, present when the model has more than one non-shadow predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
}

/// Header-based A/B routing between a model's non-shadow predictors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Routing {
    /// The header the VirtualService routes on, and that clients may send to pick a predictor.
    #[serde(
        default = "default_ab_header",
        skip_serializing_if = "is_default_ab_header"
    )]
    pub header: String,
    /// Whether clients may pick a predictor with [`Routing::header`].
    #[serde(
        rename = "override",
        default = "default_true",
        skip_serializing_if = "is_true"
    )]
    pub override_allowed: bool,
    /// Stickiness key: `header:<name>`, `claim:<name>` or `cookie:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
    /// The non-shadow predictors in SeldonDeployment order, with their `traffic` weights.
    pub predictors: Vec<Predictor>,
}

/// A predictor and its share of traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predictor {
    /// The predictor's name, the value of the routing header that selects it.
    pub name: String,
    /// Its `traffic` weight; `0` is reachable only by an explicit override.
    pub traffic: u32,
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn default_ab_header() -> String {
    DEFAULT_AB_HEADER.to_string()
}

fn is_default_ab_header(value: &str) -> bool {
    value == DEFAULT_AB_HEADER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_left_out_of_the_document_and_restored_on_read() {
        let mut config = FilterConfig::new();
        config.policies.insert(
            "p".into(),
            Policy::Jwt(JwtPolicy {
                mode: AuthMode::Enforce,
                issuer: "https://issuer".into(),
                audiences: vec![],
                key_set: "k".into(),
                claims: BTreeMap::new(),
                token_from: vec![],
                forward_claims: BTreeMap::new(),
                forward_token: true,
            }),
        );
        config.models.insert(
            "ns/m".into(),
            Model {
                policy: "p".into(),
                routing: Some(Routing {
                    header: DEFAULT_AB_HEADER.into(),
                    override_allowed: true,
                    sticky: None,
                    predictors: vec![Predictor {
                        name: "a".into(),
                        traffic: 100,
                    }],
                }),
            },
        );
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"version":1,"policies":{"p":{"auth":"jwt","issuer":"https://issuer","keySet":"k"}},"models":{"ns/m":{"policy":"p","routing":{"predictors":[{"name":"a","traffic":100}]}}}}"#
        );
        let back: FilterConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<FilterConfig>(r#"{"version":1,"modles":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("modles"), "{err}");
        let err = serde_json::from_str::<FilterConfig>(
            r#"{"version":1,"policies":{"p":{"auth":"jwt","issuer":"i","keySet":"k","isuer":"x"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("isuer"), "{err}");
    }
}

/// A `pluginConfig` that names the configuration instead of carrying it (controller setting
/// `configByReference`): the filter fetches the document over the channel, checks its
/// `sha256`, and compiles it as it would an inline one. It carries nothing of any model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceDocument {
    /// Format version; must equal [`CONFIG_VERSION`].
    pub version: u32,
    /// How to reach the controller (only `cluster`, `authority` and `timeoutMs` are used for
    /// the document; the key channel is what the document itself says).
    pub channel: KeyChannel,
    /// Which document.
    pub reference: ConfigReference,
}

/// Where the full configuration is, and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigReference {
    /// The path on the controller's server (`/config/<sha256>`).
    pub path: String,
    /// SHA-256 of the document (64 lowercase hex digits).
    pub sha256: String,
    /// The controller's version of the document, for logs.
    pub version: String,
}
