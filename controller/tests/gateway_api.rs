//! `routing: gateway-api`: the HTTPRoute of each model against the VirtualService it
//! replaces (same models, same backends, same filter configuration), the route tag on
//! every rule, one model's rules never matching another's requests, the extension on the
//! Gateways by `targetRefs`, the models refused (and why), and the HTTPRoute CRD's CEL
//! rules evaluated on what is generated and on what is broken on purpose.

mod common;

use std::collections::BTreeMap;

use modelgate_controller::Generated;
use modelgate_controller::generate::http_route::MAX_SERVING_PREDICTORS;
use modelgate_controller::seldon::SeldonDeployment;
use modelgate_controller::settings::{ExtensionKind, RoutingApi};
use serde_json::{Value, json};

const ROUTE_TAG: &str = "x-modelgate-route";

fn of_kind(generated: &Generated, kind: &str) -> Vec<Value> {
    generated
        .objects()
        .into_iter()
        .filter(|o| o["kind"] == kind)
        .collect()
}

fn header<'a>(m: &'a Value, name: &str) -> Option<&'a Value> {
    m["headers"].as_array()?.iter().find(|h| h["name"] == name)
}

/// What a rule's route tag condition accepts, as a full-value RE2 match (Istio's).
fn tag_accepts(m: &Value, tag: &str) -> bool {
    let Some(h) = header(m, ROUTE_TAG) else {
        return true;
    };
    let value = h["value"].as_str().unwrap();
    match h["type"].as_str().unwrap() {
        "Exact" => value == tag,
        "RegularExpression" => regex::Regex::new(&format!("^(?:{value})$"))
            .unwrap()
            .is_match(tag),
        other => panic!("header match type {other}"),
    }
}

