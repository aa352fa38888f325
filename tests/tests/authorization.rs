//! Authorization through a real Envoy (SPEC section 3): the exact answers for missing,
//! bad and insufficient tokens; one token only; what reaches the model; audit mode;
//! gRPC addressing; and requests that address no model passing untouched.

use jsonwebtoken::{Algorithm, Header};
use modelgate_e2e::answers::{
    assert_insufficient_scope, assert_invalid_token, assert_no_token, assert_reached,
    assert_refused, invalid_token_challenge, no_token_challenge,
};
use modelgate_e2e::sample::{self, CREDIT, FRAUD, ISSUER, LEGACY, fraud_token_with};
use modelgate_e2e::{Request, Response};
use modelgate_testkit::{TestKey, hmac_token, now, public_pem, raw_token};
use serde_json::json;

fn fraud(token: &str) -> Request {
    Request::predict(FRAUD).bearer(token)
}

#[test]
fn a_request_without_a_token_gets_the_models_realm() {
    let gw = sample::start("auth-no-token");
    for model in [FRAUD, CREDIT] {
        let r = gw.send(&Request::predict(model));
        assert_no_token(&r, model, model);
        let r = gw.send(&Request::get(&format!("/seldon/{model}/api/v1.0/doc/")));
        assert_no_token(&r, model, "GET");
    }
    // An empty header or a bare scheme is no token either way: never let through.
    let r = gw.send(&Request::predict(FRAUD).header("authorization", "Bearer "));
    assert_eq!(r.status, 401, "{}", r.summary());
    assert_eq!(gw.requests_to_models(), 0);
}

#[test]
fn valid_tokens_of_each_key_type_reach_the_model_with_the_token() {
    let gw = sample::start("auth-valid");
    let ec = TestKey::ec().sign(&sample::fraud_claims("eve"));
    for (token, what) in [(sample::fraud_token("alice"), "RS256"), (ec, "ES256")] {
        let echo = assert_reached(&gw.send(&fraud(&token)), what);
        assert_eq!(
            echo.received.header("authorization"),
            Some(format!("Bearer {token}").as_str()),
            "{what}: forwardToken defaults to true"
        );
        assert_eq!(echo.received.path, "/api/v1.0/predictions");
    }
    // The scheme is case-insensitive.
    let token = sample::fraud_token("bob");
    let r = gw.send(&Request::predict(FRAUD).header("authorization", &format!("bearer {token}")));
    assert_reached(&r, "lowercase bearer");

    let rsa_b = TestKey::rsa_b().sign(&sample::credit_claims("partner-1"));
    for (token, what) in [
        (sample::credit_token("partner-1"), "EdDSA"),
        (rsa_b, "RS256"),
    ] {
        assert_reached(&gw.send(&Request::predict(CREDIT).bearer(&token)), what);
    }
}

