//! Managed Gateway API Gateways (`routing: gateway-api`), thinking like a tenant who controls
//! one namespace's SeldonDeployments: what is generated for a missing Gateway (checked
//! against the Gateway CRD and its CEL rules), whose routes it accepts, how many proxies
//! tenants can have created, and, against the in-memory API server, that managed ones are
//! created when missing and deleted when unused while Gateways modelgate did not create are
//! never touched, that a model that may not have its Gateway created is refused alone, that
//! a Gateway that cannot be applied holds back its own models only, and that a model kept
//! on its last good configuration keeps its Gateway.

mod common;

use std::collections::BTreeMap;

use common::fake_api::FakeApi;
use common::reconciling::{context, reconcile_all};
use modelgate_controller::generate::gateway_api_gateway::{
    MAX_CREATED_GATEWAYS, MAX_LISTED_NAMESPACES,
};
use modelgate_controller::reconcile::{Context, reconcile_global, reconcile_model};
use modelgate_controller::seldon::SeldonDeployment;
use modelgate_controller::settings::RoutingApi;
use modelgate_controller::{Generated, Settings};
use serde_json::{Value, json};

/// Where the fake API server keeps Gateway API Gateways (Istio's are `gateways`).
const GATEWAYS: &str = "gateways.gateway.networking.k8s.io";

/// Settings where every namespace's models may name Gateways in `istio-system`, and the
/// controller creates up to `max` of them besides the default.
fn open_settings(max: usize) -> Settings {
    let mut settings = common::plain_gateway_api_settings();
    settings.tenancy.gateway_namespaces = vec!["istio-system".into()];
    settings.gateway_api.max_created_gateways = max;
    settings.validate().unwrap();
    settings
}

fn gateways(generated: &Generated) -> BTreeMap<String, Value> {
    generated
        .objects()
        .into_iter()
        .filter(|o| o["kind"] == "Gateway")
        .map(|o| {
            assert_eq!(o["apiVersion"], "gateway.networking.k8s.io/v1");
            let key = format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            );
            (key, o)
        })
        .collect()
}

