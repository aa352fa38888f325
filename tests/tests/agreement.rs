//! The controller and the filter agree. `render` of the SeldonDeployments in
//! `tests/data/agreement.yaml` runs in a real Envoy: the WasmPlugin's `pluginConfig`,
//! unchanged, is the filter's configuration, and the VirtualServices, translated into
//! Envoy routes as istiod would, are the gateway's routes. Authorization, the `/prometheus`
//! exemption and A/B routing then behave as the annotations say: what the filter decides
//! is what the routes carry out.
//!
//! Every test runs in both routing modes (setting `routing`): `istio`, the
//! VirtualServices translated as istiod translates them ([`modelgate_e2e::virtual_service`]),
//! and `gateway-api`, the HTTPRoutes translated as istiod translates them
//! ([`modelgate_e2e::http_route`]), the extension attached to the Gateway by `targetRefs`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use modelgate_controller::Settings;
use modelgate_controller::settings::RoutingApi;
use modelgate_e2e::answers::{
    assert_insufficient_scope, assert_invalid_token, assert_no_token, assert_reached,
    assert_refused, assert_routed, assert_sticky_users, no_token_challenge,
};
use modelgate_e2e::render::{Rendered, render};
use modelgate_e2e::weights::within_five_sigma;
use modelgate_e2e::{Gateway, Request, locate, sample};
use modelgate_testkit::{TestKey, changed_claims, jwks, now};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MANIFEST: &str = include_str!("../data/agreement.yaml");

const FRAUD: &str = "risk/fraud";
const SCORER: &str = "risk/scorer";
const IRIS: &str = "public/iris";
const SINGLE: &str = "public/single";

const TEAM_ISSUER: &str = "https://127.0.0.1/realms/team";
const PARTNER_ISSUER: &str = "https://127.0.0.1/realms/partners";
/// The default routing header.
const HEADER: &str = "x-seldon-predictor";
/// `risk/scorer`'s routing header (annotated as `X-Scorer-Version`).
const SCORER_HEADER: &str = "x-scorer-version";
/// `risk/fraud`'s stickiness header.
const STICKY_HEADER: &str = "x-user-id";
/// `public/single`'s host.
const SINGLE_HOST: &str = "models.agreement.test";

/// The gateway the VirtualServices name: the controller's default.
fn gateway_name() -> String {
    Settings::default().default_gateway
}

fn rendered(routing: RoutingApi) -> &'static Rendered {
    static ISTIO: OnceLock<Rendered> = OnceLock::new();
    static GATEWAY_API: OnceLock<Rendered> = OnceLock::new();
    let cell = match routing {
        RoutingApi::Istio => &ISTIO,
        RoutingApi::GatewayApi => &GATEWAY_API,
    };
    cell.get_or_init(|| {
        let settings = Settings {
            routing,
            ..Settings::default()
        };
        render(MANIFEST, &settings).unwrap_or_else(|e| panic!("render ({routing}): {e}"))
    })
}

fn start(routing: RoutingApi, name: &str) -> Gateway {
    let spec = rendered(routing)
        .gateway_spec(&gateway_name())
        .unwrap_or_else(|e| panic!("the rendered objects do not make a gateway ({routing}): {e}"));
    sample::start_with(&format!("{name}-{routing}"), &spec)
}

