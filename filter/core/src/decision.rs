//! The filter's decision for one request, as a plain value: which model, allowed or denied
//! and why, which predictor, and the header edits to make. The proxy-wasm layer only
//! applies it; `modelgate explain` prints it with the trace of how it was reached
//! ([`crate::trace`]).

use std::borrow::Cow;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::auth::cache::TokenCache;
use crate::auth::extractor::{TokenSource, find_token};
use crate::auth::verifier::{MAX_TOKEN_BYTES, TokenRules, numeric_date, verify};
use crate::compiled::{CompiledConfig, CompiledJwt, CompiledModel, CompiledPolicy};
use crate::config::AuthMode;
use crate::headers::{ADDRESSING_HEADERS, ROUTE_TAG_HEADER, route_tag};
use crate::http::{query_values, query_without};
use crate::reason::DenyReason;
use crate::request::{Request, addressed_model, is_exempt};
use crate::route::RouteReason;
use crate::trace::{Addressed, NoTrace, Step, TokenFound, Trace};

/// What the host provides for a decision.
pub struct Environment<'a> {
    /// Current Unix time in seconds (the host's clock).
    pub now: u64,
    /// A fresh random number, used for weighted random routing.
    pub random: u64,
    /// The VM's token cache for the current configuration.
    pub cache: &'a mut TokenCache,
}

/// Why a request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowReason {
    /// `GET /prometheus` exemption.
    Exempt,
    /// CORS preflight.
    Preflight,
    /// The model needs no authentication.
    NoAuth,
    /// A valid token with the required claims.
    Token,
}

impl AllowReason {
    /// The reason's name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AllowReason::Exempt => "exempt",
            AllowReason::Preflight => "preflight",
            AllowReason::NoAuth => "no_auth",
            AllowReason::Token => "token",
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request addresses no known model: it passes untouched.
    NotAModel,
    /// Let through.
    Allowed(AllowReason),
    /// Refused.
    Denied(DenyReason),
    /// Would be refused, but the model is in audit mode: let through and logged.
    AuditDenied(DenyReason),
}

/// The predictor chosen for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'c> {
    /// The routing header.
    pub header: &'c str,
    /// The chosen predictor.
    pub predictor: &'c str,
    /// Its index among the model's routed predictors.
    pub index: usize,
    /// Why it was chosen.
    pub reason: RouteReason,
}

/// A change to the request before it goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Remove every value of a header.
    RemoveHeader(String),
    /// Replace every value of a header with one value.
    SetHeader(String, String),
    /// Replace `:path`.
    SetPath(String),
}

/// A decision about one request.
#[derive(Debug)]
pub struct Decision<'c> {
    /// The model addressed, if known.
    pub model: Option<&'c CompiledModel>,
    /// Allowed or denied, and why.
    pub outcome: Outcome,
    /// The chosen predictor, for models with A/B routing that were not denied.
    pub route: Option<Route<'c>>,
    /// Header and path edits to apply when the request goes on.
    pub edits: Vec<Edit>,
    /// The verified token's claims, when there was one.
    pub claims: Option<Rc<Map<String, Value>>>,
}

/// A refusal, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Small JSON body naming the reason and the model; never token or key material.
    pub body: String,
}

impl Decision<'_> {
    /// The answer to send instead of forwarding the request, if it is refused.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.outcome {
            Outcome::Denied(reason) => Some(refusal(self.model.map(|m| &*m.id), reason)),
            _ => None,
        }
    }
}

/// The answer for a refused request.
pub fn refusal(model: Option<&str>, reason: DenyReason) -> Refusal {
    let status = reason.status();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let (Some(model), 401 | 403) = (model, status) {
        let challenge = match reason.bearer_error() {
            Some(code) => format!("Bearer realm=\"{model}\", error=\"{code}\""),
            None => format!("Bearer realm=\"{model}\""),
        };
        headers.push(("www-authenticate".to_string(), challenge));
    }
    let body = match model {
        Some(model) => format!(
            "{{\"error\":\"{}\",\"model\":\"{model}\"}}",
            reason.as_str()
        ),
        None => format!("{{\"error\":\"{}\"}}", reason.as_str()),
    };
    Refusal {
        status,
        headers,
        body,
    }
}

