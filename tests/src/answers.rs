//! The answers SPEC section 3 fixes, written out literally (not computed with the filter's
//! own code), and assertions that a response is one of them or came from a model.

use serde_json::json;

use crate::client::Response;
use crate::upstream::Echo;

/// `WWW-Authenticate` for a request without a token.
pub fn no_token_challenge(model: &str) -> String {
    format!("Bearer realm=\"{model}\"")
}

/// `WWW-Authenticate` for a bad token.
pub fn invalid_token_challenge(model: &str) -> String {
    format!("Bearer realm=\"{model}\", error=\"invalid_token\"")
}

/// `WWW-Authenticate` for a valid token without the required claims.
pub fn insufficient_scope_challenge(model: &str) -> String {
    format!("Bearer realm=\"{model}\", error=\"insufficient_scope\"")
}

/// Asserts a refusal by the filter: status, exact `WWW-Authenticate` (or none), the JSON
/// body `{"error": reason, "model": model}`, and that no model server answered.
pub fn assert_refused(
    response: &Response,
    status: u16,
    challenge: Option<&str>,
    model: &str,
    reason: &str,
    context: &str,
) {
    assert_eq!(
        response.status,
        status,
        "{context}: expected {status} {reason}, got {}",
        response.summary()
    );
    assert!(
        response.upstream().is_none(),
        "{context}: a model answered: {}",
        response.summary()
    );
    assert_eq!(
        response.header_values("www-authenticate"),
        challenge.into_iter().collect::<Vec<_>>(),
        "{context}: WWW-Authenticate"
    );
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{context}: content-type"
    );
    assert_eq!(
        response.json(),
        json!({"error": reason, "model": model}),
        "{context}: body {}",
        response.text()
    );
}

/// Asserts `401` without a token.
pub fn assert_no_token(response: &Response, model: &str, context: &str) {
    assert_refused(
        response,
        401,
        Some(&no_token_challenge(model)),
        model,
        "missing_token",
        context,
    );
}

/// Asserts `401 invalid_token` for the given reason.
pub fn assert_invalid_token(response: &Response, model: &str, reason: &str, context: &str) {
    assert_refused(
        response,
        401,
        Some(&invalid_token_challenge(model)),
        model,
        reason,
        context,
    );
}

/// Asserts `403 insufficient_scope`.
pub fn assert_insufficient_scope(response: &Response, model: &str, context: &str) {
    assert_refused(
        response,
        403,
        Some(&insufficient_scope_challenge(model)),
        model,
        "insufficient_scope",
        context,
    );
}

/// Asserts that a model server answered `200`; returns what it received.
pub fn assert_reached(response: &Response, context: &str) -> Echo {
    assert_eq!(
        response.status,
        200,
        "{context}: expected a model's answer, got {}",
        response.summary()
    );
    response.echo().unwrap_or_else(|| {
        panic!(
            "{context}: not a model server's echo: {}",
            response.summary()
        )
    })
}
