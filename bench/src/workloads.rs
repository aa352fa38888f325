//! What the load generator sends, and what each configuration must answer: a benchmark of
//! wrong answers measures nothing, so every configuration's answers are checked before it
//! is measured and every measured response is counted as expected or not.

use std::fmt;

use modelgate_e2e::{Client, Request};
use serde::Serialize;
use serde_json::json;

use crate::chains::{Chain, MODEL_NAME, MODEL_NAMESPACE};
use crate::tokens::Tokens;

/// One kind of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Workload {
    /// One valid token on every request.
    Hot,
    /// A valid token never seen before on every request (a pool larger than any cache).
    Cold,
    /// A token whose signature does not verify.
    BadSignature,
    /// A token past its `exp`.
    Expired,
    /// A valid token without the required claim.
    MissingClaim,
    /// `GET /prometheus` without a token.
    Prometheus,
}

impl Workload {
    /// Every workload, in the order of a measurement.
    pub const ALL: [Workload; 6] = [
        Workload::Hot,
        Workload::Cold,
        Workload::BadSignature,
        Workload::Expired,
        Workload::MissingClaim,
        Workload::Prometheus,
    ];

    /// The label of the tables.
    pub fn label(self) -> &'static str {
        match self {
            Workload::Hot => "hot",
            Workload::Cold => "cold",
            Workload::BadSignature => "bad signature",
            Workload::Expired => "expired",
            Workload::MissingClaim => "missing claim",
            Workload::Prometheus => "GET /prometheus",
        }
    }

    /// The status a configuration answers.
    pub fn expected_status(self, chain: Chain) -> u16 {
        if !chain.authenticates() {
            return 200;
        }
        match self {
            Workload::Hot | Workload::Cold | Workload::Prometheus => 200,
            Workload::BadSignature | Workload::Expired => 401,
            Workload::MissingClaim => 403,
        }
    }

    /// The request's method and target.
    pub fn method_and_target(self) -> (&'static str, String) {
        match self {
            Workload::Prometheus => ("GET", "/prometheus".to_string()),
            _ => ("POST", prediction_path()),
        }
    }

    /// The request's body (a Seldon prediction, or none).
    pub fn body(self) -> Option<String> {
        match self {
            Workload::Prometheus => None,
            _ => Some(prediction_body()),
        }
    }

    /// The token sent on every request (the cold workload takes its tokens from the pool).
    pub fn fixed_token(self, tokens: &Tokens) -> Option<&str> {
        match self {
            Workload::Hot => Some(&tokens.hot),
            Workload::BadSignature => Some(&tokens.bad_signature),
            Workload::Expired => Some(&tokens.expired),
            Workload::MissingClaim => Some(&tokens.missing_claim),
            Workload::Cold | Workload::Prometheus => None,
        }
    }

    /// One request of this workload carrying `token` (if the workload sends one).
    pub fn request(self, token: Option<&str>) -> Request {
        let (method, target) = self.method_and_target();
        let mut request = Request::new(method, &target);
        if let Some(body) = self.body() {
            request = request
                .header("content-type", "application/json")
                .body(body.into_bytes());
        }
        if let Some(token) = token {
            request = request.bearer(token);
        }
        request
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The path of a prediction request to the benchmark's model.
pub fn prediction_path() -> String {
    format!("/seldon/{MODEL_NAMESPACE}/{MODEL_NAME}/api/v1.0/predictions")
}

/// A small Seldon prediction payload.
pub fn prediction_body() -> String {
    json!({"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}).to_string()
}

/// The status of a prediction request without a token: Istio's chain lets it through
/// `jwt_authn` and RBAC refuses it (`403`); modelgate asks for a token (`401`).
pub fn expected_status_without_token(chain: Chain) -> u16 {
    match chain {
        Chain::Router | Chain::NoopWasm => 200,
        Chain::Istio | Chain::IstioCached => 403,
        Chain::Modelgate => 401,
    }
}

/// Sends every workload's request (and one without a token) and checks each answer's
/// status; returns what differed.
pub fn check_answers(client: &mut Client, chain: Chain, tokens: &Tokens) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut expect = |what: &str, request: Request, status: u16| match client.send(&request) {
        Ok(response) if response.status == status => {}
        Ok(response) => wrong.push(format!(
            "({}) {what}: expected {status}, got {}",
            chain.label(),
            response.summary()
        )),
        Err(e) => wrong.push(format!("({}) {what}: {e}", chain.label())),
    };
    for workload in Workload::ALL {
        let token = match workload {
            Workload::Cold => tokens.pool.first().map(String::as_str),
            _ => workload.fixed_token(tokens),
        };
        expect(
            workload.label(),
            workload.request(token),
            workload.expected_status(chain),
        );
    }
    expect(
        "no token",
        Workload::Hot.request(None),
        expected_status_without_token(chain),
    );
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_authenticating_chains_refuse_anything() {
        for workload in Workload::ALL {
            assert_eq!(workload.expected_status(Chain::Router), 200);
            assert_eq!(workload.expected_status(Chain::NoopWasm), 200);
            assert_eq!(
                workload.expected_status(Chain::Istio),
                workload.expected_status(Chain::Modelgate),
                "{workload}"
            );
        }
        assert_eq!(
            Workload::MissingClaim.expected_status(Chain::Modelgate),
            403
        );
        assert_eq!(Workload::Expired.expected_status(Chain::IstioCached), 401);
    }
}
