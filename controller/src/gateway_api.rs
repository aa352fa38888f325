//! Typed Kubernetes Gateway API objects (`gateway.networking.k8s.io/v1`, standard channel
//! v1.6), with the fields this controller writes (setting `routing: gateway-api`). Unset
//! fields are left out of the YAML, so server-side apply only claims what is set here.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// `gateway.networking.k8s.io/v1` HTTPRoute.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways the route attaches to.
    pub parent_refs: Vec<ParentReference>,
    /// Hostnames matched; none matches every hostname of the listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules; the implementation orders them by how specific their matches are.
    pub rules: Vec<HttpRouteRule>,
}

/// A Gateway a route attaches to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParentReference {
    /// `gateway.networking.k8s.io`.
    pub group: String,
    /// `Gateway`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// One rule: matches, filters, backends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Rule name, unique in the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions; one must hold.
    pub matches: Vec<HttpRouteMatch>,
    /// Rewrites and mirrors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted Services.
    pub backend_refs: Vec<HttpBackendRef>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
}

/// A match condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRouteMatch {
    /// Path condition.
    pub path: PathMatch,
    /// Header conditions (all must hold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

/// A path condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathMatch {
    /// `PathPrefix`, `Exact` or `RegularExpression`.
    pub r#type: String,
    /// The path, prefix or expression.
    pub value: String,
}

/// A header condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// `Exact` or `RegularExpression` (a whole-value RE2 match in Istio).
    pub r#type: String,
    /// The header.
    pub name: String,
    /// The value or expression.
    pub value: String,
}

/// A filter: a URL rewrite or a request mirror.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// `URLRewrite` or `RequestMirror`.
    pub r#type: String,
    /// The rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    /// The mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
}

/// A URL rewrite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UrlRewrite {
    /// The path's replacement.
    pub path: PathModifier,
}

/// How the path is rewritten.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// `ReplacePrefixMatch`.
    pub r#type: String,
    /// What replaces the matched prefix.
    pub replace_prefix_match: String,
}

/// A copy of the requests sent to another Service (responses ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// The Service.
    pub backend_ref: BackendObjectReference,
    /// Share of requests mirrored, 0–100; none mirrors all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
}

/// A Service and port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendObjectReference {
    /// `""`, the core group (written out, as the API server defaults it).
    pub group: String,
    /// `Service`.
    pub kind: String,
    /// The Service's name (in the route's namespace).
    pub name: String,
    /// Its port.
    pub port: u32,
}

/// A weighted Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpBackendRef {
    /// `""`, the core group (written out, as the API server defaults it).
    pub group: String,
    /// `Service`.
    pub kind: String,
    /// The Service's name (in the route's namespace).
    pub name: String,
    /// Its port.
    pub port: u32,
    /// Relative weight, 0–1,000,000.
    pub weight: u32,
}

/// A rule's timeouts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// Time for one request to a backend (Istio's per-try timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// `gateway.networking.k8s.io/v1` Gateway, as the controller creates one when a model names
/// a missing one it may claim (`generate::gateway_api_gateway`). With Istio each is a proxy
/// Deployment and Service istiod deploys (no `addresses`: automated deployment). Every
/// field reads as empty when absent: a Gateway someone else wrote is read too, and fields
/// not listed here are ignored.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewaySpec {
    /// The GatewayClass, whose controller deploys and programs it (`istio`).
    pub gateway_class_name: String,
    /// Where it listens.
    pub listeners: Vec<Listener>,
}

/// One port and protocol of a Gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Listener {
    /// Unique in the Gateway.
    pub name: String,
    /// The port.
    pub port: u16,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// TLS termination (`HTTPS` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Which routes may attach, from which namespaces.
    pub allowed_routes: AllowedRoutes,
}

/// How a listener terminates TLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListenerTls {
    /// `Terminate` (written out, as the API server defaults it).
    pub mode: String,
    /// The certificate's Secrets.
    pub certificate_refs: Vec<SecretReference>,
}

/// A Secret in the Gateway's namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretReference {
    /// `""`, the core group (written out, as the API server defaults it).
    pub group: String,
    /// `Secret`.
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// The routes a listener accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AllowedRoutes {
    /// From which namespaces.
    pub namespaces: RouteNamespaces,
    /// Of which kinds.
    pub kinds: Vec<RouteGroupKind>,
}

/// The namespaces whose routes a listener accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteNamespaces {
    /// `Selector` or `All`.
    pub from: String,
    /// The namespaces, by label, with `Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// A kind of route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteGroupKind {
    /// `gateway.networking.k8s.io`.
    pub group: String,
    /// `HTTPRoute`.
    pub kind: String,
}
