//! Gateway API HTTPRoute -> Envoy routes, the way istiod translates them for a Gateway it
//! programs (pilot's `config/kube/gateway/conversion.go`, then `route.go`), for the
//! features the controller uses: path prefix and regular expression matches, header
//! matches, weights, `ReplacePrefixMatch: /`, `RequestMirror` with `percent`, and
//! `timeouts.backendRequest`. Any other field is an error naming its path, so a field the
//! controller starts writing fails the end-to-end tests loudly.
//!
//! What istiod does, step by step:
//! - a `PathPrefix` loses its trailing `/` and becomes Envoy's `path_separated_prefix`
//!   (Gateway API's prefix is by path segment); a `RegularExpression` is a `safe_regex`;
//!   header matches as for a VirtualService (sorted by name);
//! - `ReplacePrefixMatch: /` becomes a `regex_rewrite` of `^<prefix>(/?)(.*)` to `/\2`;
//! - a Service `backendRef` is the subset-less cluster `outbound|<port>||<svc>.<ns>...`,
//!   weight 0 left out when there are several, one taking everything;
//! - `RequestMirror` is a mirror policy of `percent` (all without it);
//! - the route has no retries of its own, so the mesh's default retry policy applies, and
//!   `timeouts.backendRequest` becomes the route's timeout;
//! - a backend that does not resolve answers 500 (`cluster_not_found_response_code`);
//! - a Gateway takes a route only from a namespace its listener's `allowedRoutes` admits
//!   (`Same` by default, `All`, or a selector istiod evaluates with the namespace's
//!   `kubernetes.io/metadata.name`), of a kind it lists ([`gateway_accepts`]);
//! - routes are ordered by Gateway API's precedence: path match kind (exact, prefix,
//!   regular expression), then path length, then the number of header matches; ties keep
//!   their order. (istiod sorts all the routes of a hostname together; one model's rules
//!   never match another model's requests, since each needs its own route tag, so sorting
//!   each HTTPRoute's own is the same table as far as a request can tell.)

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::HarnessError;
use crate::routes::{PredictorDestination, VirtualServiceRoutes};
use crate::strict_fields::Fields;
use crate::virtual_service::{envoy_duration, retry_policy, set_clusters};

