//! gRPC model confusion: a request whose path and headers name different models.

use modelgate_core::config::{Model, Policy};
use modelgate_e2e::answers::no_token_challenge;
use modelgate_e2e::corpus::{Case, Expect, assert_table, case};
use modelgate_e2e::sample::{self, CREDIT, FRAUD, IRIS};
use modelgate_e2e::{GatewaySpec, ModelRoutes, Request};
use serde_json::json;

use crate::forgery::HEADER;

/// A gateway with the sample models plus `fraud/open`, a model with no authentication in
/// the namespace of the JWT model `fraud/detector`: a request the filter authorized as
/// one and Envoy delivered to the other would show.
fn confusable_gateway(name: &str) -> modelgate_e2e::Gateway {
    let mut config = sample::filter_config();
    config.models.insert(
        "fraud/open".into(),
        Model {
            policy: "open".into(),
            routing: None,
        },
    );
    assert!(matches!(config.policies.get("open"), Some(Policy::None)));
    let mut routes = sample::routes();
    routes
        .models
        .push(ModelRoutes::new("fraud", "open", &[("default", 100)]));
    sample::start_with(
        name,
        &GatewaySpec {
            routes,
            filter_config: sample::to_json(&config),
            workers: 1,
        },
    )
}

/// gRPC model confusion (SPEC 3 "Model addressing"; `filter/README.md`: path and headers
/// naming different models, or a repeated `seldon`/`namespace` header, is
/// `400 ambiguous_model`): a request is never authorized against the open model while
/// Envoy can deliver it to the JWT one.
#[test]
fn grpc_requests_are_never_authorized_against_another_model() {
    let gw = confusable_gateway("attacks-grpc-confusion");
    const OPEN: &str = "fraud/open";
    let token = sample::fraud_token("alice");
    let grpc = Request::grpc;
    let predict = "/seldon.protos.Seldon/Predict";
    let ambiguous = || Expect::GrpcRefused {
        grpc_status: "13",
        reason: "ambiguous_model",
        challenge: None,
    };
    let grpc_needs_token = || Expect::GrpcRefused {
        grpc_status: "16",
        reason: "missing_token",
        challenge: Some(no_token_challenge(FRAUD)),
    };
    let other_app = || Expect::Passed {
        server: "other-app",
        untouched: None,
    };
    let cases: Vec<Case> = vec![
        case(
            "control: the open model by headers",
            grpc(predict, "open", "fraud"),
            Expect::reached(OPEN),
        ),
        case(
            "control: the JWT model by headers, no token",
            grpc(predict, "detector", "fraud"),
            grpc_needs_token(),
        ),
        case(
            "control: the JWT model by headers, token",
            grpc(predict, "detector", "fraud").bearer(&token),
            Expect::reached(FRAUD),
        ),
        case(
            "open headers, JWT model's REST prefix on the gRPC path",
            grpc(&format!("/seldon/{FRAUD}{predict}"), "open", "fraud"),
            ambiguous(),
        ),
        case(
            "JWT headers, open model's REST prefix, with a token",
            grpc(&format!("/seldon/{OPEN}{predict}"), "detector", "fraud").bearer(&token),
            ambiguous(),
        ),
        case(
            "open headers, JWT model's prefix spelled in upper case",
            grpc("/SELDON/FRAUD/DETECTOR/tensorflow", "open", "fraud"),
            ambiguous(),
        ),
        case(
            "open headers, JWT model's prefix with doubled slashes",
            grpc(
                &format!("//seldon//fraud/detector{predict}"),
                "open",
                "fraud",
            ),
            ambiguous(),
        ),
        case(
            "open headers, JWT model's prefix reached by a dot-segment",
            grpc(
                &format!("/seldon/fraud/open/../detector{predict}"),
                "open",
                "fraud",
            ),
            ambiguous(),
        ),
        case(
            "open headers, the JWT model's bare prefix",
            grpc("/seldon/fraud/detector", "open", "fraud"),
            ambiguous(),
        ),
        case(
            "open headers, a prefix naming an unknown model",
            grpc(&format!("/seldon/fraud/ghost{predict}"), "open", "fraud"),
            ambiguous(),
        ),
        case(
            "two open models: public/iris prefix, fraud/open headers",
            grpc(&format!("/seldon/{IRIS}{predict}"), "open", "fraud"),
            ambiguous(),
        ),
        case(
            "open headers on a JSON request to the JWT model's REST path",
            Request::predict(FRAUD)
                .header("seldon", "open")
                .header("namespace", "fraud"),
            Expect::bad_request(Some(FRAUD), "ambiguous_model"),
        ),
        case(
            "JWT headers on a JSON request to the open model's REST path",
            Request::predict(OPEN)
                .header("seldon", "detector")
                .header("namespace", "fraud"),
            Expect::bad_request(Some(OPEN), "ambiguous_model"),
        ),
        case(
            "audit-mode headers on a JSON request to the enforcing model's REST path",
            Request::predict(CREDIT)
                .header("seldon", "legacy")
                .header("namespace", "credit"),
            Expect::bad_request(Some(CREDIT), "ambiguous_model"),
        ),
        case(
            "audit-mode headers, enforcing model's REST prefix on the gRPC path",
            grpc(&format!("/seldon/{CREDIT}{predict}"), "legacy", "credit"),
            ambiguous(),
        ),
        case(
            "seldon header twice: open then detector",
            grpc(predict, "open", "fraud").header("seldon", "detector"),
            ambiguous(),
        ),
        case(
            "seldon header twice: detector then open",
            grpc(predict, "detector", "fraud").header("seldon", "open"),
            ambiguous(),
        ),
        case(
            "seldon header twice with the same value",
            grpc(predict, "open", "fraud").header("seldon", "open"),
            ambiguous(),
        ),
        case(
            "namespace header twice, by two name cases",
            grpc(predict, "detector", "fraud").header("Namespace", "public"),
            ambiguous(),
        ),
        case(
            "seldon values comma-joined: no model, no model route",
            grpc(predict, "open,detector", "fraud"),
            other_app(),
        ),
        case(
            "seldon values comma-joined the other way",
            grpc(predict, "detector,open", "fraud"),
            other_app(),
        ),
        case(
            "JWT model's name in upper case: checked, never delivered to the open one",
            grpc(predict, "Detector", "FRAUD"),
            grpc_needs_token(),
        ),
        case(
            "JWT model's name percent-encoded",
            grpc(predict, "%64etector", "fraud"),
            grpc_needs_token(),
        ),
        case(
            "name of one model, namespace of another",
            grpc(predict, "detector", "public"),
            other_app(),
        ),
        case(
            "JWT headers, a path whose segments spell another model",
            grpc(&format!("/seldon/fraud{predict}"), "detector", "fraud"),
            ambiguous(),
        ),
        case(
            "JWT headers without the gRPC content type",
            Request::post_json(predict, &json!({}))
                .header("seldon", "detector")
                .header("namespace", "fraud"),
            Expect::missing_token(FRAUD),
        ),
        case(
            "open headers without the gRPC content type",
            Request::post_json(predict, &json!({}))
                .header("seldon", "open")
                .header("namespace", "fraud"),
            Expect::reached(OPEN),
        ),
        case(
            "JWT headers on the inference path",
            grpc(
                "/inference.GRPCInferenceService/ModelInfer",
                "detector",
                "fraud",
            ),
            grpc_needs_token(),
        ),
        case(
            "open headers on the tensorflow path with a JWT model's routing header",
            grpc(
                "/tensorflow.serving.PredictionService/Predict",
                "open",
                "fraud",
            )
            .header(HEADER, "dark"),
            Expect::reached(OPEN),
        ),
    ];
    assert_table(&gw, "gRPC model confusion", &cases);
    assert_eq!(
        gw.server(FRAUD, "dark").count(),
        0,
        "the dark launch was never reached"
    );
}