/// The namespaces a listener accepts routes from (`None`: all).
fn route_namespaces(listener: &Value) -> Option<Vec<String>> {
    let namespaces = &listener["allowedRoutes"]["namespaces"];
    if namespaces["from"] == "All" {
        return None;
    }
    assert_eq!(namespaces["from"], "Selector");
    let expressions = namespaces["selector"]["matchExpressions"]
        .as_array()
        .unwrap();
    assert_eq!(expressions.len(), 1);
    let expression = &expressions[0];
    assert_eq!(expression["key"], "kubernetes.io/metadata.name");
    assert_eq!(expression["operator"], "In");
    Some(
        expression["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
    )
}

fn on(namespace: &str, name: &str, gateway: &str) -> SeldonDeployment {
    SeldonDeployment::fixture(namespace, name)
        .predictor("main", 100)
        .gateway(gateway)
}

#[test]
fn a_missing_gateway_is_generated_accepting_routes_from_its_models_namespaces_only() {
    let mut settings = open_settings(1);
    settings.gateway_tls_secret = Some("seldon-ssl-cert".into());
    let sdeps = [
        on("bank", "fraud", "istio-system/seldon-gateway"),
        on("shop", "ranking", "istio-system/seldon-gateway"),
        on("risk", "score", "istio-system/risk-gateway"),
    ];
    let generated = common::generate_first(&sdeps, &settings);
    assert_eq!(generated.errors().count(), 0);
    let gateways = gateways(&generated);
    assert_eq!(
        gateways.keys().collect::<Vec<_>>(),
        ["istio-system/risk-gateway", "istio-system/seldon-gateway"]
    );
    for (id, gateway) in &gateways {
        assert_eq!(common::check_object(gateway), Vec::<String>::new(), "{id}");
        assert_eq!(gateway["spec"]["gatewayClassName"], "istio");
        assert!(
            gateway["spec"].get("addresses").is_none(),
            "automated deployment: the proxy istiod deploys carries the gateway-name label targetRefs reach"
        );
        assert_eq!(
            gateway["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "modelgate"
        );
        let listeners = gateway["spec"]["listeners"].as_array().unwrap();
        let ports: Vec<(u64, &str)> = listeners
            .iter()
            .map(|l| (l["port"].as_u64().unwrap(), l["protocol"].as_str().unwrap()))
            .collect();
        assert_eq!(ports, [(80, "HTTP"), (443, "HTTPS")], "{id}");
        assert_eq!(
            listeners[1]["tls"]["certificateRefs"][0]["name"],
            "seldon-ssl-cert"
        );
        for listener in listeners {
            assert_eq!(
                listener["allowedRoutes"]["kinds"],
                json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
            );
        }
    }
    // Another tenant's hand-written HTTPRoute cannot attach: only the models' namespaces.
    let default = &gateways["istio-system/seldon-gateway"]["spec"]["listeners"];
    for listener in default.as_array().unwrap() {
        assert_eq!(
            route_namespaces(listener),
            Some(vec!["bank".to_string(), "shop".to_string()])
        );
    }
    let risk = &gateways["istio-system/risk-gateway"]["spec"]["listeners"][0];
    assert_eq!(route_namespaces(risk), Some(vec!["risk".to_string()]));
    // The extension is attached to both.
    let extension = serde_json::to_value(&generated.extension).unwrap();
    let targets = common::names(&extension["spec"]["targetRefs"]);
    assert_eq!(targets, ["seldon-gateway", "risk-gateway"]);
}

/// A tenant may not start proxies at will: besides the default Gateway, the controller
/// creates at most `gatewayApi.maxCreatedGateways`, those of the oldest models first,
/// whatever the names; the models on the others are told, and keep their routes (the
/// platform may create those Gateways itself).
#[test]
fn tenants_cannot_have_more_proxies_created_than_the_bound() {
    let settings = open_settings(3);
    // Created in the reverse order of their names: the order is the models' age.
    let sdeps: Vec<SeldonDeployment> = (0..12)
        .map(|i| {
            on(
                &format!("tenant-{i}"),
                "m",
                &format!("istio-system/gw-{i:02}"),
            )
            .created(100 - i)
        })
        .chain([on("tenant-x", "late", "istio-system/seldon-gateway").created(500)])
        .collect();
    let generated = common::generate_first(&sdeps, &settings);
    assert_eq!(generated.errors().count(), 0, "a warning, not an error");
    let created: Vec<String> = gateways(&generated).into_keys().collect();
    assert_eq!(
        created,
        [
            "istio-system/gw-09",
            "istio-system/gw-10",
            "istio-system/gw-11",
            "istio-system/seldon-gateway"
        ],
        "the default, and the 3 Gateways of the oldest models"
    );
    let warned: Vec<&str> = generated
        .models
        .iter()
        .filter(|m| {
            m.warnings
                .iter()
                .any(|w| w.message.contains("gatewayApi.maxCreatedGateways"))
        })
        .map(|m| m.namespace.as_str())
        .collect();
    assert_eq!(warned.len(), 9, "{warned:?}");
    assert!(!warned.contains(&"tenant-11") && !warned.contains(&"tenant-x"));

    // 0, the default: no tenant can add a proxy at all.
    let generated = common::generate_first(&sdeps, &open_settings(0));
    assert_eq!(
        gateways(&generated).into_keys().collect::<Vec<_>>(),
        ["istio-system/seldon-gateway"]
    );
    // And the bound itself is bounded: one fewer than the extension's targetRefs.
    let mut settings = open_settings(0);
    settings.gateway_api.max_created_gateways = MAX_CREATED_GATEWAYS + 1;
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("gatewayApi.maxCreatedGateways"), "{error}");
}

/// Without `tenancy.gatewayNamespaces`, a tenant may only use the default Gateway: naming
/// another is an error on that model alone, and nothing is created for it.
#[test]
fn a_tenant_that_may_not_claim_a_gateway_gets_an_error_on_its_model_alone() {
    let mut settings = common::plain_gateway_api_settings();
    settings.gateway_api.max_created_gateways = 5;
    let sdeps = [
        on("bank", "fraud", "istio-system/seldon-gateway"),
        on("evil", "grab", "istio-system/evil-gateway"),
    ];
    let generated = common::generate_first(&sdeps, &settings);
    let errors: Vec<String> = generated.errors().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("evil/grab"), "{errors:?}");
    assert_eq!(
        gateways(&generated).into_keys().collect::<Vec<_>>(),
        ["istio-system/seldon-gateway"]
    );
    let default = &gateways(&generated)["istio-system/seldon-gateway"];
    assert_eq!(
        route_namespaces(&default["spec"]["listeners"][0]),
        Some(vec!["bank".to_string()]),
        "the refused model's namespace gets no access either"
    );
}

