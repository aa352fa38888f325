//! Istio VirtualService -> Envoy routes, the way istiod translates them for an ingress
//! gateway (pilot's `route.go` and `retry.go`). It handles exactly what the controller
//! emits; any other field is an error naming its path, so a field the controller starts
//! writing fails the end-to-end tests loudly instead of being silently left out of the
//! gateway.

use serde_json::{Value, json};

use crate::HarnessError;
use crate::routes::{PredictorDestination, VirtualServiceRoutes};
use crate::strict_fields::Fields;

/// API versions istiod reads VirtualServices under.
const API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// Istio's retry policy when a route sets none (`retry.DefaultPolicy`).
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// Translates a VirtualService (as JSON) for the gateway `<namespace>/<name>`; `None` when
/// it is not bound to that gateway (a `mesh`-only one, or another gateway's), as istiod
/// then gives this gateway none of its routes.
pub fn translate(vs: &Value, gateway: &str) -> Result<Option<VirtualServiceRoutes>, HarnessError> {
    let id = format!(
        "{}/{}",
        vs.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        vs.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    );
    let fail = |path: &str, what: String| {
        HarnessError::new(format!("VirtualService {id}: {path}: {what}"))
    };
    let top = Fields::new(vs, "", &["apiVersion", "kind", "metadata", "spec"], &fail)?;
    let api_version = top.string("apiVersion")?;
    if !API_VERSIONS.contains(&api_version) {
        return Err(fail(
            "apiVersion",
            format!("{api_version:?} is not Istio's"),
        ));
    }
    if top.string("kind")? != "VirtualService" {
        return Err(fail("kind", "expected VirtualService".into()));
    }
    // Metadata does not reach Envoy beyond the name and namespace (labels and owners are
    // for Kubernetes), so it is not checked field by field.
    let namespace = vs
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("metadata.namespace", "missing".into()))?;
    let spec = top.required("spec")?;
    let spec = Fields::new(spec, "spec", &["hosts", "gateways", "http"], &fail)?;

    let gateways = spec.strings("gateways")?;
    let bound = gateways
        .iter()
        .any(|g| *g == gateway || (!g.contains('/') && format!("{namespace}/{g}") == gateway));
    if !bound {
        return Ok(None);
    }
    let hosts: Vec<String> = spec
        .strings("hosts")?
        .into_iter()
        .map(String::from)
        .collect();
    if hosts.is_empty() || hosts.iter().any(String::is_empty) {
        return Err(fail("spec.hosts", format!("{hosts:?}: expected names")));
    }

    let mut destinations = Destinations::default();
    let mut routes = Vec::new();
    let http = spec.array("http")?;
    if http.is_empty() {
        return Err(fail("spec.http", "no routes".into()));
    }
    for (i, route) in http.iter().enumerate() {
        let path = format!("spec.http[{i}]");
        let route = Fields::new(
            route,
            &path,
            &[
                "name",
                "match",
                "rewrite",
                "route",
                "retries",
                "mirror",
                "mirrorPercentage",
            ],
            &fail,
        )?;
        let action = route_action(&route, &path, &mut destinations, &fail)?;
        let matches = route.array("match")?;
        if matches.is_empty() {
            return Err(fail(
                &format!("{path}.match"),
                "none: a catch-all route, which the controller never writes".into(),
            ));
        }
        for (j, m) in matches.iter().enumerate() {
            let m = route_match(m, &format!("{path}.match[{j}]"), &fail)?;
            if action.get("prefix_rewrite").is_some() && m.get("prefix").is_none() {
                return Err(fail(
                    &format!("{path}.rewrite"),
                    "a rewrite of a match that is not a prefix: the harness translates prefix rewrites only".into(),
                ));
            }
            let mut envoy = json!({"match": m, "route": action});
            if let Some(name) = route.optional_string("name")? {
                envoy["name"] = json!(name);
            }
            routes.push(envoy);
        }
    }
    Ok(Some(VirtualServiceRoutes {
        id,
        hosts,
        routes,
        destinations: destinations.into_list(),
    }))
}

