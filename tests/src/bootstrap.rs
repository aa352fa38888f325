//! The Envoy bootstrap of a test gateway, shaped like the Istio ingress gateway that runs
//! modelgate: one listener whose HTTP filters are the modelgate Wasm filter and the router;
//! routes as istiod programs them from Seldon VirtualServices; Istio's default path
//! normalisation; and the stat tags that turn modelgate's labelled counter names into
//! Prometheus labels (Istio's `extraStatTags`).
//!
//! The filter's configuration is not in the bootstrap: it comes from a file through
//! extension config discovery (ECDS), the way istiod delivers a WasmPlugin, so a test can
//! change it while Envoy runs. The benchmark builds its chains from the same listener and
//! filter slot, so what is measured is what is tested.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use modelgate_core::headers::{ADDRESSING_HEADERS, ROUTE_TAG_HEADER, route_tag};
use serde_json::{Value, json};

use crate::HarnessError;
use crate::routes::{GRPC_PATH_REGEX, RouteTable};

/// The Wasm filter's name in the listener and in the ECDS resource: its root id.
pub const FILTER_NAME: &str = modelgate_core::config::FILTER_ROOT_ID;

/// Cluster for requests to `/prometheus` (the gateway's own metrics scrape path).
pub const PROMETHEUS_CLUSTER: &str = "prometheus";

/// Cluster for everything that is not a model: another application behind the gateway.
pub const OTHER_APP_CLUSTER: &str = "other-app";

/// Stat tags for modelgate's labels (`name.label=.=value;.;`, Istio's encoding).
const STAT_TAGS: [&str; 5] = ["model", "decision", "reason", "predictor", "result"];

/// What a bootstrap is made of.
pub struct BootstrapSpec<'a> {
    /// The models' routes.
    pub routes: &'a RouteTable,
    /// Address of every cluster's one endpoint, by cluster name.
    pub endpoints: &'a BTreeMap<String, SocketAddr>,
    /// The file ECDS reads the filter's configuration from.
    pub ecds_file: &'a Path,
}

/// The bootstrap document (JSON is YAML, and Envoy reads it with `-c`).
pub fn bootstrap(spec: &BootstrapSpec<'_>) -> Value {
    let stats_tags: Vec<Value> = STAT_TAGS
        .iter()
        .map(|tag| json!({"tag_name": tag, "regex": format!("({tag}=\\.=(.*?);\\.;)")}))
        .collect();
    let clusters: Vec<Value> = spec
        .endpoints
        .iter()
        .map(|(name, addr)| cluster(name, *addr))
        .collect();
    json!({
        "node": {"id": "modelgate-e2e", "cluster": "istio-ingressgateway"},
        "admin": {"address": socket_address(([127, 0, 0, 1], 0).into())},
        "stats_config": {"stats_tags": stats_tags},
        "static_resources": {
            "listeners": [istio_like_listener(
                route_config(spec.routes),
                vec![modelgate_filter_slot(spec.ecds_file), router()],
            )],
            "clusters": clusters,
        },
    })
}

/// The ingress gateway's listener, on a loopback port the kernel picks: one HTTP
/// connection manager, configured as Istio configures the gateway's, with `route_config`
/// and `http_filters`.
pub fn istio_like_listener(route_config: Value, http_filters: Vec<Value>) -> Value {
    json!({
        "name": "gateway",
        "address": socket_address(([127, 0, 0, 1], 0).into()),
        "filter_chains": [{"filters": [istio_like_hcm(route_config, http_filters)]}],
    })
}

/// The HTTP connection manager with Istio's default path normalisation (BASE):
/// dot-segments resolved, `//` kept, escaped slashes kept.
fn istio_like_hcm(route_config: Value, http_filters: Vec<Value>) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "gateway",
            "normalize_path": true,
            "merge_slashes": false,
            "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
            "route_config": route_config,
            "http_filters": http_filters,
        },
    })
}

/// The modelgate filter's slot in the HTTP filters: a Wasm filter whose module and
/// configuration ECDS reads from `ecds_file`, a file in a watched directory (see
/// [`write_ecds_document`]).
pub fn modelgate_filter_slot(ecds_file: &Path) -> Value {
    let watched = ecds_file.parent().unwrap_or(Path::new("."));
    json!({
        "name": FILTER_NAME,
        "config_discovery": {
            "config_source": {
                "path_config_source": {"path": ecds_file, "watched_directory": {"path": watched}},
                "resource_api_version": "V3",
            },
            "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
        },
    })
}

/// Envoy's router, the last HTTP filter.
pub fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
}

