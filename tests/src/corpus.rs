//! Tables of hostile requests and the exact answer each must get, run against one gateway.
//! A case never stops the table: every case is sent and checked, and the test fails at the
//! end with the name and the reason of each case that went wrong, so one run shows the
//! whole picture of an attack class instead of its first failure.

use std::collections::BTreeMap;

use serde_json::json;

use crate::answers::{insufficient_scope_challenge, invalid_token_challenge, no_token_challenge};
use crate::client::{Request, Response};
use crate::gateway::Gateway;
use crate::upstream::Echo;

/// What a case must produce.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A server of `model` (`<ns>/<name>`) answered `200`: exactly `predictor` when given,
    /// else any of the model's; with `path` (after the gateway's rewrite) when given. For a
    /// model with per-predictor routes, the routing header reached the upstream exactly
    /// once, holding the predictor that answered, and came back on the response.
    Reached {
        /// The model.
        model: &'static str,
        /// The predictor, if one is prescribed.
        predictor: Option<&'static str>,
        /// The path the model server must have received, if prescribed.
        path: Option<&'static str>,
        /// A request header that must not reach the model (a token the policy withholds).
        withheld: Option<&'static str>,
    },
    /// The filter refused: `status`, the `WWW-Authenticate` SPEC section 3 fixes for it,
    /// and the body `{"error": reason, "model": model}` (`model` left out when the request
    /// names no model the filter could tell). No model server saw the request.
    Refused {
        /// HTTP status.
        status: u16,
        /// The reason in the body.
        reason: &'static str,
        /// The model in the body and challenge.
        model: Option<&'static str>,
    },
    /// A refusal of a gRPC request: Envoy turns the filter's local reply into `200` with
    /// `grpc-status` (16 for `401`, 13 for `400`) and the JSON body as `grpc-message`.
    GrpcRefused {
        /// The gRPC status Envoy derives from the HTTP status.
        grpc_status: &'static str,
        /// The reason, found in `grpc-message`.
        reason: &'static str,
        /// The model of the challenge, when the refusal carries one.
        challenge: Option<String>,
    },
    /// No model: the named server that is not a model (`other-app`, `prometheus`)
    /// answered, and `untouched` (a header name), when given, reached it exactly as sent.
    Passed {
        /// The server's name.
        server: &'static str,
        /// A header that must arrive with exactly the client's values.
        untouched: Option<&'static str>,
    },
    /// Envoy answered by itself with this status: neither the filter's refusal nor any
    /// server's answer.
    Envoy {
        /// The status.
        status: u16,
    },
}

impl Expect {
    /// Reached any predictor of `model`.
    pub fn reached(model: &'static str) -> Self {
        Expect::Reached {
            model,
            predictor: None,
            path: None,
            withheld: None,
        }
    }

    /// Reached exactly `predictor` of `model`.
    pub fn reached_predictor(model: &'static str, predictor: &'static str) -> Self {
        Expect::Reached {
            model,
            predictor: Some(predictor),
            path: None,
            withheld: None,
        }
    }

    /// A `GET` of the exempt path reached `model` rewritten to `path`.
    pub fn exempt(model: &'static str, path: &'static str) -> Self {
        Expect::Reached {
            model,
            predictor: None,
            path: Some(path),
            withheld: None,
        }
    }

    /// `401` without a token.
    pub fn missing_token(model: &'static str) -> Self {
        Expect::Refused {
            status: 401,
            reason: "missing_token",
            model: Some(model),
        }
    }

    /// `401 invalid_token` for `reason`.
    pub fn invalid_token(model: &'static str, reason: &'static str) -> Self {
        Expect::Refused {
            status: 401,
            reason,
            model: Some(model),
        }
    }

    /// `403 insufficient_scope`.
    pub fn insufficient_scope(model: &'static str) -> Self {
        Expect::Refused {
            status: 403,
            reason: "insufficient_scope",
            model: Some(model),
        }
    }

    /// `400` for `reason` (routing and addressing refusals carry no challenge).
    pub fn bad_request(model: Option<&'static str>, reason: &'static str) -> Self {
        Expect::Refused {
            status: 400,
            reason,
            model,
        }
    }
}