/// The API version istiod reads HTTPRoutes under (the controller writes v1).
const API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// Translates an HTTPRoute (as JSON) for the Gateway `<namespace>/<name>`; `None` when it
/// is not attached to it. `predictors` names the predictor behind each Service host
/// (`<svc>.<ns>.svc.cluster.local`), as the rendered DestinationRules say: the harness
/// gives each predictor its own stand-in server.
pub fn translate(
    route: &Value,
    gateway: &str,
    predictors: &BTreeMap<String, String>,
) -> Result<Option<VirtualServiceRoutes>, HarnessError> {
    let namespace = route
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let name = route
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let id = format!("{namespace}/{name}");
    let fail =
        |path: &str, what: String| HarnessError::new(format!("HTTPRoute {id}: {path}: {what}"));
    let top = Fields::new(
        route,
        "",
        &["apiVersion", "kind", "metadata", "spec"],
        &fail,
    )?;
    if top.string("apiVersion")? != API_VERSION {
        return Err(fail("apiVersion", format!("expected {API_VERSION}")));
    }
    if top.string("kind")? != "HTTPRoute" {
        return Err(fail("kind", "expected HTTPRoute".into()));
    }
    let spec = Fields::new(
        top.required("spec")?,
        "spec",
        &["parentRefs", "hostnames", "rules"],
        &fail,
    )?;
    let mut bound = false;
    for (i, parent) in spec.array("parentRefs")?.iter().enumerate() {
        let path = format!("spec.parentRefs[{i}]");
        let p = Fields::new(
            parent,
            &path,
            &["group", "kind", "namespace", "name"],
            &fail,
        )?;
        let group = p
            .optional_string("group")?
            .unwrap_or("gateway.networking.k8s.io");
        let kind = p.optional_string("kind")?.unwrap_or("Gateway");
        if (group, kind) != ("gateway.networking.k8s.io", "Gateway") {
            return Err(fail(&path, format!("{group}/{kind}: not a Gateway")));
        }
        let ns = p.optional_string("namespace")?.unwrap_or(namespace);
        bound |= format!("{ns}/{}", p.string("name")?) == gateway;
    }
    if !bound {
        return Ok(None);
    }
    let hostnames: Vec<String> = match spec.get("hostnames") {
        None => vec!["*".into()],
        Some(_) => spec
            .strings("hostnames")?
            .into_iter()
            .map(String::from)
            .collect(),
    };
    if hostnames.is_empty() {
        return Err(fail(
            "spec.hostnames",
            "empty: leave it out for every host".into(),
        ));
    }

    let mut destinations: Vec<PredictorDestination> = Vec::new();
    let mut routes: Vec<(Rank, Value)> = Vec::new();
    let rules = spec.array("rules")?;
    if rules.is_empty() {
        return Err(fail("spec.rules", "no rules".into()));
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let rule = Fields::new(
            rule,
            &path,
            &["name", "matches", "filters", "backendRefs", "timeouts"],
            &fail,
        )?;
        let rule_name = rule
            .optional_string("name")?
            .map_or_else(|| i.to_string(), String::from);
        let matches = rule.array("matches")?;
        if matches.is_empty() {
            return Err(fail(
                &format!("{path}.matches"),
                "none: a catch-all rule, which the controller never writes".into(),
            ));
        }
        let mut cluster_for = |backend: &Value, bpath: &str, weighted: bool| {
            backend_cluster(
                backend,
                bpath,
                weighted,
                namespace,
                predictors,
                &mut destinations,
                &fail,
            )
        };
        let mut action = json!({
            "timeout": "0s",
            "cluster_not_found_response_code": "INTERNAL_SERVER_ERROR",
        });
        let backends = rule.array("backendRefs")?;
        let mut weighted = Vec::new();
        for (k, backend) in backends.iter().enumerate() {
            weighted.push(cluster_for(
                backend,
                &format!("{path}.backendRefs[{k}]"),
                true,
            )?);
        }
        set_clusters(
            &mut action,
            &weighted,
            &format!("{path}.backendRefs"),
            ("no backend", "every weight is 0 (istiod answers 500)"),
            &fail,
        )?;
        if let Some(policy) = retry_policy(None, &format!("{path}.retry"), &fail)? {
            action["retry_policy"] = policy;
        }
        if let Some(timeouts) = rule.get("timeouts") {
            let tpath = format!("{path}.timeouts");
            let t = Fields::new(timeouts, &tpath, &["backendRequest"], &fail)?;
            let text = t.string("backendRequest")?;
            let duration = envoy_duration(text).ok_or_else(|| {
                fail(
                    &tpath,
                    format!("{text:?}: expected whole seconds or milliseconds"),
                )
            })?;
            if duration != "0s" {
                action["timeout"] = json!(duration);
            }
        }
        let mut rewrite_to_root = false;
        for (k, filter) in rule.array("filters")?.iter().enumerate() {
            let fpath = format!("{path}.filters[{k}]");
            let f = Fields::new(
                filter,
                &fpath,
                &["type", "urlRewrite", "requestMirror"],
                &fail,
            )?;
            match f.string("type")? {
                "URLRewrite" => {
                    let rewrite = Fields::new(
                        f.required("urlRewrite")?,
                        &format!("{fpath}.urlRewrite"),
                        &["path"],
                        &fail,
                    )?;
                    let p = Fields::new(
                        rewrite.required("path")?,
                        &format!("{fpath}.urlRewrite.path"),
                        &["type", "replacePrefixMatch"],
                        &fail,
                    )?;
                    if p.string("type")? != "ReplacePrefixMatch"
                        || p.string("replacePrefixMatch")? != "/"
                    {
                        return Err(fail(
                            &format!("{fpath}.urlRewrite.path"),
                            "the harness translates ReplacePrefixMatch: / only".into(),
                        ));
                    }
                    rewrite_to_root = true;
                }
                "RequestMirror" => {
                    let mpath = format!("{fpath}.requestMirror");
                    let m = Fields::new(
                        f.required("requestMirror")?,
                        &mpath,
                        &["backendRef", "percent"],
                        &fail,
                    )?;
                    let (cluster, _) = cluster_for(
                        m.required("backendRef")?,
                        &format!("{mpath}.backendRef"),
                        false,
                    )?;
                    let fraction = match m.get("percent") {
                        None => Some(json!({"numerator": 100, "denominator": "HUNDRED"})),
                        Some(p) => {
                            let p = p.as_u64().filter(|p| *p <= 100).ok_or_else(|| {
                                fail(&format!("{mpath}.percent"), "expected 0 to 100".into())
                            })?;
                            (p > 0)
                                .then(|| json!({"numerator": p * 10_000, "denominator": "MILLION"}))
                        }
                    };
                    if let Some(fraction) = fraction {
                        let mut policies = action["request_mirror_policies"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        policies.push(json!({
                            "cluster": cluster,
                            "runtime_fraction": {"default_value": fraction},
                        }));
                        action["request_mirror_policies"] = Value::Array(policies);
                    }
                }
                other => {
                    return Err(fail(
                        &format!("{fpath}.type"),
                        format!("{other}: not translated"),
                    ));
                }
            }
        }
        for (j, m) in matches.iter().enumerate() {
            let mpath = format!("{path}.matches[{j}]");
            let (envoy_match, rank) = route_match(m, &mpath, &fail)?;
            let mut action = action.clone();
            if rewrite_to_root {
                let Some(prefix) = envoy_match["path_separated_prefix"].as_str() else {
                    return Err(fail(
                        &mpath,
                        "a prefix rewrite of a match that is not a prefix".into(),
                    ));
                };
                action["regex_rewrite"] = json!({
                    "pattern": {"regex": format!("^{}(/?)(.*)", quote_meta(prefix))},
                    "substitution": "/\\2",
                });
            }
            routes.push((
                rank,
                json!({
                    "name": format!("{namespace}.{name}.{rule_name}"),
                    "match": envoy_match,
                    "route": action,
                }),
            ));
        }
    }
    // Stable: equal ranks keep the HTTPRoute's order.
    routes.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    Ok(Some(VirtualServiceRoutes {
        id,
        hosts: hostnames,
        routes: routes.into_iter().map(|(_, r)| r).collect(),
        destinations,
    }))
}

/// Gateway API's precedence of one match, larger first: path kind (exact 3, prefix 2,
/// regular expression 1), path length, header matches.
type Rank = (u8, usize, usize);

/// `HTTPRouteMatch` -> `RouteMatch`, and its rank.
fn route_match(
    m: &Value,
    path: &str,
    fail: &dyn Fn(&str, String) -> HarnessError,
) -> Result<(Value, Rank), HarnessError> {
    let fields = Fields::new(m, path, &["path", "headers"], fail)?;
    let p = Fields::new(
        fields.required("path")?,
        &format!("{path}.path"),
        &["type", "value"],
        fail,
    )?;
    let value = p.string("value")?;
    let (mut out, kind, length) = match p.string("type")? {
        "PathPrefix" => {
            let prefix = if value == "/" {
                value
            } else {
                value.trim_end_matches('/')
            };
            (json!({"path_separated_prefix": prefix}), 2, prefix.len())
        }
        "Exact" => (json!({"path": value}), 3, value.len()),
        "RegularExpression" => (json!({"safe_regex": {"regex": value}}), 1, value.len()),
        other => {
            return Err(fail(
                &format!("{path}.path.type"),
                format!("{other}: unknown"),
            ));
        }
    };
    let mut headers: BTreeMap<String, Value> = BTreeMap::new();
    for (k, h) in fields.array("headers")?.iter().enumerate() {
        let hpath = format!("{path}.headers[{k}]");
        let h = Fields::new(h, &hpath, &["type", "name", "value"], fail)?;
        // Header names are case-insensitive; istiod lowercases them as Envoy does.
        let name = h.string("name")?.to_ascii_lowercase();
        let v = h.string("value")?;
        let matcher = match h.optional_string("type")?.unwrap_or("Exact") {
            "Exact" => json!({"exact": v}),
            "RegularExpression" => json!({"safe_regex": {"regex": v}}),
            other => return Err(fail(&format!("{hpath}.type"), format!("{other}: unknown"))),
        };
        if headers
            .insert(name.clone(), json!({"name": name, "string_match": matcher}))
            .is_some()
        {
            return Err(fail(&hpath, "a header matched twice".into()));
        }
    }
    let count = headers.len();
    if count > 0 {
        out["headers"] = Value::Array(headers.into_values().collect());
    }
    out["case_sensitive"] = json!(true);
    Ok((out, (kind, length, count)))
}

/// A Service backend -> its cluster `outbound|<port>||<host>` and weight, recorded as its
/// predictor's pods.
fn backend_cluster(
    backend: &Value,
    path: &str,
    weighted: bool,
    namespace: &str,
    predictors: &BTreeMap<String, String>,
    destinations: &mut Vec<PredictorDestination>,
    fail: &dyn Fn(&str, String) -> HarnessError,
) -> Result<(String, u64), HarnessError> {
    let known: &[&str] = if weighted {
        &["group", "kind", "name", "port", "weight"]
    } else {
        &["group", "kind", "name", "port"]
    };
    let b = Fields::new(backend, path, known, fail)?;
    let group = b.optional_string("group")?.unwrap_or("");
    let kind = b.optional_string("kind")?.unwrap_or("Service");
    if (group, kind) != ("", "Service") {
        return Err(fail(path, format!("{group}/{kind}: not a Service")));
    }
    let host = format!("{}.{namespace}.svc.cluster.local", b.string("name")?);
    let port = b
        .required("port")?
        .as_u64()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| fail(&format!("{path}.port"), "not a port".into()))?;
    let weight = match b.get("weight") {
        None => 1,
        Some(w) => w
            .as_u64()
            .filter(|w| *w <= 1_000_000)
            .ok_or_else(|| fail(&format!("{path}.weight"), format!("{w}: not a weight")))?,
    };
    let predictor = predictors.get(&host).ok_or_else(|| {
        fail(
            &format!("{path}.name"),
            format!("{host}: no rendered DestinationRule names it, so the harness has no predictor for it"),
        )
    })?;
    let cluster = format!("outbound|{port}||{host}");
    match destinations
        .iter_mut()
        .find(|d| d.host == host && d.predictor == *predictor)
    {
        Some(d) => {
            if !d.clusters.contains(&cluster) {
                d.clusters.push(cluster.clone());
            }
        }
        None => destinations.push(PredictorDestination {
            predictor: predictor.clone(),
            host,
            clusters: vec![cluster.clone()],
        }),
    }
    Ok((cluster, weight))
}

