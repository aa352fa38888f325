//! What passes without a token (SPEC section 3, "Exemption" and "CORS"): exactly
//! `GET /prometheus` and `GET /seldon/<ns>/<name>/prometheus`, and CORS preflights; and
//! nothing that merely looks like them, whatever Envoy's path normalisation does first.

use modelgate_e2e::answers::{assert_no_token, assert_reached, no_token_challenge};
use modelgate_e2e::sample::{self, CREDIT, FRAUD, LEGACY};
use modelgate_e2e::{Request, Response};

/// A request addressed to `fraud/detector` by the gRPC headers, whatever its path.
fn grpc_addressed(method: &str, path: &str) -> Request {
    Request::new(method, path).grpc_to(FRAUD)
}

#[test]
fn get_of_the_prometheus_paths_needs_no_token() {
    let gw = sample::start("exempt-prometheus");
    for model in [FRAUD, CREDIT] {
        for (target, forwarded) in [
            (format!("/seldon/{model}/prometheus"), "/prometheus"),
            (
                format!("/seldon/{model}/prometheus?name[]=up"),
                "/prometheus?name[]=up",
            ),
        ] {
            let echo = assert_reached(&gw.send(&Request::get(&target)), &target);
            assert_eq!(echo.received.method, "GET");
            assert_eq!(echo.received.path, forwarded, "{target}");
        }
    }
    // `/prometheus` itself, for a request addressed by the gRPC headers.
    let echo = assert_reached(
        &gw.send(&grpc_addressed("GET", "/prometheus")),
        "gRPC-addressed",
    );
    assert_eq!(echo.server, "prometheus");
    // Without model headers `/prometheus` addresses no model and passes untouched.
    let echo = assert_reached(&gw.send(&Request::get("/prometheus")), "no model");
    assert_eq!(echo.server, "prometheus");

    let metrics = gw.metrics();
    let exempt = |model: &str| {
        metrics.value(
            "modelgate_requests_total",
            &[
                ("model", model),
                ("decision", "allowed"),
                ("reason", "exempt"),
            ],
        )
    };
    assert_eq!(exempt(FRAUD), 3.0);
    assert_eq!(exempt(CREDIT), 2.0);
}

/// A refusal without a token; HEAD answers carry no body to check.
fn assert_needs_token(r: &Response, method: &str, context: &str) {
    if method == "HEAD" {
        assert_eq!(r.status, 401, "{context}: {}", r.summary());
        assert_eq!(
            r.header("www-authenticate"),
            Some(no_token_challenge(FRAUD).as_str()),
            "{context}"
        );
        assert!(r.upstream().is_none(), "{context}");
    } else {
        assert_no_token(r, FRAUD, context);
    }
}

#[test]
fn other_methods_and_lookalike_paths_need_a_token() {
    let gw = sample::start("exempt-lookalikes");
    let own = format!("/seldon/{FRAUD}/prometheus");
    for method in ["HEAD", "POST", "PUT", "DELETE", "PATCH", "get"] {
        let r = gw.send(&Request::new(method, &own));
        if method == "get" {
            // Methods are case-sensitive; Envoy passes the odd one on and the filter refuses it.
            assert_ne!(r.status, 200, "{method}: {}", r.summary());
            assert!(r.upstream().is_none(), "{method}");
        } else {
            assert_needs_token(&r, method, method);
        }
    }
    let suffixes = [
        "prometheus/",
        "prometheus/x",
        "PROMETHEUS",
        "Prometheus",
        "/prometheus",
        "prometheus%2f",
        "prometheus%2F..%2Fx",
        "x%2f..%2fprometheus",
        "prometheus%5c",
        "prometheus\\",
        "prometheus;x=y",
        "prometheus.",
        "api/prometheus",
        "prometheus/..%2f..%2fapi",
    ];
    for suffix in suffixes {
        let target = format!("/seldon/{FRAUD}/{suffix}");
        let r = gw.send(&Request::get(&target));
        assert_needs_token(&r, "GET", &target);
    }
    // Envoy refuses an escaped NUL itself, before any filter.
    let r = gw.send(&Request::get(&format!("/seldon/{FRAUD}/prometheus%00")));
    assert_eq!(r.status, 400, "{}", r.summary());
    assert!(r.upstream().is_none());
    // `/prometheus` for a gRPC-addressed request: Envoy turns the 401 into gRPC status 16.
    for (method, path) in [
        ("HEAD", "/prometheus"),
        ("POST", "/prometheus"),
        ("GET", "/prometheus/"),
        ("GET", "/prometheus/x"),
        ("GET", "/PROMETHEUS"),
        ("GET", "//prometheus"),
        ("GET", "/prometheus%2f"),
        ("GET", "/prometheus%5c"),
        ("GET", "/prometheus\\"),
        ("GET", "/prometheus;x=y"),
    ] {
        let r = gw.send(&grpc_addressed(method, path));
        let context = format!("gRPC-addressed {method} {path}");
        assert!(r.upstream().is_none(), "{context}: {}", r.summary());
        assert_eq!(r.header("grpc-status"), Some("16"), "{context}");
        assert_eq!(
            r.header("www-authenticate"),
            Some(no_token_challenge(FRAUD).as_str()),
            "{context}"
        );
    }
    assert_eq!(gw.requests_to_models(), 0);
    assert_eq!(gw.prometheus_server().count(), 0);
}

