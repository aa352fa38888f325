//! Fail closed (SPEC section 3): a model whose policy cannot be used is denied, never let
//! through (`401` when no key can verify its tokens, `403` otherwise), and a gateway that
//! never received a usable configuration lets nothing through.

use modelgate_core::config::{KeySet, Model, Policy};
use modelgate_e2e::answers::{
    assert_invalid_token, assert_reached, assert_refused, insufficient_scope_challenge,
};
use modelgate_e2e::client::GRPC_PREDICT_PATH;
use modelgate_e2e::sample::{self, ISSUER};
use modelgate_e2e::{GatewaySpec, ModelRoutes, Request};
use modelgate_testkit::TestKey;
use serde_json::json;

const BROKEN: &str = "broken/model";
const KEYLESS: &str = "keyless/model";

fn spec_with_unusable_policies() -> GatewaySpec {
    let mut config = sample::filter_config();
    config.policies.insert(
        "broken".into(),
        Policy::Deny {
            reason: "seldon.io/jwt-claims: expected a JSON object".into(),
        },
    );
    // Keys the filter must never trust: a 1024-bit RSA key and an HMAC secret.
    let weak = TestKey::weak_rsa().jwk();
    let oct = json!({"kty": "oct", "kid": "shared-secret", "k": "c2VjcmV0LXNlY3JldA"});
    config.key_sets.insert(
        "unusable".into(),
        KeySet {
            source: None,
            keys: vec![weak, oct],
        },
    );
    config.policies.insert(
        "keyless".into(),
        Policy::Jwt(sample::jwt_policy(ISSUER, "unusable")),
    );
    for (model, policy) in [(BROKEN, "broken"), (KEYLESS, "keyless")] {
        config.models.insert(
            model.into(),
            Model {
                policy: policy.into(),
                routing: None,
            },
        );
    }
    let mut routes = sample::routes();
    routes
        .models
        .push(ModelRoutes::new("broken", "model", &[("default", 100)]));
    routes
        .models
        .push(ModelRoutes::new("keyless", "model", &[("default", 100)]));
    GatewaySpec {
        routes,
        filter_config: sample::to_json(&config),
        workers: 1,
    }
}

#[test]
fn a_model_whose_policy_cannot_be_used_is_denied() {
    let gw = sample::start_with("fail-closed-policies", &spec_with_unusable_policies());
    let weak_token = TestKey::weak_rsa()
        .sign(&json!({"iss": ISSUER, "sub": "x", "exp": modelgate_testkit::now() + 60}));

    for request in [
        Request::predict(BROKEN),
        Request::predict(BROKEN).bearer(&sample::team_token("u")),
    ] {
        let r = gw.send(&request);
        assert_refused(
            &r,
            403,
            Some(&insufficient_scope_challenge(BROKEN)),
            BROKEN,
            "policy_unusable",
            "broken policy",
        );
    }
    for (what, request) in [
        ("no token", Request::predict(KEYLESS)),
        (
            "weak-key token",
            Request::predict(KEYLESS).bearer(&weak_token),
        ),
        (
            "team token",
            Request::predict(KEYLESS).bearer(&sample::team_token("u")),
        ),
    ] {
        assert_invalid_token(&gw.send(&request), KEYLESS, "no_keys", what);
    }
    assert_eq!(gw.requests_to_models(), 0);
    // The metrics exemption still holds: it carries no credentials to check.
    assert_reached(
        &gw.send(&Request::get(&format!("/seldon/{BROKEN}/prometheus"))),
        "exempt",
    );

    let log = gw.log();
    assert!(
        log.contains("keySets[\"unusable\"]: has no usable key"),
        "a warning names the key set:\n{log}"
    );
    // The other models are unaffected.
    assert_reached(
        &gw.send(&Request::predict(sample::FRAUD).bearer(&sample::fraud_token("a"))),
        "fraud",
    );
}

#[test]
fn a_gateway_that_never_had_a_usable_configuration_lets_nothing_through() {
    let spec = GatewaySpec {
        filter_config: r#"{"version": 2}"#.into(),
        ..sample::spec()
    };
    let gw = sample::start_with("fail-closed-no-config", &spec);
    // Whatever addresses a model, by path or by gRPC headers, is refused.
    let grpc = Request::new("POST", GRPC_PREDICT_PATH).grpc_to(sample::FRAUD);
    for request in [
        Request::predict(sample::IRIS),
        Request::predict(sample::FRAUD).bearer(&sample::fraud_token("a")),
        Request::get(&format!("/seldon/{}/prometheus", sample::FRAUD)),
        grpc,
    ] {
        let r = gw.send(&request);
        // (Envoy answers a gRPC call's refusal as gRPC: HTTP 200 with a grpc-status.)
        let refused = r.status >= 500 || r.header("grpc-status").is_some_and(|s| s != "0");
        assert!(
            refused && r.upstream().is_none(),
            "{}: {}",
            request.target,
            r.summary()
        );
    }
    // Envoy fails a plugin that was never configured: the gateway's other applications get
    // its 500 too (fail closed), which is why nothing a tenant writes can get a document
    // refused whole (tests/tests/tenant.rs).
    let other = gw.send(&Request::get("/healthz"));
    assert!(
        other.status >= 500 && other.upstream().is_none(),
        "{}",
        other.summary()
    );
    assert_eq!(gw.requests_to_models() + gw.other_app().count(), 0);
    assert!(
        gw.log()
            .contains("modelgate: configuration refused: version")
    );

    // The first usable configuration opens the gateway.
    gw.reconfigure(&sample::to_json(&sample::filter_config()))
        .unwrap();
    assert_reached(
        &gw.send(&Request::predict(sample::IRIS)),
        "after a good config",
    );
}
