//! Header names the filter's contract fixes, and the ones a model's configuration may never
//! write. A tenant controls its model's routing header, token sources and forwarded claims;
//! if any of them could write a header that addressing, routing, authentication or Envoy's
//! router reads, a token would choose where the request goes after the filter decided.

/// The route tag: set by the filter, on every request it lets through to a model it knows, to
/// `<namespace>/<name>/<predictor>` (the predictor empty for a model without A/B routing).
/// Every route the controller generates requires it, so a request can only take a route of
/// the model (and predictor) the filter decided; a client's copy is always removed.
pub const ROUTE_TAG_HEADER: &str = "x-modelgate-route";

/// The route tag's value for a decision: `<namespace>/<name>/<predictor>`.
pub fn route_tag(model_id: &str, predictor: Option<&str>) -> String {
    format!("{model_id}/{}", predictor.unwrap_or(""))
}

/// Headers that address a model (Seldon's gRPC convention); the path addresses it too.
pub const ADDRESSING_HEADERS: [&str; 2] = ["seldon", "namespace"];

/// Names read by addressing, Envoy's router and codecs, Istio or the tracing Istio sets up.
const RESERVED: [&str; 20] = [
    "seldon",
    "namespace",
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "te",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "expect",
    "forwarded",
    "via",
    "x-request-id",
    "x-client-trace-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-seldon-predictor",
];

/// Prefixes of the same kinds: Envoy's router headers, Istio's and the forwarding headers
/// Envoy trusts, gRPC's own, tracing, and the filter's own.
const RESERVED_PREFIXES: [&str; 8] = [
    ":",
    "x-envoy-",
    "x-forwarded-",
    "x-istio-",
    "x-modelgate-",
    "x-b3-",
    "x-ot-",
    "grpc-",
];

/// Credentials: a header a token travels in must never be written from another token.
const CREDENTIALS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// Why a configuration may not write this header (lowercase name), if it may not. The
/// default routing header is reserved too: only a model's routing can write it.
pub fn reserved(name: &str) -> Option<&'static str> {
    if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) || RESERVED.contains(&name) {
        Some("a header that addressing, routing or Envoy's router reads")
    } else {
        None
    }
}

/// Why a model's routing header may not be this name, if it may not.
pub fn reserved_for_routing(name: &str) -> Option<&'static str> {
    if name == crate::config::DEFAULT_AB_HEADER {
        return None;
    }
    reserved(name).or_else(|| credential(name))
}

/// Why a claim may not be forwarded into this header, if it may not.
pub fn reserved_for_forwarding(name: &str) -> Option<&'static str> {
    reserved(name).or_else(|| credential(name))
}

/// Why a token may not be read from (and, when withheld, removed from) this header.
pub fn reserved_for_tokens(name: &str) -> Option<&'static str> {
    if name == crate::config::DEFAULT_AB_HEADER {
        return Some("the default routing header");
    }
    reserved(name)
}

fn credential(name: &str) -> Option<&'static str> {
    CREDENTIALS
        .contains(&name)
        .then_some("a header that carries credentials")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_a_token_could_steer_with_is_reserved_for_forwarding() {
        for name in [
            "seldon",
            "namespace",
            ":authority",
            ":path",
            "host",
            "content-type",
            "te",
            "x-envoy-upstream-rq-timeout-ms",
            "x-envoy-retry-on",
            "x-forwarded-for",
            "x-istio-attributes",
            "x-modelgate-route",
            "x-seldon-predictor",
            "authorization",
            "cookie",
            "grpc-timeout",
            "traceparent",
        ] {
            assert!(reserved_for_forwarding(name).is_some(), "{name}");
        }
        for name in [
            "x-user",
            "x-tenant-id",
            "x-claims-groups",
            "x-model-variant",
        ] {
            assert_eq!(reserved_for_forwarding(name), None, "{name}");
        }
    }

    #[test]
    fn routing_and_token_headers_have_their_own_exceptions() {
        assert_eq!(reserved_for_routing("x-seldon-predictor"), None);
        assert!(reserved_for_routing("namespace").is_some());
        assert!(reserved_for_routing("authorization").is_some());
        assert_eq!(reserved_for_tokens("authorization"), None);
        assert_eq!(reserved_for_tokens("x-api-token"), None);
        assert!(reserved_for_tokens("seldon").is_some());
        assert!(reserved_for_tokens("x-seldon-predictor").is_some());
        assert!(reserved_for_tokens("x-modelgate-route").is_some());
    }

    #[test]
    fn the_route_tag_names_model_and_predictor() {
        assert_eq!(route_tag("bank/fraud", Some("main")), "bank/fraud/main");
        assert_eq!(route_tag("bank/fraud", None), "bank/fraud/");
    }
}