/// Istio's default normalisation resolves dot-segments (also escaped ones) before any
/// filter runs. Whatever such a path becomes, the only thing that may reach a model
/// without a token is a `GET` of exactly `/prometheus`.
#[test]
fn paths_envoy_normalises_reach_a_model_only_as_get_prometheus() {
    let gw = sample::start("exempt-normalised");
    let targets = [
        "/seldon/fraud/detector/./prometheus",
        "/seldon/fraud/detector/x/../prometheus",
        "/seldon/fraud/detector/%2e/prometheus",
        "/seldon/fraud/detector/x/%2e%2e/prometheus",
        "/seldon/fraud/detector/%70rometheus",
        "/seldon/fraud/detector/api/v1.0/../../prometheus",
        "/seldon/credit/scorer/../../fraud/detector/prometheus",
        "/seldon/fraud/detector/prometheus/..",
        "/seldon/fraud/detector/prometheus/../api/v1.0/predictions",
        "/seldon/fraud/detector/prometheus/%2e%2e/api/v1.0/predictions",
        "/prometheus/../seldon/fraud/detector/api/v1.0/predictions",
    ];
    let mut reached = 0;
    for target in targets {
        let r = gw.send(&Request::get(target));
        match r.echo() {
            Some(echo) => {
                reached += 1;
                assert_eq!(
                    echo.received.path, "/prometheus",
                    "{target} reached a model"
                );
                assert_eq!(echo.received.method, "GET");
            }
            None => assert_needs_token(&r, "GET", target),
        }
    }
    assert!(
        reached > 0,
        "Envoy normalised nothing: is normalize_path set?"
    );
}

#[test]
fn cors_preflights_need_no_token_but_must_be_real_preflights() {
    let gw = sample::start("exempt-preflight");
    let target = |model: &str| format!("/seldon/{model}/api/v1.0/predictions");
    for model in [FRAUD, CREDIT, LEGACY] {
        let r = gw.send(
            &Request::new("OPTIONS", &target(model))
                .header("origin", "http://127.0.0.1:3000")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
        );
        let echo = assert_reached(&r, model);
        assert_eq!(echo.received.method, "OPTIONS");
    }
    let half_preflights = [
        ("OPTIONS", Some("http://127.0.0.1:3000"), None),
        ("OPTIONS", None, Some("POST")),
        ("OPTIONS", None, None),
        ("POST", Some("http://127.0.0.1:3000"), Some("POST")),
    ];
    for (method, origin, requested) in half_preflights {
        let mut request = Request::new(method, &target(FRAUD));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(requested) = requested {
            request = request.header("access-control-request-method", requested);
        }
        let context = format!("{method} origin={origin:?} method={requested:?}");
        assert_needs_token(&gw.send(&request), method, &context);
    }
    let preflights = gw.metrics().value(
        "modelgate_requests_total",
        &[("decision", "allowed"), ("reason", "preflight")],
    );
    assert_eq!(preflights, 3.0);
}
