//! Every rule of SPEC sections 3 and 4 against real signed tokens, natively.

use jsonwebtoken::{Algorithm, Header};
use modelgate_testkit::{TestKey, claims, hmac_token, jwks, public_pem, raw_token};
use serde_json::{Value, json};

use super::*;
use crate::config::{FilterConfig, JwtPolicy, KeySet, Model, Policy, Predictor, Routing};
use crate::request::test_support::headers;

const ISS: &str = "https://idp.example";
const NOW: u64 = 1_800_000_000;

fn jwt_policy(key_set: &str) -> JwtPolicy {
    JwtPolicy {
        mode: AuthMode::Enforce,
        issuer: ISS.into(),
        audiences: vec!["models".into()],
        key_set: key_set.into(),
        claims: [("groups".to_string(), vec!["ml".to_string()])].into(),
        token_from: vec![],
        forward_claims: Default::default(),
        forward_token: true,
    }
}

fn routing(predictors: &[(&str, u32)]) -> Routing {
    Routing {
        header: "x-seldon-predictor".into(),
        override_allowed: true,
        sticky: None,
        predictors: predictors
            .iter()
            .map(|(n, t)| Predictor {
                name: n.to_string(),
                traffic: *t,
            })
            .collect(),
    }
}

/// Three models: `prod/fraud` (JWT + A/B with a dark launch), `prod/open` (no auth),
/// `prod/broken` (unusable policy).
fn base_config() -> FilterConfig {
    let mut config = FilterConfig::new();
    let ks = |keys: Value| KeySet {
        source: None,
        keys: keys["keys"].as_array().unwrap().clone(),
    };
    config.key_sets.insert(
        "idp".into(),
        ks(jwks(&[&TestKey::rsa_a(), &TestKey::ec(), &TestKey::ed()])),
    );
    config
        .policies
        .insert("jwt".into(), Policy::Jwt(jwt_policy("idp")));
    config.policies.insert("open".into(), Policy::None);
    config.policies.insert(
        "broken".into(),
        Policy::Deny {
            reason: "bad claims".into(),
        },
    );
    config.models.insert(
        "prod/fraud".into(),
        Model {
            policy: "jwt".into(),
            routing: Some(routing(&[("main", 75), ("canary", 25), ("dark", 0)])),
        },
    );
    config.models.insert(
        "prod/open".into(),
        Model {
            policy: "open".into(),
            routing: None,
        },
    );
    config.models.insert(
        "prod/broken".into(),
        Model {
            policy: "broken".into(),
            routing: None,
        },
    );
    config
}

struct Harness {
    config: CompiledConfig,
    cache: TokenCache,
}

impl Harness {
    fn new(config: FilterConfig) -> Self {
        let (config, _) = CompiledConfig::compile(&config).unwrap();
        Self {
            config,
            cache: TokenCache::new(64),
        }
    }

