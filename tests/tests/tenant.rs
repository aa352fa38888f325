//! Tenant isolation in the real Envoy (issue 16): a tenant controls its own model's
//! annotations, keys and tokens, and nothing it writes may reach, weaken or break another
//! model. Each test is one attack of `SECURITY.md`'s tenant section, run against what the
//! controller renders (the WasmPlugin's `pluginConfig` and the VirtualServices translated as
//! istiod would), sometimes with that configuration tampered with to show the filter holds
//! even where the controller would not have let it through.

use modelgate_controller::Settings;
use modelgate_e2e::answers::{
    assert_insufficient_scope, assert_invalid_token, assert_no_token, assert_reached,
};
use modelgate_e2e::client::GRPC_PREDICT_PATH;
use modelgate_e2e::render::{Rendered, render};
use modelgate_e2e::{Gateway, GatewaySpec, Request, sample};
use modelgate_testkit::{TestKey, changed_claims, jwks, now};
use serde_json::{Value, json};

const BANK_ISSUER: &str = "https://127.0.0.1/realms/bank";
const EVIL_ISSUER: &str = "https://127.0.0.1/realms/evil";
const FRAUD: &str = "bank/fraud";
const PROBE: &str = "a-evil/probe";
const NEW: &str = "bank/new";

/// The victim `bank/fraud` (JWT, a live predictor and a dark launch clients may not pick),
/// the tenant's `a-evil/probe` (its own issuer and key, `forward_claims` as given), and,
/// with `with_new`, a second victim model `bank/new`.
fn manifest(forward_claims: &str, with_new: bool) -> String {
    let bank_keys = jwks(&[&TestKey::rsa_a()]).to_string();
    let evil_keys = jwks(&[&TestKey::ec()]).to_string();
    let mut text = format!(
        r#"apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: fraud, namespace: bank}}
spec:
  annotations:
    seldon.io/auth: jwt
    seldon.io/jwt-issuer: {BANK_ISSUER}
    seldon.io/jwt-jwks: '{bank_keys}'
    seldon.io/ab-override: "false"
  predictors:
  - {{name: main, traffic: 100, graph: {{name: model, type: MODEL}}}}
  - {{name: vault-dark, traffic: 0, graph: {{name: model, type: MODEL}}}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: probe, namespace: a-evil}}
spec:
  annotations:
    seldon.io/auth: jwt
    seldon.io/jwt-issuer: {EVIL_ISSUER}
    seldon.io/jwt-jwks: '{evil_keys}'
    seldon.io/jwt-forward-claims: "{forward_claims}"
  predictors:
  - {{name: default, traffic: 100, graph: {{name: model, type: MODEL}}}}
"#
    );
    if with_new {
        text.push_str(&format!(
            r#"---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: new, namespace: bank}}
spec:
  annotations:
    seldon.io/auth: jwt
    seldon.io/jwt-issuer: {BANK_ISSUER}
    seldon.io/jwt-jwks: '{bank_keys}'
  predictors:
  - {{name: default, traffic: 100, graph: {{name: model, type: MODEL}}}}
"#
        ));
    }
    text
}

fn rendered(forward_claims: &str, with_new: bool) -> Rendered {
    render(&manifest(forward_claims, with_new), &Settings::default())
        .unwrap_or_else(|e| panic!("render: {e}"))
}

fn gateway_spec(rendered: &Rendered) -> GatewaySpec {
    rendered
        .gateway_spec(&Settings::default().default_gateway)
        .unwrap_or_else(|e| panic!("the rendered objects do not make a gateway: {e}"))
}

/// The rendered filter configuration, as JSON to tamper with.
fn filter_config(rendered: &Rendered) -> Value {
    serde_json::from_str(&rendered.filter_config().unwrap()).unwrap()
}

/// The tenant's own, validly signed token carrying the claims it likes.
fn evil_token(extra: Value) -> String {
    let claims = json!({"iss": EVIL_ISSUER, "sub": "mallory", "exp": now() + 300});
    TestKey::ec().sign(&changed_claims(claims, &extra))
}

fn bank_token() -> String {
    TestKey::rsa_a().sign(&json!({"iss": BANK_ISSUER, "sub": "alice", "exp": now() + 300}))
}

