//! The VirtualService of a SeldonDeployment: Seldon v1's two routes (REST by prefix,
//! gRPC by path regex and the `seldon`/`namespace` headers) split by `traffic`, preceded,
//! when there are several predictors that take traffic, by a REST and a gRPC route per
//! predictor that match the A/B header the filter sets.
//!
//! On a gateway every route also requires the filter's route tag for this model
//! (`x-modelgate-route`, prefix `<ns>/<name>/`; exactly `<ns>/<name>/<predictor>` on a
//! predictor's own routes): the filter sets it only after deciding the request for this
//! model, so no header a token writes can steer a request onto another model's route, a
//! model is not routable before the filter knows it, and its header-match routes only
//! answer once the filter chooses its predictors. (`mesh` has no filter, hence no tag.)

use std::collections::BTreeMap;

use modelgate_core::headers::{ROUTE_TAG_HEADER, route_tag};

use crate::annotations::{GatewayRef, ModelOptions, Retries};
use crate::istio::{
    Destination, HttpMatchRequest, HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination,
    Percent, PortSelector, StringMatch, VirtualService, VirtualServiceSpec,
};
use crate::seldon::{PredictorSpec, SeldonDeployment};

/// Seldon's REST port of a predictor's Service.
pub const REST_PORT: u32 = 8000;
/// Seldon's gRPC port of a predictor's Service.
pub const GRPC_PORT: u32 = 5001;
/// Paths of gRPC requests to Seldon models (Seldon's `GRPCRegExMatchIstio`).
pub const GRPC_PATH_REGEX: &str = ".*tensorflow.*|.*seldon.protos.*|.*inference.*";
/// Conditions retried by Istio (Seldon's list).
pub const RETRY_ON: &str = "gateway-error,connect-failure,refused-stream";

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

/// The VirtualService `<seldonId>` of a SeldonDeployment whose annotations parsed.
pub fn render_virtual_service(sdep: &SeldonDeployment, options: &ModelOptions) -> VirtualService {
    let serving: Vec<&PredictorSpec> = sdep.serving_predictors().collect();
    let shadow = sdep.spec.predictors.iter().find(|p| p.is_shadow());
    let guarded = options.gateway != GatewayRef::Mesh;
    let model_id = sdep.model_id();
    let mut http = Vec::new();
    if serving.len() > 1 {
        for protocol in [Protocol::Rest, Protocol::Grpc] {
            for predictor in &serving {
                let mut m = model_match(sdep, protocol);
                m.headers.insert(
                    options.routing.header.clone(),
                    StringMatch::Exact(predictor.name.clone()),
                );
                if guarded {
                    m.headers.insert(
                        ROUTE_TAG_HEADER.to_string(),
                        StringMatch::Exact(route_tag(&model_id, Some(&predictor.name))),
                    );
                }
                http.push(route(
                    sdep,
                    options,
                    protocol,
                    format!("{}-{}", protocol.name(), predictor.name),
                    m,
                    vec![HttpRouteDestination {
                        destination: destination(sdep, predictor, protocol),
                        weight: 100,
                    }],
                    shadow,
                ));
            }
        }
    }
    for protocol in [Protocol::Rest, Protocol::Grpc] {
        let single = serving.len() == 1;
        let split = serving
            .iter()
            .map(|p| HttpRouteDestination {
                destination: destination(sdep, p, protocol),
                // One predictor takes everything, whatever its traffic says (Seldon
                // defaults it to 100).
                weight: if single {
                    100
                } else {
                    p.traffic.unwrap_or(0).clamp(0, i64::from(i32::MAX)) as u32
                },
            })
            .collect();
        let mut m = model_match(sdep, protocol);
        if guarded {
            m.headers.insert(
                ROUTE_TAG_HEADER.to_string(),
                StringMatch::Prefix(route_tag(&model_id, None)),
            );
        }
        http.push(route(
            sdep,
            options,
            protocol,
            protocol.name().to_string(),
            m,
            split,
            shadow,
        ));
    }
    VirtualService {
        metadata: super::owned_metadata(sdep, sdep.seldon_id()),
        spec: VirtualServiceSpec {
            hosts: options.hosts.clone(),
            gateways: vec![options.gateway.to_string()],
            http,
        },
    }
}

/// Seldon's match of a model's requests.
fn model_match(sdep: &SeldonDeployment, protocol: Protocol) -> HttpMatchRequest {
    let namespace = sdep.namespace_or_empty();
    match protocol {
        Protocol::Rest => HttpMatchRequest {
            uri: Some(StringMatch::Prefix(format!(
                "/seldon/{namespace}/{}/",
                sdep.name()
            ))),
            headers: BTreeMap::new(),
        },
        Protocol::Grpc => HttpMatchRequest {
            uri: Some(StringMatch::Regex(GRPC_PATH_REGEX.into())),
            headers: [
                (
                    "seldon".to_string(),
                    StringMatch::Exact(sdep.name().to_string()),
                ),
                (
                    "namespace".to_string(),
                    StringMatch::Exact(namespace.to_string()),
                ),
            ]
            .into(),
        },
    }
}

fn route(
    sdep: &SeldonDeployment,
    options: &ModelOptions,
    protocol: Protocol,
    name: String,
    m: HttpMatchRequest,
    route: Vec<HttpRouteDestination>,
    shadow: Option<&PredictorSpec>,
) -> HttpRoute {
    HttpRoute {
        name: Some(name),
        r#match: vec![m],
        rewrite: (protocol == Protocol::Rest).then(|| HttpRewrite { uri: "/".into() }),
        route,
        retries: options.retries.map(retries),
        mirror: shadow.map(|p| destination(sdep, p, protocol)),
        mirror_percentage: shadow
            .and_then(|p| p.traffic)
            .filter(|t| *t > 0)
            .map(|t| Percent {
                value: t.min(100) as f64,
            }),
    }
}

fn retries(r: Retries) -> HttpRetry {
    if r.attempts == 0 {
        // Explicitly no retries (Istio retries twice by default).
        return HttpRetry {
            attempts: 0,
            per_try_timeout: None,
            retry_on: None,
        };
    }
    HttpRetry {
        attempts: r.attempts,
        per_try_timeout: Some(format!("{}s", r.per_try_timeout_secs)),
        retry_on: Some(RETRY_ON.into()),
    }
}

fn destination(
    sdep: &SeldonDeployment,
    predictor: &PredictorSpec,
    protocol: Protocol,
) -> Destination {
    Destination {
        host: format!(
            "{}.{}.svc.cluster.local",
            sdep.predictor_service(predictor),
            sdep.namespace_or_empty()
        ),
        subset: predictor.name.clone(),
        port: PortSelector {
            number: protocol.port(),
        },
    }
}
