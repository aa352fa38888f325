//! The demo's models, as `deploy/examples/demo/` annotates them, and the tokens their users
//! carry, minted with the test keys whose public halves those manifests embed.

use modelgate_testkit::{TestKey, now};
use serde_json::{Value, json};

/// JWT (team issuer), canary with users sticky by `sub`.
pub const FRAUD: &str = "fraud/detector";
/// JWT (partner issuer, header or query), a dark launch and a shadow.
pub const SEARCH: &str = "ranking/search";
/// JWT (team issuer) in audit mode.
pub const LEGACY: &str = "credit/legacy";
/// No authentication, A/B that clients cannot steer.
pub const IRIS: &str = "public/iris";

/// `public/iris`'s routing header.
pub const IRIS_HEADER: &str = "x-iris-variant";
/// The routing header of the other models (the default).
pub const HEADER: &str = "x-seldon-predictor";

/// The team's issuer (`fraud/detector`, `credit/legacy`); never contacted, keys are inline.
pub const TEAM_ISSUER: &str = "https://127.0.0.1/realms/team";
/// The partners' issuer (`ranking/search`).
pub const PARTNER_ISSUER: &str = "https://127.0.0.1/realms/partners";

/// Claims a `fraud/detector` user's token carries.
pub fn fraud_claims(user: &str) -> Value {
    let now = now();
    json!({
        "iss": TEAM_ISSUER,
        "sub": user,
        "aud": ["fraud-api", "reporting"],
        "groups": ["fraud-team"],
        "iat": now,
        "exp": now + 3600,
    })
}

/// A valid `fraud/detector` token (RS256).
pub fn fraud_token(user: &str) -> String {
    TestKey::rsa_a().sign(&fraud_claims(user))
}

/// A valid `ranking/search` partner token (EdDSA).
pub fn search_token(user: &str) -> String {
    let now = now();
    TestKey::ed().sign(&json!({
        "iss": PARTNER_ISSUER,
        "sub": user,
        "iat": now,
        "exp": now + 3600,
    }))
}

/// A valid team token without audience or groups (enough for `credit/legacy`).
pub fn team_token(user: &str) -> String {
    let now = now();
    TestKey::rsa_a().sign(&json!({"iss": TEAM_ISSUER, "sub": user, "iat": now, "exp": now + 3600}))
}