/// One input of a table.
#[derive(Debug, Clone)]
pub struct Case {
    /// Shown when the case fails.
    pub name: String,
    /// Sent exactly as written.
    pub request: Request,
    /// What it must get.
    pub expect: Expect,
}

/// A case.
pub fn case(name: impl Into<String>, request: Request, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request,
        expect,
    }
}

/// Sends every case (each on a new connection, so a case Envoy closes the connection on
/// cannot disturb the next) and returns one line per failed case.
pub fn run(gw: &Gateway, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let before = model_hits(gw);
        let outcome = gw.client().send(&case.request);
        let after = model_hits(gw);
        let result = match outcome {
            Ok(response) => check(
                gw,
                &case.request,
                &response,
                &delta(&before, &after),
                &case.expect,
            ),
            Err(e) => Err(format!("no answer: {e}")),
        };
        if let Err(why) = result {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    failures
}

/// Runs a table and fails the calling test with every failed case, by name.
pub fn assert_table(gw: &Gateway, table: &str, cases: &[Case]) {
    let failures = run(gw, cases);
    assert!(
        failures.is_empty(),
        "{table}: {} of {} cases failed (Envoy log: {}):\n  {}",
        failures.len(),
        cases.len(),
        gw.dir().join("envoy.log").display(),
        failures.join("\n  ")
    );
}

/// Requests served so far by each model's predictors, by (model, predictor).
type Hits = BTreeMap<(String, String), usize>;

fn model_hits(gw: &Gateway) -> Hits {
    let mut hits = BTreeMap::new();
    for model in &gw.routes().models {
        for predictor in &model.predictors {
            let count = gw.server(&model.id(), &predictor.name).count();
            hits.insert((model.id(), predictor.name.clone()), count);
        }
    }
    hits
}

/// The model servers a case reached, with how many requests each got.
fn delta(before: &Hits, after: &Hits) -> Vec<(String, String, usize)> {
    after
        .iter()
        .filter_map(|(key, n)| {
            let was = before.get(key).copied().unwrap_or(0);
            (*n > was).then(|| (key.0.clone(), key.1.clone(), n - was))
        })
        .collect()
}

fn check(
    gw: &Gateway,
    request: &Request,
    response: &Response,
    reached: &[(String, String, usize)],
    expect: &Expect,
) -> Result<(), String> {
    match expect {
        Expect::Reached {
            model,
            predictor,
            path,
            withheld,
        } => {
            let echo = check_reached(gw, response, reached, model, *predictor, *path)?;
            match withheld.and_then(|name| echo.received.header(name).map(|v| (name, v))) {
                Some((name, value)) => Err(format!("{model} received {name}: {value}")),
                None => Ok(()),
            }
        }
        Expect::Refused {
            status,
            reason,
            model,
        } => {
            nothing_reached(reached)?;
            check_refused(request, response, *status, reason, *model)
        }
        Expect::GrpcRefused {
            grpc_status,
            reason,
            challenge,
        } => {
            nothing_reached(reached)?;
            check_grpc_refused(response, grpc_status, reason, challenge.as_deref())
        }
        Expect::Passed { server, untouched } => {
            nothing_reached(reached)?;
            if response.upstream() != Some(*server) {
                return Err(format!(
                    "expected {server} to answer, got {}",
                    response.summary()
                ));
            }
            if let Some(name) = untouched {
                let echo = response
                    .echo()
                    .ok_or_else(|| format!("no echo from {server}: {}", response.summary()))?;
                let sent: Vec<&str> = request
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim())
                    .collect();
                let got: Vec<&str> = echo.received.header_values(name);
                if sent != got {
                    return Err(format!("{name}: sent {sent:?}, {server} got {got:?}"));
                }
            }
            Ok(())
        }
        Expect::Envoy { status } => {
            nothing_reached(reached)?;
            if response.status != *status || response.upstream().is_some() {
                return Err(format!(
                    "expected Envoy's own {status}, got {}",
                    response.summary()
                ));
            }
            if response.text().contains("\"error\"") {
                return Err(format!("the filter answered: {}", response.summary()));
            }
            Ok(())
        }
    }
}