#[test]
fn past_the_listed_namespaces_bound_the_listeners_accept_every_namespace() {
    let settings = common::plain_gateway_api_settings();
    let sdeps: Vec<SeldonDeployment> = (0..=MAX_LISTED_NAMESPACES)
        .map(|i| on(&format!("ns-{i}"), "m", "istio-system/seldon-gateway"))
        .collect();
    let generated = common::generate_first(&sdeps, &settings);
    let gateway = &gateways(&generated)["istio-system/seldon-gateway"];
    assert_eq!(route_namespaces(&gateway["spec"]["listeners"][0]), None);
    assert!(common::check_object(gateway).is_empty());
    let generated = common::generate_first(&sdeps[..MAX_LISTED_NAMESPACES], &settings);
    let gateway = &gateways(&generated)["istio-system/seldon-gateway"];
    assert_eq!(
        route_namespaces(&gateway["spec"]["listeners"][0])
            .unwrap()
            .len(),
        MAX_LISTED_NAMESPACES
    );
}

/// The CEL rules of the vendored Gateway CRD are evaluated: a Gateway broken the ways the
/// API server refuses is refused here too, so the generated ones passing means something.
#[test]
fn the_gateway_crds_cel_rules_refuse_what_the_api_server_refuses() {
    let mut settings = common::plain_gateway_api_settings();
    settings.gateway_tls_secret = Some("seldon-ssl-cert".into());
    let generated = common::generate_first(
        &[on("bank", "fraud", "istio-system/seldon-gateway")],
        &settings,
    );
    let gateway = gateways(&generated)["istio-system/seldon-gateway"].clone();
    assert!(common::check_object(&gateway).is_empty());
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut g = gateway.clone();
        edit(&mut g);
        common::check_object(&g)
    };
    for (what, edit) in [
        (
            "HTTPS without a certificate",
            &(|g: &mut Value| {
                g["spec"]["listeners"][1]["tls"]["certificateRefs"] = json!([]);
            }) as &dyn Fn(&mut Value),
        ),
        ("TLS on HTTP", &|g: &mut Value| {
            g["spec"]["listeners"][0]["tls"] = g["spec"]["listeners"][1]["tls"].clone()
        }),
        ("two listeners of one name", &|g: &mut Value| {
            g["spec"]["listeners"][1]["name"] = "http".into();
        }),
    ] {
        assert!(!broken(edit).is_empty(), "{what} passes");
    }
}

// The same, against the in-memory API server.