/// Seldon's gRPC call addressed, by its headers, to `<namespace>/<name>`.
fn grpc_call(model: &str) -> Request {
    Request::new("POST", GRPC_PREDICT_PATH).grpc_to(model)
}

/// Requests the victim's predictors received.
fn victim_requests(gw: &Gateway, model: &str, predictors: &[&str]) -> usize {
    predictors.iter().map(|p| gw.server(model, p).count()).sum()
}

/// The policy the tenant's model uses in a configuration.
fn probe_policy(config: &mut Value) -> &mut Value {
    let id = config["models"][PROBE]["policy"]
        .as_str()
        .unwrap()
        .to_string();
    &mut config["policies"][id]
}

#[test]
fn the_controller_refuses_forwarded_claims_into_addressing_or_routing_headers() {
    for header in [
        "seldon",
        "namespace",
        "x-seldon-predictor",
        "x-envoy-retry-on",
        "host",
    ] {
        let err = render(
            &manifest(&format!("m:{header}"), false),
            &Settings::default(),
        )
        .err()
        .unwrap_or_else(|| panic!("{header}: render accepted it"));
        assert!(
            err.to_string().contains("seldon.io/jwt-forward-claims")
                && err.to_string().contains(header),
            "{header}: {err}"
        );
    }
}

#[test]
fn a_token_cannot_readdress_a_grpc_call_to_another_namespaces_model() {
    // The attack of the security review, with a configuration the controller would refuse
    // to write (an older or tampered one): the tenant's policy forwards claims into the
    // gRPC addressing headers and the victim's routing header.
    let rendered = rendered("m:x-tenant-model", false);
    let mut spec = gateway_spec(&rendered);
    let mut config = filter_config(&rendered);
    probe_policy(&mut config)["forwardClaims"] =
        json!({"m": "seldon", "n": "namespace", "p": "x-seldon-predictor"});
    spec.filter_config = config.to_string();
    let gw = sample::start_with("tenant-readdress", &spec);
    let token = evil_token(json!({"m": "fraud", "n": "bank", "p": "vault-dark"}));

    let r = gw.send(&grpc_call(PROBE).bearer(&token));
    assert!(r.upstream().is_none(), "{}", r.summary());
    assert_eq!(victim_requests(&gw, FRAUD, &["main", "vault-dark"]), 0);
    assert!(
        gw.log().contains("forwardClaims"),
        "the filter names the refused field"
    );
    // The victim itself is unaffected: its own users reach it, others do not.
    assert_reached(
        &gw.send(&Request::predict(FRAUD).bearer(&bank_token())),
        "the victim's own user",
    );
    assert_no_token(&gw.send(&Request::predict(FRAUD)), FRAUD, "no token");
}

#[test]
fn forwarded_claims_and_a_spoofed_route_tag_stay_on_the_tenants_own_model() {
    let rendered = rendered("m:x-tenant-model", false);
    let gw = sample::start_with("tenant-route-tag", &gateway_spec(&rendered));
    let token = evil_token(json!({"m": "fraud"}));
    for request in [
        grpc_call(PROBE)
            .bearer(&token)
            .header("x-modelgate-route", "bank/fraud/vault-dark")
            .header("x-seldon-predictor", "vault-dark"),
        Request::predict(PROBE)
            .bearer(&token)
            .header("x-modelgate-route", "bank/fraud/vault-dark"),
    ] {
        let r = gw.send(&request);
        let echo = assert_reached(&r, &request.target);
        assert_eq!(r.upstream(), Some("default"), "{}", r.summary());
        assert_eq!(echo.received.header("x-tenant-model"), Some("fraud"));
        assert_eq!(
            echo.received.header("x-modelgate-route"),
            Some("a-evil/probe/")
        );
    }
    assert_eq!(victim_requests(&gw, FRAUD, &["main", "vault-dark"]), 0);
    // A client's tag on a request for no model is removed before any route sees it.
    let r =
        gw.send(&Request::get("/some/other/app").header("x-modelgate-route", "bank/fraud/main"));
    let echo = assert_reached(&r, "another application");
    assert!(
        echo.received.header("x-modelgate-route").is_none(),
        "{}",
        r.summary()
    );
    // The dark launch stays dark whatever a client sends (ab-override: false).
    for _ in 0..5 {
        let r = gw.send(
            &Request::predict(FRAUD)
                .bearer(&bank_token())
                .header("x-seldon-predictor", "vault-dark")
                .header("x-modelgate-route", "bank/fraud/vault-dark"),
        );
        assert_eq!(r.upstream(), Some("main"), "{}", r.summary());
    }
}

