//! `modelgate explain`: runs the filter's own decision code natively against a filter
//! configuration and tells, step by step, what the gateway would do with a request and
//! why. Nothing here decides or re-checks: it formats the trace `decide_traced` records.

use std::fmt::Write;

use modelgate_core::auth::extractor::TokenSource;
use modelgate_core::compiled::{CompiledModel, CompiledPolicy};
use modelgate_core::config::{AuthMode, FilterConfig, Predictor};
use modelgate_core::decision::Refusal;
use modelgate_core::route::BUCKETS;
use modelgate_core::trace::{Addressed, AddressedBy, RouteWhy, Step, TokenFound};
use modelgate_core::{
    AllowReason, CompiledConfig, ConfigError, DenyReason, Edit, Environment, Outcome, Request,
    TokenCache,
};
use serde_json::Value;

/// A request to explain, as the gateway would see it.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// `:method`.
    pub method: String,
    /// `:path` with the query string.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl ExplainRequest {
    /// Parses `METHOD /path` and `name: value` headers.
    pub fn parse(request: &str, headers: &[String]) -> Result<Self, String> {
        let (method, path) = request
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("--request {request:?}: expected 'METHOD /path'"))?;
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(format!(
                "--request {request:?}: the path must start with '/'"
            ));
        }
        let headers = headers
            .iter()
            .map(|h| {
                h.split_once(':')
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .filter(|(n, _)| !n.is_empty())
                    .ok_or_else(|| format!("--header {h:?}: expected 'name: value'"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            headers,
        })
    }
}

/// The explanation: one line per step, and whether the request would be let through.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The steps, for people.
    pub lines: Vec<String>,
    /// Whether the gateway would forward the request.
    pub forwarded: bool,
}

/// Explains what the filter does with a request under a configuration. `now` is Unix
/// seconds; `random` stands for the filter's random number (weighted routing).
pub fn explain(
    config: &FilterConfig,
    request: &ExplainRequest,
    now: u64,
    random: u64,
) -> Result<Explanation, ConfigError> {
    let (compiled, warnings) = CompiledConfig::compile(config)?;
    let mut lines = Vec::new();
    for w in warnings {
        lines.push(format!("configuration warning: {w}"));
    }
    let req = Request {
        method: &request.method,
        path: &request.path,
        headers: &request.headers,
    };
    lines.push(format!("request: {} {}", request.method, request.path));
    let mut cache = TokenCache::new(16);
    let mut env = Environment {
        now,
        random,
        cache: &mut cache,
    };
    let mut steps = Vec::new();
    let decision = compiled.decide_traced(&req, &mut env, &mut steps);

    // The route is told after the verdict, where people look for it.
    let mut route = None;
    let mut token_place = None;
    for step in &steps {
        match step {
            Step::Model(addressed) => lines.push(model_line(addressed)),
            Step::FreePass(pass) => lines.push(exemption_line(*pass, decision.model)),
            Step::Policy { id, policy } => lines.push(policy_line(id, policy)),
            Step::TokenSearch { sources, found } => match found {
                TokenFound::Several => lines.push(format!(
                    "token: more than one candidate in {}",
                    places(sources)
                )),
                TokenFound::Nowhere => lines.push(format!("token: none in {}", places(sources))),
                TokenFound::In(source) => token_place = Some(place(source)),
            },
            Step::TokenRefused { reason, remembered } => {
                if let Some(place) = &token_place {
                    lines.push(token_refused_line(place, *reason, *remembered));
                }
            }
            Step::TokenValid {
                kid,
                subject,
                cached,
            } => lines.push(token_valid_line(
                token_place.as_deref(),
                kid.as_deref(),
                subject.as_deref(),
                *cached,
            )),
            Step::Claim {
                claim,
                values,
                found,
                holds,
            } => lines.push(claim_line(claim, values, found.as_ref(), *holds)),
            Step::Route {
                header,
                predictor,
                why,
                predictors,
            } => route = Some(route_line(header, predictor, *why, predictors)),
            Step::Readdressed => lines.push(
                "edits: they would change the model the request addresses, so it is refused".into(),
            ),
        }
    }

    let forwarded = !matches!(decision.outcome, Outcome::Denied(_));
    lines.extend(verdict_line(decision.outcome));
    lines.extend(decision.refusal().as_ref().map(answer_line));
    if let Some(route) = route.filter(|_| forwarded) {
        lines.push(route);
    } else if forwarded && decision.model.is_some_and(|m| m.routing.is_none()) {
        lines.push("route: the model's only predictor (no A/B routing)".into());
    }
    lines.extend(decision.edits.iter().map(edit_line));
    Ok(Explanation { lines, forwarded })
}

