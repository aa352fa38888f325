//! The record of a decision: the steps [`CompiledConfig::decide_traced`] takes and why, as
//! it takes them. `modelgate explain` formats it; nothing walks the decision path a second
//! time. The filter's own calls pass [`NoTrace`], which compiles to nothing.
//!
//! [`CompiledConfig::decide_traced`]: crate::CompiledConfig::decide_traced

use serde_json::Value;

use crate::auth::extractor::TokenSource;
use crate::compiled::{CompiledModel, CompiledPolicy};
use crate::config::Predictor;
use crate::decision::AllowReason;
use crate::reason::DenyReason;
pub use crate::request::AddressedBy;
pub use crate::route::RouteWhy;

/// Receives the steps of a decision. `'c` is the compiled configuration's lifetime.
pub trait Trace<'c> {
    /// Records a step. `step` builds it and is only called when the step is kept, so an
    /// untraced decision neither builds nor allocates anything.
    fn record(&mut self, step: impl FnOnce() -> Step<'c>);

    /// Whether steps are kept: a decision nobody traces stops at the first failing claim
    /// rule, a traced one checks every rule so that each verdict is shown.
    fn keeps_steps(&self) -> bool {
        true
    }
}

/// The trace of decisions nobody traces.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTrace;

impl<'c> Trace<'c> for NoTrace {
    #[inline(always)]
    fn record(&mut self, _: impl FnOnce() -> Step<'c>) {}

    #[inline(always)]
    fn keeps_steps(&self) -> bool {
        false
    }
}

/// A trace kept whole, in order.
impl<'c> Trace<'c> for Vec<Step<'c>> {
    fn record(&mut self, step: impl FnOnce() -> Step<'c>) {
        self.push(step());
    }
}

/// One step of a decision.
#[derive(Debug, Clone)]
pub enum Step<'c> {
    /// Which model the request addresses, and how.
    Model(Addressed<'c>),
    /// Whether the request needs no token (`GET /prometheus`, CORS preflight), before the
    /// policy is read.
    FreePass(Option<AllowReason>),
    /// The model's policy.
    Policy {
        /// Its id in the configuration.
        id: &'c str,
        /// The policy.
        policy: &'c CompiledPolicy,
    },
    /// Where the policy looks for a token, and what was there.
    TokenSearch {
        /// The places looked in, in order.
        sources: &'c [TokenSource],
        /// What was found.
        found: TokenFound<'c>,
    },
    /// The token was refused before any claim was read.
    TokenRefused {
        /// Why.
        reason: DenyReason,
        /// Whether the refusal was remembered from an earlier request (no signature check).
        remembered: bool,
    },
    /// The token is good: signature, algorithm, issuer, audience and times.
    TokenValid {
        /// The `kid` of the key whose signature held; `None` for a key without one, and for
        /// a token found in the cache.
        kid: Option<String>,
        /// The token's `sub`, when a string.
        subject: Option<String>,
        /// Whether the token was found in the cache of verified tokens.
        cached: bool,
    },
    /// One required claim's verdict (every rule is checked and recorded).
    Claim {
        /// The claim's name, as configured.
        claim: &'c str,
        /// The values one of which it must hold.
        values: &'c [String],
        /// What the token holds there.
        found: Option<Value>,
        /// Whether the rule holds.
        holds: bool,
    },
    /// The predictor chosen.
    Route {
        /// The routing header.
        header: &'c str,
        /// The predictor.
        predictor: &'c str,
        /// Why it was chosen.
        why: RouteWhy,
        /// The model's routed predictors, with their weights.
        predictors: &'c [Predictor],
    },
    /// The edits would have changed the model the request addresses: refused.
    Readdressed,
}

/// How a request names its model.
#[derive(Debug, Clone)]
pub enum Addressed<'c> {
    /// A model of the configuration.
    Known {
        /// The model.
        model: &'c CompiledModel,
        /// By its path or its gRPC headers.
        by: AddressedBy,
    },
    /// A model the configuration does not have: the request passes untouched.
    Unknown {
        /// The namespace named, normalised.
        namespace: String,
        /// The name named, normalised.
        name: String,
    },
    /// No model at all.
    Nothing,
    /// The path and the gRPC headers name different models, or one of those headers is
    /// repeated.
    Ambiguous,
}

/// What a token search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFound<'c> {
    /// No token in any of the places.
    Nowhere,
    /// More than one candidate (`multiple_tokens`).
    Several,
    /// One token, in this place.
    In(&'c TokenSource),
}

#[cfg(test)]
mod tests {
    use modelgate_testkit::{TestKey, claims, jwks};
    use serde_json::json;

    use super::*;
    use crate::route::sticky_bucket;
    use crate::{CompiledConfig, Environment, Request, TokenCache};

    const ISS: &str = "https://idp.example";
    const NOW: u64 = 1_800_000_000;
    const PREDICT: &str = "/seldon/prod/fraud/api/v1.0/predictions";

    /// `prod/fraud`: JWT with a required group, A/B routing sticky by `sub`.
    fn config() -> CompiledConfig {
        let config = json!({
            "version": 1,
            "keySets": {"idp": jwks(&[&TestKey::rsa_a()])},
            "policies": {"jwt": {"auth": "jwt", "issuer": ISS, "keySet": "idp",
                                 "claims": {"groups": ["ml"]}}},
            "models": {"prod/fraud": {"policy": "jwt", "routing": {
                "sticky": "claim:sub",
                "predictors": [{"name": "main", "traffic": 90}, {"name": "canary", "traffic": 10}]
            }}}
        });
        CompiledConfig::from_json(config.to_string().as_bytes())
            .unwrap()
            .0
    }

