//! The answers SPEC section 3 fixes, written out literally (not computed with the filter's
//! own code), and assertions that a response is one of them or came from a model (routed
//! on the header the filter set, the same predictor for every request of a sticky user).

use std::collections::BTreeMap;

use serde_json::json;

use crate::client::{Client, Request, Response};
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

/// Asserts a model's answer chosen on the routing header `header`: the predictor that
/// answered is the one the filter set on the request and returned to the client. Returns
/// its name.
pub fn assert_routed(response: &Response, header: &str, context: &str) -> String {
    let echo = assert_reached(response, context);
    assert_eq!(
        response.header(header),
        Some(echo.server.as_str()),
        "{context}: the response names the predictor that answered"
    );
    assert_eq!(
        echo.received.header(header),
        Some(echo.server.as_str()),
        "{context}: the predictor that answered is the one the filter chose"
    );
    echo.server
}

/// Sends `repeats` requests for each of `users` users (`user-0`, `user-1`, ...), each built
/// by `request_of(user)`, and asserts that every one is routed on `header` and that all of a
/// user's requests reach one predictor. Returns how many users each predictor got.
pub fn assert_sticky_users(
    client: &mut Client,
    header: &str,
    users: usize,
    repeats: usize,
    request_of: impl Fn(&str) -> Request,
) -> BTreeMap<String, usize> {
    let mut per_predictor = BTreeMap::new();
    for user in 0..users {
        let user = format!("user-{user}");
        let mut seen = Vec::new();
        for _ in 0..repeats {
            let response = client
                .send(&request_of(&user))
                .unwrap_or_else(|e| panic!("{user}: {e}"));
            seen.push(assert_routed(&response, header, &user));
        }
        seen.dedup();
        assert_eq!(seen.len(), 1, "{user} moved between {seen:?}");
        *per_predictor.entry(seen.remove(0)).or_insert(0) += 1;
    }
    per_predictor
}
