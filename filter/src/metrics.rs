//! Envoy counters for decisions and routing. Labels are encoded in the stat name the way
//! Istio encodes its own (`name.label=.=value;.;`), so they become Prometheus labels once
//! the gateway's proxy lists them as stat tags (`extraStatTags` in Istio's mesh config);
//! `filter/README.md` lists every metric.

use std::collections::HashMap;

use modelgate_core::{Decision, Outcome};
use proxy_wasm::hostcalls::{define_metric, increment_metric, record_metric};
use proxy_wasm::types::MetricType;

/// Counters and gauges of one VM, defined on first use.
#[derive(Default)]
pub struct Metrics {
    ids: HashMap<String, u32>,
}

impl Metrics {
    /// Counts a decision and its routing.
    pub fn record(&mut self, decision: &Decision<'_>) {
        let Some(model) = decision.model else {
            if let Outcome::Denied(reason) = decision.outcome {
                self.count(&format!(
                    "modelgate_requests_total.model=.=-;.;decision=.=denied;.;reason=.={};.;",
                    reason.as_str()
                ));
            } else {
                self.count("modelgate_passthrough_total");
            }
            return;
        };
        let (verdict, reason) = match decision.outcome {
            Outcome::NotAModel => return,
            Outcome::Allowed(why) => ("allowed", why.as_str()),
            Outcome::Denied(why) => ("denied", why.as_str()),
            Outcome::AuditDenied(why) => ("audit_denied", why.as_str()),
        };
        self.count(&format!(
            "modelgate_requests_total.model=.={};.;decision=.={verdict};.;reason=.={reason};.;",
            model.id
        ));
        if let Some(route) = decision.route {
            self.count(&format!(
                "modelgate_routed_total.model=.={};.;predictor=.={};.;reason=.={};.;",
                model.id,
                route.predictor,
                route.reason.as_str()
            ));
        }
    }

    /// Counts a configuration load and sets the number of models.
    pub fn config_loaded(&mut self, accepted: bool, models: usize) {
        let result = if accepted { "accepted" } else { "refused" };
        self.count(&format!(
            "modelgate_config_loads_total.result=.={result};.;"
        ));
        if accepted && let Some(id) = self.id("modelgate_config_models", MetricType::Gauge) {
            let _ = record_metric(id, models as u64);
        }
    }

    fn count(&mut self, name: &str) {
        if let Some(id) = self.id(name, MetricType::Counter) {
            let _ = increment_metric(id, 1);
        }
    }

    fn id(&mut self, name: &str, kind: MetricType) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = define_metric(kind, name).ok()?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }
}