#[test]
fn every_example_gets_an_httproute_for_each_virtualservice_and_the_same_filter() {
    let mut routes = 0;
    for example in common::examples() {
        let name = example.display();
        let (istio, _) = common::render_routed(&example, ExtensionKind::Auto, RoutingApi::Istio);
        let (gw, settings) =
            common::render_routed(&example, ExtensionKind::Auto, RoutingApi::GatewayApi);
        assert!(of_kind(&gw, "VirtualService").is_empty(), "{name}");
        // Only Gateway API Gateways, in gatewayNamespace, each among the extension's targets
        // (the CRD checks are in render.rs).
        let extension = serde_json::to_value(&gw.extension).unwrap();
        for gateway in of_kind(&gw, "Gateway") {
            assert_eq!(
                gateway["apiVersion"], "gateway.networking.k8s.io/v1",
                "{name}"
            );
            assert_eq!(
                gateway["metadata"]["namespace"],
                settings.gateway_namespace.as_str(),
                "{name}"
            );
            let targets = extension["spec"]["targetRefs"].as_array().unwrap();
            assert!(
                targets
                    .iter()
                    .any(|t| t["name"] == gateway["metadata"]["name"]),
                "{name}"
            );
        }
        let services: BTreeMap<String, Value> = of_kind(&istio, "VirtualService")
            .into_iter()
            .map(|v| (v["metadata"]["name"].as_str().unwrap().to_string(), v))
            .collect();
        for route in of_kind(&gw, "HTTPRoute") {
            routes += 1;
            let id = route["metadata"]["name"].as_str().unwrap();
            let vs = services.get(id).unwrap_or_else(|| panic!("{name}: {id}"));
            // The same routes, in the same order, on the same backends and weights.
            let http = vs["spec"]["http"].as_array().unwrap();
            let rules = route["spec"]["rules"].as_array().unwrap();
            assert_eq!(rules.len(), http.len(), "{name}: {id}");
            for (rule, vs_route) in rules.iter().zip(http) {
                assert_eq!(rule["name"], vs_route["name"], "{name}: {id}");
                let backends: Vec<(String, u64)> = rule["backendRefs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| {
                        (
                            b["name"].as_str().unwrap().to_string(),
                            b["port"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                let destinations: Vec<(String, u64)> = vs_route["route"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let host = d["destination"]["host"].as_str().unwrap();
                        let service = host.split('.').next().unwrap().to_string();
                        (
                            service,
                            d["destination"]["port"]["number"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(backends, destinations, "{name}: {id}");
                if backends.len() > 1 {
                    let weights: Vec<&Value> = rule["backendRefs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|b| &b["weight"])
                        .collect();
                    let vs_weights: Vec<&Value> = vs_route["route"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| &d["weight"])
                        .collect();
                    assert_eq!(weights, vs_weights, "{name}: {id}");
                }
                let mirror = rule["filters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|f| f["type"] == "RequestMirror");
                assert_eq!(mirror.is_some(), vs_route.get("mirror").is_some(), "{name}");
                if let Some(m) = mirror {
                    assert_eq!(
                        m["requestMirror"]["percent"].as_f64(),
                        vs_route["mirrorPercentage"]["value"].as_f64(),
                        "{name}: {id}"
                    );
                }
            }
            // Attached to the model's Gateway, which the extension is attached to.
            let parent = &route["spec"]["parentRefs"][0];
            assert_eq!(
                parent["namespace"],
                settings.gateway_namespace.as_str(),
                "{name}"
            );
            let extension = serde_json::to_value(&gw.extension).unwrap();
            assert!(extension["spec"].get("selector").is_none(), "{name}");
            let targets = extension["spec"]["targetRefs"].as_array().unwrap();
            assert!(
                targets.iter().any(|t| t["name"] == parent["name"]),
                "{name}: {targets:?}"
            );
        }
        // The DestinationRules (connection and TLS settings) are the same.
        assert_eq!(
            of_kind(&gw, "DestinationRule").len(),
            of_kind(&gw, "HTTPRoute")
                .iter()
                .map(|r| {
                    let id = r["metadata"]["name"].as_str().unwrap();
                    of_kind(&istio, "DestinationRule")
                        .iter()
                        .filter(|d| {
                            d["metadata"]["labels"]["modelgate.seldon.io/seldon-deployment"] == id
                        })
                        .count()
                })
                .sum::<usize>(),
            "{name}"
        );
    }
    assert!(routes >= 6, "{routes}");
}

#[test]
fn every_rule_needs_the_filters_tag_for_its_model_and_matches_its_paths_only() {
    for example in common::examples() {
        let (gw, _) = common::render_routed(&example, ExtensionKind::Auto, RoutingApi::GatewayApi);
        for route in of_kind(&gw, "HTTPRoute") {
            let ns = route["metadata"]["namespace"].as_str().unwrap().to_string();
            let model = gw
                .models
                .iter()
                .find(|m| m.namespace == ns && m.seldon_id == route["metadata"]["name"])
                .unwrap();
            let (_, name) = model.id.split_once('/').unwrap();
            for rule in route["spec"]["rules"].as_array().unwrap() {
                for m in rule["matches"].as_array().unwrap() {
                    let tag = header(m, ROUTE_TAG).expect("every rule needs the route tag");
                    let at = format!("{}: {}", model.id, rule["name"]);
                    assert!(
                        tag_accepts(m, &format!("{}/", model.id)) || tag["type"] == "Exact",
                        "{at}"
                    );
                    assert!(!tag_accepts(m, &format!("{}x/", model.id)), "{at}");
                    assert!(!tag_accepts(m, "other/model/"), "{at}");
                    match m["path"]["type"].as_str().unwrap() {
                        "PathPrefix" => {
                            assert_eq!(m["path"]["value"], format!("/seldon/{ns}/{name}/"), "{at}")
                        }
                        "RegularExpression" => {
                            assert_eq!(header(m, "seldon").unwrap()["value"], name, "{at}");
                            assert_eq!(
                                header(m, "namespace").unwrap()["value"],
                                ns.as_str(),
                                "{at}"
                            );
                        }
                        other => panic!("{at}: path type {other}"),
                    }
                }
            }
        }
    }
}

/// Gateway API orders rules by specificity: with the same path match, a predictor's rule
/// has one header condition more than the weighted rule, so it wins, as its place before
/// the weighted route does in the VirtualService.
#[test]
fn a_predictors_rules_are_more_specific_than_the_weighted_rule() {
    let sdep = SeldonDeployment::fixture("models", "iris")
        .predictor("main", 80)
        .predictor("canary", 20);
    let gw = common::generate_first(&[sdep], &common::plain_gateway_api_settings());
    let route = &of_kind(&gw, "HTTPRoute")[0];
    let rules = route["spec"]["rules"].as_array().unwrap();
    let names = common::names(&route["spec"]["rules"]);
    assert_eq!(
        names,
        [
            "rest-main",
            "rest-canary",
            "grpc-main",
            "grpc-canary",
            "rest",
            "grpc"
        ]
    );
    let headers = |name: &str| {
        let rule = rules.iter().find(|r| r["name"] == name).unwrap();
        (
            rule["matches"][0]["path"].clone(),
            rule["matches"][0]["headers"].as_array().unwrap().len(),
        )
    };
    for (predictor, weighted) in [("rest-main", "rest"), ("grpc-canary", "grpc")] {
        let (path, n) = headers(predictor);
        let (weighted_path, m) = headers(weighted);
        assert_eq!(path, weighted_path);
        assert_eq!(n, m + 1, "{predictor}");
    }
    let main = rules.iter().find(|r| r["name"] == "rest-main").unwrap();
    assert_eq!(
        header(&main["matches"][0], "x-seldon-predictor").unwrap()["value"],
        "main"
    );
    assert_eq!(
        header(&main["matches"][0], ROUTE_TAG).unwrap(),
        &json!({"type": "Exact", "name": ROUTE_TAG, "value": "models/iris/main"})
    );
    assert_eq!(
        main["filters"][0],
        json!({"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}})
    );
    assert_eq!(
        route["metadata"]["ownerReferences"][0]["uid"],
        "uid-models-iris"
    );
}

/// A name with a `.` must not make the weighted rule's tag expression match another
/// model's tag: the tag is matched literally.
#[test]
fn the_tag_expression_is_literal() {
    let a = SeldonDeployment::fixture("team", "m.x").predictor("main", 100);
    let b = SeldonDeployment::fixture("team", "m-x").predictor("main", 100);
    let gw = common::generate_first(&[a, b], &common::plain_gateway_api_settings());
    let routes = of_kind(&gw, "HTTPRoute");
    assert_eq!(routes.len(), 2);
    for route in &routes {
        let own = route["metadata"]["name"].as_str().unwrap();
        for rule in route["spec"]["rules"].as_array().unwrap() {
            let m = &rule["matches"][0];
            let mine = if m["path"]["value"].as_str().unwrap().contains("m.x")
                || header(m, "seldon").is_some_and(|h| h["value"] == "m.x")
            {
                ("team/m.x/", "team/m-x/")
            } else {
                ("team/m-x/", "team/m.x/")
            };
            assert!(tag_accepts(m, mine.0), "{own}");
            assert!(!tag_accepts(m, mine.1), "{own}");
        }
    }
}

#[test]
fn models_an_httproute_cannot_guard_are_refused_with_the_reason() {
    let settings = common::plain_gateway_api_settings();
    let many = (0..=MAX_SERVING_PREDICTORS)
        .fold(SeldonDeployment::fixture("models", "many"), |s, i| {
            s.predictor(&format!("p{i}"), 1)
        });
    let sdeps = [
        SeldonDeployment::fixture("models", "mesh")
            .predictor("main", 100)
            .gateway("mesh")
            .annotate("seldon.io/auth", "none"),
        SeldonDeployment::fixture("models", "elsewhere")
            .predictor("main", 100)
            .gateway("edge/public"),
        SeldonDeployment::fixture("models", "own")
            .predictor("main", 100)
            .gateway("own-gateway"),
        SeldonDeployment::fixture("models", "claims")
            .predictor("main", 100)
            .gateway("istio-system/other"),
        many,
        SeldonDeployment::fixture("models", "fine").predictor("main", 100),
    ];
    let gw = common::generate_first(&sdeps, &settings);
    let errors: BTreeMap<&str, String> = gw
        .models
        .iter()
        .filter_map(|m| {
            let e = m.objects.as_ref().err()?;
            Some((
                m.id.as_str(),
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ))
        })
        .collect();
    for (id, needle) in [
        ("models/mesh", "in-mesh routing is not generated"),
        ("models/elsewhere", "a Gateway in namespace istio-system"),
        ("models/own", "a Gateway in namespace istio-system"),
        ("models/claims", "tenancy.gatewayNamespaces"),
        ("models/many", "an HTTPRoute has at most 16 rules"),
    ] {
        assert!(
            errors.get(id).is_some_and(|e| e.contains(needle)),
            "{id}: {errors:?}"
        );
    }
    assert_eq!(errors.len(), 5, "{errors:?}");
    // The refused are denied by the filter, and have no route; the fine one has one.
    let routes = of_kind(&gw, "HTTPRoute");
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0]["metadata"]["name"], "fine");
    // The extension is attached to the default Gateway only.
    let extension = serde_json::to_value(&gw.extension).unwrap();
    assert_eq!(
        extension["spec"]["targetRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "seldon-gateway"}])
    );
}

/// A tenant may not grow the extension past its CRD's bound (16 Gateways): the models
/// naming one more Gateway than fits, the newest first, are refused; the others and the
/// extension stay as they are.
#[test]
fn the_gateways_the_extension_attaches_to_are_bounded() {
    let mut settings = common::plain_gateway_api_settings();
    settings.tenancy.gateway_namespaces = vec!["istio-system".into()];
    let sdeps: Vec<SeldonDeployment> = (0..20)
        .map(|i| {
            SeldonDeployment::fixture("models", &format!("m{i}"))
                .created(i)
                .predictor("main", 100)
                .gateway(&format!("istio-system/gw-{i}"))
        })
        .collect();
    let gw = common::generate_first(&sdeps, &settings);
    let extension = serde_json::to_value(&gw.extension).unwrap();
    let targets = extension["spec"]["targetRefs"].as_array().unwrap();
    assert_eq!(targets.len(), 16);
    assert_eq!(targets[0]["name"], "seldon-gateway");
    let refused: Vec<&str> = gw
        .models
        .iter()
        .filter(|m| m.objects.is_err())
        .map(|m| m.id.as_str())
        .collect();
    // The default takes one place: the 15 oldest models keep theirs.
    assert_eq!(
        refused,
        [
            "models/m15",
            "models/m16",
            "models/m17",
            "models/m18",
            "models/m19"
        ]
    );
    assert!(common::check_object(&extension).is_empty());
}

#[test]
fn what_gateway_api_cannot_say_is_a_warning_on_the_model() {
    let sdeps = [
        SeldonDeployment::fixture("models", "retries")
            .predictor("main", 100)
            .annotate("seldon.io/istio-retries", "3")
            .annotate("seldon.io/istio-retries-timeout", "2"),
        SeldonDeployment::fixture("models", "off")
            .predictor("main", 100)
            .annotate("seldon.io/istio-retries", "0"),
    ];
    let gw = common::generate_first(&sdeps, &common::plain_gateway_api_settings());
    let warnings: Vec<String> = gw.warnings().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("models/retries") && w.contains("no retry count")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("models/off") && w.contains("cannot turn retries off")),
        "{warnings:?}"
    );
    let route = of_kind(&gw, "HTTPRoute")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "retries")
        .unwrap();
    assert_eq!(
        route["spec"]["rules"][0]["timeouts"],
        json!({"backendRequest": "2s"})
    );
}

/// The HTTPRoute CRD's CEL rules are evaluated: what breaks them is refused here as the
/// API server would refuse it.
#[test]
fn the_httproute_crds_cel_rules_refuse_what_the_api_server_refuses() {
    let sdep = SeldonDeployment::fixture("models", "iris")
        .predictor("main", 80)
        .predictor("canary", 20);
    let gw = common::generate_first(&[sdep], &common::plain_gateway_api_settings());
    let route = of_kind(&gw, "HTTPRoute").remove(0);
    assert_eq!(common::check_object(&route), Vec::<String>::new());

    let cases: [(&str, common::crd::Break); 3] = [
        ("exactly one PathPrefix match", |r| {
            r["spec"]["rules"][0]["matches"][0]["path"] =
                json!({"type": "RegularExpression", "value": "/seldon/.*"})
        }),
        (
            "backendRequest timeout cannot be longer than request timeout",
            |r| {
                r["spec"]["rules"][0]["timeouts"] = json!({"request": "1s", "backendRequest": "2s"})
            },
        ),
        ("Only one of percent or fraction", |r| {
            r["spec"]["rules"][0]["filters"] = json!([{"type": "RequestMirror", "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "x", "port": 8000},
                "percent": 5, "fraction": {"numerator": 1, "denominator": 20}}}])
        }),
    ];
    common::crd::assert_refused(&route, &cases);
}

/// A model whose annotations broke keeps its live HTTPRoute (its last good
/// configuration): its Gateway keeps its place among the extension's targets before any
/// newer model's, so that route never loses the filter.
#[test]
fn a_model_kept_on_its_last_good_configuration_keeps_its_gateway_guarded() {
    let mut settings = common::plain_gateway_api_settings();
    settings.tenancy.gateway_namespaces = vec!["istio-system".into()];
    let on = |name: &str, gateway: &str, created: i64| {
        SeldonDeployment::fixture("models", name)
            .created(created)
            .predictor("main", 100)
            .gateway(&format!("istio-system/{gateway}"))
    };
    let mut sdeps: Vec<SeldonDeployment> = (1..=14)
        .map(|i| on(&format!("m{i}"), &format!("gw-{i}"), i))
        .collect();
    sdeps.push(on("kept", "zz-kept", 0));
    let first = common::generate_first(&sdeps, &settings);
    assert!(first.errors().next().is_none());
    let last_good: BTreeMap<String, _> = first
        .models
        .iter()
        .filter_map(|m| Some((m.id.clone(), m.known_good.clone()?)))
        .collect();

    // `kept` breaks; a newer model names one more Gateway.
    let broken = sdeps
        .pop()
        .unwrap()
        .annotate("seldon.io/auth-mode", "permissive");
    sdeps.push(broken);
    sdeps.push(on("newer", "aa-newer", 50));
    let second = common::generate_after(&sdeps, &settings, &last_good);
    let extension = serde_json::to_value(&second.extension).unwrap();
    let targets = common::names(&extension["spec"]["targetRefs"]);
    assert_eq!(targets.len(), 16, "{targets:?}");
    assert!(targets.contains(&"zz-kept"), "{targets:?}");
    assert!(!targets.contains(&"aa-newer"), "{targets:?}");
    let newer = second
        .models
        .iter()
        .find(|m| m.id == "models/newer")
        .unwrap();
    assert!(newer.objects.is_err());
}