/// `text` as a regular expression matching it literally (Go's `regexp.QuoteMeta`).
fn quote_meta(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The label istiod gives every namespace when it evaluates a selector (`toNamespaceSet`).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Whether a Gateway (as JSON) takes an HTTPRoute of `namespace` on an HTTP listener on port
/// 80, as istiod decides (`namespacesFromSelector`, and the listener's route kinds): `from`
/// `Same` (the default), `All`, or a `Selector` on `kubernetes.io/metadata.name`, which
/// istiod evaluates against the namespace's name; listed kinds must include HTTPRoute. A
/// selector on any other label is an error: the harness knows no namespace's labels.
pub fn gateway_accepts(gateway: &Value, namespace: &str) -> Result<bool, HarnessError> {
    let own = gateway["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    for listener in gateway["spec"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if listener["port"] != 80 || listener["protocol"] != "HTTP" {
            continue;
        }
        let allowed = &listener["allowedRoutes"];
        let kinds = allowed["kinds"].as_array().map_or(&[][..], Vec::as_slice);
        let takes_kind = kinds.is_empty()
            || kinds
                .iter()
                .any(|k| k["kind"] == "HTTPRoute" && k["group"].as_str().unwrap_or(GROUP) == GROUP);
        let takes_namespace = match allowed["namespaces"]["from"].as_str().unwrap_or("Same") {
            "Same" => namespace == own,
            "All" => true,
            "Selector" => selector_matches(&allowed["namespaces"]["selector"], namespace)?,
            other => {
                return Err(HarnessError::new(format!(
                    "allowedRoutes.namespaces.from {other}: expected Same, All or Selector"
                )));
            }
        };
        if takes_kind && takes_namespace {
            return Ok(true);
        }
    }
    Ok(false)
}

