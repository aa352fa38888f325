//! Tenants against the in-memory API server (SPEC section 3, Tenants): one model's Gateway
//! failing never freezes the WasmPlugin; a tenant cannot have Gateways created outside its
//! namespace, capture a hostname others are served on, or hand its key to another issuer's
//! models across a restart; a JWT model is never silently unguarded (mesh, a Gateway the
//! filter does not select); and a model is routable only once the filter knows it.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::fake_api::{FakeApi, Fault};
use http::Method;
use kube::runtime::events::Reporter;
use modelgate_controller::annotations::{AUTH, ISTIO_HOST};
use modelgate_controller::reconcile::{Context, reconcile_global, reconcile_model};
use modelgate_controller::seldon::SeldonDeployment;
use modelgate_controller::settings::Settings;
use modelgate_core::config::KeySet;
use modelgate_testkit::TestKey;
use serde_json::{Value, json};

const VICTIM_URI: &str = "https://idp.bank.example/jwks";

/// The SeldonDeployment `ns/name`, created `created` seconds into the fixtures' day.
fn model(id: &str, created: i64) -> SeldonDeployment {
    let (ns, name) = id.split_once('/').unwrap();
    SeldonDeployment::fixture(ns, name).created(created)
}

fn settings() -> Settings {
    common::plain_settings()
}

fn context(api: &FakeApi, settings: Settings) -> Context {
    let mut ctx = common::reconciling::context(api, settings);
    ctx.reporter = Some(Reporter {
        controller: "modelgate".into(),
        instance: Some("test".into()),
    });
    ctx
}

/// The shared objects, then every model, until nothing waits.
async fn converge(ctx: &Context, all: &[SeldonDeployment]) {
    for _ in 0..5 {
        let outcome = reconcile_global(ctx, all).await.unwrap();
        ctx.retry_at.lock().unwrap().clear();
        let mut waiting = false;
        for s in all {
            waiting |= reconcile_model(ctx, s).await.unwrap().waiting;
        }
        if outcome.settled() && !waiting {
            return;
        }
    }
}

fn plugin(api: &FakeApi) -> Value {
    api.get("wasmplugins", "istio-system", "modelgate").unwrap()["spec"]["pluginConfig"].clone()
}

/// The policy kind (`jwt`, `none`, `deny`) the filter has for a model, if it knows it.
fn policy_of(api: &FakeApi, id: &str) -> Option<String> {
    let config = plugin(api);
    let policy = config["models"][id]["policy"].as_str()?;
    Some(config["policies"][policy]["auth"].as_str()?.to_string())
}