/// Writes the ECDS document of `version` into `ecds_file` so that Envoy's watcher sees the
/// old or the new one, never half: a temporary file in the same directory, renamed over it.
pub fn write_ecds_document(
    ecds_file: &Path,
    version: u64,
    wasm: &Path,
    filter_config_json: &str,
) -> Result<(), HarnessError> {
    let tmp = ecds_file.with_extension("tmp");
    let document = ecds_document(version, wasm, filter_config_json);
    fs::write(&tmp, serde_json::to_vec(&document)?)?;
    fs::rename(&tmp, ecds_file)?;
    Ok(())
}

/// The ECDS file's content: the Wasm filter with the given `pluginConfig` JSON.
fn ecds_document(version: u64, wasm: &Path, filter_config_json: &str) -> Value {
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": FILTER_NAME,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": FILTER_NAME,
                    "root_id": FILTER_NAME,
                    // WasmPlugin's failStrategy: FAIL_CLOSE.
                    "fail_open": false,
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": filter_config_json,
                    },
                    "vm_config": {
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm}},
                    },
                },
            },
        }],
    })
}

/// The gateway's route configuration. The `*` virtual host holds, in order: the routes
/// translated from VirtualServices bound to `*`; per hand-written model, one route per
/// predictor on the routing header (REST and gRPC) before Seldon's two default routes
/// weighted by traffic; then `/prometheus`, then everything else to another application.
/// Each other VirtualService host gets a virtual host of its own, as istiod builds them.
pub fn route_config(table: &RouteTable) -> Value {
    let mut by_host: Vec<(&str, Vec<Value>)> = Vec::new();
    for vs in &table.virtual_services {
        for host in &vs.hosts {
            match by_host.iter_mut().find(|(h, _)| h == host) {
                Some((_, routes)) => routes.extend(vs.routes.iter().cloned()),
                None => by_host.push((host.as_str(), vs.routes.clone())),
            }
        }
    }
    let mut routes = by_host
        .iter()
        .position(|(h, _)| *h == "*")
        .map(|i| by_host.remove(i).1)
        .unwrap_or_default();
    for model in &table.models {
        // Every route of a model requires the filter's route tag for it, as the controller
        // renders them: the model's on its default routes, the predictor's on its own.
        let tag = |predictor: Option<&str>| route_tag(&model.id(), predictor);
        let rest =
            || json!({"prefix": model.prefix(), "headers": [prefix(ROUTE_TAG_HEADER, &tag(None))]});
        let [seldon, namespace] = ADDRESSING_HEADERS;
        let grpc = || {
            json!({
                "safe_regex": {"regex": GRPC_PATH_REGEX},
                "headers": [exact(seldon, &model.name), exact(namespace, &model.namespace), prefix(ROUTE_TAG_HEADER, &tag(None))],
            })
        };
        if model.has_header_routes() {
            for predictor in &model.predictors {
                let cluster = model.cluster(&predictor.name);
                let mut m = rest();
                m["headers"] = json!([
                    exact(&model.ab_header, &predictor.name),
                    exact(ROUTE_TAG_HEADER, &tag(Some(&predictor.name))),
                ]);
                routes.push(json!({
                    "name": format!("{}-{}-rest", model.id(), predictor.name),
                    "match": m,
                    "route": {"cluster": cluster, "prefix_rewrite": "/"},
                }));
                let mut m = grpc();
                m["headers"] = json!([
                    exact(seldon, &model.name),
                    exact(namespace, &model.namespace),
                    exact(&model.ab_header, &predictor.name),
                    exact(ROUTE_TAG_HEADER, &tag(Some(&predictor.name))),
                ]);
                routes.push(json!({
                    "name": format!("{}-{}-grpc", model.id(), predictor.name),
                    "match": m,
                    "route": {"cluster": cluster},
                }));
            }
        }
        let weighted = weighted_clusters(model);
        let mut rest_route = weighted.clone();
        rest_route["prefix_rewrite"] = json!("/");
        routes.push(
            json!({"name": format!("{}-rest", model.id()), "match": rest(), "route": rest_route}),
        );
        routes.push(
            json!({"name": format!("{}-grpc", model.id()), "match": grpc(), "route": weighted}),
        );
    }
    routes.push(json!({
        "name": "prometheus",
        "match": {"prefix": "/prometheus"},
        "route": {"cluster": PROMETHEUS_CLUSTER},
    }));
    routes.push(json!({
        "name": "other-app",
        "match": {"prefix": "/"},
        "route": {"cluster": OTHER_APP_CLUSTER},
    }));
    let mut virtual_hosts =
        vec![json!({"name": "seldon-gateway", "domains": ["*"], "routes": routes})];
    for (host, routes) in by_host {
        virtual_hosts.push(json!({
            "name": format!("{host}:80"),
            "domains": [host, format!("{host}:*")],
            "routes": routes,
        }));
    }
    json!({"name": "http.80", "virtual_hosts": virtual_hosts})
}