fn errors_of(ctx: &Context, id: &str) -> Vec<String> {
    ctx.verdicts.lock().unwrap()[id]
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[tokio::test]
async fn a_managed_gateway_is_created_when_missing_kept_while_used_and_deleted_when_unused() {
    let api = FakeApi::default();
    let ctx = context(&api, open_settings(1));
    let all = [
        on("bank", "fraud", "istio-system/seldon-gateway").with_uid("u1"),
        on("risk", "score", "istio-system/risk-gateway").with_uid("u2"),
    ];
    reconcile_all(&ctx, &all).await;
    let writes = api.take_writes();
    let position = |prefix: &str| {
        writes
            .iter()
            .position(|w| w.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {writes:?}"))
    };
    assert!(
        position(&format!("PATCH {GATEWAYS} istio-system/risk-gateway"))
            < position("PATCH httproutes risk/"),
        "the Gateway before the route on it"
    );
    let stored = api.objects(GATEWAYS);
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        ["istio-system/risk-gateway", "istio-system/seldon-gateway"]
    );
    for gateway in stored.values() {
        assert_eq!(common::check_object(gateway), Vec::<String>::new());
    }
    assert!(api.objects("gateways").is_empty(), "no Istio Gateway");
    assert!(errors_of(&ctx, "bank/fraud").is_empty());

    // Nothing changed: the Gateways are read, not written.
    reconcile_all(&ctx, &all).await;
    assert_eq!(api.take_writes(), Vec::<String>::new());

    // A managed Gateway someone edited is put back as generated.
    let mut edited = api.get(GATEWAYS, "istio-system", "risk-gateway").unwrap();
    edited["spec"]["listeners"][0]["allowedRoutes"]["namespaces"] = json!({"from": "All"});
    api.insert(GATEWAYS, edited);
    reconcile_all(&ctx, &all).await;
    let restored = api.get(GATEWAYS, "istio-system", "risk-gateway").unwrap();
    assert_eq!(
        route_namespaces(&restored["spec"]["listeners"][0]),
        Some(vec!["risk".to_string()])
    );

    // risk's model goes (its HTTPRoute with it): its Gateway is deleted, the default stays.
    api.remove("httproutes", "risk", "score");
    reconcile_global(&ctx, &all[..1]).await.unwrap();
    let writes = api.take_writes();
    assert!(
        writes.contains(&format!("DELETE {GATEWAYS} istio-system/risk-gateway")),
        "{writes:?}"
    );
    assert!(
        api.get(GATEWAYS, "istio-system", "seldon-gateway")
            .is_some()
    );

    // Back to routing istio: the managed Gateway API Gateways go too.
    let mut istio = open_settings(1);
    istio.routing = RoutingApi::Istio;
    let ctx = context(&api, istio);
    reconcile_all(&ctx, &all[..1]).await;
    assert!(api.objects(GATEWAYS).is_empty());
    assert!(
        api.get("gateways", "istio-system", "seldon-gateway")
            .is_some()
    );
}

#[tokio::test]
async fn a_gateway_modelgate_did_not_create_is_never_modified_nor_deleted() {
    let api = FakeApi::default();
    let theirs = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "seldon-gateway", "namespace": "istio-system",
                     "labels": {"app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"gatewayClassName": "istio", "addresses": [{"type": "Hostname", "value": "ingress"}],
                 "listeners": [{"name": "web", "port": 8080, "protocol": "HTTP",
                                "allowedRoutes": {"namespaces": {"from": "All"}}}]}});
    api.insert(GATEWAYS, theirs.clone());
    let ctx = context(&api, common::plain_gateway_api_settings());
    let all = [on("bank", "fraud", "istio-system/seldon-gateway")];
    reconcile_all(&ctx, &all).await;
    let writes = api.take_writes();
    assert!(!writes.iter().any(|w| w.contains(GATEWAYS)), "{writes:?}");
    let mut live = api.get(GATEWAYS, "istio-system", "seldon-gateway").unwrap();
    live["metadata"].as_object_mut().unwrap().remove("uid");
    let mut expected = theirs;
    expected["metadata"].as_object_mut().unwrap().remove("uid");
    assert_eq!(live, expected);
    assert!(api.get("httproutes", "bank", "fraud").is_some());

    // No model uses it any more: still there.
    reconcile_global::<SeldonDeployment>(&ctx, &[])
        .await
        .unwrap();
    assert!(
        api.get(GATEWAYS, "istio-system", "seldon-gateway")
            .is_some()
    );
}

/// Past the bound, a model's Gateway is not created: the model gets an error (its route is
/// not written) once the controller finds the Gateway missing, and no other model is
/// affected. When the platform creates that Gateway, the model is served.
#[tokio::test]
async fn a_model_whose_gateway_is_past_the_bound_is_refused_alone_until_the_gateway_exists() {
    let api = FakeApi::default();
    let ctx = context(&api, open_settings(1));
    let all = [
        on("bank", "fraud", "istio-system/bank-gateway").created(1),
        on("evil", "grab", "istio-system/evil-gateway").created(2),
        on("shop", "ranking", "istio-system/seldon-gateway").created(3),
    ];
    reconcile_all(&ctx, &all).await;
    assert_eq!(
        api.objects(GATEWAYS).into_keys().collect::<Vec<_>>(),
        ["istio-system/bank-gateway", "istio-system/seldon-gateway"]
    );
    let errors = errors_of(&ctx, "evil/grab");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("does not exist"), "{errors:?}");
    assert!(api.get("httproutes", "evil", "grab").is_none());
    for id in ["bank/fraud", "shop/ranking"] {
        assert!(errors_of(&ctx, id).is_empty(), "{id}");
    }
    assert!(api.get("httproutes", "bank", "fraud").is_some());
    assert!(api.get("httproutes", "shop", "ranking").is_some());

    // The platform creates it: the model is served, and the Gateway stays the platform's.
    api.insert(
        GATEWAYS,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "evil-gateway", "namespace": "istio-system"},
               "spec": {"gatewayClassName": "istio", "listeners": []}}),
    );
    reconcile_all(&ctx, &all).await;
    assert!(errors_of(&ctx, "evil/grab").is_empty());
    assert!(api.get("httproutes", "evil", "grab").is_some());
    let writes = api.take_writes();
    assert!(
        !writes.iter().any(|w| w.contains("evil-gateway")),
        "{writes:?}"
    );
}