fn nothing_reached(reached: &[(String, String, usize)]) -> Result<(), String> {
    if reached.is_empty() {
        Ok(())
    } else {
        Err(format!("reached model servers {reached:?}"))
    }
}

fn check_reached(
    gw: &Gateway,
    response: &Response,
    reached: &[(String, String, usize)],
    model: &str,
    predictor: Option<&str>,
    path: Option<&str>,
) -> Result<Echo, String> {
    let echo = response
        .echo()
        .filter(|_| response.status == 200)
        .ok_or_else(|| format!("expected {model} to answer, got {}", response.summary()))?;
    let [(reached_model, reached_predictor, 1)] = reached else {
        return Err(format!(
            "expected one request at {model}, model servers got {reached:?}"
        ));
    };
    if reached_model != model || predictor.is_some_and(|p| p != reached_predictor) {
        return Err(format!(
            "expected {model} {}, reached {reached_model} {reached_predictor}",
            predictor.unwrap_or("(any predictor)")
        ));
    }
    if let Some(path) = path
        && echo.received.path != path
    {
        return Err(format!(
            "{model} received path {:?}, not {path:?}",
            echo.received.path
        ));
    }
    let routes = gw.routes().models.iter().find(|m| m.id() == model);
    if let Some(routes) = routes.filter(|m| m.has_header_routes()) {
        let header = routes.ab_header.as_str();
        let upstream: Vec<&str> = echo.received.header_values(header);
        if upstream != [reached_predictor.as_str()] {
            return Err(format!(
                "{reached_predictor} answered but received {header}: {upstream:?}"
            ));
        }
        if response.header_values(header) != [reached_predictor.as_str()] {
            return Err(format!(
                "response {header}: {:?}, expected [{reached_predictor}]",
                response.header_values(header)
            ));
        }
    }
    Ok(echo)
}

fn check_refused(
    request: &Request,
    response: &Response,
    status: u16,
    reason: &str,
    model: Option<&str>,
) -> Result<(), String> {
    if response.status != status || response.upstream().is_some() {
        return Err(format!(
            "expected {status} {reason}, got {}",
            response.summary()
        ));
    }
    let challenge = model.and_then(|m| match (status, reason) {
        (401, "missing_token") => Some(no_token_challenge(m)),
        (401, _) => Some(invalid_token_challenge(m)),
        (403, _) => Some(insufficient_scope_challenge(m)),
        _ => None,
    });
    let challenges = response.header_values("www-authenticate");
    if challenges != challenge.as_deref().into_iter().collect::<Vec<_>>() {
        return Err(format!(
            "WWW-Authenticate {challenges:?}, expected {challenge:?}"
        ));
    }
    for routing in ["x-seldon-predictor", "x-iris-variant"] {
        if let Some(value) = response.header(routing) {
            return Err(format!("a refusal named a predictor: {routing}: {value}"));
        }
    }
    if request.method == "HEAD" {
        // No body to read on an answer to HEAD.
        return Ok(());
    }
    let body = match model {
        Some(model) => json!({"error": reason, "model": model}),
        None => json!({"error": reason}),
    };
    if response.header("content-type") != Some("application/json") || response.json() != body {
        return Err(format!("body {}, expected {body}", response.text()));
    }
    Ok(())
}

fn check_grpc_refused(
    response: &Response,
    grpc_status: &str,
    reason: &str,
    challenge: Option<&str>,
) -> Result<(), String> {
    if response.status != 200 || response.upstream().is_some() {
        return Err(format!(
            "expected a gRPC refusal, got {}",
            response.summary()
        ));
    }
    if response.header("grpc-status") != Some(grpc_status) {
        return Err(format!(
            "grpc-status {:?}, expected {grpc_status}",
            response.header("grpc-status")
        ));
    }
    let message = response.header("grpc-message").unwrap_or_default();
    if !message.contains(reason) {
        return Err(format!("grpc-message {message:?} does not name {reason}"));
    }
    let challenges = response.header_values("www-authenticate");
    if challenges != challenge.into_iter().collect::<Vec<_>>() {
        return Err(format!(
            "WWW-Authenticate {challenges:?}, expected {challenge:?}"
        ));
    }
    Ok(())
}