fn kids_of(api: &FakeApi, id: &str) -> Vec<String> {
    let config = plugin(api);
    let policy = &config["policies"][config["models"][id]["policy"].as_str().unwrap()];
    config["keySets"][policy["keySet"].as_str().unwrap()]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Notes of the Events posted about a SeldonDeployment.
fn events_of(api: &FakeApi, name: &str) -> Vec<String> {
    api.events()
        .iter()
        .filter(|e| e["regarding"]["name"] == name)
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn path_only(writes: &[String]) -> Vec<String> {
    writes
        .iter()
        .map(|w| w.split('?').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_gateway_that_cannot_be_created_never_freezes_the_wasmplugin() {
    let api = FakeApi::default();
    let mut settings = settings();
    settings.tenancy.gateway_namespaces = vec!["no-such-namespace".into()];
    let ctx = context(&api, settings);
    let old = model("bank/old", 1).predictor("p", 100);
    converge(&ctx, std::slice::from_ref(&old)).await;
    api.take_writes();

    // A tenant names a Gateway in a namespace that does not exist (the API server answers
    // 404 every time); then a new JWT model arrives.
    for _ in 0..10 {
        api.inject(
            Method::PATCH,
            "namespaces/no-such-namespace/gateways",
            Fault::Status(404),
        );
    }
    let all = [
        old,
        model("evil/x", 2)
            .predictor("p", 100)
            .gateway("no-such-namespace/gw"),
        model("bank/new", 3).predictor("p", 100),
    ];
    let outcome = reconcile_global(&ctx, &all).await.unwrap();
    assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    assert!(
        outcome.failed[0]
            .to_string()
            .starts_with("apply Gateway no-such-namespace/gw")
    );
    assert_eq!(policy_of(&api, "bank/new").as_deref(), Some("jwt"));
    // The failure is x's alone, and shown on x.
    for s in &all {
        reconcile_model(&ctx, s).await.unwrap();
    }
    assert!(api.get("virtualservices", "bank", "new").is_some());
    let notes = events_of(&api, "x");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no-such-namespace/gw") && n.contains("retried")),
        "{notes:?}"
    );
    assert!(events_of(&api, "new").is_empty());
    // The Gateway waits for its own retry time; the WasmPlugin keeps being applied.
    api.take_requests();
    let again = reconcile_global(&ctx, &all).await.unwrap();
    assert!(!again.settled());
    assert!(
        !api.take_requests()
            .iter()
            .any(|r| r.contains("no-such-namespace"))
    );
}

#[tokio::test]
async fn a_tenant_cannot_have_a_gateway_created_outside_its_namespace() {
    let api = FakeApi::default();
    let ctx = context(&api, settings());
    let grab = model("team-a/grab", 3)
        .predictor("p", 100)
        .gateway("istio-system/mine");
    let all = [
        model("team-a/own", 1).predictor("p", 100).gateway("gw"),
        model("team-a/default", 2).predictor("p", 100),
        grab.clone(),
    ];
    converge(&ctx, &all).await;
    let gateways = api.names("gateways");
    assert_eq!(
        gateways,
        ["istio-system/seldon-gateway", "team-a/gw"],
        "{gateways:?}"
    );
    // The refused model: an error on its annotation, no route; the filter still knows it.
    assert!(api.get("virtualservices", "team-a", "grab").is_none());
    assert!(api.get("virtualservices", "team-a", "own").is_some());
    let notes = events_of(&api, "grab");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("seldon.io/istio-gateway")
                && n.contains("tenancy.gatewayNamespaces")),
        "{notes:?}"
    );
    // Offline, `check` warns: whether the Gateway exists is not known there.
    let generated = ctx.generate(&all);
    assert!(
        generated
            .warnings()
            .any(|w| w.to_string().contains("istio-system/mine"))
    );

    // An existing Gateway elsewhere is only referenced, and allowed when the filter guards
    // its pods; one on other pods is an error, never a quietly open model.
    api.insert(
        "gateways",
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": "mine", "namespace": "istio-system"},
               "spec": {"selector": {"istio": "ingressgateway"}, "servers": []}}),
    );
    api.insert(
        "gateways",
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": "other-pods", "namespace": "edge"},
               "spec": {"selector": {"app": "edge-proxy"}, "servers": []}}),
    );
    let all = [
        grab,
        model("team-a/elsewhere", 4)
            .predictor("p", 100)
            .gateway("edge/other-pods"),
    ];
    converge(&ctx, &all).await;
    assert!(api.get("virtualservices", "team-a", "grab").is_some());
    assert!(api.get("virtualservices", "team-a", "elsewhere").is_none());
    assert!(
        events_of(&api, "elsewhere")
            .iter()
            .any(|n| n.contains("does not guard")),
    );
    assert_eq!(
        api.get("gateways", "edge", "other-pods").unwrap()["spec"]["selector"]["app"],
        "edge-proxy"
    );
}