#[test]
fn a_model_the_filter_does_not_know_is_not_routable() {
    // The gateway has bank/new's routes (its VirtualService was applied) but its filter
    // configuration predates the model: a stale WasmPlugin, or one that could not be
    // applied. The model must not answer without a token (or at all).
    let with_new = rendered("m:x-tenant-model", true);
    let without = rendered("m:x-tenant-model", false);
    let mut spec = gateway_spec(&with_new);
    spec.filter_config = without.filter_config().unwrap();
    let gw = sample::start_with("tenant-unknown-model", &spec);
    for request in [
        Request::predict(NEW),
        Request::predict(NEW).header("x-modelgate-route", "bank/new/"),
        grpc_call(NEW).header("x-modelgate-route", "bank/new/default"),
    ] {
        // No route of the model takes it: it falls through to the gateway's catch-all
        // (another application here; a 404 where there is none).
        let r = gw.send(&request);
        assert_eq!(
            r.upstream(),
            Some("other-app"),
            "{}: {}",
            request.target,
            r.summary()
        );
    }
    assert_eq!(gw.server(NEW, "default").count(), 0);
    // Once the filter knows it, it is guarded, and served to its users.
    gw.reconfigure(&with_new.filter_config().unwrap()).unwrap();
    assert_no_token(&gw.send(&Request::predict(NEW)), NEW, "known now");
    assert_reached(
        &gw.send(&Request::predict(NEW).bearer(&bank_token())),
        "known now, with a token",
    );
}

#[test]
fn a_key_set_the_filter_cannot_read_denies_only_the_models_that_use_it() {
    // A JWK nested deeper than serde_json reads, as an older controller copied keys
    // verbatim (today's re-serialises them): new and running gateways alike.
    let rendered = rendered("m:x-tenant-model", true);
    let mut config = filter_config(&rendered);
    let policy = probe_policy(&mut config).clone();
    let key_set = policy["keySet"].as_str().unwrap().to_string();
    // Deeper than serde_json builds a value of, so spliced in as text.
    config["keySets"][&key_set]["keys"][0]["x5c"] = json!("DEEP");
    let deep = format!("{}1{}", "[".repeat(140), "]".repeat(140));
    let with_deep = |config: &Value| config.to_string().replace("\"DEEP\"", &deep);
    let mut new_model_entry = None;
    if let Some(models) = config["models"].as_object_mut() {
        new_model_entry = models.remove(NEW);
    }
    let mut spec = gateway_spec(&rendered);
    spec.filter_config = with_deep(&config);
    let gw = sample::start_with("tenant-deep-jwk", &spec);

    assert_reached(
        &gw.send(&Request::predict(FRAUD).bearer(&bank_token())),
        "the victim, on a gateway started with the tenant's broken key set",
    );
    let r = gw.send(&Request::predict(PROBE).bearer(&evil_token(json!({}))));
    assert_eq!(r.status, 401, "{}", r.summary());
    assert_reached(
        &gw.send(&Request::get("/some/other/app")),
        "another application",
    );

    // A running gateway takes an update carrying the broken set too: a model created in
    // the same update is guarded from the start, never let through.
    config["models"][NEW] = new_model_entry.unwrap();
    gw.reconfigure(&with_deep(&config)).unwrap();
    assert_no_token(
        &gw.send(&Request::predict(NEW)),
        NEW,
        "created with the broken set",
    );
    assert_eq!(gw.server(NEW, "default").count(), 0);
}

