//! The filter chains compared, each as an Envoy bootstrap: one loopback listener whose
//! route answers every request itself (`direct_response`), so only the filters in front of
//! it and Envoy's own HTTP handling are measured. A buffer filter before the router reads
//! each request's body before the answer, as a model server would, so connections stay
//! alive.
//!
//! (b) is what istiod programs into the ingress gateway for a `RequestAuthentication` (the
//! issuer with an inline JWKS and an audience) and an `AuthorizationPolicy` allowing
//! requests whose token holds the claim, and `GET /prometheus` without one.

use std::path::Path;

use modelgate_e2e::bootstrap as harness;
use serde::Serialize;
use serde_json::{Value, json};

use crate::tokens::{AUDIENCE, CLAIM, CLAIM_VALUE, ISSUER};

/// The model every workload addresses (`/seldon/<ns>/<name>/...`).
pub const MODEL_NAMESPACE: &str = "bench";
/// See [`MODEL_NAMESPACE`].
pub const MODEL_NAME: &str = "model-0";

/// Entries of `jwt_authn`'s token cache in (b′): the same as modelgate's per-VM cache.
pub const JWT_CACHE_SIZE: u32 = 8192;

/// One configuration of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Chain {
    /// (a) the router alone.
    Router,
    /// (b) Istio's native chain: `jwt_authn` without a token cache, then RBAC.
    Istio,
    /// (b′) the same with `jwt_authn`'s token cache.
    IstioCached,
    /// (c) a proxy-wasm filter that does nothing.
    NoopWasm,
    /// (m) modelgate, configured by `modelgate render`.
    Modelgate,
}

impl Chain {
    /// Every configuration, in the order of each round.
    pub const ALL: [Chain; 5] = [
        Chain::Router,
        Chain::Istio,
        Chain::IstioCached,
        Chain::NoopWasm,
        Chain::Modelgate,
    ];

    /// The short label of the tables.
    pub fn label(self) -> &'static str {
        match self {
            Chain::Router => "a",
            Chain::Istio => "b",
            Chain::IstioCached => "b'",
            Chain::NoopWasm => "c",
            Chain::Modelgate => "m",
        }
    }

    /// What the configuration is.
    pub fn description(self) -> &'static str {
        match self {
            Chain::Router => "router only",
            Chain::Istio => "Istio native: jwt_authn (no token cache) + RBAC",
            Chain::IstioCached => "Istio native with jwt_authn's token cache",
            Chain::NoopWasm => "no-op proxy-wasm filter",
            Chain::Modelgate => "modelgate filter",
        }
    }

    /// Whether the configuration authenticates at all.
    pub fn authenticates(self) -> bool {
        matches!(self, Chain::Istio | Chain::IstioCached | Chain::Modelgate)
    }

    /// Whether the configuration runs a Wasm filter delivered by ECDS.
    pub fn is_wasm(self) -> bool {
        matches!(self, Chain::NoopWasm | Chain::Modelgate)
    }
}

/// The bootstrap of a chain. Wasm chains read their filter (module and configuration)
/// from `ecds_file` through extension config discovery, as istiod delivers a WasmPlugin.
pub fn bootstrap(chain: Chain, jwks: &str, ecds_file: &Path) -> Value {
    let mut http_filters = match chain {
        Chain::Router => vec![],
        Chain::Istio => vec![jwt_authn(jwks, false), rbac()],
        Chain::IstioCached => vec![jwt_authn(jwks, true), rbac()],
        Chain::NoopWasm | Chain::Modelgate => vec![harness::modelgate_filter_slot(ecds_file)],
    };
    // The stand-in for the model server reading the request: without it Envoy sends the
    // direct response before the body has arrived and closes the connection
    // (`connection: close`), so every request would pay a new TCP connection.
    http_filters.push(json!({
        "name": "envoy.filters.http.buffer",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": 65536,
        },
    }));
    http_filters.push(harness::router());
    let route_config = json!({
        "name": "http.80",
        "virtual_hosts": [{
            "name": "seldon-gateway",
            "domains": ["*"],
            "routes": [{
                "name": "model",
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": "{\"ok\":true}\n"}},
            }],
        }],
    });
    json!({
        "node": {"id": "modelgate-bench", "cluster": "istio-ingressgateway"},
        "admin": {"address": harness::socket_address(([127, 0, 0, 1], 0).into())},
        "static_resources": {
            "listeners": [harness::istio_like_listener(route_config, http_filters)],
        },
    })
}