/// A route action splitting by traffic (weight-0 destinations left out, as Envoy wants a
/// positive weight; a single destination as a plain cluster).
fn weighted_clusters(model: &crate::routes::ModelRoutes) -> Value {
    let live: Vec<_> = model.predictors.iter().filter(|p| p.traffic > 0).collect();
    match live.as_slice() {
        [only] => json!({"cluster": model.cluster(&only.name)}),
        _ => json!({"weighted_clusters": {"clusters": live
            .iter()
            .map(|p| json!({"name": model.cluster(&p.name), "weight": p.traffic}))
            .collect::<Vec<_>>()}}),
    }
}

fn exact(name: &str, value: &str) -> Value {
    json!({"name": name, "string_match": {"exact": value}})
}

fn prefix(name: &str, value: &str) -> Value {
    json!({"name": name, "string_match": {"prefix": value}})
}

/// An Envoy socket address.
pub fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

fn cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(addr)}}]}],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ModelRoutes;

    #[test]
    fn header_routes_come_before_the_weighted_defaults_and_weight_0_is_left_out() {
        let table = RouteTable::new(vec![
            ModelRoutes::new("ns", "m", &[("main", 90), ("dark", 0), ("canary", 10)]),
            ModelRoutes::new("ns", "single", &[("only", 100)]),
        ]);
        let config = route_config(&table);
        let routes = config["virtual_hosts"][0]["routes"].as_array().unwrap();
        let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "ns/m-main-rest",
                "ns/m-main-grpc",
                "ns/m-dark-rest",
                "ns/m-dark-grpc",
                "ns/m-canary-rest",
                "ns/m-canary-grpc",
                "ns/m-rest",
                "ns/m-grpc",
                "ns/single-rest",
                "ns/single-grpc",
                "prometheus",
                "other-app",
            ]
        );
        assert_eq!(
            routes[2]["match"]["headers"][0],
            json!({"name": "x-seldon-predictor", "string_match": {"exact": "dark"}})
        );
        assert_eq!(routes[2]["route"]["prefix_rewrite"], "/");
        let weighted = &routes[6]["route"]["weighted_clusters"]["clusters"];
        assert_eq!(
            weighted,
            &json!([
                {"name": "outbound|8000|main|m-main.ns.svc.cluster.local", "weight": 90},
                {"name": "outbound|8000|canary|m-canary.ns.svc.cluster.local", "weight": 10},
            ])
        );
        assert_eq!(
            routes[8]["route"],
            json!({"cluster": "outbound|8000|only|single-only.ns.svc.cluster.local", "prefix_rewrite": "/"})
        );
    }

    #[test]
    fn translated_routes_go_to_their_hosts_and_each_predictor_gets_one_server() {
        use crate::routes::{PredictorDestination, VirtualServiceRoutes};
        let vs = |id: &str, host: &str, predictor: &str| VirtualServiceRoutes {
            id: id.into(),
            hosts: vec![host.into()],
            routes: vec![json!({"name": id})],
            destinations: vec![PredictorDestination {
                predictor: predictor.into(),
                host: format!("{predictor}.ns.svc.cluster.local"),
                clusters: vec![
                    format!("outbound|8000|{predictor}|h"),
                    format!("outbound|5001|{predictor}|h"),
                ],
            }],
        };
        let mut table = RouteTable::new(vec![ModelRoutes::new("ns", "hand", &[("p", 100)])]);
        table.virtual_services = vec![
            vs("ns/a", "*", "a"),
            vs("ns/b", "models.example.test", "b"),
            vs("ns/c", "*", "c"),
        ];
        let config = route_config(&table);
        let hosts = config["virtual_hosts"].as_array().unwrap();
        let names = |vhost: &Value| -> Vec<String> {
            vhost["routes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(hosts.len(), 2);
        assert_eq!(
            names(&hosts[0]),
            [
                "ns/a",
                "ns/c",
                "ns/hand-rest",
                "ns/hand-grpc",
                "prometheus",
                "other-app"
            ]
        );
        assert_eq!(
            hosts[1]["domains"],
            json!(["models.example.test", "models.example.test:*"])
        );
        assert_eq!(names(&hosts[1]), ["ns/b"]);

        let backends = table.backends();
        assert_eq!(backends.len(), 4);
        let a = backends.iter().find(|b| b.predictor == "a").unwrap();
        assert_eq!(a.clusters.len(), 2, "one server behind both ports");
        assert_eq!(
            table.backend_key("ns/a", "a").as_deref(),
            Some("a.ns.svc.cluster.local|a")
        );
        assert_eq!(
            table.backend_key("ns/hand", "p").as_deref(),
            Some("outbound|8000|p|hand-p.ns.svc.cluster.local")
        );
        assert_eq!(table.backend_key("ns/a", "zz"), None);
    }
}