#[test]
fn no_class_of_header_a_token_could_write_is_a_policys_to_write() {
    // One class after another, in a configuration the controller would refuse to write:
    // addressing, routing, credentials, Envoy's router, the codec, tracing, the route tag.
    let rendered = rendered("m:x-tenant-model", false);
    let gw = sample::start_with("tenant-header-classes", &gateway_spec(&rendered));
    let classes = [
        ("addressing", "namespace", "bank"),
        ("routing", "x-seldon-predictor", "vault-dark"),
        ("credentials", "authorization", "Bearer x"),
        ("router: host", "host", "bank.example.com"),
        ("router: x-envoy-*", "x-envoy-upstream-rq-timeout-ms", "1"),
        ("codec", "content-type", "application/grpc"),
        ("codec", "te", "trailers"),
        ("tracing", "x-request-id", "forged"),
        (
            "the route tag",
            "x-modelgate-route",
            "bank/fraud/vault-dark",
        ),
    ];
    for (class, header, value) in classes {
        let mut config = filter_config(&rendered);
        probe_policy(&mut config)["forwardClaims"] = json!({"m": header});
        gw.reconfigure(&config.to_string()).unwrap();
        let token = evil_token(json!({"m": value}));
        for request in [Request::predict(PROBE), grpc_call(PROBE)] {
            let r = gw.send(&request.bearer(&token));
            assert!(
                r.upstream().is_none(),
                "{class} ({header}): {}",
                r.summary()
            );
        }
        assert!(
            gw.log()
                .contains(&format!("forwardClaims[\"m\"]: \"{header}\"")),
            "{class} ({header}): the refusal names the field"
        );
        // Everyone else is served from the same configuration.
        assert_reached(
            &gw.send(&Request::predict(FRAUD).bearer(&bank_token())),
            &format!("{class}: the victim"),
        );
    }
    assert_eq!(gw.server(FRAUD, "vault-dark").count(), 0);
    assert_eq!(gw.server(PROBE, "default").count(), 0);
}

#[test]
fn a_claim_rule_is_met_by_one_value_and_the_issuer_is_one_string() {
    // Item 11: `sub: "mallory alice"` met `["alice"]` (every string claim was split on
    // spaces) and `"iss": [other, bank]` met the bank's issuer.
    let rendered = rendered("m:x-tenant-model", false);
    let mut config = filter_config(&rendered);
    let fraud_policy = config["models"][FRAUD]["policy"]
        .as_str()
        .unwrap()
        .to_string();
    config["policies"][&fraud_policy]["claims"] = json!({"sub": ["alice"], "scope": ["predict"]});
    let mut spec = gateway_spec(&rendered);
    spec.filter_config = config.to_string();
    let gw = sample::start_with("tenant-claim-shapes", &spec);
    let token = |claims: Value| {
        let all = json!({"iss": BANK_ISSUER, "sub": "alice", "scope": "read predict", "exp": now() + 300});
        TestKey::rsa_a().sign(&changed_claims(all, &claims))
    };
    // scope is a space-separated list (RFC 8693): "read predict" holds "predict".
    assert_reached(
        &gw.send(&Request::predict(FRAUD).bearer(&token(json!({})))),
        "sub alice, scope 'read predict'",
    );
    let r = gw.send(&Request::predict(FRAUD).bearer(&token(json!({"sub": "mallory alice"}))));
    assert_insufficient_scope(&r, FRAUD, "a sub that only contains alice");
    let r = gw.send(&Request::predict(FRAUD).bearer(&token(
        json!({"iss": ["https://other.example", BANK_ISSUER]}),
    )));
    assert_invalid_token(&r, FRAUD, "malformed_token", "an issuer array");
    assert_eq!(gw.server(FRAUD, "main").count(), 1);
}

#[test]
fn keys_sharing_a_kid_cost_one_key_not_hundreds() {
    // Item 10: 200 keys under one kid meant 200 signature checks per token. Tampered in
    // (the controller keeps at most 16 keys per set): the filter keeps one per kid and
    // algorithm, and the tenant's valid token still verifies.
    let rendered = rendered("m:x-tenant-model", false);
    let mut config = filter_config(&rendered);
    let key_set = probe_policy(&mut config)["keySet"]
        .as_str()
        .unwrap()
        .to_string();
    let mut same_kid = TestKey::ec().jwk();
    same_kid["kid"] = json!("shared");
    let mut keys = vec![same_kid.clone(); 200];
    keys.insert(0, TestKey::ec().jwk());
    config["keySets"][&key_set]["keys"] = json!(keys);
    let mut spec = gateway_spec(&rendered);
    spec.filter_config = config.to_string();
    let gw = sample::start_with("tenant-shared-kid", &spec);
    let log = gw.log();
    assert!(
        log.contains("skipped") && log.contains("\"shared\""),
        "the extra keys are skipped and logged"
    );
    assert_reached(
        &gw.send(&Request::predict(PROBE).bearer(&evil_token(json!({})))),
        "the tenant's own valid token",
    );
}