impl CompiledConfig {
    /// Decides what to do with a request. (Not inlined into the host layer's request
    /// handler: one call per request, against V8 compiling one huge function at load.)
    #[inline(never)]
    pub fn decide<'c>(&'c self, request: &Request<'_>, env: &mut Environment<'_>) -> Decision<'c> {
        self.decide_traced(request, env, &mut NoTrace)
    }

    /// [`decide`](Self::decide), recording each step it takes and why in `trace`.
    pub fn decide_traced<'c>(
        &'c self,
        request: &Request<'_>,
        env: &mut Environment<'_>,
        trace: &mut impl Trace<'c>,
    ) -> Decision<'c> {
        let mut decision = Decision {
            model: None,
            outcome: Outcome::NotAModel,
            route: None,
            edits: Vec::new(),
            claims: None,
        };
        let addressed = match addressed_model(request) {
            Ok(addressed) => addressed,
            Err(_) => {
                trace.record(|| Step::Model(Addressed::Ambiguous));
                decision.model = crate::request::model_from_path(request.path)
                    .and_then(|n| self.model(&n.namespace, &n.name))
                    .map(|i| &self.models[i]);
                decision.outcome = Outcome::Denied(DenyReason::AmbiguousModel);
                return decision;
            }
        };
        let known = addressed
            .as_ref()
            .and_then(|(n, by)| Some((self.model(&n.namespace, &n.name)?, *by)));
        let Some((index, by)) = known else {
            trace.record(|| {
                Step::Model(match addressed {
                    Some((n, _)) => Addressed::Unknown {
                        namespace: n.namespace.into_owned(),
                        name: n.name.into_owned(),
                    },
                    None => Addressed::Nothing,
                })
            });
            // No route of a model can take a request without the filter's tag: a client's
            // copy never reaches the router.
            if request.header(ROUTE_TAG_HEADER).is_some() {
                decision
                    .edits
                    .push(Edit::RemoveHeader(ROUTE_TAG_HEADER.to_string()));
            }
            return decision;
        };
        let model = &self.models[index];
        decision.model = Some(model);
        trace.record(|| Step::Model(Addressed::Known { model, by }));

        let free_pass = if is_exempt(request, &model.id) {
            Some(AllowReason::Exempt)
        } else if request.is_cors_preflight() {
            Some(AllowReason::Preflight)
        } else {
            None
        };
        trace.record(|| Step::FreePass(free_pass));
        let policy = &self.policies[model.policy];
        trace.record(|| Step::Policy {
            id: &self.policy_ids[model.policy],
            policy,
        });
        decision.outcome = match policy {
            CompiledPolicy::None => Outcome::Allowed(free_pass.unwrap_or(AllowReason::NoAuth)),
            CompiledPolicy::Deny(_) => match free_pass {
                Some(pass) => Outcome::Allowed(pass),
                None => Outcome::Denied(DenyReason::PolicyUnusable),
            },
            CompiledPolicy::Jwt(jwt) => self.authorize(
                model.policy,
                jwt,
                request,
                env,
                free_pass,
                &mut decision,
                trace,
            ),
        };
        if let Outcome::Denied(_) = decision.outcome {
            return decision;
        }

        if let Some(routing) = &model.routing {
            let claims = decision.claims.as_deref();
            match routing.choose(&model.id, request, claims, env.random) {
                Ok((i, why)) => {
                    let predictor = routing.predictors[i].name.as_str();
                    trace.record(|| Step::Route {
                        header: &routing.header,
                        predictor,
                        why,
                        predictors: &routing.predictors,
                    });
                    decision.edits.push(Edit::SetHeader(
                        routing.header.clone(),
                        predictor.to_string(),
                    ));
                    decision.route = Some(Route {
                        header: &routing.header,
                        predictor,
                        index: i,
                        reason: why.reason(),
                    });
                }
                Err(reason) => decision.outcome = Outcome::Denied(reason),
            }
        }
        if let Outcome::Denied(_) = decision.outcome {
            return decision;
        }
        // The edits must leave the request addressed to the model decided (the compiler
        // refuses configurations that could do otherwise; this holds whatever it missed).
        if !keeps_address(request, &decision.edits) {
            trace.record(|| Step::Readdressed);
            decision.outcome = Outcome::Denied(DenyReason::PolicyUnusable);
            decision.edits.clear();
            return decision;
        }
        // Last, so nothing can overwrite it: the tag every route of this model requires.
        decision.edits.push(Edit::SetHeader(
            ROUTE_TAG_HEADER.to_string(),
            route_tag(&model.id, decision.route.map(|r| r.predictor)),
        ));
        decision
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn authorize<'c>(
        &self,
        policy: usize,
        jwt: &'c CompiledJwt,
        request: &Request<'_>,
        env: &mut Environment<'_>,
        free_pass: Option<AllowReason>,
        decision: &mut Decision<'_>,
        trace: &mut impl Trace<'c>,
    ) -> Outcome {
        // Client-sent copies of forwarded claims never reach the model.
        for (_, header) in &jwt.forward_claims {
            decision.edits.push(Edit::RemoveHeader(header.clone()));
        }
        // A withheld token is withheld from every request that goes on to the model: exempt
        // scrapes, preflights and audit-mode refusals (several tokens, say) included, so
        // every place the policy reads is cleared, not only the one a token was found in.
        if !jwt.forward_token {
            decision.edits.extend(removals(request, &jwt.sources));
        }
        if let Some(pass) = free_pass {
            return Outcome::Allowed(pass);
        }
        let verdict = match find_token(request, &jwt.sources) {
            Err(reason) => {
                trace.record(|| Step::TokenSearch {
                    sources: &jwt.sources,
                    found: TokenFound::Several,
                });
                Err(reason)
            }
            Ok(found) => {
                trace.record(|| Step::TokenSearch {
                    sources: &jwt.sources,
                    found: found
                        .as_ref()
                        .map_or(TokenFound::Nowhere, |f| TokenFound::In(f.source)),
                });
                match found {
                    _ if jwt.keys.is_empty() => {
                        trace.record(|| Step::TokenRefused {
                            reason: DenyReason::NoKeys,
                            remembered: false,
                        });
                        Err(DenyReason::NoKeys)
                    }
                    None => Err(DenyReason::MissingToken),
                    Some(found) => self.check_token(policy, jwt, &found.token, env, trace),
                }
            }
        };
        match verdict {
            Ok(claims) => {
                for (claim, header) in &jwt.forward_claims {
                    if let Some(value) = claim.text(&claims).filter(|v| is_header_value(v)) {
                        decision.edits.push(Edit::SetHeader(header.clone(), value));
                    }
                }
                decision.claims = Some(claims);
                Outcome::Allowed(AllowReason::Token)
            }
            Err(reason) if jwt.mode == AuthMode::Audit && reason.is_auth() => {
                Outcome::AuditDenied(reason)
            }
            Err(reason) => Outcome::Denied(reason),
        }
    }

    /// Verifies a token (or finds it in the cache) and checks the required claims.
    #[inline(never)]
    fn check_token<'c>(
        &self,
        policy: usize,
        jwt: &'c CompiledJwt,
        token: &str,
        env: &mut Environment<'_>,
        trace: &mut impl Trace<'c>,
    ) -> Result<Rc<Map<String, Value>>, DenyReason> {
        if token.len() > MAX_TOKEN_BYTES {
            return refused(trace, DenyReason::TokenTooLarge, false);
        }
        let key = TokenCache::key(policy, token);
        let claims = match env.cache.get(&key, token, env.now) {
            Some(claims) => {
                trace.record(|| Step::TokenValid {
                    kid: None,
                    subject: subject(&claims),
                    cached: true,
                });
                claims
            }
            None => {
                if let Some(reason) = env.cache.refused(&key, token, env.now) {
                    return refused(trace, reason, true);
                }
                let keys = jwt.keys.current();
                let rules = TokenRules {
                    keys: &keys,
                    validation: &jwt.validation,
                };
                let claims = match verify(token, &rules, env.now) {
                    Ok((claims, signer)) => {
                        trace.record(|| Step::TokenValid {
                            kid: signer.kid.clone(),
                            subject: subject(&claims),
                            cached: false,
                        });
                        claims
                    }
                    Err(reason) => {
                        env.cache.insert_refused(key, token, reason, env.now);
                        return refused(trace, reason, false);
                    }
                };
                let exp = claims.get("exp").and_then(numeric_date).unwrap_or(0);
                // Only what the policy's decisions read is kept, and decided on, from the
                // first request on: a hit sees exactly what the miss saw.
                env.cache
                    .insert_keeping(key, token, exp, &claims, &jwt.claims_used, env.now)
            }
        };
        // A traced decision checks every rule so that the trace tells each one's verdict;
        // the filter's stops at the first that fails.
        let mut holds = true;
        for rule in &jwt.claims {
            let verdict = rule.holds(&claims);
            trace.record(|| Step::Claim {
                claim: rule.claim.name(),
                values: &rule.values,
                found: rule.claim.lookup(&claims).cloned(),
                holds: verdict,
            });
            holds &= verdict;
            if !holds && !trace.keeps_steps() {
                break;
            }
        }
        if holds {
            Ok(claims)
        } else {
            Err(DenyReason::InsufficientScope)
        }
    }
}