    fn run(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Seen {
        self.run_at(NOW, 7, method, path, headers)
    }

    /// A prediction request carrying `token` as its bearer token.
    fn predict_with(&mut self, token: &str) -> Seen {
        self.run("POST", PREDICT, &[("authorization", &bearer(token))])
    }

    fn run_at(
        &mut self,
        now: u64,
        random: u64,
        method: &str,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Seen {
        let headers = headers(pairs);
        let request = Request::test(method, path, &headers);
        let d = self.config.decide(
            &request,
            &mut Environment {
                now,
                random,
                cache: &mut self.cache,
            },
        );
        Seen {
            outcome: d.outcome,
            refusal: d.refusal(),
            edits: d.edits.clone(),
            route: d.route.map(|r| r.predictor.to_string()),
        }
    }
}

/// What a request's decision showed: its outcome, the answer when refused, the header
/// edits, and the predictor chosen.
struct Seen {
    outcome: Outcome,
    refusal: Option<Refusal>,
    edits: Vec<Edit>,
    route: Option<String>,
}

fn good_claims() -> Value {
    let mut c = claims(ISS, "alice", "models", NOW);
    c["groups"] = json!(["ml", "ops"]);
    c
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

const PREDICT: &str = "/seldon/prod/fraud/api/v1.0/predictions";

fn denied(h: &mut Harness, token: &str) -> DenyReason {
    match h.predict_with(token).outcome {
        Outcome::Denied(reason) => reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn valid_tokens_of_every_accepted_algorithm_pass() {
    let mut h = Harness::new(base_config());
    for key in [TestKey::rsa_a(), TestKey::ec(), TestKey::ed()] {
        let token = key.sign(&good_claims());
        let Seen {
            outcome,
            refusal,
            route,
            ..
        } = h.predict_with(&token);
        assert_eq!(
            outcome,
            Outcome::Allowed(AllowReason::Token),
            "{:?}",
            key.alg
        );
        assert!(refusal.is_none());
        assert!(route.is_some(), "an A/B model always gets a predictor");
    }
    // The JWK declares RS256: the same RSA key may not verify other algorithms...
    let mut key = TestKey::rsa_a();
    key.alg = Algorithm::PS256;
    assert_eq!(
        denied(&mut h, &key.sign(&good_claims())),
        DenyReason::UnsupportedAlgorithm
    );
    // ...but a JWK without `alg` verifies every RSA algorithm.
    let mut config = base_config();
    let mut jwk = TestKey::rsa_a().jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    config.key_sets.insert(
        "idp".into(),
        KeySet {
            source: None,
            keys: vec![jwk],
        },
    );
    let mut h = Harness::new(config);
    for alg in crate::auth::keys::RSA_ALGORITHMS {
        let mut key = TestKey::rsa_a();
        key.alg = alg;
        let token = key.sign(&good_claims());
        let Seen { outcome, .. } = h.predict_with(&token);
        assert_eq!(outcome, Outcome::Allowed(AllowReason::Token), "{alg:?}");
    }
}

#[test]
fn missing_token_is_401_with_a_bare_challenge() {
    let mut h = Harness::new(base_config());
    let Seen {
        outcome, refusal, ..
    } = h.run("POST", PREDICT, &[]);
    assert_eq!(outcome, Outcome::Denied(DenyReason::MissingToken));
    let refusal = refusal.unwrap();
    assert_eq!(refusal.status, 401);
    assert!(refusal.headers.contains(&(
        "www-authenticate".into(),
        "Bearer realm=\"prod/fraud\"".into()
    )));
    assert_eq!(
        refusal.body,
        r#"{"error":"missing_token","model":"prod/fraud"}"#
    );
}

#[test]
fn bad_tokens_are_401_invalid_token_and_never_echoed() {
    let mut h = Harness::new(base_config());
    let key = TestKey::rsa_a();
    let token = key
        .sign(&json!({"iss": ISS, "aud": "models", "exp": NOW + 60, "groups": "ml", "sub": "x"}));
    // Same header and signature, another payload: the signature no longer matches.
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = good_claims();
    c["groups"] = json!(["ml", "admin"]);
    let other = key.sign(&c);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    let Seen { refusal, .. } = h.predict_with(&tampered);
    let refusal = refusal.unwrap();
    assert_eq!(refusal.status, 401);
    assert!(refusal.headers.contains(&(
        "www-authenticate".into(),
        "Bearer realm=\"prod/fraud\", error=\"invalid_token\"".into()
    )));
    assert!(!refusal.body.contains(&tampered[..20]));
    assert_eq!(denied(&mut h, &tampered), DenyReason::BadSignature);
}

#[test]
fn time_claims_are_checked_with_leeway() {
    let mut h = Harness::new(base_config());
    let key = TestKey::rsa_a();
    let mut c = good_claims();
    c["exp"] = json!(NOW - 61);
    assert_eq!(denied(&mut h, &key.sign(&c)), DenyReason::Expired);
    c["exp"] = json!(NOW - 59);
    let Seen { outcome, .. } = h.predict_with(&key.sign(&c));
    assert_eq!(
        outcome,
        Outcome::Allowed(AllowReason::Token),
        "within leeway"
    );
    let mut c = good_claims();
    c["nbf"] = json!(NOW + 61);
    assert_eq!(denied(&mut h, &key.sign(&c)), DenyReason::NotYetValid);
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        denied(&mut h, &key.sign(&c)),
        DenyReason::MalformedToken,
        "exp is required"
    );
}

#[test]
fn issuer_and_audience_must_match() {
    let mut h = Harness::new(base_config());
    let key = TestKey::rsa_a();
    let mut c = good_claims();
    c["iss"] = json!("https://evil.example");
    assert_eq!(denied(&mut h, &key.sign(&c)), DenyReason::WrongIssuer);
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(denied(&mut h, &key.sign(&c)), DenyReason::WrongIssuer);
    let mut c = good_claims();
    c["aud"] = json!(["other", "another"]);
    assert_eq!(denied(&mut h, &key.sign(&c)), DenyReason::WrongAudience);
    c["aud"] = json!(["other", "models"]);
    let Seen { outcome, .. } = h.predict_with(&key.sign(&c));
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Token));
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(denied(&mut h, &key.sign(&c)), DenyReason::WrongAudience);
}

#[test]
fn keys_are_chosen_by_kid_or_tried_in_turn() {
    let mut h = Harness::new(base_config());
    let mut stranger = TestKey::rsa_b();
    assert_eq!(
        denied(&mut h, &stranger.sign(&good_claims())),
        DenyReason::UnknownKey
    );
    // A known kid on a token signed by another key: the signature fails.
    stranger.kid = "rsa-a".into();
    assert_eq!(
        denied(&mut h, &stranger.sign(&good_claims())),
        DenyReason::BadSignature
    );
    // No kid: every key is tried.
    let key = TestKey::ec();
    let token = key.sign_with_header(&Header::new(Algorithm::ES256), &good_claims());
    let Seen { outcome, .. } = h.predict_with(&token);
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Token));
    let token = TestKey::rsa_b().sign_with_header(&Header::new(Algorithm::RS256), &good_claims());
    assert_eq!(denied(&mut h, &token), DenyReason::BadSignature);
}

