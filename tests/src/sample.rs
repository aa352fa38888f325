//! The sample models the end-to-end tests and the demo run against, built with the
//! filter's own configuration types (as the controller builds them), and the tokens their
//! users would carry.
//!
//! | model | auth | routing |
//! |---|---|---|
//! | `fraud/detector` | JWT (issuer A: RSA + EC keys), audience, `groups` claim | `main` 75 / `canary` 25 / `dark` 0, sticky `x-user-id`, override allowed |
//! | `credit/scorer` | JWT (issuer B: RSA + Ed25519 keys), header or `access_token` query, token not forwarded, `sub` and roles forwarded | one predictor |
//! | `credit/legacy` | JWT in audit mode (issuer A) | one predictor |
//! | `public/iris` | none | `a` 50 / `b` 50 on `x-iris-variant`, override disabled |
//! | `staging/newmodel` | routes only: not in the filter configuration until a test adds it | one predictor |

use std::collections::BTreeMap;

use modelgate_core::config::{
    AuthMode, FilterConfig, JwtPolicy, KeySet, Model, Policy, Predictor, Routing,
};
use modelgate_testkit::{TestKey, changed_claims, jwks, now};
use serde_json::{Value, json};

use crate::gateway::{Gateway, GatewaySpec};
use crate::routes::{ModelRoutes, RouteTable};

/// Issuer A, the team's identity provider (never contacted: keys are inline).
pub const ISSUER: &str = "https://127.0.0.1/realms/modelgate-e2e";
/// Issuer B, a partner's identity provider.
pub const PARTNER_ISSUER: &str = "https://127.0.0.1/realms/partners";

/// JWT, A/B with a dark launch and stickiness.
pub const FRAUD: &str = "fraud/detector";
/// JWT with query tokens, token removal and claim forwarding.
pub const CREDIT: &str = "credit/scorer";
/// JWT in audit mode.
pub const LEGACY: &str = "credit/legacy";
/// No authentication, A/B with the override disabled.
pub const IRIS: &str = "public/iris";
/// Routed by the gateway but unknown to the filter at first.
pub const STAGING: &str = "staging/newmodel";

/// `fraud/detector`'s audience.
pub const FRAUD_AUDIENCE: &str = "fraud-api";
/// `credit/scorer`'s audience.
pub const CREDIT_AUDIENCE: &str = "credit";
/// `public/iris`'s routing header.
pub const IRIS_HEADER: &str = "x-iris-variant";
/// `fraud/detector`'s stickiness header.
pub const STICKY_HEADER: &str = "x-user-id";

/// The routes istiod would program for the sample models.
pub fn routes() -> RouteTable {
    RouteTable::new(vec![
        fraud_routes(),
        ModelRoutes::new("credit", "scorer", &[("default", 100)]),
        ModelRoutes::new("credit", "legacy", &[("default", 100)]),
        ModelRoutes::new("public", "iris", &[("a", 50), ("b", 50)]).with_ab_header(IRIS_HEADER),
        ModelRoutes::new("staging", "newmodel", &[("v1", 100)]),
    ])
}

/// The routes istiod would program for `fraud/detector` (for gateways that add other
/// models beside it).
pub fn fraud_routes() -> ModelRoutes {
    ModelRoutes::new(
        "fraud",
        "detector",
        &[("main", 75), ("canary", 25), ("dark", 0)],
    )
}

/// Issuer A's keys.
pub fn team_keys() -> Vec<TestKey> {
    vec![TestKey::rsa_a(), TestKey::ec()]
}

/// Issuer B's keys.
pub fn partner_keys() -> Vec<TestKey> {
    vec![TestKey::rsa_b(), TestKey::ed()]
}

/// A key set holding these keys' public halves.
pub fn key_set(keys: &[TestKey]) -> KeySet {
    let refs: Vec<&TestKey> = keys.iter().collect();
    let document = jwks(&refs);
    KeySet {
        source: None,
        keys: document["keys"].as_array().cloned().unwrap_or_default(),
    }
}

/// An enforced JWT policy of `issuer` with the keys of `key_set`, and nothing else: no
/// audience, claim rule or forwarded claim, the token read from `authorization` and
/// forwarded.
pub fn jwt_policy(issuer: &str, key_set: &str) -> JwtPolicy {
    JwtPolicy {
        mode: AuthMode::Enforce,
        issuer: issuer.into(),
        audiences: vec![],
        key_set: key_set.into(),
        claims: BTreeMap::new(),
        token_from: vec![],
        forward_claims: BTreeMap::new(),
        forward_token: true,
    }
}

fn routing(
    header: &str,
    override_allowed: bool,
    sticky: Option<&str>,
    predictors: &[(&str, u32)],
) -> Routing {
    Routing {
        header: header.into(),
        override_allowed,
        sticky: sticky.map(str::to_string),
        predictors: predictors
            .iter()
            .map(|(name, traffic)| Predictor {
                name: name.to_string(),
                traffic: *traffic,
            })
            .collect(),
    }
}

