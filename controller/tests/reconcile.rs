//! The reconcile loop against the in-memory API server: first apply, no writes when nothing
//! changed, cleanup of removed predictors and unreferenced managed Gateways, isolation of
//! a bad SeldonDeployment, retries of API errors, and changes of extension kind and of
//! routing API.

mod common;

use common::fake_api::FakeApi;
use common::reconciling::reconcile_all;
use http::Method;
use modelgate_controller::annotations::{AUTH_MODE, ISTIO_RETRIES, JWT_AUDIENCES};
use modelgate_controller::reconcile::{Context, reconcile_global, reconcile_model};
use modelgate_controller::seldon::SeldonDeployment;
use modelgate_controller::settings::{ExtensionKind, RoutingApi};
use serde_json::json;

/// `models/<name>` on `gateway`.
fn model(name: &str, gateway: &str) -> SeldonDeployment {
    SeldonDeployment::fixture("models", name).gateway(gateway)
}

fn context(api: &FakeApi) -> Context {
    common::reconciling::context(api, common::reconciling::edge_settings())
}

fn plugin_models(api: &FakeApi) -> serde_json::Value {
    api.get("wasmplugins", "istio-system", "modelgate").unwrap()["spec"]["pluginConfig"]["models"]
        .clone()
}

#[tokio::test]
async fn first_apply_then_no_writes_while_nothing_changes() {
    let api = FakeApi::default();
    let ctx = context(&api);
    let all = [model("iris", "seldon-gateway")
        .with_uid("u1")
        .predictor("main", 75)
        .predictor("canary", 25)];
    reconcile_all(&ctx, &all).await;
    let writes = api.take_writes();
    let mut kinds: Vec<String> = writes
        .iter()
        .map(|w| w.split('?').next().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "PATCH destinationrules models/iris-canary",
            "PATCH destinationrules models/iris-main",
            "PATCH gateways models/seldon-gateway",
            "PATCH virtualservices models/iris",
            "PATCH wasmplugins istio-system/modelgate",
        ]
    );
    assert!(
        writes
            .iter()
            .all(|w| w.contains("fieldManager=modelgate") && w.contains("force=true")),
        "{writes:?}"
    );
    let vs = api.get("virtualservices", "models", "iris").unwrap();
    assert_eq!(vs["metadata"]["ownerReferences"][0]["uid"], "u1");
    assert_eq!(
        plugin_models(&api)["models/iris"]["routing"]["predictors"][1]["name"],
        "canary"
    );

    reconcile_all(&ctx, &all).await;
    assert_eq!(api.take_writes(), Vec::<String>::new());
    // A fresh controller (after a restart) finds everything in place too.
    let fresh = context(&api);
    reconcile_all(&fresh, &all).await;
    assert_eq!(api.take_writes(), Vec::<String>::new());
}

#[tokio::test]
async fn a_removed_predictor_takes_its_destination_rule_along() {
    let api = FakeApi::default();
    let ctx = context(&api);
    let before = model("iris", "seldon-gateway")
        .predictor("main", 75)
        .predictor("canary", 25);
    reconcile_all(&ctx, &[before]).await;
    api.take_writes();
    let after = [model("iris", "seldon-gateway").predictor("main", 100)];
    reconcile_all(&ctx, &after).await;
    let writes = api.take_writes();
    assert!(
        writes.contains(&"DELETE destinationrules models/iris-canary".to_string()),
        "{writes:?}"
    );
    assert!(api.get("destinationrules", "models", "iris-main").is_some());
    assert!(plugin_models(&api)["models/iris"].get("routing").is_none());
}