#[test]
fn alg_none_and_hmac_are_always_refused() {
    let mut h = Harness::new(base_config());
    let payload = good_claims().to_string();
    for header in [
        r#"{"alg":"none","kid":"rsa-a"}"#,
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":""}"#,
    ] {
        let token = raw_token(header, &payload, b"");
        assert_eq!(
            denied(&mut h, &token),
            DenyReason::MalformedToken,
            "{header}"
        );
        let token = format!("{}.", &raw_token(header, &payload, b"")[..]);
        assert!(
            matches!(denied(&mut h, &token), DenyReason::MalformedToken),
            "{header}"
        );
    }
    // Algorithm confusion: HS256 keyed with the RSA public key, as PEM and as the JWK's n.
    let pem = public_pem("rsa-a");
    assert_eq!(
        denied(&mut h, &hmac_token(&pem, "rsa-a", &good_claims())),
        DenyReason::UnsupportedAlgorithm
    );
    let n = TestKey::rsa_a().jwk()["n"].as_str().unwrap().to_string();
    assert_eq!(
        denied(&mut h, &hmac_token(n.as_bytes(), "rsa-a", &good_claims())),
        DenyReason::UnsupportedAlgorithm
    );
    // An EC key may not verify an RSA-alg token, nor RS256 a token claiming ES256.
    let mut ec = TestKey::rsa_a();
    ec.kid = "ec-1".into();
    assert_eq!(
        denied(&mut h, &ec.sign(&good_claims())),
        DenyReason::UnsupportedAlgorithm
    );
}

#[test]
fn malformed_oversized_and_critical_tokens_are_refused_before_verification() {
    let mut h = Harness::new(base_config());
    for junk in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "....",
        "Basic dXNlcjpwdw==",
        "\u{1F600}.x.y",
    ] {
        let Seen { outcome, .. } = h.predict_with(junk);
        assert!(
            matches!(outcome, Outcome::Denied(DenyReason::MalformedToken)),
            "{junk:?}: {outcome:?}"
        );
    }
    let huge = format!("{}.{}.{}", "a".repeat(9000), "b".repeat(9000), "c");
    assert_eq!(denied(&mut h, &huge), DenyReason::TokenTooLarge);
    let key = TestKey::rsa_a();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-a".into());
    header.crit = Some(vec!["exp".into()]);
    assert_eq!(
        denied(&mut h, &key.sign_with_header(&header, &good_claims())),
        DenyReason::MalformedToken
    );
    // Duplicate keys in the header are rejected by the strict header parser.
    let dup = raw_token(
        r#"{"alg":"RS256","alg":"none","kid":"rsa-a"}"#,
        &good_claims().to_string(),
        b"sig",
    );
    assert_eq!(denied(&mut h, &dup), DenyReason::MalformedToken);
    // `crit` in any shape, `null` included (jsonwebtoken reads that as no `crit`), even
    // spelled with an escape.
    for header in [
        r#"{"alg":"RS256","kid":"rsa-a","crit":null}"#,
        r#"{"alg":"RS256","kid":"rsa-a","crit":[]}"#,
        r#"{"alg":"RS256","kid":"rsa-a","cr\u0069t":["exp"]}"#,
    ] {
        let signed = key.sign_raw(header, &good_claims().to_string());
        assert_eq!(
            denied(&mut h, &signed),
            DenyReason::MalformedToken,
            "{header}"
        );
    }
    // So are duplicates in the payload, even validly signed: two readings of one token.
    let claims = good_claims().to_string();
    let twice = format!("{},\"groups\":[\"guest\"]}}", &claims[..claims.len() - 1]);
    let signed = key.sign_raw(r#"{"alg":"RS256","kid":"rsa-a"}"#, &twice);
    assert_eq!(denied(&mut h, &signed), DenyReason::MalformedToken);
    let once = key.sign_raw(r#"{"alg":"RS256","kid":"rsa-a"}"#, &claims);
    let Seen { outcome, .. } = h.run(
        "POST",
        PREDICT,
        &[("authorization", &format!("Bearer {once}"))],
    );
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Token));
}

