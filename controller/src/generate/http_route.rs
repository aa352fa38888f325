//! The HTTPRoute of a SeldonDeployment (setting `routing: gateway-api`): the routes of its
//! VirtualService (see `virtual_service.rs`) in Gateway API terms, on the Gateway API
//! Gateway the model names.
//!
//! REST is a `PathPrefix` match on `/seldon/<ns>/<name>/` rewritten to `/`
//! (`ReplacePrefixMatch`); gRPC is a rule of the same HTTPRoute matching Seldon's path
//! expression and the `seldon`/`namespace` headers, as the VirtualService does. (A
//! GRPCRoute cannot match those headers with the path expression, and Gateway API lets a
//! listener accept only one of an HTTPRoute and a GRPCRoute sharing a hostname: with `*`
//! hosts, the models' GRPCRoutes and HTTPRoutes would shut each other out.)
//!
//! Every rule requires the filter's route tag for this model, like the VirtualService's
//! routes: `Exact` on a predictor's own rules, and on the weighted rules a
//! `RegularExpression` for the prefix `<ns>/<name>/` (Gateway API has no prefix header
//! match). Gateway API orders rules by specificity, not position: with the same path
//! match, the predictor rules' extra header makes them win over the weighted rule, as
//! their place before it does in the VirtualService.

use modelgate_core::headers::{ROUTE_TAG_HEADER, route_tag};

use super::virtual_service::{GRPC_PATH_REGEX, GRPC_PORT, REST_PORT};
use crate::annotations::{self, GatewayRef, ModelError, ModelOptions, ModelWarning, Source};
use crate::gateway_api::{
    BackendObjectReference, GROUP, HTTPRoute, HeaderMatch, HttpBackendRef, HttpRouteFilter,
    HttpRouteMatch, HttpRouteRule, HttpRouteSpec, HttpRouteTimeouts, ParentReference, PathMatch,
    PathModifier, RequestMirror, UrlRewrite,
};
use crate::seldon::{PredictorSpec, SeldonDeployment};
use crate::settings::Settings;

/// The most rules an HTTPRoute may have (Gateway API's bound).
pub const MAX_RULES: usize = 16;
/// The most predictors taking traffic a model may have in `gateway-api` routing: a REST
/// and a gRPC rule each, plus the two weighted rules, within [`MAX_RULES`].
pub const MAX_SERVING_PREDICTORS: usize = (MAX_RULES - 2) / 2;
/// The largest backend weight Gateway API takes.
pub const MAX_WEIGHT: u32 = 1_000_000;

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Rest,
    Grpc,
}

impl Protocol {
    fn port(self) -> u32 {
        match self {
            Protocol::Rest => REST_PORT,
            Protocol::Grpc => GRPC_PORT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Rest => "rest",
            Protocol::Grpc => "grpc",
        }
    }
}

/// Why a model whose annotations parsed still cannot be routed by an HTTPRoute: its
/// Gateway is `mesh` or outside the namespace the extension attaches in (a route there
/// would reach the model without the filter), or it has more predictors taking traffic
/// than an HTTPRoute has rules for.
pub fn refusals(
    sdep: &SeldonDeployment,
    options: &ModelOptions,
    settings: &Settings,
) -> Vec<ModelError> {
    let object = sdep.model_id();
    let from = gateway_source(sdep);
    let mut errors = Vec::new();
    match &options.gateway {
        GatewayRef::Mesh => errors.push(ModelError::Annotation {
            object: object.clone(),
            annotation: annotations::ISTIO_GATEWAY.into(),
            value: "mesh".into(),
            from,
            expected: "a Gateway API Gateway: with routing gateway-api, in-mesh routing is not generated".into(),
        }),
        GatewayRef::Named { namespace, name } if *namespace != settings.gateway_namespace => {
            errors.push(ModelError::Annotation {
                object: object.clone(),
                annotation: annotations::ISTIO_GATEWAY.into(),
                value: format!("{namespace}/{name}"),
                from,
                expected: format!(
                    "a Gateway in namespace {}, where the filter is attached (setting gatewayNamespace): a route on a Gateway elsewhere would reach the model without the filter",
                    settings.gateway_namespace
                ),
            })
        }
        GatewayRef::Named { .. }
            if !super::tenancy::may_create_gateway(
                settings,
                sdep.namespace_or_empty(),
                &options.gateway,
            ) =>
        {
            errors.push(ModelError::Annotation {
                object: object.clone(),
                annotation: annotations::ISTIO_GATEWAY.into(),
                value: options.gateway.to_string(),
                from,
                expected: "the default Gateway (setting defaultGateway), or one in a namespace the platform opens to every model (setting tenancy.gatewayNamespaces): the filter is attached to each Gateway a model names, and a model may not add Gateways elsewhere".into(),
            });
        }
        GatewayRef::Named { .. } => {}
    }
    let serving = sdep.serving_predictors().count();
    if serving > MAX_SERVING_PREDICTORS {
        errors.push(ModelError::Spec {
            object,
            field: "spec.predictors".into(),
            value: format!("{serving} predictors taking traffic"),
            expected: format!(
                "at most {MAX_SERVING_PREDICTORS} with routing gateway-api (an HTTPRoute has at most {MAX_RULES} rules)"
            ),
        });
    }
    errors
}