#[tokio::test]
async fn the_last_reference_to_a_managed_gateway_deletes_it_and_unmanaged_ones_are_never_touched() {
    let api = FakeApi::default();
    api.insert(
        "gateways",
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": "theirs", "namespace": "edge"},
               "spec": {"selector": {"app": "x"}, "servers": []}}),
    );
    let ctx = context(&api);
    let all = vec![
        model("a", "edge/ours").predictor("p", 100),
        model("b", "edge/theirs").predictor("p", 100),
        model("c", "seldon-gateway").predictor("p", 100),
    ];
    reconcile_all(&ctx, &all).await;
    let writes = api.take_writes();
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("PATCH gateways edge/ours")),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|w| w.contains("edge/theirs")),
        "{writes:?}"
    );
    assert_eq!(
        api.get("gateways", "edge", "theirs").unwrap()["spec"]["selector"]["app"],
        "x"
    );

    // The user deletes a and b; the API server's garbage collector takes their objects.
    api.remove("seldondeployments", "models", "a");
    api.remove("virtualservices", "models", "a");
    let remaining: Vec<SeldonDeployment> = all.into_iter().filter(|s| s.name() == "c").collect();
    reconcile_global(&ctx, &remaining).await.unwrap();
    let writes = api.take_writes();
    assert!(
        writes.contains(&"DELETE gateways edge/ours".to_string()),
        "{writes:?}"
    );
    assert!(
        api.get("gateways", "edge", "theirs").is_some(),
        "unmanaged gateways stay"
    );
    assert!(api.get("gateways", "models", "seldon-gateway").is_some());
    let models = plugin_models(&api);
    assert!(
        models.get("models/a").is_none() && models.get("models/b").is_none(),
        "{models}"
    );
    assert!(models.get("models/c").is_some());
}

#[tokio::test]
async fn a_bad_annotation_keeps_the_last_good_config_and_leaves_the_others_alone() {
    let api = FakeApi::default();
    let ctx = context(&api);
    let a = model("a", "seldon-gateway")
        .predictor("p", 100)
        .annotate(JWT_AUDIENCES, "team-a");
    let good = [a.clone(), model("b", "seldon-gateway").predictor("p", 100)];
    reconcile_all(&ctx, &good).await;
    api.take_writes();
    let before_policy = plugin_models(&api)["models/a"]["policy"].clone();

    let bad = [
        a.annotate(AUTH_MODE, "permissive"),
        model("b", "seldon-gateway")
            .predictor("p", 50)
            .predictor("q", 50),
        model("c", "seldon-gateway")
            .predictor("p", 100)
            .annotate(ISTIO_RETRIES, "lots"),
    ];
    reconcile_all(&ctx, &bad).await;
    let writes = api.take_writes();
    assert!(
        !writes.iter().any(|w| w.contains("models/a")),
        "a's objects stay as they were: {writes:?}"
    );
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("PATCH virtualservices models/b")),
        "b goes on: {writes:?}"
    );
    assert!(api.get("virtualservices", "models", "c").is_none());
    let models = plugin_models(&api);
    assert_eq!(
        models["models/a"]["policy"], before_policy,
        "a keeps its last good policy"
    );
    let c_policy = models["models/c"]["policy"].as_str().unwrap().to_string();
    let policies = api.get("wasmplugins", "istio-system", "modelgate").unwrap()["spec"]["pluginConfig"]["policies"].clone();
    assert_eq!(
        policies[&c_policy]["auth"], "deny",
        "c never had a good config: {policies}"
    );
}

#[tokio::test]
async fn api_errors_fail_the_reconcile_which_backs_off_and_succeeds_on_retry() {
    let api = FakeApi::default();
    let ctx = context(&api);
    let all = [model("iris", "seldon-gateway").predictor("main", 100)];
    reconcile_global(&ctx, &all).await.unwrap();
    api.fail_next(Method::PATCH, "virtualservices");
    let err = reconcile_model(&ctx, &all[0]).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("apply VirtualService models/iris"),
        "{err}"
    );
    let first = ctx.failed("models/iris");
    api.fail_next(Method::GET, "destinationrules");
    assert!(reconcile_model(&ctx, &all[0]).await.is_err());
    let second = ctx.failed("models/iris");
    assert!(second > first, "{first:?} then {second:?}");
    reconcile_model(&ctx, &all[0]).await.unwrap();
    assert!(api.get("virtualservices", "models", "iris").is_some());
    assert!(api.get("destinationrules", "models", "iris-main").is_some());
    // A Gateway that cannot be read fails on its own; the WasmPlugin is applied anyway.
    api.remove("wasmplugins", "istio-system", "modelgate");
    api.fail_next(Method::GET, "gateways");
    let outcome = reconcile_global(&ctx, &all).await.unwrap();
    assert!(!outcome.settled(), "{outcome:?}");
    assert!(
        api.get("wasmplugins", "istio-system", "modelgate")
            .is_some()
    );
    api.fail_next(Method::GET, "wasmplugins");
    assert!(reconcile_global(&ctx, &all).await.is_err());
}