#[test]
fn one_token_only() {
    let mut h = Harness::new(base_config());
    let token = TestKey::rsa_a().sign(&good_claims());
    let Seen { outcome, .. } = h.run(
        "POST",
        PREDICT,
        &[
            ("authorization", &bearer(&token)),
            ("authorization", &bearer(&token)),
        ],
    );
    assert_eq!(outcome, Outcome::Denied(DenyReason::MultipleTokens));
}

#[test]
fn required_claims_give_403_insufficient_scope() {
    let mut h = Harness::new(base_config());
    let key = TestKey::rsa_a();
    let mut c = good_claims();
    c["groups"] = json!(["ops"]);
    let Seen {
        outcome, refusal, ..
    } = h.predict_with(&key.sign(&c));
    assert_eq!(outcome, Outcome::Denied(DenyReason::InsufficientScope));
    let refusal = refusal.unwrap();
    assert_eq!(refusal.status, 403);
    assert!(refusal.headers.contains(&(
        "www-authenticate".into(),
        "Bearer realm=\"prod/fraud\", error=\"insufficient_scope\"".into()
    )));
    c["groups"] = json!("admins ml");
    let Seen { outcome, .. } = h.predict_with(&key.sign(&c));
    assert_eq!(
        outcome,
        Outcome::Denied(DenyReason::InsufficientScope),
        "only scope and scp are space-separated lists"
    );
}

