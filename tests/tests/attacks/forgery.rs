//! What the attacks forge from: a prediction request to the JWT model `fraud/detector`, the
//! claims of a token that would satisfy its policy, and the parts of a token an attack
//! keeps or replaces.

use modelgate_e2e::Request;
use modelgate_e2e::sample::{self, FRAUD};

/// `fraud/detector`'s routing header (the default).
pub(crate) const HEADER: &str = "x-seldon-predictor";

/// A prediction request to `fraud/detector` with `authorization: Bearer <token>`.
pub(crate) fn fraud(token: &str) -> Request {
    Request::predict(FRAUD).bearer(token)
}

/// The claims of a `fraud/detector` token that satisfies every rule of its policy.
pub(crate) fn good_payload() -> String {
    sample::fraud_claims("mallory").to_string()
}

/// The signature segment of a token.
pub(crate) fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().unwrap_or_default()
}
