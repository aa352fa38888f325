//! Routing-header spoofing: the upstream only ever sees the filter's choice of predictor.

use modelgate_e2e::Request;
use modelgate_e2e::answers::no_token_challenge;
use modelgate_e2e::corpus::{Case, Expect, assert_table, case};
use modelgate_e2e::sample::{self, FRAUD, IRIS, IRIS_HEADER, STICKY_HEADER};
use serde_json::json;

use crate::forgery::{HEADER, fraud};

/// Routing-header spoofing (SPEC 4): on every kind of request the upstream sees only the
/// filter's choice of predictor, once, and the response names it; the client's header is
/// honoured only where `ab-override` allows it and only once authorization has passed;
/// refusals name no predictor; requests to no model keep the client's header untouched.
#[test]
fn the_routing_header_is_only_ever_the_filters_choice() {
    let gw = sample::start("attacks-routing-spoof");
    let token = sample::fraud_token("alice");
    let no_scope = sample::fraud_token_with("mallory", &json!({"groups": ["marketing"]}));
    let exempt = format!("/seldon/{FRAUD}/prometheus");
    let preflight = || {
        Request::new("OPTIONS", &format!("/seldon/{FRAUD}/api/v1.0/predictions"))
            .header("origin", "http://127.0.0.1:3000")
            .header("access-control-request-method", "POST")
    };
    let unknown = || Expect::bad_request(Some(FRAUD), "unknown_predictor");

    let mut cases: Vec<Case> = vec![
        case("allowed, no header", fraud(&token), Expect::reached(FRAUD)),
        case(
            "allowed, override to the dark launch",
            fraud(&token).header(HEADER, "dark"),
            Expect::reached_predictor(FRAUD, "dark"),
        ),
        case(
            "allowed, header name in upper case",
            fraud(&token).header("X-SELDON-PREDICTOR", "dark"),
            Expect::reached_predictor(FRAUD, "dark"),
        ),
        case(
            "allowed, value padded with spaces",
            fraud(&token).header(HEADER, "  canary  "),
            Expect::reached_predictor(FRAUD, "canary"),
        ),
        case(
            "allowed, override beats the sticky key",
            fraud(&token)
                .header(STICKY_HEADER, "user-1")
                .header(HEADER, "dark"),
            Expect::reached_predictor(FRAUD, "dark"),
        ),
        case(
            "allowed, comma-joined values",
            fraud(&token).header(HEADER, "main,dark"),
            unknown(),
        ),
        case(
            "allowed, value in upper case",
            fraud(&token).header(HEADER, "DARK"),
            unknown(),
        ),
        case(
            "allowed, empty value",
            fraud(&token).header(HEADER, ""),
            unknown(),
        ),
        case(
            "allowed, the same value twice",
            fraud(&token).header(HEADER, "main").header(HEADER, "main"),
            Expect::bad_request(Some(FRAUD), "ambiguous_predictor"),
        ),
        case(
            "allowed, two name cases",
            fraud(&token)
                .header("X-Seldon-Predictor", "main")
                .header(HEADER, "dark"),
            Expect::bad_request(Some(FRAUD), "ambiguous_predictor"),
        ),
        case(
            "no token, override to the dark launch",
            Request::predict(FRAUD).header(HEADER, "dark"),
            Expect::missing_token(FRAUD),
        ),
        case(
            "bad token, override to the dark launch",
            fraud("junk").header(HEADER, "dark"),
            Expect::invalid_token(FRAUD, "malformed_token"),
        ),
        case(
            "no scope, override to the dark launch",
            fraud(&no_scope).header(HEADER, "dark"),
            Expect::insufficient_scope(FRAUD),
        ),
        case(
            "no token, unknown predictor: authorization first",
            Request::predict(FRAUD).header(HEADER, "nope"),
            Expect::missing_token(FRAUD),
        ),
        case(
            "exempt GET, no header",
            Request::get(&exempt),
            Expect::exempt(FRAUD, "/prometheus"),
        ),
        case(
            "exempt GET, override to the dark launch",
            Request::get(&exempt).header(HEADER, "dark"),
            Expect::Reached {
                model: FRAUD,
                predictor: Some("dark"),
                path: Some("/prometheus"),
                withheld: None,
            },
        ),
        case(
            "exempt GET, unknown predictor",
            Request::get(&exempt).header(HEADER, "nope"),
            unknown(),
        ),
        case(
            "exempt GET, two values",
            Request::get(&exempt)
                .header(HEADER, "main")
                .header(HEADER, "dark"),
            Expect::bad_request(Some(FRAUD), "ambiguous_predictor"),
        ),
        case("preflight, no header", preflight(), Expect::reached(FRAUD)),
        case(
            "preflight, override to the dark launch",
            preflight().header(HEADER, "dark"),
            Expect::reached_predictor(FRAUD, "dark"),
        ),
        case(
            "gRPC, allowed, override to the dark launch",
            Request::grpc_predict(FRAUD)
                .bearer(&token)
                .header(HEADER, "dark"),
            Expect::reached_predictor(FRAUD, "dark"),
        ),
        case(
            "gRPC, no token, override to the dark launch",
            Request::grpc_predict(FRAUD).header(HEADER, "dark"),
            Expect::GrpcRefused {
                grpc_status: "16",
                reason: "missing_token",
                challenge: Some(no_token_challenge(FRAUD)),
            },
        ),
        case(
            "unknown model: the client's header untouched",
            Request::predict("other/unknown")
                .header(HEADER, "dark")
                .header(HEADER, "main,canary"),
            Expect::Passed {
                server: "other-app",
                untouched: Some(HEADER),
            },
        ),
        case(
            "no model, GET /prometheus: the client's header untouched",
            Request::get("/prometheus").header(HEADER, "dark"),
            Expect::Passed {
                server: "prometheus",
                untouched: Some(HEADER),
            },
        ),
    ];
    // public/iris: override disabled, whatever the client sends is replaced by the choice.
    let spoofs: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("a predictor", vec![(IRIS_HEADER, "b")]),
        ("not a predictor", vec![(IRIS_HEADER, "nope")]),
        ("comma-joined", vec![(IRIS_HEADER, "a,b")]),
        (
            "three lines",
            vec![(IRIS_HEADER, "b"), (IRIS_HEADER, "b"), (IRIS_HEADER, "a")],
        ),
        (
            "name cases",
            vec![("X-Iris-Variant", "b"), ("X-IRIS-VARIANT", "a")],
        ),
        ("empty", vec![(IRIS_HEADER, "")]),
    ];
    for (what, headers) in spoofs {
        let with = |mut request: Request| {
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            request
        };
        cases.push(case(
            format!("override disabled, {what}"),
            with(Request::predict(IRIS)),
            Expect::reached(IRIS),
        ));
        cases.push(case(
            format!("override disabled, exempt GET, {what}"),
            with(Request::get(&format!("/seldon/{IRIS}/prometheus"))),
            Expect::exempt(IRIS, "/prometheus"),
        ));
        cases.push(case(
            format!("override disabled, gRPC, {what}"),
            with(Request::grpc_predict(IRIS)),
            Expect::reached(IRIS),
        ));
    }
    assert_table(&gw, "routing-header spoofing", &cases);

    // Not a single override was counted for the model that does not allow them.
    let overrides = gw.metrics().value(
        "modelgate_routed_total",
        &[("model", IRIS), ("reason", "override")],
    );
    assert_eq!(overrides, 0.0, "override counted for {IRIS}");
}