/// `HTTPMatchRequest` -> `RouteMatch`.
fn route_match(
    m: &Value,
    path: &str,
    fail: &dyn Fn(&str, String) -> HarnessError,
) -> Result<Value, HarnessError> {
    let fields = Fields::new(m, path, &["uri", "headers"], fail)?;
    let mut out = match fields.get("uri") {
        None => json!({"prefix": "/"}),
        Some(uri) => match string_match(uri, &format!("{path}.uri"), fail)? {
            ("exact", v) => json!({"path": v}),
            ("prefix", v) => json!({"prefix": v}),
            (_, v) => json!({"safe_regex": {"regex": v}}),
        },
    };
    let mut headers = Vec::new();
    if let Some(h) = fields.get("headers") {
        let h = h
            .as_object()
            .ok_or_else(|| fail(&format!("{path}.headers"), "not an object".into()))?;
        // istiod sorts header matchers by name; a map is sorted already.
        for (name, condition) in h {
            let hpath = format!("{path}.headers.{name}");
            if name.is_empty() || name.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(fail(
                    &hpath,
                    "header names must be lowercase (Istio)".into(),
                ));
            }
            let matcher = match string_match(condition, &hpath, fail)? {
                ("exact", v) => json!({"exact": v}),
                ("prefix", v) => json!({"prefix": v}),
                (_, v) => json!({"safe_regex": {"regex": v}}),
            };
            headers.push(json!({"name": name, "string_match": matcher}));
        }
    }
    if !headers.is_empty() {
        out["headers"] = Value::Array(headers);
    }
    out["case_sensitive"] = json!(true);
    Ok(out)
}