fn model_line(addressed: &Addressed<'_>) -> String {
    match addressed {
        Addressed::Known { model, by } => {
            let by = match by {
                AddressedBy::Path => "path",
                AddressedBy::GrpcHeaders => "gRPC headers seldon/namespace",
            };
            format!("model: {} (addressed by {by})", model.id)
        }
        Addressed::Unknown { namespace, name } => format!(
            "model: {namespace}/{name} is not a known model: the filter lets the request through untouched"
        ),
        Addressed::Nothing => "model: the request addresses no model (not /seldon/<ns>/<name>/..., no gRPC seldon/namespace headers): it passes untouched".into(),
        Addressed::Ambiguous => "model: ambiguous (the path and the gRPC headers seldon/namespace name different models, or one of those headers is repeated)".into(),
    }
}

fn exemption_line(pass: Option<AllowReason>, model: Option<&CompiledModel>) -> String {
    let prometheus = model.map(|m| m.prometheus_path()).unwrap_or_default();
    match pass {
        Some(AllowReason::Exempt) => {
            format!("exemption: GET /prometheus or {prometheus} needs no token")
        }
        Some(AllowReason::Preflight) => "exemption: CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) needs no token".into(),
        _ => format!("exemption: none (only GET /prometheus and GET {prometheus} are exempt)"),
    }
}

fn policy_line(id: &str, policy: &CompiledPolicy) -> String {
    match policy {
        CompiledPolicy::None => format!("policy {id}: no authentication (seldon.io/auth: none)"),
        CompiledPolicy::Deny(reason) => format!("policy {id}: deny every request ({reason})"),
        CompiledPolicy::Jwt(jwt) => {
            let mode = if jwt.mode == AuthMode::Audit {
                "audit: would-be denials are logged, not refused"
            } else {
                "enforce"
            };
            format!(
                "policy {id}: JWT from issuer {} ({mode}), {} usable key(s)",
                jwt.issuer,
                jwt.keys.current().len()
            )
        }
    }
}

fn place(source: &TokenSource) -> String {
    match source {
        TokenSource::Header(h) => format!("header {h}"),
        TokenSource::Query(q) => format!("query parameter {q}"),
    }
}

fn places(sources: &[TokenSource]) -> String {
    sources.iter().map(place).collect::<Vec<_>>().join(", ")
}

fn token_refused_line(place: &str, reason: DenyReason, remembered: bool) -> String {
    let remembered = if remembered {
        " (a refusal remembered from an earlier request)"
    } else {
        ""
    };
    format!(
        "token: found in {place}, rejected: {}{remembered}",
        reason.as_str()
    )
}

fn token_valid_line(
    place: Option<&str>,
    kid: Option<&str>,
    subject: Option<&str>,
    cached: bool,
) -> String {
    let place = place.unwrap_or("the request");
    let signer = match (kid, cached) {
        (_, true) => " (verified before, from the token cache)".to_string(),
        (Some(kid), false) => format!(" (key {kid})"),
        (None, false) => " (a key without kid)".to_string(),
    };
    format!(
        "token: found in {place}, signature{signer}, issuer, audience and times valid (sub {})",
        subject.unwrap_or("-")
    )
}

fn claim_line(claim: &str, values: &[String], found: Option<&Value>, holds: bool) -> String {
    let has = found.map_or_else(|| "nothing".to_string(), |v| v.to_string());
    let verdict = if holds { "holds" } else { "FAILS" };
    format!("claim {claim}: needs one of {values:?}, token has {has}: {verdict}")
}

fn route_line(header: &str, predictor: &str, why: RouteWhy, predictors: &[Predictor]) -> String {
    let why = match why {
        RouteWhy::Override => format!("the client named it in {header}"),
        RouteWhy::Sticky { bucket } => {
            format!("sticky key hashes to bucket {bucket} of {BUCKETS}")
        }
        RouteWhy::Random { .. } => "weighted random choice by traffic".into(),
    };
    let weights: Vec<String> = predictors
        .iter()
        .map(|p| format!("{}={}", p.name, p.traffic))
        .collect();
    format!(
        "route: predictor {predictor} ({why}; weights {})",
        weights.join(", ")
    )
}

/// `None` for a request that addresses no known model: its model line said it all.
fn verdict_line(outcome: Outcome) -> Option<String> {
    match outcome {
        Outcome::NotAModel => None,
        Outcome::Allowed(reason) => Some(format!("verdict: allowed ({})", reason.as_str())),
        Outcome::AuditDenied(reason) => Some(format!(
            "verdict: would be denied ({}, status {}), let through because the model is in audit mode",
            reason.as_str(),
            reason.status()
        )),
        Outcome::Denied(reason) => Some(format!(
            "verdict: denied ({}), status {}",
            reason.as_str(),
            reason.status()
        )),
    }
}

fn answer_line(refusal: &Refusal) -> String {
    let mut answer = format!("answer: {}", refusal.status);
    for (name, value) in &refusal.headers {
        let _ = write!(answer, "; {name}: {value}");
    }
    let _ = write!(answer, "; body {}", refusal.body);
    answer
}

fn edit_line(edit: &Edit) -> String {
    match edit {
        Edit::RemoveHeader(h) => format!("edit: remove header {h}"),
        Edit::SetHeader(h, v) => format!("edit: set header {h}: {v}"),
        Edit::SetPath(p) => format!("edit: set path {p}"),
    }
}
