//! modelgate's metrics as a Prometheus scrape of the gateway sees them (SPEC section 4,
//! `filter/README.md`): names starting with `modelgate_`, labels by model, decision,
//! reason and predictor, one count per request.

use modelgate_e2e::Request;
use modelgate_e2e::sample::{self, CREDIT, FRAUD, IRIS, LEGACY};
use modelgate_testkit::now;
use serde_json::json;

#[test]
fn every_decision_is_counted_with_its_labels() {
    let gw = sample::start("metrics-labels");
    let token = sample::fraud_token("alice");
    let expired = sample::fraud_token_with("bob", &json!({"exp": now() - 3600}));
    let mut client = gw.client();
    let mut send = |request: Request, times: usize| {
        for _ in 0..times {
            client.send(&request).unwrap();
        }
    };
    send(Request::predict(FRAUD), 2);
    send(Request::predict(FRAUD).bearer(&expired), 3);
    send(
        Request::predict(FRAUD)
            .bearer(&token)
            .header("x-seldon-predictor", "canary"),
        4,
    );
    send(
        Request::predict(FRAUD)
            .bearer(&token)
            .header("x-seldon-predictor", "nope"),
        1,
    );
    send(Request::get("/seldon/fraud/detector/prometheus"), 1);
    send(
        Request::predict(CREDIT).bearer(&sample::credit_token("p")),
        2,
    );
    send(Request::predict(IRIS), 5);
    send(Request::predict(LEGACY), 1);
    send(Request::get("/seldon/nobody/nothing/x"), 2);

    let metrics = gw.metrics();
    let requests = |model: &str, decision: &str, reason: &str| {
        metrics.value(
            "modelgate_requests_total",
            &[("model", model), ("decision", decision), ("reason", reason)],
        )
    };
    assert_eq!(requests(FRAUD, "denied", "missing_token"), 2.0);
    assert_eq!(requests(FRAUD, "denied", "token_expired"), 3.0);
    assert_eq!(requests(FRAUD, "allowed", "token"), 4.0);
    assert_eq!(requests(FRAUD, "denied", "unknown_predictor"), 1.0);
    assert_eq!(requests(FRAUD, "allowed", "exempt"), 1.0);
    assert_eq!(requests(CREDIT, "allowed", "token"), 2.0);
    assert_eq!(requests(IRIS, "allowed", "no_auth"), 5.0);
    assert_eq!(requests(LEGACY, "audit_denied", "missing_token"), 1.0);
    let total = metrics.value("modelgate_requests_total", &[]);
    assert_eq!(total, 19.0, "one count per request to a model");
    assert_eq!(metrics.value("modelgate_passthrough_total", &[]), 2.0);

    let routed = |predictor: &str, reason: &str| {
        metrics.value(
            "modelgate_routed_total",
            &[
                ("model", FRAUD),
                ("predictor", predictor),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(routed("canary", "override"), 4.0);
    // The exempt request was routed too (at random); refused ones never are.
    assert_eq!(
        metrics.value("modelgate_routed_total", &[("model", FRAUD)]),
        5.0
    );
    assert_eq!(
        metrics.value("modelgate_routed_total", &[("model", IRIS)]),
        5.0
    );
    assert_eq!(metrics.value("modelgate_config_models", &[]), 4.0);
    assert!(
        metrics.value("modelgate_config_loads_total", &[("result", "accepted")]) >= 1.0,
        "config loads counted"
    );
    assert_eq!(
        metrics.value("modelgate_config_loads_total", &[("result", "refused")]),
        0.0
    );
    // Every modelgate metric keeps the prefix and has its labels extracted.
    for sample in metrics.with_prefix("modelgate") {
        assert!(sample.name.starts_with("modelgate_"), "{}", sample.line);
        assert!(
            !sample.name.contains('='),
            "labels left in the name: {}",
            sample.line
        );
    }
}