/// A `StringMatch`: exactly one of `exact`, `prefix`, `regex`.
fn string_match<'v>(
    value: &'v Value,
    path: &str,
    fail: &dyn Fn(&str, String) -> HarnessError,
) -> Result<(&'static str, &'v str), HarnessError> {
    let fields = Fields::new(value, path, &["exact", "prefix", "regex"], fail)?;
    let mut found = Vec::new();
    for kind in ["exact", "prefix", "regex"] {
        if let Some(v) = fields.optional_string(kind)? {
            found.push((kind, v));
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        _ => Err(fail(
            path,
            "expected exactly one of exact, prefix, regex".into(),
        )),
    }
}

/// The route action of an `HTTPRoute`: destinations, rewrite, retries, mirror.
fn route_action(
    route: &Fields<'_, '_>,
    path: &str,
    destinations: &mut Destinations,
    fail: &dyn Fn(&str, String) -> HarnessError,
) -> Result<Value, HarnessError> {
    // istiod disables Envoy's default 15 s route timeout unless the route sets one.
    let mut action = json!({"timeout": "0s"});

    let targets = route.array("route")?;
    let mut weighted = Vec::new();
    for (k, target) in targets.iter().enumerate() {
        let tpath = format!("{path}.route[{k}]");
        let fields = Fields::new(target, &tpath, &["destination", "weight"], fail)?;
        let cluster = destination(
            fields.required("destination")?,
            &format!("{tpath}.destination"),
            destinations,
            fail,
        )?;
        let weight = match fields.get("weight") {
            None => 0,
            Some(w) => w
                .as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .ok_or_else(|| fail(&format!("{tpath}.weight"), format!("{w}: not a weight")))?,
        };
        weighted.push((cluster, u64::from(weight)));
    }
    set_clusters(
        &mut action,
        &weighted,
        &format!("{path}.route"),
        ("no destination", "every weight is 0 (Istio refuses it)"),
        fail,
    )?;

    if let Some(rewrite) = route.get("rewrite") {
        let rpath = format!("{path}.rewrite");
        let uri = Fields::new(rewrite, &rpath, &["uri"], fail)?.string("uri")?;
        action["prefix_rewrite"] = json!(uri);
    }

    if let Some(policy) = retry_policy(route.get("retries"), &format!("{path}.retries"), fail)? {
        action["retry_policy"] = policy;
    }

    if let Some(mirror) = route.get("mirror") {
        let cluster = destination(mirror, &format!("{path}.mirror"), destinations, fail)?;
        let fraction = match route.get("mirrorPercentage") {
            None => Some(json!({"numerator": 100, "denominator": "HUNDRED"})),
            Some(p) => {
                let ppath = format!("{path}.mirrorPercentage");
                let value = Fields::new(p, &ppath, &["value"], fail)?
                    .required("value")?
                    .as_f64()
                    .filter(|v| (0.0..=100.0).contains(v))
                    .ok_or_else(|| fail(&ppath, "expected a value in [0, 100]".into()))?;
                // Zero mirrors nothing; otherwise a share of a million, as istiod writes it.
                (value > 0.0).then(
                    || json!({"numerator": (value * 10_000.0) as u32, "denominator": "MILLION"}),
                )
            }
        };
        if let Some(fraction) = fraction {
            action["request_mirror_policies"] = json!([{
                "cluster": cluster,
                "runtime_fraction": {"default_value": fraction},
            }]);
        }
    } else if route.get("mirrorPercentage").is_some() {
        return Err(fail(
            &format!("{path}.mirrorPercentage"),
            "set without a mirror".into(),
        ));
    }
    Ok(action)
}

/// A `Destination` -> its cluster `outbound|<port>|<subset>|<host>`, recorded as a
/// predictor's pods.
fn destination(
    value: &Value,
    path: &str,
    destinations: &mut Destinations,
    fail: &dyn Fn(&str, String) -> HarnessError,
) -> Result<String, HarnessError> {
    let fields = Fields::new(value, path, &["host", "subset", "port"], fail)?;
    let host = fields.string("host")?;
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() != 5 || labels[2..] != ["svc", "cluster", "local"] || labels[..2].contains(&"")
    {
        return Err(fail(
            &format!("{path}.host"),
            format!("{host:?}: expected <service>.<namespace>.svc.cluster.local"),
        ));
    }
    let subset = fields.optional_string("subset")?.ok_or_else(|| {
        fail(
            &format!("{path}.subset"),
            "missing: the harness maps a predictor's subset to its server".into(),
        )
    })?;
    let port = Fields::new(
        fields.required("port")?,
        &format!("{path}.port"),
        &["number"],
        fail,
    )?
    .required("number")?
    .as_u64()
    .filter(|p| (1..=65535).contains(p))
    .ok_or_else(|| fail(&format!("{path}.port.number"), "not a port".into()))?;
    let cluster = format!("outbound|{port}|{subset}|{host}");
    destinations.add(host, subset, &cluster);
    Ok(cluster)
}

/// A route action's clusters from its weighted destinations (of a VirtualService route or
/// an HTTPRoute rule) as istiod sets them: one destination takes everything, whatever its
/// weight; of several, those of weight 0 are left out. None at all, or every weight 0, is
/// an error at `path` saying `none` or `all_zero`.
pub(crate) fn set_clusters(
    action: &mut Value,
    weighted: &[(String, u64)],
    path: &str,
    (none, all_zero): (&str, &str),
    fail: &dyn Fn(&str, String) -> HarnessError,
) -> Result<(), HarnessError> {
    match weighted {
        [] => return Err(fail(path, none.into())),
        [(cluster, _)] => action["cluster"] = json!(cluster),
        _ => {
            let clusters: Vec<Value> = weighted
                .iter()
                .filter(|(_, w)| *w > 0)
                .map(|(c, w)| json!({"name": c, "weight": w}))
                .collect();
            if clusters.is_empty() {
                return Err(fail(path, all_zero.into()));
            }
            action["weighted_clusters"] = json!({"clusters": clusters});
        }
    }
    Ok(())
}

/// `HTTPRetry` -> Envoy's retry policy (`retry.ConvertPolicy`): Istio's default when the
/// route sets none, none at all for `attempts: 0`.
pub(crate) fn retry_policy(
    retries: Option<&Value>,
    path: &str,
    fail: &dyn Fn(&str, String) -> HarnessError,
) -> Result<Option<Value>, HarnessError> {
    let mut policy = json!({
        "num_retries": 2,
        "retry_on": DEFAULT_RETRY_ON,
        "retriable_status_codes": [503],
        "host_selection_retry_max_attempts": 5,
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
        }],
    });
    let Some(retries) = retries else {
        return Ok(Some(policy));
    };
    let fields = Fields::new(
        retries,
        path,
        &["attempts", "perTryTimeout", "retryOn"],
        fail,
    )?;
    let attempts = fields
        .required("attempts")?
        .as_u64()
        .ok_or_else(|| fail(&format!("{path}.attempts"), "not a count".into()))?;
    if attempts == 0 {
        return Ok(None);
    }
    policy["num_retries"] = json!(attempts);
    if let Some(retry_on) = fields.optional_string("retryOn")? {
        let (codes, conditions): (Vec<&str>, Vec<&str>) = retry_on
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .partition(|p| p.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)));
        let mut retry_on = conditions.join(",");
        if !codes.is_empty() && !retry_on.contains("retriable-status-codes") {
            retry_on.push_str(",retriable-status-codes");
        }
        policy["retry_on"] = json!(retry_on);
        policy["retriable_status_codes"] = json!(
            codes
                .iter()
                .filter_map(|c| c.parse::<u16>().ok())
                .collect::<Vec<_>>()
        );
    }
    if let Some(timeout) = fields.optional_string("perTryTimeout")? {
        policy["per_try_timeout"] = json!(envoy_duration(timeout).ok_or_else(|| {
            fail(
                &format!("{path}.perTryTimeout"),
                format!("{timeout:?}: expected whole seconds or milliseconds (3s, 500ms)"),
            )
        })?);
    }
    Ok(Some(policy))
}