/// Records a refused token and refuses it.
fn refused<'c, T>(
    trace: &mut impl Trace<'c>,
    reason: DenyReason,
    remembered: bool,
) -> Result<T, DenyReason> {
    trace.record(|| Step::TokenRefused { reason, remembered });
    Err(reason)
}

/// A token's `sub`, for the trace.
fn subject(claims: &Map<String, Value>) -> Option<String> {
    claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The edits that take every token the sources could hold out of the request. The query
/// string is copied only when it holds a token parameter.
fn removals(request: &Request<'_>, sources: &[TokenSource]) -> Vec<Edit> {
    let mut edits = Vec::new();
    let mut query = request.query().map(Cow::Borrowed);
    for source in sources {
        match source {
            TokenSource::Header(name) => edits.push(Edit::RemoveHeader(name.clone())),
            TokenSource::Query(param) => {
                if let Some(q) = &query
                    && query_values(q, param).next().is_some()
                {
                    query = Some(Cow::Owned(query_without(q, param)));
                }
            }
        }
    }
    if let Some(Cow::Owned(rest)) = query {
        let path = request.path_only();
        edits.push(Edit::SetPath(if rest.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{rest}")
        }));
    }
    edits
}

/// Whether the edits leave the model a request addresses as it was: they touch neither
/// Seldon's gRPC addressing headers nor the path's model segments.
fn keeps_address(request: &Request<'_>, edits: &[Edit]) -> bool {
    edits.iter().all(|edit| match edit {
        Edit::RemoveHeader(name) | Edit::SetHeader(name, _) => {
            !ADDRESSING_HEADERS.contains(&name.as_str()) && !name.starts_with(':')
        }
        Edit::SetPath(path) => path.split('?').next() == Some(request.path_only()),
    })
}

/// Whether text can be sent as a header value as it is.
fn is_header_value(text: &str) -> bool {
    text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