#[test]
fn bad_tokens_are_401_invalid_token_with_the_reason() {
    let gw = sample::start("auth-bad-tokens");
    let a = TestKey::rsa_a();
    let now = now();
    let rs256_naming = |kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        header
    };
    let header_none = r#"{"alg":"none","typ":"JWT","kid":"rsa-a"}"#;
    let payload = sample::fraud_claims("mallory").to_string();
    let mut oversized = sample::fraud_claims("mallory");
    oversized["padding"] = json!("x".repeat(17 * 1024));

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            fraud_token_with("mallory", &json!({"exp": now - 3600})),
            "token_expired",
        ),
        (
            "not yet valid",
            fraud_token_with("mallory", &json!({"nbf": now + 3600})),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            fraud_token_with("mallory", &json!({"iss": "https://127.0.0.1/realms/other"})),
            "wrong_issuer",
        ),
        (
            "no issuer",
            fraud_token_with("mallory", &json!({"iss": null})),
            "wrong_issuer",
        ),
        (
            "wrong audience",
            fraud_token_with("mallory", &json!({"aud": "billing"})),
            "wrong_audience",
        ),
        (
            "no audience",
            fraud_token_with("mallory", &json!({"aud": null})),
            "wrong_audience",
        ),
        (
            "no exp",
            fraud_token_with("mallory", &json!({"exp": null})),
            "malformed_token",
        ),
        (
            "key of another issuer",
            TestKey::rsa_b().sign(&sample::fraud_claims("mallory")),
            "unknown_key",
        ),
        (
            "unknown kid",
            a.sign_with_header(
                &rs256_naming("retired-2019"),
                &sample::fraud_claims("mallory"),
            ),
            "unknown_key",
        ),
        (
            "weak key",
            TestKey::weak_rsa().sign(&sample::fraud_claims("mallory")),
            "unknown_key",
        ),
        (
            "forged signature, known kid",
            TestKey::rsa_b()
                .sign_with_header(&rs256_naming("rsa-a"), &sample::fraud_claims("mallory")),
            "bad_signature",
        ),
        (
            "alg none",
            raw_token(header_none, &payload, b""),
            "malformed_token",
        ),
        (
            "HS256 keyed with the public PEM",
            hmac_token(
                &public_pem("rsa-a"),
                "rsa-a",
                &sample::fraud_claims("mallory"),
            ),
            "unsupported_algorithm",
        ),
        (
            "RS256 header on the EC key",
            a.sign_with_header(&rs256_naming("ec-1"), &sample::fraud_claims("mallory")),
            "unsupported_algorithm",
        ),
        ("not a JWT", "hello".to_string(), "malformed_token"),
        (
            "two parts",
            "eyJhbGciOiJSUzI1NiJ9.e30".to_string(),
            "malformed_token",
        ),
        (
            "garbage parts",
            "!!!.???.***".to_string(),
            "malformed_token",
        ),
        (
            "header not JSON",
            raw_token("not json", &payload, b"sig"),
            "malformed_token",
        ),
        ("oversized", a.sign(&oversized), "token_too_large"),
    ];
    for (what, token, reason) in &cases {
        let r = gw.send(&fraud(token));
        assert_invalid_token(&r, FRAUD, reason, what);
        assert!(
            !r.text().contains(token.as_str()) && !r.text().contains("BEGIN"),
            "{what}: the answer must not echo the token or key material"
        );
    }
    assert_eq!(gw.requests_to_models(), 0, "no bad token reached a model");

    // 60 s of leeway on both ends.
    let ok = fraud_token_with("mallory", &json!({"exp": now - 30, "nbf": now + 30}));
    assert_reached(&gw.send(&fraud(&ok)), "within leeway");
}

#[test]
fn a_valid_token_without_the_required_claims_is_403() {
    let gw = sample::start("auth-claims");
    let r = gw.send(&fraud(&fraud_token_with(
        "mallory",
        &json!({"groups": ["marketing"]}),
    )));
    assert_insufficient_scope(&r, FRAUD, "wrong group");
    let r = gw.send(&fraud(&fraud_token_with(
        "mallory",
        &json!({"groups": null}),
    )));
    assert_insufficient_scope(&r, FRAUD, "no group claim");
    // Only `scope` and `scp` are space-separated lists: any other string is one value.
    let r = gw.send(&fraud(&fraud_token_with(
        "mallory",
        &json!({"groups": "marketing fraud-admins"}),
    )));
    assert_insufficient_scope(&r, FRAUD, "space-separated groups string");

    let mut viewer = sample::credit_claims("partner-2");
    viewer["realm_access"]["roles"] = json!(["viewer"]);
    let r = gw.send(&Request::predict(CREDIT).bearer(&TestKey::ed().sign(&viewer)));
    assert_insufficient_scope(&r, CREDIT, "nested claim");
    assert_eq!(gw.requests_to_models(), 0);
}

#[test]
fn more_than_one_token_is_refused_even_when_each_is_valid() {
    let gw = sample::start("auth-two-tokens");
    let token = sample::credit_token("partner-3");
    let query = format!("/seldon/{CREDIT}/api/v1.0/predictions?access_token={token}");
    let cases = [
        (
            "header and query",
            Request::new("POST", &query)
                .bearer(&token)
                .body(b"{}".to_vec()),
        ),
        (
            "query twice",
            Request::new("POST", &format!("{query}&access_token={token}")).body(b"{}".to_vec()),
        ),
    ];
    for (what, request) in &cases {
        let r = gw.send(request);
        assert_invalid_token(&r, CREDIT, "multiple_tokens", what);
    }
    // The query token alone is fine.
    assert_reached(
        &gw.send(&Request::new("POST", &query).body(b"{}".to_vec())),
        "query token",
    );
    assert_eq!(gw.requests_to_models(), 1);
}

