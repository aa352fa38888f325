//! `modelgate explain`: runs the filter's own decision code natively against a filter
//! configuration and tells, step by step, what the gateway would do with a request and
//! why. Nothing here decides: every verdict comes from `modelgate_core`.

use std::fmt::Write;

use modelgate_core::compiled::CompiledPolicy;
use modelgate_core::config::{AuthMode, FilterConfig};
use modelgate_core::decision::Edit;
use modelgate_core::request::{addressed_model, is_exempt};
use modelgate_core::routing::{RouteReason, sticky_bucket};
use modelgate_core::token::{TokenRules, TokenSource, find_token, verify};
use modelgate_core::{CompiledConfig, ConfigError, Environment, Outcome, Request, TokenCache};

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
    let decision = compiled.decide(&req, &mut env);

    let Some(model) = decision.model else {
        lines.push(match addressed_model(&req) {
            Ok(Some(name)) => format!(
                "model: {}/{} is not a known model: the filter lets the request through untouched",
                name.namespace, name.name
            ),
            _ => "model: the request addresses no model (not /seldon/<ns>/<name>/..., no gRPC seldon/namespace headers): it passes untouched".into(),
        });
        return Ok(Explanation {
            lines,
            forwarded: true,
        });
    };
    let how = if req.path_only().starts_with("/seldon/") {
        "path"
    } else {
        "gRPC headers seldon/namespace"
    };
    lines.push(format!("model: {} (addressed by {how})", model.id));

    if is_exempt(&req, &model.id) {
        lines.push(format!(
            "exemption: GET /prometheus or {} needs no token",
            model.prometheus_path()
        ));
    } else if req.is_cors_preflight() {
        lines.push("exemption: CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) needs no token".into());
    } else {
        lines.push(format!(
            "exemption: none (only GET /prometheus and GET {} are exempt)",
            model.prometheus_path()
        ));
    }

    let policy_id = &compiled.policy_ids[model.policy];
    match &compiled.policies[model.policy] {
        CompiledPolicy::None => lines.push(format!(
            "policy {policy_id}: no authentication (seldon.io/auth: none)"
        )),
        CompiledPolicy::Deny(reason) => {
            lines.push(format!("policy {policy_id}: deny every request ({reason})"))
        }
        CompiledPolicy::Jwt(jwt) => {
            let mode = if jwt.mode == AuthMode::Audit {
                "audit: would-be denials are logged, not refused"
            } else {
                "enforce"
            };
            lines.push(format!(
                "policy {policy_id}: JWT from issuer {} ({mode}), {} usable key(s)",
                jwt.issuer,
                jwt.keys.len()
            ));
            let places: Vec<String> = jwt
                .sources
                .iter()
                .map(|s| match s {
                    TokenSource::Header(h) => format!("header {h}"),
                    TokenSource::Query(q) => format!("query parameter {q}"),
                })
                .collect();
            match find_token(&req, &jwt.sources) {
                Err(_) => lines.push(format!(
                    "token: more than one candidate in {}",
                    places.join(", ")
                )),
                Ok(None) => lines.push(format!("token: none in {}", places.join(", "))),
                Ok(Some(found)) => {
                    let place = match found.source {
                        TokenSource::Header(h) => format!("header {h}"),
                        TokenSource::Query(q) => format!("query parameter {q}"),
                    };
                    let rules = TokenRules {
                        keys: &jwt.keys,
                        validation: &jwt.validation,
                    };
                    match verify(&found.token, &rules, now) {
                        Err(reason) => lines.push(format!(
                            "token: found in {place}, rejected: {}",
                            reason.as_str()
                        )),
                        Ok(claims) => {
                            let sub = claims.get("sub").and_then(|s| s.as_str()).unwrap_or("-");
                            lines.push(format!("token: found in {place}, signature, issuer, audience and times valid (sub {sub})"));
                            for rule in &jwt.claims {
                                let has = rule
                                    .claim
                                    .lookup(&claims)
                                    .map_or_else(|| "nothing".to_string(), |v| v.to_string());
                                let verdict = if rule.holds(&claims) {
                                    "holds"
                                } else {
                                    "FAILS"
                                };
                                lines.push(format!(
                                    "claim {}: needs one of {:?}, token has {has}: {verdict}",
                                    rule.claim.name(),
                                    rule.values
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    let forwarded = !matches!(decision.outcome, Outcome::Denied(_));
    lines.push(match decision.outcome {
        Outcome::NotAModel => "verdict: passes untouched".into(),
        Outcome::Allowed(reason) => format!("verdict: allowed ({})", reason.as_str()),
        Outcome::AuditDenied(reason) => format!(
            "verdict: would be denied ({}, status {}), let through because the model is in audit mode",
            reason.as_str(),
            reason.status()
        ),
        Outcome::Denied(reason) => format!("verdict: denied ({}), status {}", reason.as_str(), reason.status()),
    });
    if let Some(refusal) = decision.refusal() {
        let mut answer = format!("answer: {}", refusal.status);
        for (name, value) in &refusal.headers {
            let _ = write!(answer, "; {name}: {value}");
        }
        let _ = write!(answer, "; body {}", refusal.body);
        lines.push(answer);
    }

    if let (Some(route), Some(routing)) = (decision.route, &model.routing) {
        let why = match route.reason {
            RouteReason::Override => format!("the client named it in {}", route.header),
            RouteReason::Sticky => {
                let key = routing
                    .sticky
                    .as_ref()
                    .and_then(|s| s.value(&req, decision.claims.as_deref()))
                    .unwrap_or_default();
                format!(
                    "sticky key hashes to bucket {} of {}",
                    sticky_bucket(&model.id, &key),
                    modelgate_core::routing::BUCKETS
                )
            }
            RouteReason::Random => "weighted random choice by traffic".into(),
        };
        let weights: Vec<String> = routing
            .predictors
            .iter()
            .map(|p| format!("{}={}", p.name, p.traffic))
            .collect();
        lines.push(format!(
            "route: predictor {} ({why}; weights {})",
            route.predictor,
            weights.join(", ")
        ));
    } else if forwarded && model.routing.is_none() {
        lines.push("route: the model's only predictor (no A/B routing)".into());
    }
    for edit in &decision.edits {
        lines.push(match edit {
            Edit::RemoveHeader(h) => format!("edit: remove header {h}"),
            Edit::SetHeader(h, v) => format!("edit: set header {h}: {v}"),
            Edit::SetPath(p) => format!("edit: set path {p}"),
        });
    }
    Ok(Explanation { lines, forwarded })
}