#[test]
fn exemption_and_preflight_need_no_token_and_nothing_else_is_exempt() {
    let mut h = Harness::new(base_config());
    for path in [
        "/seldon/prod/fraud/prometheus",
        "/seldon/prod/fraud/prometheus?x=1",
    ] {
        let Seen { outcome, .. } = h.run("GET", path, &[]);
        assert_eq!(outcome, Outcome::Allowed(AllowReason::Exempt), "{path}");
    }
    let Seen { outcome, .. } = h.run(
        "OPTIONS",
        PREDICT,
        &[
            ("origin", "https://app"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Preflight));
    for (method, path) in [
        ("HEAD", "/seldon/prod/fraud/prometheus"),
        ("POST", "/seldon/prod/fraud/prometheus"),
        ("GET", "/seldon/prod/fraud/prometheus/"),
        (
            "GET",
            "/seldon/prod/fraud/prometheus/../api/v1.0/predictions",
        ),
        ("GET", "/seldon/prod/fraud/x/../prometheus"),
        ("GET", "/seldon/prod/fraud//prometheus"),
        ("GET", "/seldon/prod/fraud/%70rometheus"),
        ("GET", "/seldon/prod/fraud/prometheus%2F..%2Fapi"),
        ("GET", "/seldon/prod/fraud/prometheus;x"),
        ("GET", "/seldon/prod/fraud/PROMETHEUS"),
        ("GET", "//seldon/prod/fraud/prometheus"),
        ("OPTIONS", PREDICT),
    ] {
        let Seen { outcome, .. } = h.run(method, path, &[]);
        assert_eq!(
            outcome,
            Outcome::Denied(DenyReason::MissingToken),
            "{method} {path}"
        );
    }
}

#[test]
fn unknown_models_pass_untouched_and_open_models_need_nothing() {
    let mut h = Harness::new(base_config());
    let Seen {
        outcome,
        edits,
        route,
        ..
    } = h.run(
        "POST",
        "/seldon/prod/unknown/api",
        &[("x-seldon-predictor", "main")],
    );
    assert_eq!(outcome, Outcome::NotAModel);
    assert!(edits.is_empty() && route.is_none());
    let Seen { outcome, .. } = h.run("POST", "/other/app", &[]);
    assert_eq!(outcome, Outcome::NotAModel);
    let Seen { outcome, .. } = h.run("POST", "/seldon/prod/open/api/v1.0/predictions", &[]);
    assert_eq!(outcome, Outcome::Allowed(AllowReason::NoAuth));
}

#[test]
fn unusable_policies_fail_closed() {
    let mut h = Harness::new(base_config());
    let token = TestKey::rsa_a().sign(&good_claims());
    let Seen {
        outcome, refusal, ..
    } = h.run(
        "POST",
        "/seldon/prod/broken/api/v1.0/predictions",
        &[("authorization", &bearer(&token))],
    );
    assert_eq!(outcome, Outcome::Denied(DenyReason::PolicyUnusable));
    assert_eq!(refusal.unwrap().status, 403);

    // A key set without any usable key: 401, whatever the token.
    let mut config = base_config();
    config.key_sets.insert(
        "idp".into(),
        KeySet {
            source: None,
            keys: vec![
                TestKey::weak_rsa().jwk(),
                json!({"kty": "oct", "k": "c2VjcmV0"}),
            ],
        },
    );
    let mut h = Harness::new(config);
    assert_eq!(
        denied(&mut h, &TestKey::weak_rsa().sign(&good_claims())),
        DenyReason::NoKeys
    );
    let Seen { outcome, .. } = h.run("POST", PREDICT, &[]);
    assert_eq!(outcome, Outcome::Denied(DenyReason::NoKeys));
}

#[test]
fn grpc_requests_are_authorized_against_the_model_their_headers_name() {
    let mut h = Harness::new(base_config());
    let grpc = [
        ("content-type", "application/grpc"),
        ("seldon", "fraud"),
        ("namespace", "prod"),
    ];
    let Seen { outcome, .. } = h.run("POST", "/seldon.protos.Seldon/Predict", &grpc);
    assert_eq!(outcome, Outcome::Denied(DenyReason::MissingToken));
    // Naming an open model in the path and a guarded one in the headers is refused.
    let Seen {
        outcome, refusal, ..
    } = h.run("POST", "/seldon/prod/open/api/v1.0/predictions", &grpc);
    assert_eq!(outcome, Outcome::Denied(DenyReason::AmbiguousModel));
    assert_eq!(refusal.unwrap().status, 400);
}

#[test]
fn routing_header_cannot_bypass_auth() {
    let mut h = Harness::new(base_config());
    let Seen { outcome, route, .. } = h.run("POST", PREDICT, &[("x-seldon-predictor", "dark")]);
    assert_eq!(outcome, Outcome::Denied(DenyReason::MissingToken));
    assert_eq!(route, None);
}

#[test]
fn override_sticky_and_random_choices() {
    let mut config = base_config();
    if let Some(Routing { sticky, .. }) = config
        .models
        .get_mut("prod/fraud")
        .unwrap()
        .routing
        .as_mut()
    {
        *sticky = Some("claim:sub".into());
    }
    let mut h = Harness::new(config);
    let token = TestKey::rsa_a().sign(&good_claims());
    let auth = bearer(&token);
    let Seen { edits, route, .. } = h.run(
        "POST",
        PREDICT,
        &[("authorization", &auth), ("x-seldon-predictor", "dark")],
    );
    assert_eq!(route.as_deref(), Some("dark"));
    assert!(edits.contains(&Edit::SetHeader("x-seldon-predictor".into(), "dark".into())));
    let Seen {
        outcome, refusal, ..
    } = h.run(
        "POST",
        PREDICT,
        &[("authorization", &auth), ("x-seldon-predictor", "nope")],
    );
    assert_eq!(outcome, Outcome::Denied(DenyReason::UnknownPredictor));
    assert_eq!(refusal.unwrap().status, 400);
    // Sticky by the `sub` claim: the same user always lands on the same predictor.
    let first = h
        .run_at(NOW, 1, "POST", PREDICT, &[("authorization", &auth)])
        .route;
    for random in 2..50 {
        assert_eq!(
            h.run_at(NOW, random, "POST", PREDICT, &[("authorization", &auth)])
                .route,
            first
        );
    }
    // The dark predictor (traffic 0) is never chosen at random.
    let mut seen = std::collections::HashSet::new();
    let mut c = good_claims();
    for i in 0..300 {
        c["sub"] = json!(format!("user-{i}"));
        let auth = bearer(&TestKey::ec().sign(&c));
        seen.insert(
            h.run_at(NOW, i, "POST", PREDICT, &[("authorization", &auth)])
                .route
                .unwrap(),
        );
    }
    assert!(
        seen.contains("main") && seen.contains("canary") && !seen.contains("dark"),
        "{seen:?}"
    );
}

#[test]
fn disabled_override_replaces_the_client_header() {
    let mut config = base_config();
    config.models.get_mut("prod/open").unwrap().routing = Some(Routing {
        override_allowed: false,
        ..routing(&[("a", 100), ("b", 0)])
    });
    let mut h = Harness::new(config);
    for _ in 0..20 {
        let Seen {
            outcome,
            edits,
            route,
            ..
        } = h.run(
            "POST",
            "/seldon/prod/open/x",
            &[("x-seldon-predictor", "b")],
        );
        assert_eq!(outcome, Outcome::Allowed(AllowReason::NoAuth));
        assert_eq!(route.as_deref(), Some("a"));
        assert!(edits.contains(&Edit::SetHeader("x-seldon-predictor".into(), "a".into())));
    }
}

#[test]
fn audit_mode_decides_the_same_but_lets_through() {
    let mut config = base_config();
    if let Some(Policy::Jwt(p)) = config.policies.get_mut("jwt") {
        p.mode = AuthMode::Audit;
    }
    let mut h = Harness::new(config);
    let Seen {
        outcome,
        refusal,
        route,
        ..
    } = h.run("POST", PREDICT, &[]);
    assert_eq!(outcome, Outcome::AuditDenied(DenyReason::MissingToken));
    assert!(refusal.is_none());
    assert!(route.is_some());
    let mut c = good_claims();
    c["groups"] = json!([]);
    let Seen { outcome, .. } = h.predict_with(&TestKey::rsa_a().sign(&c));
    assert_eq!(outcome, Outcome::AuditDenied(DenyReason::InsufficientScope));
    // Request errors are refused in every mode.
    let Seen { outcome, .. } = h.run("POST", PREDICT, &[("x-seldon-predictor", "nope")]);
    assert_eq!(outcome, Outcome::Denied(DenyReason::UnknownPredictor));
}

#[test]
fn forwarding_claims_and_removing_tokens() {
    let mut config = base_config();
    if let Some(Policy::Jwt(p)) = config.policies.get_mut("jwt") {
        p.token_from = vec!["header:authorization".into(), "query:access_token".into()];
        p.forward_token = false;
        p.forward_claims = [
            ("sub".to_string(), "x-user".to_string()),
            ("groups".to_string(), "x-groups".to_string()),
        ]
        .into();
    }
    let mut h = Harness::new(config);
    let token = TestKey::rsa_a().sign(&good_claims());
    let Seen { outcome, edits, .. } = h.run(
        "POST",
        PREDICT,
        &[("authorization", &bearer(&token)), ("x-user", "mallory")],
    );
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Token));
    assert!(edits.contains(&Edit::RemoveHeader("x-user".into())));
    assert!(edits.contains(&Edit::RemoveHeader("authorization".into())));
    assert!(edits.contains(&Edit::SetHeader("x-user".into(), "alice".into())));
    assert!(edits.contains(&Edit::SetHeader("x-groups".into(), "ml,ops".into())));
    let remove = edits
        .iter()
        .position(|e| *e == Edit::RemoveHeader("x-user".into()))
        .unwrap();
    let set = edits
        .iter()
        .position(|e| *e == Edit::SetHeader("x-user".into(), "alice".into()))
        .unwrap();
    assert!(
        remove < set,
        "the client's copy goes before the verified one is set"
    );

    let path = format!("{PREDICT}?a=1&access_token={token}&b=2");
    let Seen { outcome, edits, .. } = h.run("POST", &path, &[]);
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Token));
    assert!(edits.contains(&Edit::SetPath(format!("{PREDICT}?a=1&b=2"))));

    // Spoofed claim headers are removed even when the request is refused or exempt.
    let Seen { edits, .. } = h.run(
        "GET",
        "/seldon/prod/fraud/prometheus",
        &[("x-user", "mallory")],
    );
    assert!(edits.contains(&Edit::RemoveHeader("x-user".into())));

    // A withheld token is withheld on every path to the model: the exempt scrape (header
    // and query parameter), the preflight, and in audit mode a request whose two tokens
    // are refused but let through.
    let scrape = "/seldon/prod/fraud/prometheus";
    let Seen { outcome, edits, .. } = h.run("GET", scrape, &[("authorization", &bearer(&token))]);
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Exempt));
    assert!(edits.contains(&Edit::RemoveHeader("authorization".into())));
    let Seen { outcome, edits, .. } = h.run("GET", &format!("{scrape}?access_token={token}"), &[]);
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Exempt));
    assert!(edits.contains(&Edit::SetPath(scrape.into())), "{edits:?}");
    let Seen { outcome, edits, .. } = h.run(
        "OPTIONS",
        &format!("{PREDICT}?x=1&access_token={token}"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("authorization", &bearer(&token)),
        ],
    );
    assert_eq!(outcome, Outcome::Allowed(AllowReason::Preflight));
    assert!(edits.contains(&Edit::RemoveHeader("authorization".into())));
    assert!(
        edits.contains(&Edit::SetPath(format!("{PREDICT}?x=1"))),
        "{edits:?}"
    );
    // Nothing to take out: the path is left alone.
    let Seen { edits, .. } = h.run("GET", &format!("{scrape}?a=1"), &[]);
    assert!(
        !edits.iter().any(|e| matches!(e, Edit::SetPath(_))),
        "{edits:?}"
    );

    let mut audit = base_config();
    if let Some(Policy::Jwt(p)) = audit.policies.get_mut("jwt") {
        p.mode = AuthMode::Audit;
        p.token_from = vec!["header:authorization".into(), "query:access_token".into()];
        p.forward_token = false;
    }
    let mut h = Harness::new(audit);
    let Seen { outcome, edits, .. } = h.run(
        "POST",
        &format!("{PREDICT}?access_token={token}"),
        &[("authorization", &bearer(&token))],
    );
    assert_eq!(outcome, Outcome::AuditDenied(DenyReason::MultipleTokens));
    assert!(edits.contains(&Edit::RemoveHeader("authorization".into())));
    assert!(edits.contains(&Edit::SetPath(PREDICT.into())), "{edits:?}");
}