#[tokio::test]
async fn the_later_claimer_of_a_hostname_is_refused_and_the_earlier_keeps_serving() {
    let api = FakeApi::default();
    let ctx = context(&api, settings());
    let host = |id: &str, created: i64, host: &str| {
        model(id, created)
            .predictor("p", 100)
            .annotate(ISTIO_HOST, host)
    };
    let bank = host("bank/fraud", 1, "api.bank.example.com");
    converge(&ctx, std::slice::from_ref(&bank)).await;
    // The attacker's namespace sorts first, but it came later.
    let all = [
        bank,
        host("a-evil/x", 2, "api.bank.example.com"),
        host("a-evil/y", 3, "*.bank.example.com"),
    ];
    converge(&ctx, &all).await;
    assert_eq!(
        api.get("virtualservices", "bank", "fraud").unwrap()["spec"]["hosts"],
        json!(["api.bank.example.com"])
    );
    assert!(api.get("virtualservices", "a-evil", "x").is_none());
    assert!(api.get("virtualservices", "a-evil", "y").is_none());
    assert!(
        events_of(&api, "x")
            .iter()
            .any(|n| n.contains("seldon.io/istio-host") && n.contains("namespace bank"))
    );
    // render and check decide the same from the same set.
    let generated = ctx.generate(&all);
    let refused: BTreeSet<&str> = generated
        .models
        .iter()
        .filter(|m| m.objects.is_err())
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(refused, BTreeSet::from(["a-evil/x", "a-evil/y"]));

    // A hostname every other model is served on through `*` is not taken either.
    let all = [
        model("bank/open", 1).predictor("p", 100),
        host("b-evil/z", 2, "models.example.com"),
    ];
    converge(&ctx, &all).await;
    assert!(api.get("virtualservices", "b-evil", "z").is_none());
    // Unless the platform grants it.
    let mut granted = settings();
    granted.tenancy.hosts =
        BTreeMap::from([("b-evil".to_string(), vec!["models.example.com".to_string()])]);
    let ctx = context(&api, granted);
    converge(&ctx, &all).await;
    assert!(api.get("virtualservices", "b-evil", "z").is_some());
}

#[tokio::test]
async fn a_restart_never_adopts_a_tenants_inline_key_for_another_issuers_jwks_uri() {
    let api = FakeApi::default();
    let issuer = "https://idp.bank.example";
    let evil_inline = modelgate_testkit::jwks(&[&TestKey::ec()]).to_string();
    let x = model("a-evil/x", 1).predictor("p", 100);
    let fraud = model("bank/fraud", 2)
        .predictor("p", 100)
        .jwt(issuer, VICTIM_URI);
    let before = [x.clone().jwt_inline(issuer, &evil_inline), fraud.clone()];
    let ctx = context(&api, settings());
    ctx.jwks.track(&BTreeSet::from([VICTIM_URI.to_string()]));
    let bank_keys: KeySet =
        serde_json::from_value(modelgate_testkit::jwks(&[&TestKey::rsa_a()])).unwrap();
    ctx.jwks.keep(VICTIM_URI, bank_keys);
    converge(&ctx, &before).await;
    let bank_kids = kids_of(&api, "bank/fraud");
    assert_ne!(kids_of(&api, "a-evil/x"), bank_kids);
    drop(ctx);

    // While no leader runs, the tenant switches to the victim's URI; the issuer is down.
    let after = [x.jwt(issuer, VICTIM_URI), fraud];
    let ctx = context(&api, settings());
    reconcile_global(&ctx, &after).await.unwrap();
    assert_eq!(
        kids_of(&api, "bank/fraud"),
        bank_kids,
        "the URI's own keys, never the tenant's"
    );
    assert_eq!(kids_of(&api, "a-evil/x"), bank_kids);

    // A live key set that does not say where it came from (an older controller) is not
    // reused: the URI's models are denied until a fetch succeeds.
    let mut stored = api.get("wasmplugins", "istio-system", "modelgate").unwrap();
    for set in stored["spec"]["pluginConfig"]["keySets"]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        set.as_object_mut().unwrap().remove("source");
    }
    api.insert("wasmplugins", stored);
    let ctx = context(&api, settings());
    reconcile_global(&ctx, &after).await.unwrap();
    assert_eq!(kids_of(&api, "bank/fraud"), Vec::<String>::new());
}

