//! What the shared objects' pass tells each model's reconcile ([`Verdict`]): problems only
//! the whole set or the cluster shows, and the A/B header the applied WasmPlugin sets, for
//! the model as it was ([`shape`]) when the pass decided.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use super::SharedOutcome;
use super::context::{Context, lock};
use super::gateways::GatewayState;
use crate::annotations::{self, GatewayRef, ModelError, ModelWarning};
use crate::generate::Generated;
use crate::generate::filter_config::ModelEntry;
use crate::seldon::SeldonDeployment;

/// What the shared objects' loop knows about one model once a WasmPlugin holding it has
/// been applied. A model's VirtualService is written only when the verdict is for the
/// model as it is now ([`shape`]): so the filter knows a model before it is routable, and
/// problems only the whole set or the cluster shows (a host claimed earlier, a Gateway
/// that may not be created or that the filter does not guard) stop it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The [`shape`] of the SeldonDeployment it was decided for.
    pub shape: u64,
    /// The A/B header the filter sets for the model in the applied WasmPlugin, if any.
    pub routing_header: Option<String>,
    /// Errors: the model's objects are not written, its last good ones stay.
    pub errors: Vec<ModelError>,
    /// Warnings, such as a Gateway not applied yet.
    pub warnings: Vec<ModelWarning>,
}

/// A hash of what generation reads from a SeldonDeployment (its annotations and spec).
pub fn shape(sdep: &SeldonDeployment) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sdep.model_id().hash(&mut hasher);
    serde_json::to_string(&sdep.metadata.annotations)
        .expect("serialising annotations is infallible: a map of strings")
        .hash(&mut hasher);
    serde_json::to_string(&sdep.spec)
        .expect("serialising a SeldonDeployment's spec is infallible: derived Serialize, string map keys only")
        .hash(&mut hasher);
    hasher.finish()
}

/// Records, once the WasmPlugin is applied, what each model's reconcile needs to know.
pub(super) fn record_verdicts<S: Borrow<SeldonDeployment>>(
    ctx: &Context,
    sdeps: &[S],
    generated: &Generated,
    entries: &BTreeMap<String, ModelEntry>,
    gateways: &BTreeMap<GatewayRef, GatewayState>,
    outcome: &mut SharedOutcome,
) {
    let shapes: BTreeMap<String, u64> = sdeps
        .iter()
        .map(|s| (s.borrow().model_id(), shape(s.borrow())))
        .collect();
    let selector: Vec<String> = ctx
        .settings
        .gateway_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut verdicts = BTreeMap::new();
    for model in &generated.models {
        let mut errors = model.objects.as_ref().err().cloned().unwrap_or_default();
        let mut warnings = Vec::new();
        if let Some(gateway) = &model.gateway {
            let problem = |expected: String| ModelError::Spec {
                object: model.id.clone(),
                field: annotations::ISTIO_GATEWAY.into(),
                value: gateway.to_string(),
                expected,
            };
            match gateways.get(gateway) {
                Some(GatewayState::Missing) => errors.push(problem(format!(
                    "an existing Gateway: it does not exist, and modelgate creates Gateways only in the model's own namespace, in the namespaces of setting tenancy.gatewayNamespaces, or the defaultGateway {} (with routing gateway-api, at most gatewayApi.maxCreatedGateways besides the default)",
                    ctx.settings.default_gateway
                ))),
                Some(GatewayState::Unguarded(found)) => errors.push(problem(format!(
                    "a Gateway on the ingress pods the modelgate filter is installed on (gatewaySelector {}): its selector {found:?} may pick pods the filter does not guard, so the model would be open",
                    selector.join(",")
                ))),
                Some(GatewayState::Failed(why)) => warnings.push(ModelWarning {
                    object: model.id.clone(),
                    annotation: annotations::ISTIO_GATEWAY.into(),
                    message: format!("{gateway}: cannot be applied or read yet ({why}); retried with backoff"),
                }),
                Some(GatewayState::Guarded) | None => {}
            }
        }
        let Some(shape) = shapes.get(&model.id) else {
            continue;
        };
        let verdict = Verdict {
            shape: *shape,
            routing_header: entries
                .get(&model.id)
                .and_then(|e| e.routing.as_ref())
                .map(|r| r.header.clone()),
            errors,
            warnings,
        };
        verdicts.insert(model.id.clone(), verdict);
    }
    let mut recorded = lock(&ctx.verdicts);
    for (id, verdict) in &verdicts {
        match recorded.get(id) {
            Some(before)
                if before.shape == verdict.shape
                    && (before.errors != verdict.errors || before.warnings != verdict.warnings) =>
            {
                outcome.changed.push(id.clone());
            }
            Some(before) if before.shape == verdict.shape => {}
            // No verdict for the model as it is now: it has been waiting for this one.
            _ => outcome.admitted.push(id.clone()),
        }
    }
    *recorded = verdicts;
}