/// `extensionKind` changed at run time (or `auto` settling on TrafficExtension after an
/// Istio upgrade): the new kind's object is applied first and carries the same
/// configuration, then modelgate's object of the old kind is deleted, so the gateway is
/// never without the filter. An object of the other kind modelgate did not make stays.
#[tokio::test]
async fn a_change_of_extension_kind_applies_the_new_object_before_deleting_the_old() {
    let api = FakeApi::default();
    let all = [model("iris", "seldon-gateway")
        .with_uid("u1")
        .predictor("main", 100)];
    let with_kind = |kind| {
        let mut settings = common::reconciling::edge_settings();
        settings.extension_kind = kind;
        common::reconciling::context(&api, settings)
    };
    reconcile_all(&with_kind(ExtensionKind::WasmPlugin), &all).await;
    let before = plugin_models(&api);
    assert!(before["models/iris"].is_object(), "{before}");
    api.take_writes();

    for (kind, new, old) in [
        (
            ExtensionKind::TrafficExtension,
            "trafficextensions",
            "wasmplugins",
        ),
        (
            ExtensionKind::WasmPlugin,
            "wasmplugins",
            "trafficextensions",
        ),
    ] {
        reconcile_all(&with_kind(kind), &all).await;
        let writes = api.take_writes();
        let position = |prefix: String| {
            writes
                .iter()
                .position(|w| w.starts_with(&prefix))
                .unwrap_or_else(|| panic!("{kind}: no {prefix}: {writes:?}"))
        };
        let applied = position(format!("PATCH {new} istio-system/modelgate"));
        let deleted = position(format!("DELETE {old} istio-system/modelgate"));
        assert!(applied < deleted, "{kind}: {writes:?}");
        assert!(
            api.get(old, "istio-system", "modelgate").is_none(),
            "{kind}"
        );
        let object = api.get(new, "istio-system", "modelgate").unwrap();
        let config = match kind {
            ExtensionKind::TrafficExtension => &object["spec"]["wasm"]["pluginConfig"],
            _ => &object["spec"]["pluginConfig"],
        };
        assert_eq!(config["models"], before, "{kind}");
    }

    // Someone else's TrafficExtension of that name is not modelgate's to delete.
    api.insert(
        "trafficextensions",
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "TrafficExtension",
            "metadata": {"name": "modelgate", "namespace": "istio-system"},
            "spec": {"phase": "STATS", "wasm": {"url": "oci://registry/other:1", "pluginName": "other", "pluginConfig": {}, "failStrategy": "FAIL_OPEN"}},
        }),
    );
    reconcile_all(&with_kind(ExtensionKind::WasmPlugin), &all).await;
    assert!(
        api.get("trafficextensions", "istio-system", "modelgate")
            .is_some()
    );
    assert!(
        !api.take_writes().iter().any(|w| w.starts_with("DELETE")),
        "an unmanaged object was deleted"
    );
}