const GROUP: &str = "gateway.networking.k8s.io";

fn selector_matches(selector: &Value, namespace: &str) -> Result<bool, HarnessError> {
    let unknown = |what: &Value| {
        HarnessError::new(format!(
            "allowedRoutes selector {what}: the harness evaluates {NAMESPACE_NAME_LABEL} only"
        ))
    };
    let mut matches = true;
    for (key, value) in selector["matchLabels"].as_object().into_iter().flatten() {
        if key != NAMESPACE_NAME_LABEL {
            return Err(unknown(selector));
        }
        matches &= value == namespace;
    }
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if expression["key"] != NAMESPACE_NAME_LABEL {
            return Err(unknown(expression));
        }
        let listed = expression["values"]
            .as_array()
            .is_some_and(|values| values.iter().any(|v| v == namespace));
        matches &= match expression["operator"].as_str() {
            Some("In") => listed,
            Some("NotIn") => !listed,
            _ => return Err(unknown(expression)),
        };
    }
    Ok(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY: &str = "istio-system/seldon-gateway";

    fn predictors() -> BTreeMap<String, String> {
        ["main", "canary", "dark", "shadow"]
            .iter()
            .map(|p| (format!("m-{p}.ns.svc.cluster.local"), p.to_string()))
            .collect()
    }

    fn backend(p: &str, port: u32, weight: u32) -> Value {
        json!({"group": "", "kind": "Service", "name": format!("m-{p}"), "port": port, "weight": weight})
    }

    /// An HTTPRoute of the controller's shape: a predictor rule after the weighted one (so
    /// the sort shows), a gRPC rule, a shadow and a timeout.
    fn route() -> Value {
        json!({
            "apiVersion": API_VERSION,
            "kind": "HTTPRoute",
            "metadata": {"name": "m", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "istio-system", "name": "seldon-gateway"}],
                "rules": [
                    {
                        "name": "rest",
                        "matches": [{"path": {"type": "PathPrefix", "value": "/seldon/ns/m/"},
                                     "headers": [{"type": "RegularExpression", "name": "x-modelgate-route", "value": "ns/m/.*"}]}],
                        "filters": [
                            {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}},
                            {"type": "RequestMirror", "requestMirror": {"backendRef": {"group": "", "kind": "Service", "name": "m-shadow", "port": 8000}, "percent": 25}},
                        ],
                        "backendRefs": [backend("main", 8000, 90), backend("dark", 8000, 0), backend("canary", 8000, 10)],
                        "timeouts": {"backendRequest": "3s"},
                    },
                    {
                        "name": "rest-main",
                        "matches": [{"path": {"type": "PathPrefix", "value": "/seldon/ns/m/"},
                                     "headers": [{"type": "Exact", "name": "x-seldon-predictor", "value": "main"},
                                                 {"type": "Exact", "name": "x-modelgate-route", "value": "ns/m/main"}]}],
                        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                        "backendRefs": [backend("main", 8000, 1)],
                    },
                    {
                        "name": "grpc",
                        "matches": [{"path": {"type": "RegularExpression", "value": ".*seldon.protos.*"},
                                     "headers": [{"type": "Exact", "name": "seldon", "value": "m"}, {"type": "Exact", "name": "namespace", "value": "ns"}]}],
                        "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"group": "", "kind": "Service", "name": "m-shadow", "port": 5001}}}],
                        "backendRefs": [backend("main", 5001, 1)],
                    },
                ],
            },
        })
    }

    #[test]
    fn routes_are_translated_and_ordered_the_way_istiod_does() {
        let out = translate(&route(), GATEWAY, &predictors())
            .unwrap()
            .unwrap();
        assert_eq!(out.id, "ns/m");
        assert_eq!(out.hosts, ["*"]);
        let names: Vec<&str> = out
            .routes
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["ns.m.rest-main", "ns.m.rest", "ns.m.grpc"],
            "more headers first, regex last"
        );
        let rest = &out.routes[1];
        assert_eq!(rest["match"]["path_separated_prefix"], "/seldon/ns/m");
        assert_eq!(
            rest["match"]["headers"],
            json!([{"name": "x-modelgate-route", "string_match": {"safe_regex": {"regex": "ns/m/.*"}}}])
        );
        let action = &rest["route"];
        assert_eq!(
            action["timeout"], "3s",
            "backendRequest without retries is the route's timeout"
        );
        assert_eq!(
            action["cluster_not_found_response_code"],
            "INTERNAL_SERVER_ERROR"
        );
        assert_eq!(
            action["regex_rewrite"],
            json!({"pattern": {"regex": "^/seldon/ns/m(/?)(.*)"}, "substitution": "/\\2"})
        );
        assert_eq!(
            action["weighted_clusters"]["clusters"],
            json!([
                {"name": "outbound|8000||m-main.ns.svc.cluster.local", "weight": 90},
                {"name": "outbound|8000||m-canary.ns.svc.cluster.local", "weight": 10},
            ]),
            "weight 0 left out"
        );
        assert_eq!(
            action["retry_policy"]["num_retries"], 2,
            "the mesh's default"
        );
        assert_eq!(
            action["request_mirror_policies"],
            json!([{"cluster": "outbound|8000||m-shadow.ns.svc.cluster.local",
                    "runtime_fraction": {"default_value": {"numerator": 250_000, "denominator": "MILLION"}}}])
        );
        let main = &out.routes[0];
        assert_eq!(
            main["route"]["cluster"],
            "outbound|8000||m-main.ns.svc.cluster.local"
        );
        assert_eq!(main["route"]["timeout"], "0s");
        let grpc = &out.routes[2];
        assert_eq!(grpc["match"]["safe_regex"]["regex"], ".*seldon.protos.*");
        assert_eq!(
            grpc["match"]["headers"],
            json!([
                {"name": "namespace", "string_match": {"exact": "ns"}},
                {"name": "seldon", "string_match": {"exact": "m"}},
            ])
        );
        assert!(grpc["route"].get("regex_rewrite").is_none());
        assert_eq!(
            grpc["route"]["request_mirror_policies"][0]["runtime_fraction"]["default_value"],
            json!({"numerator": 100, "denominator": "HUNDRED"})
        );
        let predictors: Vec<&str> = out
            .destinations
            .iter()
            .map(|d| d.predictor.as_str())
            .collect();
        assert_eq!(predictors, ["main", "dark", "canary", "shadow"]);
    }

    #[test]
    fn a_gateway_takes_routes_from_the_namespaces_its_listener_allows() {
        let gateway = |allowed: Value| {
            json!({"metadata": {"namespace": "istio-system", "name": "gw"},
                   "spec": {"listeners": [
                       {"name": "tls", "port": 443, "protocol": "HTTPS",
                        "allowedRoutes": {"namespaces": {"from": "All"}}},
                       {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": allowed}]}})
        };
        let selector = json!({"namespaces": {"from": "Selector", "selector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["bank", "shop"]}]}},
            "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]});
        let g = gateway(selector);
        assert!(gateway_accepts(&g, "bank").unwrap());
        assert!(!gateway_accepts(&g, "evil").unwrap(), "443 does not count");
        let same = gateway(json!({}));
        assert!(gateway_accepts(&same, "istio-system").unwrap());
        assert!(!gateway_accepts(&same, "bank").unwrap());
        let grpc_only = gateway(json!({"namespaces": {"from": "All"},
            "kinds": [{"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}]}));
        assert!(!gateway_accepts(&grpc_only, "bank").unwrap());
        let labels = gateway(json!({"namespaces": {"from": "Selector",
            "selector": {"matchLabels": {"team": "ml"}}}}));
        assert!(gateway_accepts(&labels, "bank").is_err());
    }

    #[test]
    fn a_route_of_another_gateway_gives_this_one_none() {
        let mut r = route();
        r["spec"]["parentRefs"][0]["name"] = json!("other");
        assert!(translate(&r, GATEWAY, &predictors()).unwrap().is_none());
        r["spec"]["parentRefs"][0] = json!({"name": "seldon-gateway"});
        assert!(
            translate(&r, GATEWAY, &predictors()).unwrap().is_none(),
            "ns/seldon-gateway"
        );
        r["metadata"]["namespace"] = json!("istio-system");
        assert!(
            translate(&r, GATEWAY, &predictors()).is_err(),
            "its Services are not in istio-system"
        );
    }

    #[test]
    fn anything_not_translated_is_an_error_naming_its_path() {
        let cases = [
            (
                "/spec/rules/0/timeouts/request",
                json!("5s"),
                "spec.rules[0].timeouts.request",
            ),
            (
                "/spec/rules/1/matches/0/method",
                json!("GET"),
                "spec.rules[1].matches[0].method",
            ),
            ("/spec/rules/2/retry", json!({}), "spec.rules[2].retry"),
            (
                "/spec/rules/1/backendRefs/0/kind",
                json!("ServiceImport"),
                "spec.rules[1].backendRefs[0]",
            ),
            (
                "/spec/rules/1/backendRefs/0/name",
                json!("elsewhere"),
                "spec.rules[1].backendRefs[0].name",
            ),
        ];
        for (pointer, value, path) in cases {
            let mut r = route();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            r.pointer_mut(parent).unwrap()[key] = value;
            let err = translate(&r, GATEWAY, &predictors())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("HTTPRoute ns/m: {path}")),
                "{pointer}: {err}"
            );
        }
    }
}