/// Each test, once per routing mode.
macro_rules! in_both_routing_modes {
    ($($test:ident),* $(,)?) => {
        mod istio {
            $(#[test] fn $test() { super::$test(super::RoutingApi::Istio) })*
        }
        mod gateway_api {
            $(#[test] fn $test() { super::$test(super::RoutingApi::GatewayApi) })*
        }
    };
}

in_both_routing_modes!(
    the_rendered_objects_are_what_the_gateway_runs,
    authorization_follows_the_annotations,
    the_prometheus_paths_are_exempt_and_nothing_else,
    overrides_reach_the_dark_launch_only_where_allowed,
    sticky_users_stay_on_their_predictor,
    random_choices_follow_the_rendered_weights,
    grpc_requests_take_the_generated_grpc_routes,
    a_model_on_its_own_host_is_routed_there_and_guarded_everywhere,
    requests_the_grpc_routes_deliver_to_a_model_never_skip_authorization,
);

fn team_claims(user: &str) -> Value {
    let now = now();
    json!({
        "iss": TEAM_ISSUER,
        "sub": user,
        "aud": ["fraud-api"],
        "groups": ["analysts", "fraud-team"],
        "iat": now,
        "exp": now + 3600,
    })
}

/// A `risk/fraud` user's token (RS256).
fn fraud_token(user: &str) -> String {
    TestKey::rsa_a().sign(&team_claims(user))
}

/// A team token with some claims replaced (`null` removes one).
fn team_token_with(changes: Value) -> String {
    TestKey::rsa_a().sign(&changed_claims(team_claims("mallory"), &changes))
}

/// A partner's token for `risk/scorer` (EdDSA).
fn partner_token(user: &str) -> String {
    let now = now();
    TestKey::ed().sign(&json!({"iss": PARTNER_ISSUER, "sub": user, "iat": now, "exp": now + 3600}))
}

fn predict(model: &str) -> Request {
    Request::predict(model)
}

/// Requests that reached a predictor that takes traffic (the shadow's copies left out).
fn served(gw: &Gateway) -> usize {
    [
        (FRAUD, &["main", "canary", "dark"][..]),
        (SCORER, &["v1", "v2"]),
        (IRIS, &["a", "b"]),
        (SINGLE, &["default"]),
    ]
    .iter()
    .flat_map(|(model, predictors)| predictors.iter().map(|p| gw.server(model, p).count()))
    .sum()
}

/// The `seldon.io/jwt-jwks` annotation of a SeldonDeployment in the manifest.
fn inline_jwks(model: &str) -> Value {
    let (namespace, name) = model.split_once('/').unwrap();
    for document in MANIFEST.split("\n---\n") {
        let sdep: Value = serde_yaml_ng::from_str(document).unwrap();
        if sdep["metadata"]["namespace"] == namespace && sdep["metadata"]["name"] == name {
            for annotations in [
                &sdep["spec"]["annotations"],
                &sdep["metadata"]["annotations"],
            ] {
                if let Some(text) = annotations["seldon.io/jwt-jwks"].as_str() {
                    return serde_json::from_str(text).unwrap();
                }
            }
        }
    }
    panic!("{model} has no seldon.io/jwt-jwks in the manifest")
}

/// What render prints is what the harness can run, checked without Envoy.
fn the_rendered_objects_are_what_the_gateway_runs(routing: RoutingApi) {
    let rendered = rendered(routing);
    match routing {
        RoutingApi::Istio => assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings),
        // risk/fraud's retry count has no Gateway API field: said, not dropped silently.
        RoutingApi::GatewayApi => {
            let [warning] = rendered.warnings.as_slice() else {
                panic!("{:?}", rendered.warnings)
            };
            assert!(
                warning.contains(FRAUD) && warning.contains("seldon.io/istio-retries"),
                "{warning}"
            );
        }
    }

    // The inline key sets are the test keys' public halves.
    for (model, keys) in [
        (FRAUD, vec![TestKey::rsa_a(), TestKey::ec()]),
        (SCORER, vec![TestKey::rsa_b(), TestKey::ed()]),
        (SINGLE, vec![TestKey::rsa_a(), TestKey::ec()]),
    ] {
        let expected = jwks(&keys.iter().collect::<Vec<_>>());
        assert_eq!(
            inline_jwks(model),
            expected,
            "{model}: tests/data/agreement.yaml must embed the fixture keys; write '{expected}'"
        );
    }

    // The filter configuration compiles as the filter's on_configure compiles it.
    let config: modelgate_core::config::FilterConfig =
        serde_json::from_str(&rendered.filter_config().unwrap()).unwrap();
    let (compiled, warnings) = modelgate_core::CompiledConfig::compile(&config).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(compiled.models.len(), 4);

    // Every model's VirtualService is on the gateway: per predictor that takes traffic,
    // a REST and a gRPC header route (the dark launch too, never the shadow), then the
    // two default routes.
    let table = rendered.route_table(&gateway_name()).unwrap();
    let routes: BTreeMap<&str, (usize, &[String])> = table
        .virtual_services
        .iter()
        .map(|vs| (vs.id.as_str(), (vs.routes.len(), vs.hosts.as_slice())))
        .collect();
    let star = ["*".to_string()];
    let single_host = [SINGLE_HOST.to_string()];
    assert_eq!(
        routes,
        BTreeMap::from([
            (FRAUD, (3 * 2 + 2, &star[..])),
            (SCORER, (2 * 2 + 2, &star[..])),
            (IRIS, (2 * 2 + 2, &star[..])),
            (SINGLE, (2, &single_host[..])),
        ])
    );
    let fraud = table
        .virtual_services
        .iter()
        .find(|vs| vs.id == FRAUD)
        .unwrap();
    let header_routes: Vec<&Value> = fraud
        .routes
        .iter()
        .flat_map(|r| r["match"]["headers"].as_array().into_iter().flatten())
        .filter(|h| h["name"] == HEADER)
        .map(|h| &h["string_match"]["exact"])
        .collect();
    assert_eq!(
        header_routes,
        ["main", "canary", "dark", "main", "canary", "dark"]
    );

    // The WasmPlugin names the module this harness runs.
    let wasm = std::fs::read(locate::filter_wasm().unwrap()).unwrap();
    let sha256: String = Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        rendered.wasm_plugin().unwrap()["spec"]["sha256"],
        sha256,
        "the controller embeds another build of the filter than the one under test: rebuild both (scripts/setup.sh, then cargo build)"
    );
}