/// Where the model's `seldon.io/istio-gateway` was read (Seldon's order).
fn gateway_source(sdep: &SeldonDeployment) -> Source {
    let has = |a: Option<&std::collections::BTreeMap<String, String>>| {
        a.is_some_and(|a| a.contains_key(annotations::ISTIO_GATEWAY))
    };
    if has(sdep.spec.annotations.as_ref()) {
        Source::Spec
    } else if has(sdep.metadata.annotations.as_ref()) {
        Source::Metadata
    } else {
        Source::Setting
    }
}

/// What the model's annotations ask for that an HTTPRoute cannot express, as warnings.
pub fn warnings(sdep: &SeldonDeployment, options: &ModelOptions) -> Vec<ModelWarning> {
    let object = sdep.model_id();
    let mut out = Vec::new();
    if let Some(retries) = options.retries {
        let message = if retries.attempts == 0 {
            "Gateway API (v1.6 standard) cannot turn retries off: Istio's default retries apply"
                .to_string()
        } else {
            format!(
                "Gateway API (v1.6 standard) has no retry count: Istio's default retries apply, not {} attempts; the per-try timeout ({}s) becomes timeouts.backendRequest, which Istio applies to the whole request when the route sets no retries",
                retries.attempts, retries.per_try_timeout_secs
            )
        };
        out.push(ModelWarning {
            object: object.clone(),
            annotation: annotations::ISTIO_RETRIES.into(),
            message,
        });
    }
    let weights_over = sdep
        .serving_predictors()
        .any(|p| p.traffic.is_some_and(|t| t > i64::from(MAX_WEIGHT)));
    if weights_over && sdep.serving_predictors().count() > 1 {
        out.push(ModelWarning {
            object,
            annotation: "spec.predictors[].traffic".into(),
            message: format!(
                "weights over {MAX_WEIGHT} are cut to {MAX_WEIGHT} (Gateway API's bound)"
            ),
        });
    }
    out
}

/// The HTTPRoute `<seldonId>` of a SeldonDeployment whose annotations parsed and which
/// [`refusals`] accepts.
pub fn render_http_route(sdep: &SeldonDeployment, options: &ModelOptions) -> HTTPRoute {
    let serving: Vec<&PredictorSpec> = sdep.serving_predictors().collect();
    let shadow = sdep.spec.predictors.iter().find(|p| p.is_shadow());
    let model_id = sdep.model_id();
    let mut rules = Vec::new();
    if serving.len() > 1 {
        for protocol in [Protocol::Rest, Protocol::Grpc] {
            for predictor in &serving {
                let mut m = model_match(sdep, protocol);
                m.headers
                    .push(exact(&options.routing.header, &predictor.name));
                m.headers.push(exact(
                    ROUTE_TAG_HEADER,
                    &route_tag(&model_id, Some(&predictor.name)),
                ));
                rules.push(rule(
                    sdep,
                    options,
                    protocol,
                    format!("{}-{}", protocol.name(), predictor.name),
                    m,
                    vec![backend(sdep, predictor, protocol, 1)],
                    shadow,
                ));
            }
        }
    }
    for protocol in [Protocol::Rest, Protocol::Grpc] {
        let single = serving.len() == 1;
        let split = serving
            .iter()
            .map(|p| {
                let weight = if single {
                    1
                } else {
                    p.traffic.unwrap_or(0).clamp(0, i64::from(MAX_WEIGHT)) as u32
                };
                backend(sdep, p, protocol, weight)
            })
            .collect();
        let mut m = model_match(sdep, protocol);
        m.headers.push(HeaderMatch {
            r#type: "RegularExpression".into(),
            name: ROUTE_TAG_HEADER.into(),
            value: format!("{}.*", regex_literal(&route_tag(&model_id, None))),
        });
        rules.push(rule(
            sdep,
            options,
            protocol,
            protocol.name().into(),
            m,
            split,
            shadow,
        ));
    }
    let parent_refs = match &options.gateway {
        GatewayRef::Named { namespace, name } => vec![ParentReference {
            group: GROUP.into(),
            kind: "Gateway".into(),
            namespace: namespace.clone(),
            name: name.clone(),
        }],
        // Refused by `refusals`; no parent leaves the route unattached.
        GatewayRef::Mesh => Vec::new(),
    };
    HTTPRoute {
        metadata: super::owned_metadata(sdep, sdep.seldon_id()),
        spec: HttpRouteSpec {
            parent_refs,
            // `*` is every host: Gateway API says so by listing none.
            hostnames: if options.hosts.iter().any(|h| h == "*") {
                Vec::new()
            } else {
                options.hosts.clone()
            },
            rules,
        },
    }
}