/// `3s` or `500ms` as an Envoy JSON duration (`3s`, `0.500s`).
pub(crate) fn envoy_duration(text: &str) -> Option<String> {
    if let Some(ms) = text.strip_suffix("ms") {
        let ms: u64 = ms.parse().ok()?;
        return Some(format!("{}.{:03}s", ms / 1000, ms % 1000));
    }
    let s: u64 = text.strip_suffix('s')?.parse().ok()?;
    Some(format!("{s}s"))
}

/// Destinations in order of first appearance, each with the clusters (ports) naming it.
#[derive(Default)]
struct Destinations {
    list: Vec<PredictorDestination>,
}

impl Destinations {
    fn add(&mut self, host: &str, subset: &str, cluster: &str) {
        let index = match self
            .list
            .iter()
            .position(|d| d.host == host && d.predictor == subset)
        {
            Some(i) => i,
            None => {
                self.list.push(PredictorDestination {
                    predictor: subset.to_string(),
                    host: host.to_string(),
                    clusters: Vec::new(),
                });
                self.list.len() - 1
            }
        };
        let clusters = &mut self.list[index].clusters;
        if !clusters.iter().any(|c| c == cluster) {
            clusters.push(cluster.to_string());
        }
    }

    fn into_list(self) -> Vec<PredictorDestination> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn clusters_by_predictor(vs: &VirtualServiceRoutes) -> BTreeMap<&str, Vec<&str>> {
        vs.destinations
            .iter()
            .map(|d| {
                let clusters = d.clusters.iter().map(String::as_str).collect();
                (d.predictor.as_str(), clusters)
            })
            .collect()
    }

    const GATEWAY: &str = "istio-system/seldon-gateway";