/// `routing: gateway-api` and back: each model's new route object is applied before its
/// old one is deleted, the extension moves from the gateway pods' selector to the
/// Gateway's targetRefs, and the managed Istio Gateway no model uses any more goes.
#[tokio::test]
async fn a_change_of_routing_applies_the_new_route_before_deleting_the_old() {
    let api = FakeApi::default();
    let all = [SeldonDeployment::fixture("models", "iris")
        .with_uid("u1")
        .predictor("main", 60)
        .predictor("canary", 40)];
    let with_routing = |routing| {
        let mut settings = common::reconciling::edge_settings();
        settings.routing = routing;
        common::reconciling::context(&api, settings)
    };
    reconcile_all(&with_routing(RoutingApi::Istio), &all).await;
    assert!(api.get("virtualservices", "models", "iris").is_some());
    assert!(
        api.get("gateways", "istio-system", "seldon-gateway")
            .is_some()
    );
    api.take_writes();

    reconcile_all(&with_routing(RoutingApi::GatewayApi), &all).await;
    let writes = api.take_writes();
    let position = |writes: &[String], prefix: &str| {
        writes
            .iter()
            .position(|w| w.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {writes:?}"))
    };
    assert!(
        position(&writes, "PATCH httproutes models/iris")
            < position(&writes, "DELETE virtualservices models/iris"),
        "{writes:?}"
    );
    assert!(api.get("virtualservices", "models", "iris").is_none());
    let route = api.get("httproutes", "models", "iris").unwrap();
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "istio-system", "name": "seldon-gateway"}])
    );
    // Both predictors' rules are there: the filter the extension carries sets the header.
    let rules = common::names(&route["spec"]["rules"]);
    assert_eq!(
        rules,
        [
            "rest-main",
            "rest-canary",
            "grpc-main",
            "grpc-canary",
            "rest",
            "grpc"
        ]
    );
    let plugin = api.get("wasmplugins", "istio-system", "modelgate").unwrap();
    assert!(plugin["spec"].get("selector").is_none(), "{plugin}");
    assert_eq!(
        plugin["spec"]["targetRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "seldon-gateway"}])
    );
    assert!(plugin_models(&api)["models/iris"].is_object());
    assert!(
        api.get("gateways", "istio-system", "seldon-gateway")
            .is_none(),
        "the managed Istio Gateway no model uses"
    );

    reconcile_all(&with_routing(RoutingApi::Istio), &all).await;
    let writes = api.take_writes();
    assert!(
        position(&writes, "PATCH virtualservices models/iris")
            < position(&writes, "DELETE httproutes models/iris"),
        "{writes:?}"
    );
    assert!(api.get("httproutes", "models", "iris").is_none());
    let plugin = api.get("wasmplugins", "istio-system", "modelgate").unwrap();
    assert!(plugin["spec"].get("targetRefs").is_none(), "{plugin}");
    assert!(plugin["spec"]["selector"].is_object());
}

#[tokio::test]
async fn by_reference_the_wasm_plugin_names_a_document_published_first_and_stays_unwritten_while_nothing_changes()
 {
    use modelgate_controller::generate::by_reference::ConfigByReference;
    use modelgate_core::config::{FilterConfig, ReferenceDocument};

    let api = FakeApi::default();
    let mut ctx = context(&api);
    ctx.settings.config_by_reference = ConfigByReference::Always;
    let all = [
        model("a", "seldon-gateway").predictor("p", 100),
        model("b", "seldon-gateway")
            .predictor("p", 50)
            .predictor("q", 50),
    ];
    reconcile_all(&ctx, &all).await;
    let plugin_config =
        api.get("wasmplugins", "istio-system", "modelgate").unwrap()["spec"]["pluginConfig"]
            .clone();
    assert!(plugin_config.get("models").is_none(), "{plugin_config}");
    let reference: ReferenceDocument = serde_json::from_value(plugin_config).unwrap();
    let document = ctx
        .documents
        .cached(&reference.reference.sha256)
        .expect("the document the WasmPlugin names is served");
    modelgate_core::by_reference::verify(&document, &reference.reference).unwrap();
    let config: FilterConfig = serde_json::from_slice(&document).unwrap();
    assert_eq!(
        config.models.keys().collect::<Vec<_>>(),
        ["models/a", "models/b"]
    );
    assert!(config.models["models/b"].routing.is_some());
    // What the filter compiles (the keys are not fetched here: their policies deny).
    let (compiled, _) = modelgate_core::CompiledConfig::from_json(&document).unwrap();
    assert_eq!(compiled.models.len(), 2);

    // The same models again: the same document, the same reference, nothing written.
    api.take_writes();
    reconcile_all(&ctx, &all).await;
    assert_eq!(api.take_writes(), Vec::<String>::new());
}