#[test]
fn verified_tokens_are_cached_until_exp_and_claims_rechecked() {
    let mut h = Harness::new(base_config());
    let mut c = good_claims();
    c["exp"] = json!(NOW + 100);
    let auth = bearer(&TestKey::rsa_a().sign(&c));
    assert_eq!(
        h.run("POST", PREDICT, &[("authorization", &auth)]).outcome,
        Outcome::Allowed(AllowReason::Token)
    );
    assert_eq!(h.cache.len(), 1);
    assert_eq!(
        h.run_at(NOW + 99, 1, "POST", PREDICT, &[("authorization", &auth)])
            .outcome,
        Outcome::Allowed(AllowReason::Token)
    );
    // Past exp the cache entry is gone and full verification (with leeway) applies.
    assert_eq!(
        h.run_at(NOW + 161, 1, "POST", PREDICT, &[("authorization", &auth)])
            .outcome,
        Outcome::Denied(DenyReason::Expired)
    );
    assert_eq!(h.cache.len(), 0);
    // Refused tokens are not cached.
    let bad = bearer(&TestKey::rsa_b().sign(&c));
    h.run("POST", PREDICT, &[("authorization", &bad)]);
    assert_eq!(h.cache.len(), 0);
}

#[test]
fn expired_and_retried_refused_tokens_cost_no_signature_check() {
    let mut h = Harness::new(base_config());
    let mut c = good_claims();
    c["exp"] = json!(NOW - 3600);
    // Signed by a key the policy does not trust under the kid of one it does, and expired:
    // the time decides, first.
    let mut impostor = TestKey::rsa_b();
    impostor.kid = TestKey::rsa_a().kid;
    let forged_expired = bearer(&impostor.sign(&c));
    let before = crate::crypto::checks();
    assert_eq!(
        h.run("POST", PREDICT, &[("authorization", &forged_expired)])
            .outcome,
        Outcome::Denied(DenyReason::Expired)
    );
    assert_eq!(crate::crypto::checks(), before, "no signature check");

    // A bad signature is checked once, then remembered for a while.
    let forged = bearer(&impostor.sign(&good_claims()));
    for _ in 0..3 {
        assert_eq!(
            h.run("POST", PREDICT, &[("authorization", &forged)])
                .outcome,
            Outcome::Denied(DenyReason::BadSignature)
        );
    }
    let after_forged = crate::crypto::checks();
    assert_eq!(after_forged - before, 1, "one check for three requests");
    assert_eq!(
        h.run_at(NOW + 31, 1, "POST", PREDICT, &[("authorization", &forged)])
            .outcome,
        Outcome::Denied(DenyReason::BadSignature)
    );
    assert!(
        crate::crypto::checks() > after_forged,
        "checked again once forgotten"
    );
    // A refused token never makes a good one refused, nor the other way round.
    let good = bearer(&TestKey::rsa_a().sign(&good_claims()));
    assert_eq!(
        h.run("POST", PREDICT, &[("authorization", &good)]).outcome,
        Outcome::Allowed(AllowReason::Token)
    );
}