fn authorization_follows_the_annotations(routing: RoutingApi) {
    let gw = start(routing, "agreement-auth");

    // No token: the exact challenge of each JWT model, REST and gRPC.
    for model in [FRAUD, SCORER, SINGLE] {
        assert_no_token(&gw.send(&predict(model)), model, model);
    }
    let r = gw.send(&Request::grpc_predict(FRAUD));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("grpc-status"), Some("16"), "{}", r.summary());
    assert_eq!(
        r.header("www-authenticate"),
        Some(no_token_challenge(FRAUD).as_str())
    );

    // Bad tokens: another issuer's key, the wrong issuer or audience.
    let cases = [
        ("partner key", partner_token("mallory"), "unknown_key"),
        (
            "wrong issuer",
            team_token_with(json!({"iss": PARTNER_ISSUER})),
            "wrong_issuer",
        ),
        (
            "wrong audience",
            team_token_with(json!({"aud": "billing"})),
            "wrong_audience",
        ),
        (
            "expired",
            team_token_with(json!({"exp": now() - 3600})),
            "token_expired",
        ),
    ];
    for (what, token, reason) in &cases {
        assert_invalid_token(&gw.send(&predict(FRAUD).bearer(token)), FRAUD, reason, what);
    }
    // A valid token without the required claim value.
    for groups in [json!(["analysts"]), json!(null)] {
        let token = team_token_with(json!({"groups": groups}));
        assert_insufficient_scope(&gw.send(&predict(FRAUD).bearer(&token)), FRAUD, "groups");
    }
    // The second audience annotated is accepted too.
    let token = team_token_with(json!({"aud": "reporting"}));
    assert_routed(
        &gw.send(&predict(FRAUD).bearer(&token)),
        HEADER,
        "reporting",
    );
    assert_eq!(served(&gw), 1, "refused requests reached a model");

    // Good tokens reach a predictor of the model, with the REST prefix rewritten.
    for (token, what) in [
        (fraud_token("alice"), "RS256"),
        (TestKey::ec().sign(&team_claims("bob")), "ES256"),
    ] {
        let r = gw.send(&predict(FRAUD).bearer(&token));
        let predictor = assert_routed(&r, HEADER, what);
        assert!(
            ["main", "canary"].contains(&predictor.as_str()),
            "{what}: {predictor}"
        );
        assert_eq!(r.echo().unwrap().received.path, "/api/v1.0/predictions");
    }
    let r = gw.send(&predict(SCORER).bearer(&partner_token("carol")));
    assert_routed(&r, SCORER_HEADER, "partner");
    assert_eq!(r.header(HEADER), None, "scorer routes on its own header");
    // Each issuer is its model's only: the team's token is no good for the partner model.
    assert_invalid_token(
        &gw.send(&predict(SCORER).bearer(&fraud_token("alice"))),
        SCORER,
        "unknown_key",
        "team token on scorer",
    );
    // No authentication for iris.
    assert_routed(&gw.send(&predict(IRIS)), HEADER, "iris");

    // The shadow gets a copy of what reached the model, and nothing that was refused.
    let reached: usize = ["main", "canary", "dark"]
        .iter()
        .map(|p| gw.server(FRAUD, p).count())
        .sum();
    assert_eq!(reached, 3);
    let shadow = gw.server(FRAUD, "shadow");
    let deadline = Instant::now() + Duration::from_secs(5);
    while shadow.count() < reached && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(100));
    assert_eq!(shadow.count(), reached, "mirrored requests");
    for copy in shadow.received() {
        assert_eq!(copy.path, "/api/v1.0/predictions");
        assert!(
            copy.header("host").is_some_and(|h| h.ends_with("-shadow")),
            "{:?}",
            copy.headers
        );
    }
}