#[tokio::test]
async fn routes_go_live_only_after_the_filter_knows_them_and_go_before_it_forgets() {
    let api = FakeApi::default();
    let ctx = context(&api, settings());
    let one = [model("bank/m", 1).predictor("main", 100)];
    // A model reconciled before the shared objects waits: nothing routable yet.
    let writes = reconcile_model(&ctx, &one[0]).await.unwrap();
    assert!(writes.waiting);
    assert!(api.take_writes().is_empty());
    converge(&ctx, &one).await;
    let order = path_only(&api.take_writes());
    let plugin_at = order
        .iter()
        .position(|w| w == "PATCH wasmplugins istio-system/modelgate");
    let vs_at = order
        .iter()
        .position(|w| w == "PATCH virtualservices bank/m");
    assert!(plugin_at.unwrap() < vs_at.unwrap(), "{order:?}");

    // A second predictor: the per-predictor routes (which trust the A/B header) wait for a
    // WasmPlugin where the filter sets that header.
    let two = [model("bank/m", 1)
        .predictor("main", 50)
        .predictor("canary", 50)];
    assert!(reconcile_model(&ctx, &two[0]).await.unwrap().waiting);
    assert!(api.take_writes().is_empty());
    converge(&ctx, &two).await;
    let order = path_only(&api.take_writes());
    assert!(
        order
            .iter()
            .position(|w| w.starts_with("PATCH wasmplugins"))
            .unwrap()
            < order
                .iter()
                .position(|w| w == "PATCH virtualservices bank/m")
                .unwrap(),
        "{order:?}"
    );
    assert!(
        api.get("virtualservices", "bank", "m").unwrap()["spec"]["http"]
            .to_string()
            .contains("x-seldon-predictor")
    );

    // Back to one: the filter stops setting the header only after the routes on it are gone.
    converge(&ctx, &one).await;
    let order = path_only(&api.take_writes());
    let vs_at = order
        .iter()
        .position(|w| w == "PATCH virtualservices bank/m")
        .unwrap();
    let plugin_at = order
        .iter()
        .rposition(|w| w.starts_with("PATCH wasmplugins"))
        .unwrap();
    assert!(vs_at < plugin_at, "{order:?}");
    assert!(plugin(&api)["models"]["bank/m"].get("routing").is_none());

    // Deleted: its route goes first, then the filter forgets the model.
    api.remove("seldondeployments", "bank", "m");
    reconcile_global::<SeldonDeployment>(&ctx, &[])
        .await
        .unwrap();
    let order = path_only(&api.take_writes());
    assert_eq!(
        order[..2],
        [
            "DELETE virtualservices bank/m",
            "PATCH wasmplugins istio-system/modelgate"
        ],
        "{order:?}"
    );
    assert!(plugin(&api)["models"].get("bank/m").is_none());
}

#[tokio::test]
async fn a_jwt_model_on_mesh_is_an_error_and_never_open() {
    let api = FakeApi::default();
    let ctx = context(&api, settings());
    let all = [
        model("bank/mesh-jwt", 1)
            .predictor("p", 100)
            .gateway("mesh"),
        model("bank/mesh-open", 2)
            .predictor("p", 100)
            .gateway("mesh")
            .annotate(AUTH, "none"),
    ];
    let generated = ctx.generate(&all);
    let errors: Vec<String> = generated.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("bank/mesh-jwt") && errors[0].contains("seldon.io/istio-gateway"),
        "{errors:?}"
    );
    converge(&ctx, &all).await;
    assert!(api.get("virtualservices", "bank", "mesh-jwt").is_none());
    assert_eq!(policy_of(&api, "bank/mesh-jwt").as_deref(), Some("deny"));
    assert!(api.get("virtualservices", "bank", "mesh-open").is_some());
    assert!(
        events_of(&api, "mesh-jwt")
            .iter()
            .any(|n| n.contains("mesh"))
    );
}

/// The bank's open model `bank/fraud`, which tenants' keys must not disturb.
fn victim() -> SeldonDeployment {
    model("bank/fraud", 1)
        .predictor("main", 100)
        .annotate(AUTH, "none")
}

/// A tenant's model `id` with its keys `jwks` inline.
fn evil(id: &str, created: i64, jwks: &str) -> SeldonDeployment {
    model(id, created)
        .predictor("p", 100)
        .jwt_inline("https://evil.example", jwks)
}

/// A JWKS annotation with one usable key and a member nested `depth` levels deep.
fn deep_jwks(depth: usize) -> String {
    let mut key = TestKey::ec().jwk();
    key["x5c"] = json!("DEEP");
    let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    json!({"keys": [key]})
        .to_string()
        .replace("\"DEEP\"", &deep)
}