    fn steps<'c>(
        config: &'c CompiledConfig,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
    ) -> Vec<Step<'c>> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        let request = Request::test(method, path, &headers);
        let mut cache = TokenCache::new(4);
        let mut env = Environment {
            now: NOW,
            random: 7,
            cache: &mut cache,
        };
        let mut steps = Vec::new();
        let traced = config.decide_traced(&request, &mut env, &mut steps);
        // Tracing changes nothing about the decision.
        let mut cache = TokenCache::new(4);
        let mut env = Environment {
            now: NOW,
            random: 7,
            cache: &mut cache,
        };
        let plain = config.decide(&request, &mut env);
        assert_eq!(
            (traced.outcome, traced.route, &traced.edits),
            (plain.outcome, plain.route, &plain.edits)
        );
        steps
    }

    fn token(groups: &[&str]) -> String {
        let mut c = claims(ISS, "alice", "models", NOW);
        c["groups"] = json!(groups);
        format!("Bearer {}", TestKey::rsa_a().sign(&c))
    }

    fn is_fraud(step: &Step<'_>, how: AddressedBy) -> bool {
        matches!(step, Step::Model(Addressed::Known { model, by }) if &*model.id == "prod/fraud" && *by == how)
    }

    #[test]
    fn an_allowed_request_records_its_token_claims_and_sticky_bucket() {
        let config = config();
        let steps = steps(
            &config,
            "POST",
            PREDICT,
            &[("authorization", token(&["ml"]))],
        );
        assert_eq!(steps.len(), 7, "{steps:#?}");
        assert!(is_fraud(&steps[0], AddressedBy::Path), "{steps:#?}");
        assert!(matches!(&steps[1], Step::FreePass(None)));
        assert!(matches!(
            &steps[2],
            Step::Policy {
                id: "jwt",
                policy: CompiledPolicy::Jwt(_)
            }
        ));
        assert!(matches!(
            &steps[3],
            Step::TokenSearch { found: TokenFound::In(TokenSource::Header(h)), .. } if h == "authorization"
        ));
        assert!(matches!(
            &steps[4],
            Step::TokenValid { kid: Some(k), subject: Some(s), cached: false } if k == "rsa-a" && s == "alice"
        ));
        assert!(matches!(
            &steps[5],
            Step::Claim { claim: "groups", holds: true, found: Some(v), .. } if *v == json!(["ml"])
        ));
        let bucket = sticky_bucket("prod/fraud", "alice");
        assert!(
            matches!(&steps[6], Step::Route { why: RouteWhy::Sticky { bucket: b }, predictor, .. }
                if *b == bucket && *predictor == if bucket < 9000 { "main" } else { "canary" }),
            "{steps:#?}"
        );
    }

    #[test]
    fn a_refused_claim_is_recorded_with_what_the_token_holds_and_nothing_is_routed() {
        let config = config();
        let steps = steps(
            &config,
            "POST",
            PREDICT,
            &[("authorization", token(&["ops"]))],
        );
        assert!(matches!(&steps[4], Step::TokenValid { .. }), "{steps:#?}");
        assert!(matches!(
            &steps[5],
            Step::Claim { claim: "groups", holds: false, found: Some(v), .. } if *v == json!(["ops"])
        ));
        assert_eq!(steps.len(), 6, "{steps:#?}");
    }

    #[test]
    fn an_exempt_request_looks_for_no_token() {
        let config = config();
        let steps = steps(&config, "GET", "/seldon/prod/fraud/prometheus", &[]);
        assert!(is_fraud(&steps[0], AddressedBy::Path));
        assert!(matches!(
            &steps[1],
            Step::FreePass(Some(AllowReason::Exempt))
        ));
        assert!(matches!(&steps[2], Step::Policy { .. }));
        // No sticky key without a token: the random draw (7 of 100) picks the first.
        assert!(
            matches!(
                &steps[3],
                Step::Route {
                    why: RouteWhy::Random { draw: 7 },
                    predictor: "main",
                    ..
                }
            ),
            "{steps:#?}"
        );
        assert_eq!(steps.len(), 4);
    }

    #[test]
    fn models_unknown_missing_ambiguous_or_named_by_grpc_headers() {
        let config = config();
        let steps_of =
            |path: &str, headers: &[(&str, String)]| steps(&config, "POST", path, headers);
        let unknown = steps_of("/seldon/prod/other/api", &[]);
        assert!(
            matches!(&unknown[..], [Step::Model(Addressed::Unknown { namespace, name })] if namespace == "prod" && name == "other"),
            "{unknown:#?}"
        );
        assert!(matches!(
            &steps_of("/", &[])[..],
            [Step::Model(Addressed::Nothing)]
        ));
        let grpc = [
            ("seldon", "fraud".to_string()),
            ("namespace", "prod".to_string()),
        ];
        assert!(matches!(
            &steps_of(PREDICT.replace("fraud", "other").as_str(), &grpc)[..],
            [Step::Model(Addressed::Ambiguous)]
        ));
        let by_headers = steps_of("/seldon.protos.Seldon/Predict", &grpc);
        assert!(is_fraud(&by_headers[0], AddressedBy::GrpcHeaders));
        assert!(matches!(
            &by_headers[3],
            Step::TokenSearch {
                found: TokenFound::Nowhere,
                ..
            }
        ));
    }
}
