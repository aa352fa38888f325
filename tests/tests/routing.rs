//! A/B routing through a real Envoy (SPEC section 4): the filter's choice is what Envoy
//! routes on (the header routes of the VirtualService), it comes back on the response,
//! overrides reach dark launches only when allowed and never bypass authorization, sticky
//! keys stay put, and random choices follow the weights.

use std::collections::BTreeMap;

use modelgate_e2e::answers::{
    assert_no_token, assert_reached, assert_refused, assert_routed, assert_sticky_users,
};
use modelgate_e2e::sample::{self, FRAUD, IRIS, IRIS_HEADER, STICKY_HEADER};
use modelgate_e2e::weights::within_five_sigma;
use modelgate_e2e::{Client, Request};

const HEADER: &str = "x-seldon-predictor";

fn fraud(token: &str) -> Request {
    Request::predict(FRAUD).bearer(token)
}

#[test]
fn the_chosen_predictor_is_routed_on_and_returned_to_the_client() {
    let gw = sample::start("routing-chosen");
    let token = sample::fraud_token("alice");
    let mut client = gw.client();
    for _ in 0..50 {
        let r = client.send(&fraud(&token)).unwrap();
        assert_routed(&r, HEADER, "valid token");
    }
    // A client that sends the header back stays on its predictor.
    let first = client.send(&fraud(&token)).unwrap();
    let chosen = first.header(HEADER).unwrap().to_string();
    for _ in 0..20 {
        let r = client.send(&fraud(&token).header(HEADER, &chosen)).unwrap();
        assert_eq!(r.upstream(), Some(chosen.as_str()));
    }
}

#[test]
fn an_override_picks_any_predictor_including_the_dark_launch() {
    let gw = sample::start("routing-override");
    let token = sample::fraud_token("alice");
    for predictor in ["main", "canary", "dark"] {
        for _ in 0..10 {
            let r = gw.send(&fraud(&token).header(HEADER, predictor));
            let echo = assert_reached(&r, predictor);
            assert_eq!(echo.server, predictor);
            assert_eq!(r.header(HEADER), Some(predictor));
        }
        assert_eq!(gw.server(FRAUD, predictor).count(), 10, "{predictor}");
    }
    let routed = gw.metrics().value(
        "modelgate_routed_total",
        &[
            ("model", FRAUD),
            ("predictor", "dark"),
            ("reason", "override"),
        ],
    );
    assert_eq!(routed, 10.0);
}

#[test]
fn an_unknown_or_repeated_predictor_name_is_400() {
    let gw = sample::start("routing-unknown");
    let token = sample::fraud_token("alice");
    let r = gw.send(&fraud(&token).header(HEADER, "nope"));
    assert_refused(&r, 400, None, FRAUD, "unknown_predictor", "unknown");
    let r = gw.send(
        &fraud(&token)
            .header(HEADER, "main")
            .header(HEADER, "canary"),
    );
    assert_refused(&r, 400, None, FRAUD, "ambiguous_predictor", "repeated");
    assert_eq!(gw.requests_to_models(), 0);
}

#[test]
fn the_routing_header_never_bypasses_authorization() {
    let gw = sample::start("routing-no-bypass");
    for predictor in ["main", "canary", "dark", "nope"] {
        let r = gw.send(&Request::predict(FRAUD).header(HEADER, predictor));
        assert_no_token(&r, FRAUD, predictor);
        let r = gw.send(&fraud("not-a-token").header(HEADER, predictor));
        assert_eq!(r.status, 401, "{predictor}: {}", r.summary());
    }
    assert_eq!(gw.requests_to_models(), 0);
}

#[test]
fn with_the_override_disabled_the_clients_header_is_ignored_and_replaced() {
    let gw = sample::start("routing-override-disabled");
    let mut client = gw.client();
    let mut answered = BTreeMap::new();
    for i in 0..400 {
        let wanted = ["a", "b", "nope"][i % 3];
        let r = client
            .send(&Request::predict(IRIS).header(IRIS_HEADER, wanted))
            .unwrap();
        let echo = assert_reached(&r, wanted);
        let sent: Vec<_> = echo.received.header_values(IRIS_HEADER);
        assert_eq!(sent, [echo.server.as_str()], "header replaced, not added");
        assert_eq!(r.header(IRIS_HEADER), Some(echo.server.as_str()));
        *answered.entry(echo.server).or_insert(0) += 1;
    }
    // 400 draws at 50 %: both predictors answer, whatever the clients asked for.
    assert!(answered["a"] > 100 && answered["b"] > 100, "{answered:?}");
    let overrides = gw.metrics().value(
        "modelgate_routed_total",
        &[("model", IRIS), ("reason", "override")],
    );
    assert_eq!(overrides, 0.0);
}