    /// A VirtualService of the controller's shape: a header route, a weighted default
    /// route with a dark predictor, retries and a shadow.
    fn vs() -> Value {
        let dest = |subset: &str, port: u32| json!({"host": format!("m-{subset}.ns.svc.cluster.local"), "subset": subset, "port": {"number": port}});
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "m", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {
                "hosts": ["*"],
                "gateways": [GATEWAY],
                "http": [
                    {
                        "name": "rest-main",
                        "match": [{"uri": {"prefix": "/seldon/ns/m/"}, "headers": {"x-seldon-predictor": {"exact": "main"}}}],
                        "rewrite": {"uri": "/"},
                        "route": [{"destination": dest("main", 8000), "weight": 100}],
                        "retries": {"attempts": 2, "perTryTimeout": "3s", "retryOn": "gateway-error,connect-failure,refused-stream"},
                        "mirror": dest("shadow", 8000),
                        "mirrorPercentage": {"value": 25.0},
                    },
                    {
                        "name": "grpc",
                        "match": [{"uri": {"regex": ".*seldon.protos.*"}, "headers": {"seldon": {"exact": "m"}, "namespace": {"exact": "ns"}}}],
                        "route": [
                            {"destination": dest("main", 5001), "weight": 90},
                            {"destination": dest("dark", 5001), "weight": 0},
                            {"destination": dest("canary", 5001), "weight": 10},
                        ],
                        "retries": {"attempts": 0},
                        "mirror": dest("shadow", 5001),
                    },
                ],
            },
        })
    }

    #[test]
    fn routes_are_translated_the_way_istiod_does() {
        let out = translate(&vs(), GATEWAY).unwrap().unwrap();
        assert_eq!(out.id, "ns/m");
        assert_eq!(out.hosts, ["*"]);
        assert_eq!(
            out.routes[0],
            json!({
                "name": "rest-main",
                "match": {
                    "prefix": "/seldon/ns/m/",
                    "headers": [{"name": "x-seldon-predictor", "string_match": {"exact": "main"}}],
                    "case_sensitive": true,
                },
                "route": {
                    "timeout": "0s",
                    "cluster": "outbound|8000|main|m-main.ns.svc.cluster.local",
                    "prefix_rewrite": "/",
                    "retry_policy": {
                        "num_retries": 2,
                        "retry_on": "gateway-error,connect-failure,refused-stream",
                        "retriable_status_codes": [],
                        "per_try_timeout": "3s",
                        "host_selection_retry_max_attempts": 5,
                        "retry_host_predicate": [{
                            "name": "envoy.retry_host_predicates.previous_hosts",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
                        }],
                    },
                    "request_mirror_policies": [{
                        "cluster": "outbound|8000|shadow|m-shadow.ns.svc.cluster.local",
                        "runtime_fraction": {"default_value": {"numerator": 250_000, "denominator": "MILLION"}},
                    }],
                },
            })
        );
        let grpc = &out.routes[1];
        assert_eq!(
            grpc["match"]["headers"],
            json!([
                {"name": "namespace", "string_match": {"exact": "ns"}},
                {"name": "seldon", "string_match": {"exact": "m"}},
            ])
        );
        assert_eq!(grpc["match"]["safe_regex"]["regex"], ".*seldon.protos.*");
        assert_eq!(
            grpc["route"]["weighted_clusters"]["clusters"],
            json!([
                {"name": "outbound|5001|main|m-main.ns.svc.cluster.local", "weight": 90},
                {"name": "outbound|5001|canary|m-canary.ns.svc.cluster.local", "weight": 10},
            ]),
            "weight 0 left out"
        );
        assert!(grpc["route"].get("retry_policy").is_none(), "attempts 0");
        assert!(grpc["route"].get("prefix_rewrite").is_none());
        assert_eq!(
            grpc["route"]["request_mirror_policies"][0]["runtime_fraction"]["default_value"],
            json!({"numerator": 100, "denominator": "HUNDRED"}),
            "no mirrorPercentage mirrors everything"
        );
        let clusters = clusters_by_predictor(&out);
        assert_eq!(
            clusters["main"],
            [
                "outbound|8000|main|m-main.ns.svc.cluster.local",
                "outbound|5001|main|m-main.ns.svc.cluster.local"
            ]
        );
        assert_eq!(
            clusters.keys().copied().collect::<Vec<_>>(),
            ["canary", "dark", "main", "shadow"]
        );
    }

    #[test]
    fn a_virtual_service_of_another_gateway_gives_this_one_no_routes() {
        let mut v = vs();
        v["spec"]["gateways"] = json!(["mesh"]);
        assert_eq!(translate(&v, GATEWAY).unwrap(), None);
        v["spec"]["gateways"] = json!(["seldon-gateway"]);
        assert_eq!(
            translate(&v, GATEWAY).unwrap(),
            None,
            "short name: ns/seldon-gateway"
        );
        v["metadata"]["namespace"] = json!("istio-system");
        assert!(translate(&v, GATEWAY).unwrap().is_some());
    }

    #[test]
    fn anything_not_translated_is_an_error_naming_its_path() {
        let cases = [
            ("/spec/http/0/timeout", json!("5s"), "spec.http[0].timeout"),
            (
                "/spec/http/1/match/0/method",
                json!({"exact": "GET"}),
                "spec.http[1].match[0].method",
            ),
            ("/spec/tcp", json!([]), "spec.tcp"),
            (
                "/spec/http/0/route/0/destination/subset",
                json!(7),
                "spec.http[0].route[0].destination.subset",
            ),
            (
                "/spec/http/0/route/0/destination/host",
                json!("m-main"),
                "spec.http[0].route[0].destination.host",
            ),
            (
                "/spec/http/0/retries/perTryTimeout",
                json!("1.5s"),
                "spec.http[0].retries.perTryTimeout",
            ),
            (
                "/spec/http/1/match/0/headers/seldon",
                json!({"exact": "m", "prefix": "m"}),
                "spec.http[1].match[0].headers.seldon",
            ),
        ];
        for (pointer, value, path) in cases {
            let mut v = vs();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            v.pointer_mut(parent).unwrap()[key] = value;
            let err = translate(&v, GATEWAY).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("VirtualService ns/m: {path}:")),
                "{pointer}: {err}"
            );
        }
        let mut v = vs();
        v["spec"]["http"][0]["match"][0]["headers"] =
            json!({"X-Seldon-Predictor": {"exact": "main"}});
        let err = translate(&v, GATEWAY).unwrap_err().to_string();
        assert!(err.contains("lowercase"), "{err}");
        let mut v = vs();
        v["spec"]["http"][1]["route"][0]["weight"] = json!(0);
        v["spec"]["http"][1]["route"][2]["weight"] = json!(0);
        let err = translate(&v, GATEWAY).unwrap_err().to_string();
        assert!(err.contains("every weight is 0"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(envoy_duration("3s").as_deref(), Some("3s"));
        assert_eq!(envoy_duration("1500ms").as_deref(), Some("1.500s"));
        assert_eq!(envoy_duration("1.5s"), None);
        assert_eq!(envoy_duration("3"), None);
    }
}
