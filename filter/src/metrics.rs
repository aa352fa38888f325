//! Envoy counters for decisions and routing. Labels are encoded in the stat name the way
//! Istio encodes its own (`name.label=.=value;.;`), so they become Prometheus labels once
//! the gateway's proxy lists them as stat tags (`extraStatTags` in Istio's mesh config);
//! `filter/README.md` lists every metric.
//!
//! A stat is defined (and its name formatted) the first time a combination is seen; after
//! that a request costs one hash lookup keyed by indices and static strings.

use std::collections::HashMap;

use modelgate_core::{Decision, Outcome};
use proxy_wasm::hostcalls::{define_metric, increment_metric, record_metric};
use proxy_wasm::types::MetricType;

/// What a request is counted under: (model index, decision, reason) or
/// (model index, predictor index, routing reason).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Request(usize, &'static str, &'static str),
    Routed(usize, usize, &'static str),
    Unaddressed(&'static str),
}

/// Counters and gauges of one VM.
#[derive(Default)]
pub struct Metrics {
    /// Per-request stats of the configuration in force (indices are per configuration).
    ids: HashMap<Key, u32>,
    /// Stats defined by name (configuration loads).
    named: HashMap<String, u32>,
}

impl Metrics {
    /// Counts a decision and its routing.
    pub fn record(&mut self, decision: &Decision<'_>) {
        let Some(model) = decision.model else {
            let reason = match decision.outcome {
                Outcome::Denied(reason) => reason.as_str(),
                _ => "passthrough",
            };
            self.count(Key::Unaddressed(reason), || match reason {
                "passthrough" => "modelgate_passthrough_total".to_string(),
                _ => format!(
                    "modelgate_requests_total.model=.=-;.;decision=.=denied;.;reason=.={reason};.;"
                ),
            });
            return;
        };
        let (verdict, reason) = match decision.outcome {
            Outcome::NotAModel => return,
            Outcome::Allowed(why) => ("allowed", why.as_str()),
            Outcome::Denied(why) => ("denied", why.as_str()),
            Outcome::AuditDenied(why) => ("audit_denied", why.as_str()),
        };
        self.count(Key::Request(model.index, verdict, reason), || {
            format!(
                "modelgate_requests_total.model=.={};.;decision=.={verdict};.;reason=.={reason};.;",
                model.id
            )
        });
        if let Some(route) = decision.route {
            let reason = route.reason.as_str();
            self.count(Key::Routed(model.index, route.index, reason), || {
                format!(
                    "modelgate_routed_total.model=.={};.;predictor=.={};.;reason=.={reason};.;",
                    model.id, route.predictor
                )
            });
        }
    }

    /// Counts a configuration load and sets the number of models. An accepted
    /// configuration renumbers models, so per-request keys start afresh (the Envoy stats,
    /// found again by name, keep counting).
    pub fn config_loaded(&mut self, accepted: bool, models: usize) {
        let result = if accepted { "accepted" } else { "refused" };
        if let Some(id) = self.named(
            &format!("modelgate_config_loads_total.result=.={result};.;"),
            MetricType::Counter,
        ) {
            let _ = increment_metric(id, 1);
        }
        if accepted {
            self.ids.clear();
            if let Some(id) = self.named("modelgate_config_models", MetricType::Gauge) {
                let _ = record_metric(id, models as u64);
            }
        }
    }

    fn count(&mut self, key: Key, name: impl FnOnce() -> String) {
        let id = match self.ids.get(&key) {
            Some(id) => *id,
            None => match define_metric(MetricType::Counter, &name()) {
                Ok(id) => {
                    self.ids.insert(key, id);
                    id
                }
                Err(_) => return,
            },
        };
        let _ = increment_metric(id, 1);
    }

    fn named(&mut self, name: &str, kind: MetricType) -> Option<u32> {
        if let Some(id) = self.named.get(name) {
            return Some(*id);
        }
        let id = define_metric(kind, name).ok()?;
        self.named.insert(name.to_string(), id);
        Some(id)
    }
}