/// The filter configuration for the sample models (all but `staging/newmodel`).
pub fn filter_config() -> FilterConfig {
    let mut config = FilterConfig::new();
    config.key_sets.insert("team".into(), key_set(&team_keys()));
    config
        .key_sets
        .insert("partners".into(), key_set(&partner_keys()));

    let mut fraud = jwt_policy(ISSUER, "team");
    fraud.audiences = vec![FRAUD_AUDIENCE.into()];
    fraud.claims.insert(
        "groups".into(),
        vec!["fraud-team".into(), "fraud-admins".into()],
    );
    config.policies.insert("fraud".into(), Policy::Jwt(fraud));

    let credit = JwtPolicy {
        mode: AuthMode::Enforce,
        issuer: PARTNER_ISSUER.into(),
        audiences: vec![CREDIT_AUDIENCE.into()],
        key_set: "partners".into(),
        claims: BTreeMap::from([("realm_access.roles".into(), vec!["scorer".into()])]),
        token_from: vec!["header:authorization".into(), "query:access_token".into()],
        forward_claims: BTreeMap::from([
            ("sub".into(), "x-auth-subject".into()),
            ("realm_access.roles".into(), "x-auth-roles".into()),
        ]),
        forward_token: false,
    };
    config.policies.insert("credit".into(), Policy::Jwt(credit));

    let mut audit = jwt_policy(ISSUER, "team");
    audit.mode = AuthMode::Audit;
    config
        .policies
        .insert("team-audit".into(), Policy::Jwt(audit));
    config.policies.insert("open".into(), Policy::None);

    config.models.insert(
        FRAUD.into(),
        Model {
            policy: "fraud".into(),
            routing: Some(routing(
                modelgate_core::config::DEFAULT_AB_HEADER,
                true,
                Some(&format!("header:{STICKY_HEADER}")),
                &[("main", 75), ("canary", 25), ("dark", 0)],
            )),
        },
    );
    config.models.insert(
        CREDIT.into(),
        Model {
            policy: "credit".into(),
            routing: None,
        },
    );
    config.models.insert(
        LEGACY.into(),
        Model {
            policy: "team-audit".into(),
            routing: None,
        },
    );
    config.models.insert(
        IRIS.into(),
        Model {
            policy: "open".into(),
            routing: Some(routing(IRIS_HEADER, false, None, &[("a", 50), ("b", 50)])),
        },
    );
    config
}

/// The JSON the filter reads.
pub fn to_json(config: &FilterConfig) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

/// The gateway spec of the sample models.
pub fn spec() -> GatewaySpec {
    GatewaySpec {
        routes: routes(),
        filter_config: to_json(&filter_config()),
        workers: 1,
    }
}

/// Starts a gateway with the sample models; fails the calling test with the reason (for
/// instance that `scripts/setup.sh` has not been run) when it cannot.
pub fn start(name: &str) -> Gateway {
    start_with(name, &spec())
}

/// Starts a gateway from a spec; fails the calling test with the reason when it cannot.
pub fn start_with(name: &str, spec: &GatewaySpec) -> Gateway {
    Gateway::start(name, spec).unwrap_or_else(|e| panic!("cannot start the test gateway: {e}"))
}

/// Claims a `fraud/detector` user's token carries.
pub fn fraud_claims(user: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": user,
        "aud": [FRAUD_AUDIENCE, "reporting"],
        "groups": ["fraud-team"],
        "iat": now,
        "exp": now + 3600,
    })
}

/// A valid `fraud/detector` token (RS256, issuer A's RSA key).
pub fn fraud_token(user: &str) -> String {
    TestKey::rsa_a().sign(&fraud_claims(user))
}

/// A `fraud/detector` token (signed as [`fraud_token`]) with some claims replaced or added
/// by `changes` (an object; `null` removes a claim).
pub fn fraud_token_with(user: &str, changes: &Value) -> String {
    TestKey::rsa_a().sign(&changed_claims(fraud_claims(user), changes))
}

/// Claims a `credit/scorer` partner's token carries.
pub fn credit_claims(user: &str) -> Value {
    let now = now();
    json!({
        "iss": PARTNER_ISSUER,
        "sub": user,
        "aud": CREDIT_AUDIENCE,
        "realm_access": {"roles": ["viewer", "scorer"]},
        "iat": now,
        "exp": now + 3600,
    })
}

/// A valid `credit/scorer` token (EdDSA, issuer B's Ed25519 key).
pub fn credit_token(user: &str) -> String {
    TestKey::ed().sign(&credit_claims(user))
}

/// A valid issuer-A token without audience or groups (enough for `credit/legacy`).
pub fn team_token(user: &str) -> String {
    let now = now();
    TestKey::rsa_a().sign(&json!({"iss": ISSUER, "sub": user, "iat": now, "exp": now + 3600}))
}