#[tokio::test]
async fn a_tenants_keys_reach_the_wasmplugin_only_as_keys_the_filter_reads() {
    // Item 2: a JWK nested just under the JSON reader's limit used to be copied verbatim,
    // two levels deeper, into a pluginConfig nobody could read back. Now only its known
    // members are written; one nested past the limit is the tenant's error alone.
    let all = [
        victim(),
        evil("a-evil/near", 2, &deep_jwks(120)),
        evil("a-evil/past", 3, &deep_jwks(140)),
    ];
    let api = FakeApi::default();
    let ctx = context(&api, settings());
    converge(&ctx, &all).await;

    // The controller's own client reads the stored WasmPlugin back, and the filter's
    // compiler takes the whole of it.
    let config = plugin(&api);
    let (compiled, _) = modelgate_core::CompiledConfig::from_json(config.to_string().as_bytes())
        .expect("the filter reads what the controller wrote");
    assert_eq!(compiled.models.len(), 3);
    assert!(!config.to_string().contains("x5c"), "{config}");
    assert_eq!(policy_of(&api, "bank/fraud").as_deref(), Some("none"));
    assert_eq!(policy_of(&api, "a-evil/near").as_deref(), Some("jwt"));
    assert_eq!(policy_of(&api, "a-evil/past").as_deref(), Some("deny"));
    assert!(
        events_of(&api, "past")
            .iter()
            .any(|e| e.contains("seldon.io/jwt-jwks") && e.contains("recursion")),
        "{:?}",
        events_of(&api, "past")
    );
    assert!(
        events_of(&api, "fraud").is_empty(),
        "{:?}",
        events_of(&api, "fraud")
    );
}

#[tokio::test]
async fn tenants_cannot_push_the_wasmplugin_past_its_budget() {
    // Item 8: two ~1 MB inline JWKS (one usable key and thousands of oct keys) made a 2 MB
    // WasmPlugin that etcd refuses. Now an inline JWKS is at most 64 KiB, unusable keys
    // never reach the configuration, and the WasmPlugin stays small.
    let mut keys = vec![TestKey::ec().jwk()];
    keys.extend(
        (0..20_000).map(|i| json!({"kty": "oct", "kid": format!("key-{i:06}"), "k": "c2VjcmV0"})),
    );
    let huge = json!({"keys": keys}).to_string();
    assert!(huge.len() > 500_000);
    let mut small_keys = vec![TestKey::ec().jwk()];
    small_keys
        .extend((0..100).map(|i| json!({"kty": "oct", "kid": format!("k{i}"), "k": "c2VjcmV0"})));
    let small = json!({"keys": small_keys}).to_string();
    let all = [
        victim(),
        evil("a-evil/one", 2, &huge),
        evil("a-evil/two", 3, &huge),
        evil("a-evil/three", 4, &small),
    ];
    let api = FakeApi::default();
    let ctx = context(&api, settings());
    converge(&ctx, &all).await;
    let size = plugin(&api).to_string().len();
    assert!(size < 16 * 1024, "pluginConfig of {size} bytes");
    assert_eq!(policy_of(&api, "a-evil/one").as_deref(), Some("deny"));
    assert_eq!(policy_of(&api, "a-evil/two").as_deref(), Some("deny"));
    assert!(
        events_of(&api, "one")
            .iter()
            .any(|e| e.contains("at most 65536 bytes")),
        "{:?}",
        events_of(&api, "one")
    );
    // The small set keeps its one usable key; the others are dropped with a warning.
    assert_eq!(policy_of(&api, "a-evil/three").as_deref(), Some("jwt"));
    assert_eq!(kids_of(&api, "a-evil/three").len(), 1);
    assert!(
        events_of(&api, "three")
            .iter()
            .any(|e| e.contains("key dropped")),
        "{:?}",
        events_of(&api, "three")
    );
    assert_eq!(policy_of(&api, "bank/fraud").as_deref(), Some("none"));
}