/// `jwt_authn` as istiod renders a `RequestAuthentication` with one JWT rule: provider
/// `origins-0`, the payload in dynamic metadata under `payload` (what RBAC's claim
/// matchers read), space-delimited claims normalised, the token forwarded; a request
/// without a token passes (`allow_missing`) and is left to the authorization policy.
fn jwt_authn(jwks: &str, token_cache: bool) -> Value {
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": jwks},
        "forward": true,
        "payload_in_metadata": "payload",
        "normalize_payload_in_metadata": {"space_delimited_claims": ["scope", "permission"]},
    });
    if token_cache {
        provider["jwt_cache_config"] = json!({"jwt_cache_size": JWT_CACHE_SIZE});
    }
    json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"origins-0": provider},
            "rules": [{
                "match": {"prefix": "/"},
                "requires": {"requires_any": {"requirements": [
                    {"provider_name": "origins-0"},
                    {"allow_missing": {}},
                ]}},
            }],
            "bypass_cors_preflight": true,
        },
    })
}

/// RBAC as istiod renders an ALLOW `AuthorizationPolicy` with two rules: `GET /prometheus`
/// from anyone, and anything from a request whose token's `groups` claim holds the value
/// (`request.auth.claims[groups]`, a metadata list matcher on `jwt_authn`'s payload).
fn rbac() -> Value {
    let policy = |rule: u32| format!("ns[istio-system]-policy[seldon-models]-rule[{rule}]");
    json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {
                    policy(0): {
                        "permissions": [{"and_rules": {"rules": [
                            {"or_rules": {"rules": [{"header": {"name": ":method", "string_match": {"exact": "GET"}}}]}},
                            {"or_rules": {"rules": [{"url_path": {"path": {"exact": "/prometheus"}}}]}},
                        ]}}],
                        "principals": [{"and_ids": {"ids": [{"any": true}]}}],
                    },
                    policy(1): {
                        "permissions": [{"and_rules": {"rules": [{"any": true}]}}],
                        "principals": [{"and_ids": {"ids": [{"or_ids": {"ids": [{"metadata": {
                            "filter": "envoy.filters.http.jwt_authn",
                            "path": [{"key": "payload"}, {"key": CLAIM}],
                            "value": {"list_match": {"one_of": {"string_match": {"exact": CLAIM_VALUE}}}},
                        }}]}}]}}],
                    },
                },
            },
            "shadow_rules_stat_prefix": "istio_dry_run_allow_",
        },
    })
}

#[cfg(test)]
mod tests {
    use modelgate_e2e::bootstrap::FILTER_NAME;

    use super::*;

    fn filter_names(chain: Chain) -> Vec<String> {
        let b = bootstrap(chain, "{}", Path::new("/tmp/x/ecds.json"));
        b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["http_filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn each_chain_ends_with_the_buffer_and_the_router_behind_its_filters() {
        let tail = ["envoy.filters.http.buffer", "envoy.filters.http.router"];
        assert_eq!(filter_names(Chain::Router), tail);
        assert_eq!(
            filter_names(Chain::IstioCached),
            [
                "envoy.filters.http.jwt_authn",
                "envoy.filters.http.rbac",
                tail[0],
                tail[1]
            ]
        );
        assert_eq!(
            filter_names(Chain::Modelgate),
            [FILTER_NAME, tail[0], tail[1]]
        );
    }

    #[test]
    fn only_b_prime_caches_tokens() {
        let cached = jwt_authn("{}", true);
        let uncached = jwt_authn("{}", false);
        let provider = |v: &Value| v["typed_config"]["providers"]["origins-0"].clone();
        assert_eq!(
            provider(&cached)["jwt_cache_config"]["jwt_cache_size"],
            JWT_CACHE_SIZE
        );
        assert!(provider(&uncached).get("jwt_cache_config").is_none());
    }
}
