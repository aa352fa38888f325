//! The controller's Prometheus metrics (`/metrics`), all prefixed `modelgate_controller_`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
