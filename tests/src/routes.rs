//! The gateway's route table as plain data: what istiod programs into the ingress gateway
//! from each SeldonDeployment's VirtualService (SPEC section 5). Either written by hand in
//! the shape SPEC section 5 describes ([`ModelRoutes`]), or translated from the
//! VirtualServices the controller renders ([`VirtualServiceRoutes`], made by
//! [`crate::virtual_service`]); [`crate::bootstrap`] turns it into Envoy routes.

use std::collections::BTreeMap;

use serde_json::Value;

/// Seldon's gRPC path pattern (its default VirtualService route).
pub const GRPC_PATH_REGEX: &str = ".*tensorflow.*|.*seldon.protos.*|.*inference.*";

/// Every model the gateway routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Models, in VirtualService order.
    pub models: Vec<ModelRoutes>,
    /// Routes translated from rendered VirtualServices, in order; on a shared host they
    /// come before the routes of `models`.
    pub virtual_services: Vec<VirtualServiceRoutes>,
}

/// One VirtualService as istiod programs it into the gateway: Envoy routes for each of its
/// hosts, and the predictors (destination subsets) they send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServiceRoutes {
    /// `<namespace>/<name>` of the VirtualService: the SeldonDeployment's id, as its name
    /// is the `seldonId` (the SeldonDeployment's name when at most 63 characters).
    pub id: String,
    /// The hosts whose virtual hosts get these routes (`*`, or names).
    pub hosts: Vec<String>,
    /// Envoy routes (`config.route.v3.Route` as JSON), in VirtualService order.
    pub routes: Vec<Value>,
    /// Every destination the routes name (mirrors too), one per Service and subset.
    pub destinations: Vec<PredictorDestination>,
}

/// The pods of one predictor: a Service host and a subset, reached through one Envoy
/// cluster per port (`outbound|<port>|<subset>|<host>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictorDestination {
    /// The predictor: the destination's subset.
    pub predictor: String,
    /// The Service host (`<svc>.<ns>.svc.cluster.local`).
    pub host: String,
    /// The clusters, one per port the routes use.
    pub clusters: Vec<String>,
}

impl PredictorDestination {
    /// The key of its stand-in server in a [`RouteTable`]'s backends.
    pub fn backend_key(&self) -> String {
        format!("{}|{}", self.host, self.predictor)
    }
}

/// A stand-in server the gateway needs: one per predictor's pods, reached through every
/// cluster that names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Its key, unique in the table.
    pub key: String,
    /// The predictor it answers as.
    pub predictor: String,
    /// The Envoy clusters whose one endpoint it is.
    pub clusters: Vec<String>,
}

impl RouteTable {
    /// A table of hand-written models.
    pub fn new(models: Vec<ModelRoutes>) -> Self {
        Self {
            models,
            virtual_services: Vec::new(),
        }
    }

    /// Every stand-in server the routes need, ordered by key.
    pub fn backends(&self) -> Vec<Backend> {
        let mut backends: BTreeMap<String, Backend> = BTreeMap::new();
        for model in &self.models {
            for predictor in &model.predictors {
                let cluster = model.cluster(&predictor.name);
                backends.insert(
                    cluster.clone(),
                    Backend {
                        key: cluster.clone(),
                        predictor: predictor.name.clone(),
                        clusters: vec![cluster],
                    },
                );
            }
        }
        for vs in &self.virtual_services {
            for destination in &vs.destinations {
                let backend = backends
                    .entry(destination.backend_key())
                    .or_insert_with(|| Backend {
                        key: destination.backend_key(),
                        predictor: destination.predictor.clone(),
                        clusters: Vec::new(),
                    });
                for cluster in &destination.clusters {
                    if !backend.clusters.contains(cluster) {
                        backend.clusters.push(cluster.clone());
                    }
                }
            }
        }
        backends.into_values().collect()
    }

    /// The backend key of a model's predictor (`model` is `<ns>/<name>`).
    pub fn backend_key(&self, model: &str, predictor: &str) -> Option<String> {
        if let Some(m) = self.models.iter().find(|m| m.id() == model) {
            return m
                .predictors
                .iter()
                .any(|p| p.name == predictor)
                .then(|| m.cluster(predictor));
        }
        self.virtual_services
            .iter()
            .filter(|vs| vs.id == model)
            .flat_map(|vs| &vs.destinations)
            .find(|d| d.predictor == predictor)
            .map(PredictorDestination::backend_key)
    }
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