#[test]
fn every_request_let_through_to_a_model_carries_its_route_tag_last() {
    let mut h = Harness::new(base_config());
    let tag = |edits: &[Edit]| match edits.last() {
        Some(Edit::SetHeader(name, value)) if name == "x-modelgate-route" => Some(value.clone()),
        _ => None,
    };
    let token = TestKey::rsa_a().sign(&good_claims());
    let spoof = ("x-modelgate-route", "prod/open/");
    let Seen { edits, route, .. } = h.run(
        "POST",
        PREDICT,
        &[("authorization", &bearer(&token)), spoof],
    );
    let predictor = route.unwrap();
    assert_eq!(tag(&edits), Some(format!("prod/fraud/{predictor}")));
    // A model without A/B routing: the predictor part is empty.
    let Seen { outcome, edits, .. } =
        h.run("POST", "/seldon/prod/open/api/v1.0/predictions", &[spoof]);
    assert_eq!(outcome, Outcome::Allowed(AllowReason::NoAuth));
    assert_eq!(tag(&edits).as_deref(), Some("prod/open/"));
    // Exempt scrapes go on, tagged like any other request.
    let Seen { edits, .. } = h.run("GET", "/seldon/prod/fraud/prometheus", &[]);
    assert!(tag(&edits).unwrap().starts_with("prod/fraud/"), "{edits:?}");
    // A request for no model loses a client's tag; one without it is left untouched.
    let Seen { outcome, edits, .. } = h.run("GET", "/other/app", &[spoof]);
    assert_eq!(outcome, Outcome::NotAModel);
    assert_eq!(edits, [Edit::RemoveHeader("x-modelgate-route".into())]);
    let Seen { edits, .. } = h.run("GET", "/other/app", &[]);
    assert!(edits.is_empty());
    // Refused requests are answered by the filter: nothing to tag.
    let Seen { outcome, .. } = h.run("POST", PREDICT, &[spoof]);
    assert_eq!(outcome, Outcome::Denied(DenyReason::MissingToken));
}