/// Lists every stored object of `plural` into the cache `live`, as a watch's first list does.
fn list_into<K>(api: &FakeApi, plural: &str, live: &modelgate_controller::reconcile::live::LiveKind)
where
    K: kube::Resource + serde::Serialize + serde::de::DeserializeOwned,
{
    use kube::runtime::watcher::Event;
    live.observe(&Event::<K>::Init);
    for name in api.names(plural) {
        let (namespace, name) = name.split_once('/').unwrap();
        let object: K = serde_json::from_value(api.get(plural, namespace, name).unwrap()).unwrap();
        live.observe(&Event::InitApply(object));
    }
    live.observe(&Event::<K>::InitDone);
}

#[tokio::test]
async fn with_the_watches_listed_a_reconcile_reads_none_of_its_objects_and_writes_what_differs() {
    use modelgate_controller::istio::{DestinationRule, VirtualService};
    let api = FakeApi::default();
    let ctx = context(&api);
    let both = model("iris", "seldon-gateway")
        .with_uid("u1")
        .predictor("main", 75)
        .predictor("canary", 25);
    reconcile_all(&ctx, std::slice::from_ref(&both)).await;
    list_into::<VirtualService>(&api, "virtualservices", &ctx.live.virtual_services);
    list_into::<DestinationRule>(&api, "destinationrules", &ctx.live.destination_rules);
    api.take_writes();
    api.take_requests();

    // Nothing changed: no request at all about the model's objects, and no write.
    reconcile_model(&ctx, &both).await.unwrap();
    let requests = api.take_requests();
    assert!(
        !requests.iter().any(|r| r.contains("virtualservices")
            || r.contains("destinationrules")
            || r.contains("httproutes")
            || r.contains("authorizationpolicies")),
        "{requests:?}"
    );
    assert!(api.take_writes().is_empty());

    // Someone edits the VirtualService; the watch reports it; the next reconcile puts it back.
    let mut edited = api.get("virtualservices", "models", "iris").unwrap();
    edited["spec"]["hosts"] = json!(["elsewhere.example"]);
    api.insert("virtualservices", edited.clone());
    ctx.live
        .virtual_services
        .observe(&kube::runtime::watcher::Event::Apply(
            serde_json::from_value::<VirtualService>(edited).unwrap(),
        ));
    reconcile_model(&ctx, &both).await.unwrap();
    let writes = api.take_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("PATCH virtualservices models/iris"));
    // Its own write is in the cache at once: the reconcile after it writes nothing.
    reconcile_model(&ctx, &both).await.unwrap();
    assert!(api.take_writes().is_empty());

    // A predictor removed: its DestinationRule is found in the cache and deleted.
    let main_only = model("iris", "seldon-gateway")
        .with_uid("u1")
        .predictor("main", 100);
    reconcile_all(&ctx, std::slice::from_ref(&main_only)).await;
    let requests = api.take_requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("GET") && r.contains("destinationrules")),
        "{requests:?}"
    );
    assert_eq!(api.names("destinationrules"), ["models/iris-main"]);
}

/// A context whose referenced configurations are stored in the cluster, as `run` makes it.
fn stored_context(api: &FakeApi) -> Context {
    use modelgate_controller::config_documents::ConfigDocuments;
    use modelgate_controller::generate::by_reference::ConfigByReference;
    let mut settings = common::reconciling::edge_settings();
    settings.config_by_reference = ConfigByReference::Always;
    let wasm = common::test_wasm(&settings);
    let client = api.client(&settings);
    let mut ctx = Context::new(client.clone(), settings, wasm, None);
    ctx.documents = ConfigDocuments::stored(
        client,
        "modelgate-system".into(),
        ctx.settings.referenced_config_max_bytes,
        ctx.api_timeout,
    );
    ctx
}