#[test]
fn a_repeated_authorization_header_is_refused_as_invalid_token() {
    let gw = sample::start("auth-repeated-header");
    let token = sample::fraud_token("alice");
    for (what, other) in [
        ("same token twice", token.clone()),
        ("second token", sample::fraud_token("bob")),
    ] {
        let r = gw.send(&fraud(&token).bearer(&other));
        assert_eq!(r.status, 401, "{what}: {}", r.summary());
        assert_eq!(
            r.header("www-authenticate"),
            Some(invalid_token_challenge(FRAUD).as_str()),
            "{what}"
        );
    }
    assert_eq!(gw.requests_to_models(), 0);
}

/// SPEC 3 "One token": a repeated header is refused as `multiple_tokens`. Envoy's HTTP/1
/// codec joins repeated `authorization` lines into one comma-separated value before the
/// filter sees them, so the filter reads one malformed token instead and counts the
/// refusal under `malformed_token` (the answer, 401 invalid_token, is right either way).
#[test]
fn a_repeated_authorization_header_is_counted_as_multiple_tokens() {
    let gw = sample::start("auth-repeated-header-reason");
    let token = sample::fraud_token("alice");
    let r = gw.send(&fraud(&token).bearer(&token));
    assert_invalid_token(&r, FRAUD, "multiple_tokens", "authorization header twice");
}

#[test]
fn the_token_can_be_kept_from_the_model_and_claims_forwarded_instead() {
    let gw = sample::start("auth-forwarding");
    let token = sample::credit_token("partner-4");
    let r = gw.send(
        &Request::predict(CREDIT)
            .bearer(&token)
            .header("x-auth-subject", "admin")
            .header("x-auth-roles", "superuser"),
    );
    let echo = assert_reached(&r, "header token");
    assert_eq!(echo.received.header("authorization"), None, "token removed");
    let subjects: Vec<_> = echo.received.header_values("x-auth-subject");
    assert_eq!(subjects, ["partner-4"], "client copy replaced by the claim");
    assert_eq!(echo.received.header("x-auth-roles"), Some("viewer,scorer"));

    let target =
        format!("/seldon/{CREDIT}/api/v1.0/predictions?trace=1&access_token={token}&debug=0");
    let echo = assert_reached(
        &gw.send(&Request::new("POST", &target).body(b"{}".to_vec())),
        "query token",
    );
    assert_eq!(echo.received.path, "/api/v1.0/predictions?trace=1&debug=0");
    assert!(
        !echo
            .received
            .headers
            .iter()
            .any(|(_, v)| v.contains(&token))
    );

    // Even requests that need no token never carry a client's copy of a claim header.
    let echo = assert_reached(
        &gw.send(
            &Request::get(&format!("/seldon/{CREDIT}/prometheus"))
                .header("x-auth-subject", "admin"),
        ),
        "exempt",
    );
    assert_eq!(echo.received.header("x-auth-subject"), None);
}

