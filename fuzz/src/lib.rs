//! What the fuzz targets share: a fixed configuration covering every policy kind and
//! routing shape, a readable text encoding of requests (so seeds are real request lines),
//! and the invariants every decision must keep.

use std::collections::BTreeMap;

use modelgate_controller::seldon::{PredictorSpec, SeldonDeployment, SeldonDeploymentSpec};
use modelgate_core::compiled::CompiledPolicy;
use modelgate_core::config::AuthMode;
use modelgate_core::{AllowReason, CompiledConfig, Decision, Outcome, Request, RouteReason};
use modelgate_testkit::{TestKey, jwks};
use serde_json::json;

/// The decision clock: fixed, so a seed's token is valid (or expired) forever.
pub const NOW: u64 = 1_800_000_000;
/// The issuer of the fixture's JWT policies.
pub const ISSUER: &str = "https://idp.example";

/// The fixture configuration as JSON: JWT enforce and audit, no auth, an unusable policy,
/// and A/B routing with override, header, claim and cookie stickiness and a dark launch.
pub fn fixture_json() -> serde_json::Value {
    let jwt = |mode: &str| {
        json!({
            "auth": "jwt",
            "issuer": ISSUER,
            "audiences": ["models"],
            "keySet": "idp",
            "claims": {"groups": ["ml"]},
            "tokenFrom": ["header:authorization", "query:access_token"],
            "forwardClaims": {"sub": "x-user"},
            "forwardToken": false,
            "mode": mode
        })
    };
    json!({
        "version": 1,
        "keySets": {"idp": jwks(&[&TestKey::rsa_a(), &TestKey::ec(), &TestKey::ed()])},
        "policies": {
            "jwt": jwt("enforce"),
            "audit": jwt("audit"),
            "open": {"auth": "none"},
            "broken": {"auth": "deny", "reason": "seldon.io/jwt-claims: expected a JSON object"}
        },
        "models": {
            "prod/fraud": {
                "policy": "jwt",
                "routing": {
                    "header": "x-seldon-predictor",
                    "override": true,
                    "sticky": "header:x-user-id",
                    "predictors": [
                        {"name": "main", "traffic": 75},
                        {"name": "canary", "traffic": 25},
                        {"name": "dark", "traffic": 0}
                    ]
                }
            },
            "prod/audited": {
                "policy": "audit",
                "routing": {
                    "sticky": "claim:sub",
                    "predictors": [{"name": "a", "traffic": 1}, {"name": "b", "traffic": 0}]
                }
            },
            "prod/open": {"policy": "open"},
            "prod/shop": {
                "policy": "open",
                "routing": {
                    "override": false,
                    "sticky": "cookie:session",
                    "predictors": [{"name": "x", "traffic": 0}, {"name": "y", "traffic": 3}]
                }
            },
            "dev/broken": {"policy": "broken"}
        }
    })
}

thread_local! {
    // Compiled keys are shared through `Rc`, so the fixture lives per thread (libFuzzer
    // runs a target on one thread) and is leaked to outlive every input.
    static FIXTURE: &'static CompiledConfig = {
        let bytes = fixture_json().to_string();
        match CompiledConfig::from_json(bytes.as_bytes()) {
            Ok((config, _warnings)) => Box::leak(Box::new(config)),
            Err(e) => panic!("the fuzz fixture configuration does not compile: {e:?}"),
        }
    };
}

/// The fixture configuration, compiled once per thread.
pub fn fixture() -> &'static CompiledConfig {
    FIXTURE.with(|config| *config)
}

/// A request decoded from text: `METHOD PATH` on the first line, then one `name: value`
/// header per line (names lowercased, as Envoy delivers them). Any bytes decode.
pub struct TextRequest {
    /// `:method`.
    pub method: String,
    /// `:path`.
    pub path: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
}

impl TextRequest {
    /// Decodes fuzz input (invalid UTF-8 replaced).
    pub fn parse(data: &[u8]) -> Self {
        let text = String::from_utf8_lossy(data);
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("");
        let (method, path) = first.split_once(' ').unwrap_or((first, ""));
        let headers = lines
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((
                    name.trim().to_ascii_lowercase(),
                    value.trim_start().to_string(),
                ))
            })
            .collect();
        Self {
            method: method.to_string(),
            path: path.to_string(),
            headers,
        }
    }

    /// The request as the core sees it.
    pub fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
        }
    }
}

/// Whether the request carries anything in one of the fixture's token sources.
fn carries_token(request: &Request<'_>) -> bool {
    request.header("authorization").is_some()
        || request
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token")))
}