fn referenced_sha256(api: &FakeApi) -> String {
    let config =
        api.get("wasmplugins", "istio-system", "modelgate").unwrap()["spec"]["pluginConfig"]
            .clone();
    let reference: modelgate_core::config::ReferenceDocument =
        serde_json::from_value(config).unwrap();
    reference.reference.sha256
}

#[tokio::test]
async fn a_stored_reference_is_served_by_any_replica_and_recovered_by_a_new_leader() {
    use modelgate_core::config::{FilterConfig, Policy};
    let api = FakeApi::default();
    let leader = stored_context(&api);
    let keys = common::fetched_keys();
    leader.jwks.track(&keys.keys().cloned().collect());
    for (uri, set) in keys {
        leader.jwks.keep(&uri, set);
    }
    let valid = model("a", "seldon-gateway")
        .with_uid("ua")
        .predictor("p", 100);
    reconcile_all(&leader, std::slice::from_ref(&valid)).await;
    let sha256 = referenced_sha256(&api);
    let stored = api.names("configmaps");
    assert_eq!(
        stored,
        [format!(
            "modelgate-system/modelgate-config-{}-0",
            &sha256[..32]
        )]
    );

    // A follower (nothing in memory) answers from the ConfigMaps, byte for byte.
    let follower = stored_context(&api);
    assert!(follower.documents.cached(&sha256).is_none());
    let served = follower.documents.get(&sha256).await.expect("read back");
    assert_eq!(
        served,
        leader.documents.cached(&sha256).expect("the leader's")
    );
    // A hash stored nowhere: one read, then remembered for a while.
    api.take_requests();
    let made_up = "0".repeat(64);
    assert!(follower.documents.get(&made_up).await.is_none());
    assert!(follower.documents.get(&made_up).await.is_none());
    assert!(follower.documents.get("not-a-hash").await.is_none());
    assert_eq!(api.take_requests().len(), 1);

    // The model breaks; a new leader, knowing nothing, keeps its last good entry from the
    // document the live reference names (it would be denied without it).
    let broken = model("a", "seldon-gateway")
        .with_uid("ua")
        .predictor("p", 100)
        .annotate(AUTH_MODE, "sometimes");
    let new_leader = stored_context(&api);
    reconcile_global(&new_leader, std::slice::from_ref(&broken))
        .await
        .unwrap();
    let document = new_leader
        .documents
        .get(&referenced_sha256(&api))
        .await
        .unwrap();
    let policy_of = |document: &[u8]| -> Policy {
        let config: FilterConfig = serde_json::from_slice(document).unwrap();
        config.policies[&config.models["models/a"].policy].clone()
    };
    let recovered = policy_of(&document);
    assert_eq!(recovered, policy_of(&served));
    assert!(
        !matches!(&recovered, Policy::Deny { reason } if reason.starts_with("no valid configuration")),
        "{recovered:?}"
    );
}

#[tokio::test]
async fn stored_references_older_than_the_kept_ones_are_deleted() {
    use modelgate_controller::config_documents::KEPT_DOCUMENTS;
    let api = FakeApi::default();
    let ctx = stored_context(&api);
    let mut all = Vec::new();
    let mut shas = Vec::new();
    for i in 0..KEPT_DOCUMENTS + 2 {
        all.push(model(&format!("m{i}"), "seldon-gateway").predictor("p", 100));
        reconcile_all(&ctx, &all).await;
        shas.push(referenced_sha256(&api));
    }
    let mut expected: Vec<String> = shas[shas.len() - KEPT_DOCUMENTS..]
        .iter()
        .map(|s| format!("modelgate-system/modelgate-config-{}-0", &s[..32]))
        .collect();
    expected.sort();
    assert_eq!(api.names("configmaps"), expected);
}

