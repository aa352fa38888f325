//! Path tricks against the `/prometheus` exemption and model addressing.

use modelgate_e2e::Request;
use modelgate_e2e::answers::no_token_challenge;
use modelgate_e2e::corpus::{Case, Expect, assert_table, case};
use modelgate_e2e::sample::{self, FRAUD, IRIS, LEGACY};

/// Path tricks against the exemption and model addressing, all without a token (SPEC 3
/// "Exemption": `GET` of exactly `/prometheus` or `/seldon/<ns>/<name>/prometheus`, query
/// aside; nothing else). Envoy resolves dot-segments (also `%2e`) before the filter, as
/// Istio's default normalisation does; whatever it makes of a path, a model server sees a
/// token-less request only as `GET /prometheus`, and a path that names no model reaches
/// the application it names.
#[test]
fn path_tricks_reach_a_model_only_as_get_prometheus() {
    let gw = sample::start("attacks-paths");
    let needs_token = || Expect::missing_token(FRAUD);
    let other_app = || Expect::Passed {
        server: "other-app",
        untouched: None,
    };
    let prometheus = || Expect::Passed {
        server: "prometheus",
        untouched: None,
    };
    let get = Request::get;
    let grpc_get = |path: &str| {
        Request::get(path)
            .header("content-type", "application/grpc")
            .header("seldon", "detector")
            .header("namespace", "fraud")
    };
    let grpc_needs_token = || Expect::GrpcRefused {
        grpc_status: "16",
        reason: "missing_token",
        challenge: Some(no_token_challenge(FRAUD)),
    };
    let m = "/seldon/fraud/detector";
    let p = |suffix: &str| format!("{m}{suffix}");

    let mut cases: Vec<Case> = vec![
        case(
            "control: the model's own path",
            get(&p("/prometheus")),
            Expect::exempt(FRAUD, "/prometheus"),
        ),
        case(
            "query holding dot-segments",
            get(&p("/prometheus?x=/../api/v1.0/predictions")),
            Expect::exempt(FRAUD, "/prometheus?x=/../api/v1.0/predictions"),
        ),
        case(
            "absolute-form target",
            get(&format!("http://gateway.e2e{m}/prometheus")),
            Expect::exempt(FRAUD, "/prometheus"),
        ),
        case(
            "absolute-form target naming another host",
            get(&format!("http://attacker.example{m}/prometheus")),
            Expect::exempt(FRAUD, "/prometheus"),
        ),
        case(
            "upper-case %2E%2E resolved back to the model's own path",
            get(&p("/x/%2E%2E/prometheus")),
            Expect::exempt(FRAUD, "/prometheus"),
        ),
        case(
            "dot-segment in the middle of the model prefix",
            get("/seldon/./fraud/detector/prometheus"),
            Expect::exempt(FRAUD, "/prometheus"),
        ),
        case(
            "absolute-form target, prediction",
            Request::new(
                "POST",
                &format!("http://gateway.e2e{m}/api/v1.0/predictions"),
            ),
            needs_token(),
        ),
        case("trailing /.", get(&p("/prometheus/.")), needs_token()),
        case("trailing /%2e", get(&p("/prometheus/%2e")), needs_token()),
        case("trailing %2e", get(&p("/prometheus%2e")), needs_token()),
        case("trailing ..", get(&p("/prometheus..")), needs_token()),
        case("trailing ...", get(&p("/prometheus...")), needs_token()),
        case("trailing %20", get(&p("/prometheus%20")), needs_token()),
        case("trailing %09", get(&p("/prometheus%09")), needs_token()),
        case(
            "escaped slash and dots",
            get(&p("/prometheus%2f..")),
            needs_token(),
        ),
        case(
            "escaped slash and dots, upper case",
            get(&p("/prometheus%2F%2E%2E%2Fapi/v1.0/predictions")),
            needs_token(),
        ),
        case(
            "escaped backslashes",
            get(&p("/prometheus%5c..%5capi")),
            needs_token(),
        ),
        case(
            "a query after the prediction path",
            get(&p("/api/v1.0/predictions?/prometheus")),
            needs_token(),
        ),
        case(
            "a path parameter before /prometheus",
            get(&p("/api/v1.0/predictions;/prometheus")),
            needs_token(),
        ),
        case(
            "an escaped ? before /prometheus",
            get(&p("/api/v1.0/predictions%3f/prometheus")),
            needs_token(),
        ),
        case(
            "an escaped # before dot-segments",
            get(&p("/api/v1.0/predictions%23/../../prometheus")),
            needs_token(),
        ),
        case(
            "fullwidth slash, escaped",
            get(&p("/%EF%BC%8Fprometheus")),
            needs_token(),
        ),
        case(
            "fullwidth slash after, escaped",
            get(&p("/prometheus%EF%BC%8F")),
            needs_token(),
        ),
        case(
            "U+2215 division slash, escaped",
            get(&p("/api%E2%88%95..%E2%88%95prometheus")),
            needs_token(),
        ),
        case(
            "Cyrillic dze for the s, escaped",
            get(&p("/prometheu%D1%95")),
            needs_token(),
        ),
        case(
            "fullwidth PROMETHEUS letters, escaped",
            get(&p("/%EF%BD%90rometheus")),
            needs_token(),
        ),
        case(
            "model name in upper case",
            get("/seldon/fraud/DETECTOR/prometheus"),
            needs_token(),
        ),
        case(
            "/prometheus/%2e%2e into the model",
            get(&format!("/prometheus/%2e%2e{m}/api/v1.0/predictions")),
            needs_token(),
        ),
        case(
            "/prometheus/%2E%2E into the model",
            get(&format!("/prometheus/%2E%2E{m}/api/v1.0/predictions")),
            needs_token(),
        ),
        case(
            "//prometheus/.. into the model",
            get(&format!("//prometheus/..{m}/api/v1.0/predictions")),
            needs_token(),
        ),
        case(
            "/./ before the model",
            get(&format!("/.{m}/api/v1.0/predictions")),
            needs_token(),
        ),
        case(
            "from the open model into the JWT one",
            get(&format!(
                "/seldon/{IRIS}/../../fraud/detector/api/v1.0/predictions"
            )),
            needs_token(),
        ),
        case(
            "from the JWT model into the open one",
            get(&format!("{m}/../../public/iris/api/v1.0/predictions")),
            Expect::reached(IRIS),
        ),
        case(
            "HEAD /prometheus, no model: the gateway's own",
            Request::new("HEAD", "/prometheus"),
            prometheus(),
        ),
        case(
            "POST /prometheus, no model: the gateway's own",
            Request::new("POST", "/prometheus"),
            prometheus(),
        ),
        case(
            "HEAD of the model's own path",
            Request::new("HEAD", &p("/prometheus")),
            needs_token(),
        ),
        case(
            "OPTIONS of the model's own path without a preflight's headers",
            Request::new("OPTIONS", &p("/prometheus")),
            needs_token(),
        ),
        case(
            "POST of the model's own path with a query",
            Request::new("POST", &p("/prometheus?x=1")),
            needs_token(),
        ),
        // Paths that name no configured model and that no model route matches.
        case(
            "/prometheus%2f..%2f into the model: the gateway's /prometheus",
            get(&format!("/prometheus%2f..%2f{m}/api/v1.0/predictions")),
            prometheus(),
        ),
        case(
            "model name with a ;",
            get("/seldon/fraud/detector;x/prometheus"),
            other_app(),
        ),
        case(
            "model name with a trailing dot",
            get("/seldon/fraud/detector./prometheus"),
            other_app(),
        ),
        case(
            "model name with an escaped trailing dot",
            get("/seldon/fraud/detector%2e/prometheus"),
            other_app(),
        ),
        case(
            "model name and path joined by an escaped backslash",
            get("/seldon/fraud/detector%5cprometheus"),
            other_app(),
        ),
        case(
            "model name and path joined by an escaped slash",
            get("/seldon/fraud/detector%2fprometheus"),
            other_app(),
        ),
        case(
            "dotless i in the namespace, escaped",
            Request::predict("cred%C4%B1t/scorer"),
            other_app(),
        ),
        case("/PROMETHEUS", get("/PROMETHEUS"), other_app()),
        // gRPC-addressed requests: only `GET /prometheus`, query aside, is exempt.
        case(
            "gRPC-addressed GET /prometheus with a query naming the gRPC route",
            grpc_get("/prometheus?tensorflow"),
            prometheus(),
        ),
        case(
            "gRPC-addressed GET /prometheus/.. into the gRPC route",
            grpc_get("/prometheus/../tensorflow.serving.PredictionService/Predict"),
            grpc_needs_token(),
        ),
        case(
            "gRPC-addressed GET /prometheus%2f.. into the gRPC route",
            grpc_get("/prometheus%2f..%2ftensorflow.serving.PredictionService/Predict"),
            grpc_needs_token(),
        ),
        case(
            "gRPC-addressed GET /prometheus/. ",
            grpc_get("/prometheus/."),
            grpc_needs_token(),
        ),
    ];
    // Raw non-ASCII bytes or a fragment in the request target: Envoy 1.40 refuses them
    // itself, before any filter.
    for (what, target) in [
        ("raw fullwidth slash", p("/\u{FF0F}prometheus")),
        ("raw division slash", p("/api\u{2215}..\u{2215}prometheus")),
        (
            "raw dotless i",
            "/seldon/cred\u{131}t/scorer/api/v1.0/predictions".to_string(),
        ),
    ] {
        cases.push(case(what, get(&target), Expect::Envoy { status: 400 }));
    }
    cases.push(case(
        "a fragment after the model's own path",
        get(&p("/prometheus#x")),
        Expect::Envoy { status: 400 },
    ));
    cases.push(case(
        "a fragment holding dot-segments after a prediction path",
        get(&p("/api/v1.0/predictions#/../../prometheus")),
        Expect::Envoy { status: 400 },
    ));
    assert_table(&gw, "path tricks", &cases);
    assert_eq!(
        gw.server(LEGACY, "default").count(),
        0,
        "nothing reached the audit-mode model"
    );
}