fn the_prometheus_paths_are_exempt_and_nothing_else(routing: RoutingApi) {
    let gw = start(routing, "agreement-exemption");
    for (model, header) in [(FRAUD, HEADER), (SCORER, SCORER_HEADER)] {
        let path = format!("/seldon/{model}/prometheus");
        let r = gw.send(&Request::get(&path));
        let predictor = assert_routed(&r, header, &path);
        assert_ne!(predictor, "dark");
        assert_eq!(
            r.echo().unwrap().received.path,
            "/prometheus",
            "the VirtualService rewrites the prefix to what Seldon's executor serves"
        );
        assert_no_token(
            &gw.send(&Request::new("POST", &path)),
            model,
            "POST is not exempt",
        );
        for other in [format!("{path}/"), format!("{path}x")] {
            assert_no_token(&gw.send(&Request::get(&other)), model, &other);
        }
    }
    let r = gw.send(&Request::get("/seldon/public/single/prometheus").header("host", SINGLE_HOST));
    assert_eq!(assert_reached(&r, "single").server, "default");
    let r = gw.send(&Request::get("/prometheus"));
    assert_eq!(r.upstream(), Some("prometheus"), "{}", r.summary());
    assert_eq!(served(&gw), 3);
}

fn overrides_reach_the_dark_launch_only_where_allowed(routing: RoutingApi) {
    let gw = start(routing, "agreement-override");
    let token = fraud_token("alice");

    // The dark launch (traffic 0) by override only, REST and gRPC.
    for _ in 0..10 {
        let r = gw.send(&predict(FRAUD).bearer(&token).header(HEADER, "dark"));
        assert_eq!(assert_routed(&r, HEADER, "override"), "dark");
    }
    let r = gw.send(
        &Request::grpc_predict(FRAUD)
            .bearer(&token)
            .header(HEADER, "dark"),
    );
    assert_eq!(assert_routed(&r, HEADER, "gRPC override"), "dark");
    assert_eq!(
        r.echo().unwrap().received.path,
        "/seldon.protos.Seldon/Predict"
    );
    let mut client = gw.client();
    for _ in 0..200 {
        let r = client.send(&predict(FRAUD).bearer(&token)).unwrap();
        assert_ne!(assert_routed(&r, HEADER, "no override"), "dark");
    }
    assert_eq!(gw.server(FRAUD, "dark").count(), 11);

    // Not a predictor that takes traffic: the shadow, an unknown name.
    for name in ["shadow", "nope"] {
        let r = gw.send(&predict(FRAUD).bearer(&token).header(HEADER, name));
        assert_refused(&r, 400, None, FRAUD, "unknown_predictor", name);
    }
    // An override never bypasses authorization.
    assert_no_token(
        &gw.send(&predict(FRAUD).header(HEADER, "dark")),
        FRAUD,
        "override without token",
    );

    // Iris does not let clients choose: the filter replaces the client's header.
    let mut seen = BTreeMap::new();
    for _ in 0..100 {
        let r = client.send(&predict(IRIS).header(HEADER, "b")).unwrap();
        *seen.entry(assert_routed(&r, HEADER, "iris")).or_insert(0) += 1;
    }
    assert!(seen.contains_key("a") && seen.contains_key("b"), "{seen:?}");
    let r = gw.send(&predict(IRIS).header(HEADER, "nope"));
    assert_routed(&r, HEADER, "unknown name, override disabled");

    // Scorer's own header picks, in any case; the default header means nothing there.
    for name in [SCORER_HEADER, "X-Scorer-Version"] {
        for _ in 0..10 {
            let r = gw.send(
                &predict(SCORER)
                    .bearer(&partner_token("carol"))
                    .header(name, "v2"),
            );
            assert_eq!(assert_routed(&r, SCORER_HEADER, name), "v2");
        }
    }
    let r = gw.send(
        &Request::grpc_predict(SCORER)
            .bearer(&partner_token("carol"))
            .header(SCORER_HEADER, "v2"),
    );
    assert_eq!(assert_routed(&r, SCORER_HEADER, "scorer gRPC"), "v2");
    let mut seen = BTreeMap::new();
    for _ in 0..100 {
        let r = client
            .send(
                &predict(SCORER)
                    .bearer(&partner_token("carol"))
                    .header(HEADER, "v2"),
            )
            .unwrap();
        *seen
            .entry(assert_routed(&r, SCORER_HEADER, "default header on scorer"))
            .or_insert(0) += 1;
    }
    assert!(seen.contains_key("v1"), "{seen:?}");
    let r = gw.send(
        &predict(SCORER)
            .bearer(&partner_token("carol"))
            .header(SCORER_HEADER, "v3"),
    );
    assert_refused(&r, 400, None, SCORER, "unknown_predictor", "v3");
}