#[test]
fn a_sticky_key_keeps_its_predictor() {
    let gw = sample::start("routing-sticky");
    let token = sample::fraud_token("alice");
    let mut client = gw.client();
    let per_predictor = assert_sticky_users(&mut client, HEADER, 60, 8, |user| {
        fraud(&token).header(STICKY_HEADER, user)
    });
    assert!(!per_predictor.contains_key("dark"), "{per_predictor:?}");
    assert!(
        per_predictor.get("main").is_some_and(|n| *n > 20)
            && per_predictor.get("canary").is_some_and(|n| *n > 3),
        "60 users over 75/25: {per_predictor:?}"
    );
    let sticky = gw.metrics().value(
        "modelgate_routed_total",
        &[("model", FRAUD), ("reason", "sticky")],
    );
    assert_eq!(sticky, 480.0);
}

/// Sends `n` requests over one keep-alive connection; counts answers per predictor.
fn split(client: &mut Client, request: &Request, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let r = client.send(request).unwrap();
        let echo = assert_reached(&r, "split");
        *counts.entry(echo.server).or_insert(0) += 1;
    }
    counts
}

#[test]
fn random_choices_follow_the_traffic_weights() {
    let gw = sample::start("routing-split");
    const N: usize = 4000;
    let mut client = gw.client();
    let token = sample::fraud_token("alice");
    let fraud_counts = split(&mut client, &fraud(&token), N);
    let iris_counts = split(&mut client, &Request::predict(IRIS), N);
    let get = |counts: &BTreeMap<String, usize>, p: &str| counts.get(p).copied().unwrap_or(0);

    assert_eq!(get(&fraud_counts, "dark"), 0, "traffic 0 is never drawn");
    for (predictor, share) in [("main", 0.75), ("canary", 0.25)] {
        let count = get(&fraud_counts, predictor);
        assert!(
            within_five_sigma(count, N, share),
            "{predictor}: {count} of {N} at {share}: {fraud_counts:?}"
        );
    }
    for predictor in ["a", "b"] {
        let count = get(&iris_counts, predictor);
        assert!(
            within_five_sigma(count, N, 0.5),
            "{predictor}: {count} of {N}: {iris_counts:?}"
        );
    }
    // What the clients saw, what the servers got and what the metrics say agree.
    let metrics = gw.metrics();
    for (predictor, count) in &fraud_counts {
        assert_eq!(gw.server(FRAUD, predictor).count(), *count);
        let routed = metrics.value(
            "modelgate_routed_total",
            &[
                ("model", FRAUD),
                ("predictor", predictor),
                ("reason", "random"),
            ],
        );
        assert_eq!(routed, *count as f64, "{predictor}");
    }
}

/// Stickiness by a claim of the verified token, or by a cookie.
#[test]
fn sticky_keys_can_be_a_claim_or_a_cookie() {
    for (sticky, name) in [
        ("claim:sub", "routing-sticky-claim"),
        ("cookie:session", "routing-sticky-cookie"),
    ] {
        let mut config = sample::filter_config();
        config
            .models
            .get_mut(FRAUD)
            .and_then(|m| m.routing.as_mut())
            .unwrap()
            .sticky = Some(sticky.into());
        let spec = modelgate_e2e::GatewaySpec {
            filter_config: sample::to_json(&config),
            ..sample::spec()
        };
        let gw = sample::start_with(name, &spec);
        let mut client = gw.client();
        // The token's `sub` and the cookie's session are both the user.
        let per_predictor = assert_sticky_users(&mut client, HEADER, 40, 5, |user| {
            fraud(&sample::fraud_token(user))
                .header("cookie", &format!("theme=dark; session={user}"))
        });
        assert_eq!(per_predictor.len(), 2, "{sticky}: {per_predictor:?}");
        let sticky_count = gw.metrics().value(
            "modelgate_routed_total",
            &[("model", FRAUD), ("reason", "sticky")],
        );
        assert_eq!(sticky_count, 200.0, "{sticky}");
    }
}

/// Envoy 1.33 and later choose the route again after a Wasm filter changed a header only
/// for ABI 0.2.1 modules, unless the filter calls `clear_route_cache`. The filter makes
/// that call whenever it changes what routing reads: Envoy has the function, every call
/// succeeds, and each request still reaches the predictor the filter's header names.
/// A refused request changes nothing and asks for nothing.
#[test]
fn the_route_is_chosen_again_through_clear_route_cache_after_the_filters_header() {
    let gw = sample::start("routing-route-cache");
    let token = sample::fraud_token("alice");
    let mut client = gw.client();
    for i in 0..20 {
        let r = client.send(&fraud(&token)).unwrap();
        assert_routed(&r, HEADER, &format!("request {i}"));
    }
    // Each predictor by name, the dark launch (no weight) included: the route follows
    // whatever value the filter's header takes.
    for predictor in ["main", "canary", "dark", "canary", "main"] {
        let r = client
            .send(&fraud(&token).header(HEADER, predictor))
            .unwrap();
        assert_eq!(assert_routed(&r, HEADER, predictor), predictor);
    }
    let r = client.send(&Request::predict(FRAUD)).unwrap();
    assert_no_token(&r, FRAUD, "no token");

    let clears = |result| {
        gw.metrics()
            .value("modelgate_route_cache_clears_total", &[("result", result)])
    };
    assert_eq!(clears("cleared"), 25.0);
    assert_eq!(clears("unavailable"), 0.0);
    assert_eq!(clears("failed"), 0.0);
}