#[tokio::test]
async fn the_shared_pass_names_the_models_it_admits_once() {
    let api = FakeApi::default();
    let ctx = context(&api);
    let first = model("iris", "seldon-gateway").predictor("main", 100);
    let outcome = reconcile_global(&ctx, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(outcome.admitted, ["models/iris"]);
    // Nothing changed: nobody to wake.
    let outcome = reconcile_global(&ctx, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert!(outcome.admitted.is_empty() && outcome.changed.is_empty());
    // A new model, and a changed one, are admitted as they are now.
    let changed = model("iris", "seldon-gateway")
        .predictor("main", 50)
        .predictor("canary", 50);
    let second = model("wine", "seldon-gateway").predictor("main", 100);
    let outcome = reconcile_global(&ctx, &[changed, second]).await.unwrap();
    assert_eq!(outcome.admitted, ["models/iris", "models/wine"]);
}

/// An object of `kind` (`apiVersion` `api_version`) left in the cluster, managed by
/// modelgate or not.
/// Models `m<i>` on `seldon-gateway`, uid `u<i>`, one predictor each.
fn models_m(range: std::ops::Range<usize>) -> Vec<SeldonDeployment> {
    range
        .map(|i| {
            model(&format!("m{i}"), "seldon-gateway")
                .with_uid(&format!("u{i}"))
                .predictor("p", 100)
        })
        .collect()
}

fn leftover(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    managed: bool,
) -> serde_json::Value {
    let labels = if managed {
        json!({"app.kubernetes.io/managed-by": "modelgate", "modelgate.seldon.io/seldon-deployment": name})
    } else {
        json!({"team": "theirs"})
    };
    let spec = match kind {
        "HTTPRoute" => json!({"parentRefs": [], "rules": []}),
        _ => json!({"selector": {"matchLabels": {"app": name}}, "action": "ALLOW", "rules": []}),
    };
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": namespace, "labels": labels},
           "spec": spec})
}

const HTTP_ROUTES: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/models/httproutes";
const POLICIES: &str = "/apis/security.istio.io/v1/namespaces/models/authorizationpolicies";

/// The shared objects, then every model at once (each reconcile on its own task, as `run`
/// has them), until no model waits and nothing is held.
async fn reconcile_concurrently(ctx: &std::sync::Arc<Context>, sdeps: &[SeldonDeployment]) {
    for _ in 0..5 {
        let settled = reconcile_global(ctx, sdeps).await.unwrap().settled();
        let tasks: Vec<_> = sdeps
            .iter()
            .map(|s| {
                let (ctx, s) = (ctx.clone(), s.clone());
                tokio::spawn(async move { reconcile_model(&ctx, &s).await.unwrap().waiting })
            })
            .collect();
        let mut waiting = false;
        for task in tasks {
            waiting |= task.await.unwrap();
        }
        if settled && !waiting {
            return;
        }
    }
    panic!("does not settle");
}