#[test]
fn audit_mode_lets_would_be_refusals_through_and_logs_them() {
    let gw = sample::start("auth-audit");
    let expired = TestKey::rsa_a().sign(&json!({"iss": ISSUER, "sub": "x", "exp": now() - 3600}));
    let r = gw.send(&Request::predict(LEGACY));
    let echo = assert_reached(&r, "no token");
    assert_eq!(echo.server, "default");
    assert_reached(
        &gw.send(&Request::predict(LEGACY).bearer(&expired)),
        "expired",
    );
    assert_reached(
        &gw.send(&Request::predict(LEGACY).bearer(&sample::team_token("u"))),
        "valid",
    );

    let metrics = gw.metrics();
    let count = |decision: &str, reason: &str| {
        metrics.value(
            "modelgate_requests_total",
            &[
                ("model", LEGACY),
                ("decision", decision),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(count("audit_denied", "missing_token"), 1.0);
    assert_eq!(count("audit_denied", "token_expired"), 1.0);
    assert_eq!(count("allowed", "token"), 1.0);
    assert_eq!(count("denied", "missing_token"), 0.0);

    let log = gw.log();
    for reason in ["missing_token", "token_expired"] {
        let line = format!(
            "modelgate: audit: {LEGACY}: would refuse POST /seldon/{LEGACY}/api/v1.0/predictions: {reason}"
        );
        assert_eq!(
            log.matches(&line).count(),
            1,
            "one log line for {reason}:\n{log}"
        );
    }
}

/// Envoy turns a local reply to a gRPC request into `200` with a gRPC status.
fn assert_grpc_refused(r: &Response, grpc_status: &str, challenge: &str, context: &str) {
    assert_eq!(r.status, 200, "{context}: {}", r.summary());
    assert!(r.upstream().is_none(), "{context}: reached a model");
    assert_eq!(r.header("grpc-status"), Some(grpc_status), "{context}");
    assert_eq!(r.header("www-authenticate"), Some(challenge), "{context}");
}

#[test]
fn grpc_requests_are_addressed_by_the_seldon_and_namespace_headers() {
    let gw = sample::start("auth-grpc");
    let r = gw.send(&Request::grpc_predict(FRAUD));
    assert_grpc_refused(&r, "16", &no_token_challenge(FRAUD), "no token");
    let r = gw.send(&Request::grpc_predict(FRAUD).bearer("nonsense"));
    assert_grpc_refused(&r, "16", &invalid_token_challenge(FRAUD), "bad token");

    let r = gw.send(&Request::grpc_predict(FRAUD).bearer(&sample::fraud_token("alice")));
    let echo = assert_reached(&r, "valid token");
    assert_eq!(echo.received.path, "/seldon.protos.Seldon/Predict");
    assert_eq!(
        echo.received.header("x-seldon-predictor"),
        Some(echo.server.as_str()),
        "the gRPC header route took the chosen predictor"
    );

    // Path and headers naming different models: refused, whatever the token.
    let mut conflicting = Request::grpc_predict(CREDIT).bearer(&sample::fraud_token("alice"));
    conflicting.target = format!("/seldon/{FRAUD}/seldon.protos.Seldon/Predict");
    let r = gw.send(&conflicting);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.upstream().is_none(), "{}", r.summary());
    assert!(
        r.header("grpc-message")
            .is_some_and(|m| m.contains("ambiguous_model")),
        "{:?}",
        r.headers
    );
    assert_eq!(gw.requests_to_models(), 1);
}

#[test]
fn requests_that_address_no_known_model_pass_untouched() {
    let gw = sample::start("auth-passthrough");
    for target in [
        "/seldon/other/unknown/api/v1.0/predictions",
        "/seldon/fraud/detector-v2/api/v1.0/predictions",
        "/seldon/fraud",
        "/healthz",
        "/",
    ] {
        let r = gw.send(
            &Request::new("POST", target)
                .header("authorization", "Bearer not-a-jwt")
                .header("x-seldon-predictor", "anything")
                .header("x-auth-subject", "kept")
                .body(b"{}".to_vec()),
        );
        let echo = assert_reached(&r, target);
        assert_eq!(echo.server, "other-app", "{target}");
        assert_eq!(echo.received.path, target);
        assert_eq!(
            echo.received.header("authorization"),
            Some("Bearer not-a-jwt")
        );
        assert_eq!(echo.received.header("x-seldon-predictor"), Some("anything"));
        assert_eq!(echo.received.header("x-auth-subject"), Some("kept"));
        assert_eq!(r.header("x-seldon-predictor"), None, "{target}");
    }
    assert_eq!(
        gw.metrics().value("modelgate_passthrough_total", &[]),
        5.0,
        "passthrough counted"
    );
}

#[test]
fn spellings_of_a_model_path_that_envoy_routes_elsewhere_are_still_checked() {
    let gw = sample::start("auth-path-spellings");
    for target in [
        "/SELDON/fraud/detector/api/v1.0/predictions",
        "/seldon/FRAUD/Detector/api/v1.0/predictions",
        "//seldon//fraud/detector/api/v1.0/predictions",
        "/seldon/fraud/%64etector/api/v1.0/predictions",
        "/seldon/fraud/detector",
    ] {
        let r = gw.send(&Request::new("POST", target).body(b"{}".to_vec()));
        assert_refused(
            &r,
            401,
            Some(&no_token_challenge(FRAUD)),
            FRAUD,
            "missing_token",
            target,
        );
    }
    assert_eq!(gw.requests_to_models() + gw.other_app().count(), 0);
}