fn sticky_users_stay_on_their_predictor(routing: RoutingApi) {
    let gw = start(routing, "agreement-sticky");
    let token = fraud_token("alice");
    let mut client = gw.client();
    let per_predictor = assert_sticky_users(&mut client, HEADER, 40, 5, |user| {
        predict(FRAUD).bearer(&token).header(STICKY_HEADER, user)
    });
    assert!(!per_predictor.contains_key("dark"), "{per_predictor:?}");
    assert!(
        per_predictor.contains_key("main") && per_predictor.contains_key("canary"),
        "40 users over 70/30: {per_predictor:?}"
    );
}

fn random_choices_follow_the_rendered_weights(routing: RoutingApi) {
    let gw = start(routing, "agreement-split");
    let mut client = gw.client();
    for (model, header, token, n) in [
        (FRAUD, HEADER, fraud_token("alice"), 1200),
        (SCORER, SCORER_HEADER, partner_token("carol"), 800),
    ] {
        let weights = rendered(routing)
            .default_weights(model)
            .unwrap_or_else(|e| panic!("{e}"));
        let total: u64 = weights.values().sum();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..n {
            let r = client.send(&predict(model).bearer(&token)).unwrap();
            *counts.entry(assert_routed(&r, header, model)).or_insert(0) += 1;
        }
        for (predictor, weight) in &weights {
            let count = counts.get(predictor).copied().unwrap_or(0);
            let share = *weight as f64 / total as f64;
            if *weight == 0 {
                assert_eq!(count, 0, "{model}: {predictor} has traffic 0: {counts:?}");
            } else {
                assert!(
                    within_five_sigma(count, n, share),
                    "{model}: {predictor}: {count} of {n} at {share}: {counts:?}"
                );
            }
            assert_eq!(gw.server(model, predictor).count(), count, "{predictor}");
        }
        assert!(
            counts.keys().all(|p| weights.contains_key(p)),
            "{model}: {counts:?} vs rendered {weights:?}"
        );
    }
}