#[test]
fn edits_that_would_readdress_the_request_are_caught() {
    let request = Request::test("POST", "/seldon/a/b/x?access_token=t", &[]);
    assert!(keeps_address(
        &request,
        &[
            Edit::SetHeader("x-user".into(), "u".into()),
            Edit::SetPath("/seldon/a/b/x".into())
        ]
    ));
    for edit in [
        Edit::SetHeader("seldon".into(), "fraud".into()),
        Edit::RemoveHeader("namespace".into()),
        Edit::SetHeader(":authority".into(), "h".into()),
        Edit::SetPath("/seldon/bank/fraud/x".into()),
    ] {
        assert!(
            !keeps_address(&request, std::slice::from_ref(&edit)),
            "{edit:?}"
        );
    }
}

#[test]
fn only_the_claims_a_policy_reads_are_kept_and_decided_on() {
    let mut config = base_config();
    if let Some(Policy::Jwt(jwt)) = config.policies.get_mut("jwt") {
        jwt.forward_claims.insert("email".into(), "x-email".into());
    }
    if let Some(routing) = config
        .models
        .get_mut("prod/fraud")
        .unwrap()
        .routing
        .as_mut()
    {
        routing.sticky = Some("claim:tenant.id".into());
    }
    let (compiled, _) = CompiledConfig::compile(&config).unwrap();
    let mut cache = TokenCache::new(8);
    let mut claims = good_claims();
    claims["email"] = json!("a@example.com");
    claims["tenant"] = json!({"id": "t1"});
    claims["padding"] = json!("x".repeat(4000));
    let token = TestKey::rsa_a().sign(&claims);
    let headers = vec![("authorization".to_string(), bearer(&token))];
    let request = Request::test("POST", PREDICT, &headers);
    for _ in 0..2 {
        let d = compiled.decide(
            &request,
            &mut Environment {
                now: NOW,
                random: 1,
                cache: &mut cache,
            },
        );
        assert_eq!(d.outcome, Outcome::Allowed(AllowReason::Token));
        let kept: Vec<&String> = d.claims.as_ref().unwrap().keys().collect();
        assert_eq!(kept, ["email", "exp", "groups", "iss", "tenant"]);
        assert!(
            d.edits
                .contains(&Edit::SetHeader("x-email".into(), "a@example.com".into()))
        );
        assert_eq!(d.route.unwrap().reason, RouteReason::Sticky);
    }
}
