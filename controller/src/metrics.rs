//! The controller's Prometheus metrics (`/metrics`), all prefixed `modelgate_controller_`.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::generate::filter_config::ModelEntry;

/// A `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// A `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The object's kind (`Gateway`, `VirtualService`, ...).
    pub kind: String,
}

/// The `model` and `predictor` labels of a configured weight.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PredictorLabels {
    /// `<namespace>/<name>`, as the filter's `model` label.
    pub model: String,
    /// The predictor's name, as the filter's `predictor` label.
    pub predictor: String,
}

/// An `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// What became of it.
    pub outcome: String,
}

/// The metrics, cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    /// Reconciliations by result.
    pub reconciliations: Family<ResultLabel, Counter>,
    /// JWKS fetches by result.
    pub jwks_fetches: Family<ResultLabel, Counter>,
    /// SeldonDeployments seen.
    pub models: Gauge,
    /// SeldonDeployments whose annotations do not parse.
    pub invalid_models: Gauge,
    /// Shared objects that could not be read or written, by kind (the WasmPlugin was
    /// applied without them).
    pub object_failures: Family<KindLabel, Counter>,
    /// The `traffic` weight of every predictor of the models with A/B routing, as the
    /// filter configuration in force carries it (so a dashboard can set the filter's
    /// `modelgate_routed_total` split against it).
    pub predictor_traffic: Family<PredictorLabels, Gauge>,
    /// Requests of the filter's key channel, by outcome.
    pub key_refetches: Family<OutcomeLabel, Counter>,
    invalid: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("modelgate_controller");
        sub.register(
            "reconciliations",
            "Reconciliations by result",
            self.reconciliations.clone(),
        );
        sub.register(
            "jwks_fetches",
            "JWKS fetches by result",
            self.jwks_fetches.clone(),
        );
        sub.register(
            "key_refetches",
            "Requests of the filter's key channel (/keys), by outcome",
            self.key_refetches.clone(),
        );
        sub.register("models", "SeldonDeployments seen", self.models.clone());
        sub.register(
            "invalid_models",
            "SeldonDeployments whose annotations do not parse",
            self.invalid_models.clone(),
        );
        sub.register(
            "object_failures",
            "Shared objects (Gateways, removed models' routes) that could not be read or written, by kind",
            self.object_failures.clone(),
        );
        sub.register(
            "predictor_traffic",
            "Configured traffic weight of each predictor of the models with A/B routing",
            self.predictor_traffic.clone(),
        );
    }

    /// Sets the configured weights to those of `entries` (the filter configuration just
    /// applied): models without A/B routing, and models gone, have none.
    pub fn set_predictor_traffic(&self, entries: &BTreeMap<String, ModelEntry>) {
        self.predictor_traffic.clear();
        for (model, entry) in entries {
            for predictor in entry.routing.iter().flat_map(|r| &r.predictors) {
                self.predictor_traffic
                    .get_or_create(&PredictorLabels {
                        model: model.clone(),
                        predictor: predictor.name.clone(),
                    })
                    .set(i64::from(predictor.traffic));
            }
        }
    }

    /// Counts a shared object that could not be read or written.
    pub fn object_failed(&self, kind: &str) {
        self.object_failures
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Counts a reconciliation.
    pub fn reconciled(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" }.to_string();
        self.reconciliations
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts a JWKS fetch.
    pub fn jwks_fetched(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" }.to_string();
        self.jwks_fetches
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts a request of the filter's key channel.
    pub fn key_refetched(&self, outcome: &str) {
        self.key_refetches
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Sets the number of SeldonDeployments.
    pub fn set_models(&self, n: usize) {
        self.models.set(n as i64);
    }

    /// Records whether a model currently has errors.
    pub fn model_errors(&self, model: &str, invalid: bool) {
        let mut set = self.invalid.lock().unwrap_or_else(|e| e.into_inner());
        if invalid {
            set.insert(model.to_string());
        } else {
            set.remove(model);
        }
        self.invalid_models.set(set.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::PolicySpec;
    use modelgate_core::config::{Predictor, Routing};

    fn entry(predictors: &[(&str, u32)]) -> ModelEntry {
        let mut entry = ModelEntry::deny("test");
        entry.policy = PolicySpec::None;
        entry.routing = (!predictors.is_empty()).then(|| Routing {
            header: "x-modelgate-predictor".into(),
            override_allowed: true,
            sticky: None,
            predictors: predictors
                .iter()
                .map(|(name, traffic)| Predictor {
                    name: (*name).into(),
                    traffic: *traffic,
                })
                .collect(),
        });
        entry
    }

    fn scrape(metrics: &Metrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn configured_weights_follow_the_configuration_in_force() {
        let metrics = Metrics::default();
        let mut entries = BTreeMap::new();
        entries.insert(
            "prod/fraud".to_string(),
            entry(&[("main", 75), ("canary", 25)]),
        );
        entries.insert("prod/single".to_string(), entry(&[]));
        metrics.set_predictor_traffic(&entries);
        let text = scrape(&metrics);
        assert!(text.contains(
            "modelgate_controller_predictor_traffic{model=\"prod/fraud\",predictor=\"main\"} 75"
        ));
        assert!(text.contains(
            "modelgate_controller_predictor_traffic{model=\"prod/fraud\",predictor=\"canary\"} 25"
        ));
        assert!(!text.contains("prod/single"), "{text}");

        // The split changes and the canary goes: no stale series is left behind.
        entries.insert(
            "prod/fraud".to_string(),
            entry(&[("main", 100), ("next", 0)]),
        );
        metrics.set_predictor_traffic(&entries);
        let text = scrape(&metrics);
        assert!(text.contains("predictor=\"main\"} 100"), "{text}");
        assert!(text.contains("predictor=\"next\"} 0"), "{text}");
        assert!(!text.contains("canary"), "{text}");
    }
}