/// A Gateway that cannot be written fails on its own: its models are told and wait for its
/// retry, the extension and the other models' Gateways and routes go on.
#[tokio::test]
async fn a_gateway_that_cannot_be_applied_holds_back_its_models_alone() {
    let api = FakeApi::default();
    let ctx = context(&api, open_settings(1));
    let all = [
        on("bank", "fraud", "istio-system/seldon-gateway"),
        on("risk", "score", "istio-system/risk-gateway"),
    ];
    api.inject(
        http::Method::PATCH,
        "gateways/risk-gateway",
        common::fake_api::Fault::Status(500),
    );
    let outcome = reconcile_global(&ctx, &all).await.unwrap();
    assert!(!outcome.settled());
    for s in &all {
        reconcile_model(&ctx, s).await.unwrap();
    }
    assert!(
        api.get("wasmplugins", "istio-system", "modelgate")
            .is_some()
    );
    assert!(
        api.get(GATEWAYS, "istio-system", "seldon-gateway")
            .is_some()
    );
    assert!(api.get("httproutes", "bank", "fraud").is_some());
    assert!(api.get(GATEWAYS, "istio-system", "risk-gateway").is_none());
    let verdicts = ctx.verdicts.lock().unwrap().clone();
    assert!(
        verdicts["risk/score"]
            .warnings
            .iter()
            .any(|w| w.message.contains("retried")),
        "{:?}",
        verdicts["risk/score"]
    );
    assert!(verdicts["bank/fraud"].warnings.is_empty());
}

/// A model whose annotations stop parsing keeps its last good configuration, its route
/// included: the managed Gateway that route is on stays.
#[tokio::test]
async fn a_model_kept_on_its_last_good_configuration_keeps_its_managed_gateway() {
    let api = FakeApi::default();
    let ctx = context(&api, open_settings(1));
    let good = on("risk", "score", "istio-system/risk-gateway").with_uid("u2");
    reconcile_all(&ctx, std::slice::from_ref(&good)).await;
    assert!(api.get(GATEWAYS, "istio-system", "risk-gateway").is_some());
    api.take_writes();

    let broken = good.annotate(
        modelgate_controller::annotations::ISTIO_GATEWAY,
        "not a gateway/at all/x",
    );
    reconcile_all(&ctx, std::slice::from_ref(&broken)).await;
    assert!(!errors_of(&ctx, "risk/score").is_empty());
    assert!(api.get(GATEWAYS, "istio-system", "risk-gateway").is_some());
    assert!(api.get("httproutes", "risk", "score").is_some());
    let writes = api.take_writes();
    assert!(
        !writes.iter().any(|w| w.contains("risk-gateway")),
        "{writes:?}"
    );
}

/// Generation orders the Gateways still to create by their oldest model, but a Gateway the
/// controller created keeps its place while models name it: a tenant's old model that
/// comes to name a new Gateway cannot take a newer tenant's Gateway (and its proxy) away.
#[tokio::test]
async fn an_older_model_moving_to_a_new_gateway_never_takes_a_created_one_away() {
    let api = FakeApi::default();
    let ctx = context(&api, open_settings(1));
    let old = on("evil", "grab", "istio-system/seldon-gateway").created(1);
    let young = on("risk", "score", "istio-system/risk-gateway").created(10);
    reconcile_all(&ctx, &[old.clone(), young.clone()]).await;
    assert!(api.get(GATEWAYS, "istio-system", "risk-gateway").is_some());
    api.take_writes();

    let moved = old.gateway("istio-system/evil-gateway");
    let all = [moved, young];
    // Render alone would pick evil-gateway, the older model's.
    let rendered = common::generate_first(&all, &open_settings(1));
    assert!(gateways(&rendered).contains_key("istio-system/evil-gateway"));

    reconcile_all(&ctx, &all).await;
    let writes = api.take_writes();
    assert!(
        !writes.iter().any(|w| w.contains("risk-gateway")),
        "{writes:?}"
    );
    assert!(api.get(GATEWAYS, "istio-system", "evil-gateway").is_none());
    assert!(errors_of(&ctx, "risk/score").is_empty());
    assert!(!errors_of(&ctx, "evil/grab").is_empty());
    // The default no model uses any more is gone; risk's stays.
    assert_eq!(
        api.objects(GATEWAYS).into_keys().collect::<Vec<_>>(),
        ["istio-system/risk-gateway"]
    );

    // The platform lowers the bound to 0: only the default may remain, so risk's goes.
    let ctx = context(&api, open_settings(0));
    reconcile_global(&ctx, &all).await.unwrap();
    assert!(api.objects(GATEWAYS).is_empty());
}