fn grpc_requests_take_the_generated_grpc_routes(routing: RoutingApi) {
    let gw = start(routing, "agreement-grpc");
    let r = gw.send(&Request::grpc_predict(FRAUD).bearer(&fraud_token("alice")));
    let predictor = assert_routed(&r, HEADER, "fraud gRPC");
    assert_ne!(predictor, "dark");
    assert_eq!(
        r.echo().unwrap().received.path,
        "/seldon.protos.Seldon/Predict",
        "gRPC routes do not rewrite"
    );
    let token = team_token_with(json!({"groups": ["analysts"]}));
    let r = gw.send(&Request::grpc_predict(FRAUD).bearer(&token));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.upstream().is_none(), "{}", r.summary());
    assert_eq!(
        r.header("grpc-status"),
        Some("7"),
        "403 as gRPC: {}",
        r.summary()
    );

    assert_routed(&gw.send(&Request::grpc_predict(IRIS)), HEADER, "iris gRPC");
    let r = gw.send(&Request::grpc_predict(SCORER).bearer(&partner_token("carol")));
    assert_routed(&r, SCORER_HEADER, "scorer gRPC");
    assert_eq!(served(&gw), 3);
}

fn a_model_on_its_own_host_is_routed_there_and_guarded_everywhere(routing: RoutingApi) {
    let gw = start(routing, "agreement-host");
    let token = fraud_token("alice");
    let r = gw.send(&predict(SINGLE).bearer(&token).header("host", SINGLE_HOST));
    let echo = assert_reached(&r, "own host");
    assert_eq!(echo.server, "default");
    assert_eq!(echo.received.path, "/api/v1.0/predictions");
    assert_eq!(r.header(HEADER), None, "one predictor: no A/B");
    assert_no_token(
        &gw.send(&predict(SINGLE).header("host", SINGLE_HOST)),
        SINGLE,
        "own host",
    );
    // The filter guards the model's path on every host; only its own host routes there.
    assert_no_token(&gw.send(&predict(SINGLE)), SINGLE, "other host");
    let r = gw.send(&predict(SINGLE).bearer(&token));
    assert_eq!(r.upstream(), Some("other-app"), "{}", r.summary());
    assert_eq!(gw.server(SINGLE, "default").count(), 1);
}

/// Every request the generated routes deliver to a JWT model has been authorized. The
/// generated gRPC routes match the path pattern and the `seldon`/`namespace` headers,
/// whatever the content type; the filter addresses a model by those headers only when the
/// content type is gRPC (SPEC section 3). A request with those headers and another content
/// type is therefore passed untouched by the filter and routed to the model by the
/// VirtualService: no token needed, and the routing header is the client's to choose.
fn requests_the_grpc_routes_deliver_to_a_model_never_skip_authorization(routing: RoutingApi) {
    let gw = start(routing, "agreement-grpc-content-type");
    let mut leaks = Vec::new();
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        for (path, override_to) in [
            ("/seldon.protos.Seldon/Predict", None),
            ("/v2/models/fraud/inference", Some("dark")),
        ] {
            let mut request = Request::new("POST", path)
                .header("seldon", "fraud")
                .header("namespace", "risk")
                .body(br#"{"data": {"ndarray": [[1.0]]}}"#.to_vec());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            if let Some(predictor) = override_to {
                request = request.header(HEADER, predictor);
            }
            let r = gw.send(&request);
            if let Some(echo) = r.echo()
                && echo.server != "other-app"
            {
                leaks.push(format!(
                    "POST {path}, content-type {content_type:?}, {HEADER} {override_to:?}: reached {}",
                    echo.server
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "requests naming {FRAUD} by its gRPC headers, without a token, passed the filter and \
         were delivered to the model by the generated gRPC routes:\n{}",
        leaks.join("\n")
    );
    assert_eq!(served(&gw), 0);
}
