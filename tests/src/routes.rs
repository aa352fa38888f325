//! The gateway's route table as plain data: what istiod programs into the ingress gateway
//! from each SeldonDeployment's VirtualService (SPEC section 5). A controller's rendered
//! VirtualServices can be turned into this; [`crate::bootstrap`] turns it into Envoy routes.

/// Seldon's gRPC path pattern (its default VirtualService route).
pub const GRPC_PATH_REGEX: &str = ".*tensorflow.*|.*seldon.protos.*|.*inference.*";

/// Every model the gateway routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Models, in VirtualService order.
    pub models: Vec<ModelRoutes>,
}

/// One SeldonDeployment's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoutes {
    /// The namespace.
    pub namespace: String,
    /// The SeldonDeployment's name.
    pub name: String,
    /// The routing header of the per-predictor routes (`seldon.io/ab-header`).
    pub ab_header: String,
    /// Non-shadow predictors in order, with their `traffic` weights.
    pub predictors: Vec<PredictorRoute>,
}

/// A predictor's destination and weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictorRoute {
    /// The predictor's name: the routing header's value and the destination subset.
    pub name: String,
    /// Its weight on the default routes.
    pub traffic: u32,
}

impl ModelRoutes {
    /// A model with the default routing header.
    pub fn new(namespace: &str, name: &str, predictors: &[(&str, u32)]) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            ab_header: modelgate_core::config::DEFAULT_AB_HEADER.to_string(),
            predictors: predictors
                .iter()
                .map(|(name, traffic)| PredictorRoute {
                    name: name.to_string(),
                    traffic: *traffic,
                })
                .collect(),
        }
    }

    /// The same model with another routing header.
    pub fn with_ab_header(mut self, header: &str) -> Self {
        self.ab_header = header.to_string();
        self
    }

    /// `<namespace>/<name>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The REST prefix of its routes.
    pub fn prefix(&self) -> String {
        format!("/seldon/{}/{}/", self.namespace, self.name)
    }

    /// Whether the VirtualService has per-predictor header routes (several predictors).
    pub fn has_header_routes(&self) -> bool {
        self.predictors.len() > 1
    }

    /// The Kubernetes Service of a predictor (`<sdep>-<predictor>`), the destination host.
    pub fn service(&self, predictor: &str) -> String {
        format!(
            "{}-{predictor}.{}.svc.cluster.local",
            self.name, self.namespace
        )
    }

    /// The Envoy cluster of a predictor, named the way istiod names subset clusters.
    pub fn cluster(&self, predictor: &str) -> String {
        format!("outbound|8000|{predictor}|{}", self.service(predictor))
    }
}