/// With `routing: istio` and AuthorizationPolicies off, neither HTTPRoutes nor policies are
/// watched: what an earlier process left of them (managed) is found with one list per kind
/// and namespace, not a read per model, however many models reconcile at once; each
/// model's is deleted once, and objects modelgate did not make are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_unwatched_kinds_cost_one_list_per_namespace_and_are_deleted_once() {
    use common::fake_api::Fault;
    let api = FakeApi::default();
    for (api_version, kind, plural) in [
        ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
        (
            "security.istio.io/v1",
            "AuthorizationPolicy",
            "authorizationpolicies",
        ),
    ] {
        // m0's managed, m1's someone else's, and a managed one of another namespace.
        api.insert(plural, leftover(api_version, kind, "models", "m0", true));
        api.insert(plural, leftover(api_version, kind, "models", "m1", false));
        api.insert(plural, leftover(api_version, kind, "other", "m2", true));
    }
    let ctx = std::sync::Arc::new(context(&api));
    assert!(!ctx.settings.authorization_policy);
    let all = models_m(0..8);
    // Each list answers late: every model's sweep is under way before it is done.
    api.inject(
        Method::GET,
        HTTP_ROUTES,
        Fault::Delay(std::time::Duration::from_millis(200)),
    );
    api.inject(
        Method::GET,
        POLICIES,
        Fault::Delay(std::time::Duration::from_millis(200)),
    );
    reconcile_concurrently(&ctx, &all).await;
    assert_eq!(api.pending_faults(), 0);
    let requests = api.take_requests();
    let of = |plural: &str| -> Vec<&str> {
        requests
            .iter()
            .map(String::as_str)
            .filter(|r| r.contains(plural))
            .collect()
    };
    assert_eq!(
        of("httproutes"),
        [
            format!("GET {HTTP_ROUTES}"),
            format!("DELETE {HTTP_ROUTES}/m0")
        ]
    );
    assert_eq!(
        of("authorizationpolicies"),
        [format!("GET {POLICIES}"), format!("DELETE {POLICIES}/m0")]
    );
    for plural in ["httproutes", "authorizationpolicies"] {
        assert_eq!(api.names(plural), ["models/m1", "other/m2"], "{plural}");
    }
    // The deleted ones are forgotten: looked for again (as after the model is removed and
    // added back), nothing is listed, read or deleted again.
    assert_eq!(ctx.live.unwatched.names(), 0);
    ctx.swept.lock().unwrap().clear();
    reconcile_concurrently(&ctx, &all).await;
    let requests = api.take_requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("httproutes") || r.contains("authorizationpolicies")),
        "{requests:?}"
    );
    // Once the namespace has no model, what was listed of it is forgotten: its models
    // going and coming back list it anew, once per kind (a leftover made meanwhile is
    // found).
    reconcile_global::<SeldonDeployment>(&ctx, &[])
        .await
        .unwrap();
    ctx.swept.lock().unwrap().clear();
    reconcile_concurrently(&ctx, &all).await;
    let requests = api.take_requests();
    for list in [format!("GET {HTTP_ROUTES}"), format!("GET {POLICIES}")] {
        assert_eq!(
            requests.iter().filter(|r| **r == list).count(),
            1,
            "{requests:?}"
        );
    }
}

/// A list the API server refuses (an RBAC from before the list, 403) or cannot answer: each
/// model's object is read instead, as before, and the models do not fail for it. A kind the
/// cluster does not serve (404: its CRD is not installed) has nothing to remove.
#[tokio::test]
async fn a_list_that_fails_falls_back_to_a_read_per_model() {
    use common::fake_api::Fault;
    let api = FakeApi::default();
    api.insert(
        "httproutes",
        leftover(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "models",
            "m0",
            true,
        ),
    );
    api.insert(
        "httproutes",
        leftover(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "models",
            "m1",
            false,
        ),
    );
    let ctx = context(&api);
    let all = models_m(0..3);
    api.inject(Method::GET, HTTP_ROUTES, Fault::Status(403));
    api.inject(Method::GET, POLICIES, Fault::Status(404));
    reconcile_all(&ctx, &all).await;
    assert_eq!(api.pending_faults(), 0);
    let requests = api.take_requests();
    let routes: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("httproutes"))
        .collect();
    let mut expected = vec![format!("GET {HTTP_ROUTES}")];
    for i in 0..3 {
        expected.push(format!("GET {HTTP_ROUTES}/m{i}"));
        if i == 0 {
            expected.push(format!("DELETE {HTTP_ROUTES}/m0"));
        }
    }
    assert_eq!(routes, expected.iter().collect::<Vec<_>>());
    assert_eq!(api.names("httproutes"), ["models/m1"]);
    // Not served: one list, then nothing read.
    let policies: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("authorizationpolicies"))
        .collect();
    assert_eq!(policies, [&format!("GET {POLICIES}")]);
}
