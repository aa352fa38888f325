//! Typed Istio objects, with the fields this controller writes. Unset fields are left out
//! of the YAML, so server-side apply only claims what is set here.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// `networking.istio.io/v1` VirtualService.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "VirtualService",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the routes apply to.
    pub hosts: Vec<String>,
    /// Gateways (`<ns>/<name>` or `mesh`).
    pub gateways: Vec<String>,
    /// HTTP routes, in order.
    pub http: Vec<HttpRoute>,
}

/// One HTTP route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Route name, shown in Envoy's stats and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions; one must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<HttpMatchRequest>,
    /// Path rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Weighted destinations.
    pub route: Vec<HttpRouteDestination>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Where a copy of the traffic goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Share of traffic mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
}

/// A match condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Path condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Header conditions (lowercase names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
}

/// A string condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    /// Exact value.
    Exact(String),
    /// Prefix.
    Prefix(String),
    /// RE2 regular expression.
    Regex(String),
}

/// Path rewrite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRewrite {
    /// Replacement of the matched prefix.
    pub uri: String,
}

/// A weighted destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRouteDestination {
    /// The destination.
    pub destination: Destination,
    /// Relative weight.
    pub weight: u32,
}

/// A service, subset and port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// Service host (FQDN).
    pub host: String,
    /// DestinationRule subset.
    pub subset: String,
    /// Port.
    pub port: PortSelector,
}

/// A port number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortSelector {
    /// The number.
    pub number: u32,
}

/// A percentage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percent {
    /// 0–100.
    pub value: f64,
}

/// Retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Attempts.
    pub attempts: u32,
    /// Per-try timeout (`1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Retry conditions, comma-separated without spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

/// `networking.istio.io/v1` DestinationRule.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "DestinationRule",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The Service (FQDN).
    pub host: String,
    /// Subsets.
    pub subsets: Vec<Subset>,
    /// Connection settings.
    pub traffic_policy: TrafficPolicy,
}

/// A named subset of a Service's pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subset {
    /// Subset name (the predictor).
    pub name: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
}

/// Connection pool and TLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Connection pool.
    pub connection_pool: ConnectionPool,
    /// TLS to the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
}

/// Connection pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionPool {
    /// HTTP settings.
    pub http: HttpPool,
}

/// HTTP connection pool settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPool {
    /// Idle timeout (`60s`).
    pub idle_timeout: String,
}

/// Client TLS mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientTls {
    /// `DISABLE`, `SIMPLE`, `MUTUAL` or `ISTIO_MUTUAL`.
    pub mode: String,
}

/// `networking.istio.io/v1` Gateway.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    schema = "disabled"
)]
// Gateways are also read back from the cluster, including ones this controller did not
// write and must leave alone: every field defaults, so a Gateway using fields or shapes
// modelgate never writes (`tls.httpsRedirect` alone, no selector) still reads.
pub struct GatewaySpec {
    /// Gateway pods.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Listeners.
    #[serde(default)]
    pub servers: Vec<Server>,
}

/// A listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// Port.
    #[serde(default)]
    pub port: ServerPort,
    /// Hosts served.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// TLS settings for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
}

/// A listener port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerPort {
    /// Number.
    pub number: u32,
    /// Name.
    pub name: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
}

/// Server TLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerTls {
    /// `SIMPLE`.
    pub mode: String,
    /// Secret with the certificate.
    pub credential_name: String,
}

/// `extensions.istio.io/v1alpha1` WasmPlugin.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "extensions.istio.io",
    version = "v1alpha1",
    kind = "WasmPlugin",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    /// Gateway pods; the CRD refuses it beside `targetRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Gateways (Gateway API) it is attached to; the CRD refuses them beside `selector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Where the module is.
    pub url: String,
    /// Its SHA-256 (hex), checked by Istio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Filter chain phase.
    pub phase: String,
    /// What Envoy does when the module cannot be loaded.
    pub fail_strategy: String,
    /// The filter's root id.
    pub plugin_name: String,
    /// The filter configuration.
    pub plugin_config: serde_json::Value,
}

/// `extensions.istio.io/v1alpha1` TrafficExtension (Istio 1.30 and later), which replaces
/// WasmPlugin: the same settings, the Wasm ones under `wasm`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "extensions.istio.io",
    version = "v1alpha1",
    kind = "TrafficExtension",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficExtensionSpec {
    /// Gateway pods; the CRD refuses it beside `targetRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Gateways (Gateway API) it is attached to; the CRD refuses them beside `selector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Filter chain phase.
    pub phase: String,
    /// The Wasm module and its configuration.
    pub wasm: TrafficExtensionWasm,
}

/// A TrafficExtension's `wasm`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficExtensionWasm {
    /// Where the module is.
    pub url: String,
    /// Its SHA-256 (hex), checked by Istio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The filter's root id.
    pub plugin_name: String,
    /// The filter configuration.
    pub plugin_config: serde_json::Value,
    /// What Envoy does when the module cannot be loaded.
    pub fail_strategy: String,
}

/// An object a policy attaches to (Gateway API's `PolicyTargetReference`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// Its API group.
    pub group: String,
    /// Its kind.
    pub kind: String,
    /// Its name (in the policy's namespace).
    pub name: String,
}

/// Pod labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels.
    pub match_labels: BTreeMap<String, String>,
}

/// `security.istio.io/v1` AuthorizationPolicy.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "AuthorizationPolicy",
    namespaced,
    schema = "disabled"
)]
pub struct AuthorizationPolicySpec {
    /// The model's pods.
    pub selector: WorkloadSelector,
    /// `ALLOW`.
    pub action: String,
    /// Allowed requests.
    pub rules: Vec<Rule>,
}

/// An allow rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    /// Operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
}

/// A source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleFrom {
    /// Source identity.
    pub source: RuleSource,
}

/// Source identities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSource {
    /// SPIFFE principals.
    pub principals: Vec<String>,
}

/// An operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleTo {
    /// The operation.
    pub operation: Operation,
}

/// Methods, paths and ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Methods.
    pub methods: Vec<String>,
    /// Paths.
    pub paths: Vec<String>,
    /// Ports.
    pub ports: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_written_by_others_still_read() {
        let live: Gateway = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "edge", "namespace": "istio-system"},
            "spec": {"servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"],
                 "tls": {"httpsRedirect": true}},
                {"port": {"number": 443, "name": "https", "protocol": "HTTPS", "targetPort": 8443},
                 "hosts": ["*"], "tls": {"mode": "MUTUAL", "credentialName": "c", "minProtocolVersion": "TLSV1_3"}}
            ]}
        }))
        .expect("a foreign Gateway must parse");
        assert!(live.spec.selector.is_empty());
        assert_eq!(live.spec.servers[0].tls, Some(ServerTls::default()));
        assert_eq!(
            live.spec.servers[1].tls.as_ref().map(|t| t.mode.as_str()),
            Some("MUTUAL")
        );
    }
}