fn exact(name: &str, value: &str) -> HeaderMatch {
    HeaderMatch {
        r#type: "Exact".into(),
        name: name.into(),
        value: value.into(),
    }
}

/// `text` as an RE2 expression matching it literally.
fn regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Seldon's match of a model's requests.
fn model_match(sdep: &SeldonDeployment, protocol: Protocol) -> HttpRouteMatch {
    let namespace = sdep.namespace_or_empty();
    match protocol {
        Protocol::Rest => HttpRouteMatch {
            path: PathMatch {
                r#type: "PathPrefix".into(),
                value: format!("/seldon/{namespace}/{}/", sdep.name()),
            },
            headers: Vec::new(),
        },
        Protocol::Grpc => HttpRouteMatch {
            path: PathMatch {
                r#type: "RegularExpression".into(),
                value: GRPC_PATH_REGEX.into(),
            },
            headers: vec![exact("seldon", sdep.name()), exact("namespace", namespace)],
        },
    }
}

fn rule(
    sdep: &SeldonDeployment,
    options: &ModelOptions,
    protocol: Protocol,
    name: String,
    m: HttpRouteMatch,
    backend_refs: Vec<HttpBackendRef>,
    shadow: Option<&PredictorSpec>,
) -> HttpRouteRule {
    let mut filters = Vec::new();
    if protocol == Protocol::Rest {
        filters.push(HttpRouteFilter {
            r#type: "URLRewrite".into(),
            url_rewrite: Some(UrlRewrite {
                path: PathModifier {
                    r#type: "ReplacePrefixMatch".into(),
                    replace_prefix_match: "/".into(),
                },
            }),
            request_mirror: None,
        });
    }
    if let Some(shadow) = shadow {
        filters.push(HttpRouteFilter {
            r#type: "RequestMirror".into(),
            url_rewrite: None,
            request_mirror: Some(RequestMirror {
                backend_ref: BackendObjectReference {
                    group: String::new(),
                    kind: "Service".into(),
                    name: sdep.predictor_service(shadow),
                    port: protocol.port(),
                },
                percent: shadow.traffic.filter(|t| *t > 0).map(|t| t.min(100) as u32),
            }),
        });
    }
    HttpRouteRule {
        name: Some(name),
        matches: vec![m],
        filters,
        backend_refs,
        timeouts: options
            .retries
            .filter(|r| r.attempts > 0)
            .map(|r| HttpRouteTimeouts {
                backend_request: Some(format!("{}s", r.per_try_timeout_secs)),
            }),
    }
}

fn backend(
    sdep: &SeldonDeployment,
    predictor: &PredictorSpec,
    protocol: Protocol,
    weight: u32,
) -> HttpBackendRef {
    HttpBackendRef {
        group: String::new(),
        kind: "Service".into(),
        name: sdep.predictor_service(predictor),
        port: protocol.port(),
        weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_is_escaped_for_re2() {
        assert_eq!(regex_literal("ns/a.b/"), "ns/a\\.b/");
        assert_eq!(regex_literal("x+(y)"), "x\\+\\(y\\)");
    }
}