/// Checks the invariants every decision must keep; panics (a libFuzzer crash) if one fails.
pub fn check_decision(config: &CompiledConfig, request: &Request<'_>, decision: &Decision<'_>) {
    let Some(model) = decision.model else {
        assert!(
            matches!(decision.outcome, Outcome::NotAModel | Outcome::Denied(_)),
            "no model but {:?}",
            decision.outcome
        );
        assert!(decision.route.is_none(), "a route without a model");
        return;
    };
    if let Outcome::Allowed(AllowReason::Exempt) = decision.outcome {
        let path = request.path_only();
        assert!(
            request.method == "GET" && (path == "/prometheus" || path == model.prometheus_path()),
            "exempt: {} {} for {}",
            request.method,
            request.path,
            model.id
        );
    }
    if let Outcome::Allowed(AllowReason::Preflight) = decision.outcome {
        assert!(request.is_cors_preflight(), "preflight without a preflight");
    }
    match &config.policies[model.policy] {
        CompiledPolicy::Jwt(jwt) => {
            if let Outcome::Allowed(reason) = decision.outcome {
                assert_ne!(
                    reason,
                    AllowReason::NoAuth,
                    "{}: JWT model allowed as no_auth",
                    model.id
                );
                if reason == AllowReason::Token {
                    assert!(
                        carries_token(request),
                        "{}: allowed by token without a token",
                        model.id
                    );
                }
                if jwt.mode == AuthMode::Enforce && !carries_token(request) {
                    assert!(
                        matches!(reason, AllowReason::Exempt | AllowReason::Preflight),
                        "{}: no token, allowed as {reason:?}",
                        model.id
                    );
                }
            }
            if jwt.mode == AuthMode::Enforce {
                assert!(
                    !matches!(decision.outcome, Outcome::AuditDenied(_)),
                    "{}: audit outcome under enforce",
                    model.id
                );
            }
        }
        CompiledPolicy::None => assert!(
            !matches!(
                decision.outcome,
                Outcome::Allowed(AllowReason::Token) | Outcome::AuditDenied(_)
            ),
            "{}: no-auth model decided {:?}",
            model.id,
            decision.outcome
        ),
        CompiledPolicy::Deny(_) => assert!(
            matches!(
                decision.outcome,
                Outcome::Denied(_) | Outcome::Allowed(AllowReason::Exempt | AllowReason::Preflight)
            ),
            "{}: unusable policy decided {:?}",
            model.id,
            decision.outcome
        ),
    }
    if let Some(route) = decision.route {
        let routing = model.routing.as_ref().expect("a route without routing");
        assert!(
            route.index < routing.predictors.len(),
            "route index out of bounds"
        );
        let predictor = &routing.predictors[route.index];
        assert_eq!(route.predictor, predictor.name);
        if predictor.traffic == 0 {
            assert_eq!(
                route.reason,
                RouteReason::Override,
                "{}: traffic-0 predictor {} chosen without override",
                model.id,
                predictor.name
            );
        }
        if route.reason == RouteReason::Override {
            assert!(
                routing.override_allowed,
                "{}: override not allowed",
                model.id
            );
        }
    }
    assert!(
        !matches!(decision.outcome, Outcome::Denied(_)) || decision.route.is_none(),
        "a denied request was routed"
    );
}

/// A SeldonDeployment `<namespace>/<name>` from text: `key=value` lines go to
/// `spec.annotations`, `meta key=value` lines to `metadata.annotations`, and
/// `predictor name=traffic` or `predictor name=shadow` lines add predictors (one `default`
/// predictor when there is none). Every value is also handed to `each_value`.
pub fn seldon_deployment(
    text: &str,
    namespace: &str,
    name: &str,
    mut each_value: impl FnMut(&str),
) -> SeldonDeployment {
    let mut spec_annotations = BTreeMap::new();
    let mut metadata_annotations = BTreeMap::new();
    let mut predictors = Vec::new();
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix("predictor ") {
            let (name, weight) = rest.split_once('=').unwrap_or((rest, ""));
            predictors.push(PredictorSpec {
                name: name.to_string(),
                traffic: weight.parse().ok(),
                shadow: (weight == "shadow").then_some(true),
                ..Default::default()
            });
            continue;
        }
        let (target, line) = match line.strip_prefix("meta ") {
            Some(rest) => (&mut metadata_annotations, rest),
            None => (&mut spec_annotations, line),
        };
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        each_value(value);
        target.insert(key.to_string(), value.to_string());
    }
    if predictors.is_empty() {
        predictors.push(PredictorSpec {
            name: "default".into(),
            ..Default::default()
        });
    }
    let mut sdep = SeldonDeployment::new(
        name,
        SeldonDeploymentSpec {
            name: None,
            predictors,
            annotations: (!spec_annotations.is_empty()).then_some(spec_annotations),
        },
    );
    sdep.metadata.namespace = Some(namespace.into());
    sdep.metadata.annotations =
        (!metadata_annotations.is_empty()).then_some(metadata_annotations);
    sdep
}
